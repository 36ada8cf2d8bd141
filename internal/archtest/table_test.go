package archtest

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// pkgRule is one row of the table "Packages and who may import whom" in
// docs/architecture.md (and ../shared/STYLE.md §3). Package paths are
// relative to the module; "x/..." means x and every package under it.
// ours and others constrain a package's direct, non-test imports; neverReach
// constrains everything it depends on.
type pkgRule struct {
	pkg        string
	ours       []string // edged packages it may import; none if empty
	others     []string // modules outside the standard library it may import (path prefixes); none if empty
	anyOthers  bool     // the table constrains only its edged imports
	neverReach []string // packages (standard ones included) it must not depend on even indirectly
	pending    bool     // being created on another branch: the rule applies once the package exists
}

// mod is edged's module path.
const mod = "github.com/edged-proxy/edged"

// packageTable is docs/architecture.md's table. Not here: cmd/edged (may
// import everything) and conformance (tests only). "Nothing imports cmd/ or
// loadtest/" is unimportable below. Rows constrain direct imports; as every
// package below has a row, they bound what each may reach as well.
var packageTable = []pkgRule{
	{pkg: "edge", ours: []string{"cache", "cache/coding", "cache/rfc", "edge/h1", "edge/realip", "edge/rules", "edge/strict", "internal/..."}, anyOthers: true, neverReach: otelSDK},
	{pkg: "edge/realip"},
	{pkg: "edge/rules"},
	{pkg: "edge/strict"},
	{pkg: "edge/h1", ours: []string{"edge/strict"}},
	{pkg: "edge/certs", others: []string{"github.com/prometheus"}},
	{pkg: "cache", ours: []string{"storage", "internal/...", "cache/coding", "cache/rfc", "purge/selector"}, anyOthers: true, neverReach: otelSDK},
	{pkg: "cache/coding", others: []string{"github.com/klauspost/compress", "github.com/andybalholm/brotli"}},
	{pkg: "cache/rfc", others: []string{"github.com/pquerna/cachecontrol"}},
	{pkg: "lb", ours: []string{"lb/ketama", "internal/..."}, anyOthers: true, neverReach: otelSDK},
	{pkg: "lb/ketama"},
	{pkg: "lb/cluster", ours: []string{"lb/ketama", "internal/..."}, others: []string{"github.com/prometheus", "github.com/hashicorp/memberlist"}},
	{pkg: "storage", others: []string{"go.etcd.io/bbolt"}, neverReach: []string{"net/http"}},
	{pkg: "loadtest/...", ours: []string{"loadtest/..."}},
	{pkg: "internal/config", anyOthers: true},
	{pkg: "internal/httpx", anyOthers: true},
	{pkg: "internal/sampleorigin", anyOthers: true},
	{pkg: "internal/logbuf", anyOthers: true},
	{pkg: "internal/sdnotify", anyOthers: true},
	{pkg: "internal/sketch"},
	{pkg: "internal/testkit", others: []string{"github.com/prometheus"}},
	{pkg: "purge", ours: []string{"purge/selector"}, others: []string{"github.com/prometheus"}},
	{pkg: "purge/selector"},
	{pkg: "purge/fleet", ours: []string{"purge", "purge/selector"}, others: []string{"github.com/nats-io"}},
	{pkg: "purge/purgetest", ours: []string{"purge", "purge/selector"}},
}

// otelSDK is OpenTelemetry's SDK and exporter: edge, cache and lb trace
// through the API (go.opentelemetry.io/otel/trace) and are given a tracer;
// only cmd/edged builds the provider, batching and export.
var otelSDK = []string{"go.opentelemetry.io/otel/sdk/trace", "go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"}

// unimportable lists the edged trees that no package outside them imports.
var unimportable = []string{"cmd/...", "loadtest/...", "internal/testkit", "purge/purgetest"}

// graph maps an import path to its direct non-test imports.
type graph map[string][]string

