package archtest

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/edged-proxy/edged"

// rules lists, per package, the edged packages and non-standard modules its
// transitive dependencies must not include (docs/architecture.md).
var rules = []struct {
	pkg       string
	forbidden []string // import path prefixes
	allowed   []string // exceptions to forbidden: these import paths (exactly) may be used
	stdOnly   bool     // no non-standard dependency at all (edged's own internal/ excepted)
}{
	{pkg: "lb/ketama", stdOnly: true},
	{pkg: "loadtest/...", stdOnly: true},
	{pkg: "storage", forbidden: []string{mod + "/cache", mod + "/edge", mod + "/lb", mod + "/purge", mod + "/cmd", "net/http", "github.com/prometheus"}},
	{pkg: "purge", forbidden: []string{mod + "/cache", mod + "/edge", mod + "/lb", mod + "/storage", mod + "/cmd", mod + "/internal", mod + "/purge/fleet", "github.com/nats-io"}},
	// purge/selector imports nothing of ours (it may not import purge: purge imports it).
	{pkg: "purge/selector", stdOnly: true, forbidden: []string{mod + "/cache", mod + "/edge", mod + "/lb", mod + "/storage", mod + "/cmd", mod + "/internal", mod + "/loadtest", mod + "/purge/fleet"}},
	{pkg: "purge/fleet", forbidden: []string{mod + "/cache", mod + "/edge", mod + "/lb", mod + "/storage", mod + "/cmd", mod + "/internal"}},
	{pkg: "lb", forbidden: []string{mod + "/cache", mod + "/edge", mod + "/purge", mod + "/storage", mod + "/cmd"}},
	{pkg: "cache", forbidden: []string{mod + "/lb", mod + "/edge", mod + "/purge", mod + "/cmd"}, allowed: []string{mod + "/purge/selector"}},
	{pkg: "edge", forbidden: []string{mod + "/lb", mod + "/cmd"}},
}

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", mod+"/"+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestDependencyRules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			for _, d := range deps(t, r.pkg) {
				if r.stdOnly && !strings.HasPrefix(d, mod+"/") {
					t.Errorf("%s depends on %s; it may use the standard library only", r.pkg, d)
				}
				for _, f := range r.forbidden {
					if (d == f || strings.HasPrefix(d, f+"/")) && !slices.Contains(r.allowed, d) {
						t.Errorf("%s depends on %s, which docs/architecture.md forbids", r.pkg, d)
					}
				}
			}
		})
	}
	// storage must not even use net/http from the standard library.
	out, err := exec.Command("go", "list", "-deps", mod+"/storage").Output()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(strings.Fields(string(out)), "net/http") {
		t.Error("storage depends on net/http; it must know nothing of HTTP")
	}
	// Nothing imports cmd/ or loadtest/.
	out, err = exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", mod+"/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, mod+"/cmd") || (strings.HasPrefix(imp, mod+"/loadtest") && !strings.HasPrefix(f[0], mod+"/loadtest")) {
				t.Errorf("%s imports %s", f[0], imp)
			}
		}
	}
}