// loadGraph returns edged's packages and everything they depend on
// (standard library and other modules included), each with its direct
// non-test imports.
func loadGraph(t *testing.T) graph {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", mod+"/...").Output()
	if err != nil {
		t.Fatalf("go list -deps %s/...: %v", mod, err)
	}
	g := graph{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 0 {
			g[f[0]] = f[1:]
		}
	}
	return g
}

func TestPackageTable(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	g := loadGraph(t)
	for _, e := range unusedRules(packageTable, g) {
		t.Error(e)
	}
	for _, e := range checkTable(packageTable, g) {
		t.Error(e)
	}
}

// checkTable returns one message per edge of g that rules or unimportable
// forbid.
func checkTable(rules []pkgRule, g graph) []string {
	var errs []string
	for _, pkg := range sortedKeys(g) {
		rel, ok := relPath(pkg)
		if !ok {
			continue
		}
		for _, imp := range g[pkg] {
			irel, ok := relPath(imp)
			for _, u := range unimportable {
				if ok && match(u, irel) && !match(u, rel) {
					errs = append(errs, fmt.Sprintf("%s imports %s: nothing outside %s may import it", rel, irel, u))
				}
			}
		}
		for _, r := range rules {
			if match(r.pkg, rel) {
				errs = append(errs, r.check(rel, pkg, g)...)
			}
		}
	}
	return errs
}

// check returns the edges from pkg (rel relative to the module) that r
// forbids.
func (r pkgRule) check(rel, pkg string, g graph) []string {
	var errs []string
	for _, imp := range g[pkg] {
		irel, isOurs := relPath(imp)
		switch {
		case isOurs:
			if !slices.ContainsFunc(r.ours, func(p string) bool { return match(p, irel) }) {
				errs = append(errs, fmt.Sprintf("%s imports %s; docs/architecture.md allows %s", rel, irel, r.allowed()))
			}
		case isStd(imp):
		case !r.anyOthers && !slices.ContainsFunc(r.others, func(p string) bool { return imp == p || strings.HasPrefix(imp, p+"/") }):
			errs = append(errs, fmt.Sprintf("%s imports %s; docs/architecture.md allows %s", rel, imp, r.allowed()))
		}
	}
	for _, n := range r.neverReach {
		if path := reach(g, pkg, n); path != nil {
			errs = append(errs, fmt.Sprintf("%s depends on %s (%s); docs/architecture.md forbids it", rel, n, strings.Join(path, " → ")))
		}
	}
	return errs
}

// allowed describes r's permitted imports for an error message.
func (r pkgRule) allowed() string {
	s := "the standard library"
	if len(r.ours) > 0 {
		s += ", " + strings.Join(r.ours, ", ")
	}
	switch {
	case r.anyOthers:
		s += ", other modules"
	case len(r.others) > 0:
		s += ", " + strings.Join(r.others, ", ")
	}
	return s + " only"
}

// unusedRules reports the rules, other than pending ones, that match no
// package of g: a misspelt or outdated row would otherwise pass silently.
func unusedRules(rules []pkgRule, g graph) []string {
	var errs []string
	for _, r := range rules {
		used := slices.ContainsFunc(sortedKeys(g), func(pkg string) bool {
			rel, ok := relPath(pkg)
			return ok && match(r.pkg, rel)
		})
		if !used && !r.pending {
			errs = append(errs, fmt.Sprintf("rule for %s matches no package: fix or remove it (or mark it pending)", r.pkg))
		}
	}
	return errs
}

// relPath returns p relative to the module and whether p is an edged package.
func relPath(p string) (string, bool) {
	return strings.CutPrefix(p, mod+"/")
}

// isStd reports whether p is a standard library path: its first element has
// no dot (the rule the go command applies to module paths).
func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".")
}

// match reports whether rel is pattern or, for "x/...", x or under x.
func match(pattern, rel string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pattern
}

// reach returns an import chain from pkg to target in g, or nil.
func reach(g graph, pkg, target string) []string {
	prev := map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == target {
			var path []string
			for ; p != ""; p = prev[p] {
				path = append(path, p)
			}
			slices.Reverse(path)
			return path
		}
		for _, imp := range g[p] {
			if _, seen := prev[imp]; !seen {
				prev[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

func sortedKeys(g graph) []string {
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
