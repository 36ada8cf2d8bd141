package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/config"
	"github.com/edged-proxy/edged/internal/testkit"
)

// TestEveryRuleKeyReachesItsSpec changes one key of a rule at a time and
// checks that the rules.Spec built from it changes too, so a key added to
// config.Rule but not passed on fails here.
func TestEveryRuleKeyReachesItsSpec(t *testing.T) {
	base := fmt.Sprintf("%+v", ruleSpecs([]config.Rule{{}}))
	var paths []string
	leaves(reflect.ValueOf(&config.Rule{}).Elem(), "", func(p string, _ reflect.Value) { paths = append(paths, p) })
	if len(paths) < 30 {
		t.Fatalf("found %d rule keys, want every key", len(paths))
	}
	for i, p := range paths {
		r := config.Rule{}
		n := 0
		leaves(reflect.ValueOf(&r).Elem(), "", func(path string, v reflect.Value) {
			if n == i {
				change(path, v)
			}
			n++
		})
		if got := fmt.Sprintf("%+v", ruleSpecs([]config.Rule{r})); got == base {
			t.Errorf("changing %s changes no rules.Spec field: is it passed on?", p)
		}
	}
}

// TestRuleErrorsHaveLines: a rule problem found when compiling is
// reported at its file line and key path, as every configuration error.
func TestRuleErrorsHaveLines(t *testing.T) {
	yaml := `sites:
  - name: a
    hosts: [a.example]
    origins:
      - url: http://127.0.0.1:1
    rules:
      - name: ok
        cache: {ttl: 1h}
      - name: bad
        match:
          path_regex: "^/(a"
        response_headers:
          set: ["X-A: {nope}"]
        origin: missing
`
	_, err := config.Parse("edged.yaml", []byte(yaml), ruleChecks)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`edged.yaml:11: sites[0].rules[1].match.path_regex: invalid regular expression at offset 0 ("^/(a"): missing closing )`,
		`edged.yaml:13: sites[0].rules[1].response_headers.set[0]: at offset 0: unknown variable {nope}`,
		`edged.yaml:14: sites[0].rules[1].origin: no origin pool "missing" in this site (pools: default)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// Rules reload with SIGHUP like the rest of the configuration: a new rule
// applies to the next request, and a rule that does not compile is
// rejected at its line while the running rules stay.
func TestRulesReloadOnSIGHUP(t *testing.T) {
	o := newRecipeOrigin(t, "A")
	cfg := func(rules string) string {
		return fmt.Sprintf("log:\n  access: false\nsites:\n  - name: s\n    hosts: [\"*\"]\n    origins:\n      - url: %s\n    rules:\n%s", o.URL, rules)
	}
	path := writeConfig(t, cfg("      - name: deny\n        match: {paths: [\"/a\"]}\n        respond: {status: 403}\n"))
	l, out := startDaemon(t, "-config", path)
	e := &recipeEnv{t: t, edge: l.Edge, a: o}
	if s := e.get("/a").status; s != http.StatusForbidden {
		t.Fatalf("before reload: %d", s)
	}
	os.WriteFile(path, []byte(cfg("      - name: deny\n        match: {paths: [\"/b\"]}\n        respond: {status: 403}\n")), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	if !testkit.Poll(10*time.Second, func() bool { return e.get("/b").status == http.StatusForbidden }) {
		t.Fatalf("the new rule did not apply:\n%s", out.String())
	}
	if s := e.get("/a").status; s != http.StatusOK {
		t.Errorf("/a after the reload: %d, want 200", s)
	}
	for i, bad := range []struct{ rules, want string }{
		{"      - name: deny\n        match: {paths: [\"/c\"], pahts: [x]}\n", `sites[0].rules[0].match.pahts: unknown key (known: paths,`},
		{"      - name: bad\n        match: {path_regex: \"(\"}\n", `:10: sites[0].rules[0].match.path_regex: invalid regular expression`},
	} {
		os.WriteFile(path, []byte(cfg(bad.rules)), 0o644)
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		if !testkit.Poll(10*time.Second, func() bool { return strings.Count(out.String(), "reload rejected") > i }) {
			t.Fatalf("no rejection:\n%s", out.String())
		}
		if !strings.Contains(out.String(), bad.want) {
			t.Errorf("the rejection does not say %q:\n%s", bad.want, out.String())
		}
	}
	if s := e.get("/b").status; s != http.StatusForbidden {
		t.Errorf("after the bad reload /b: %d, want the running rule's 403", s)
	}
}

// -check-config compiles the rules: a rule that would stop the start is
// reported at its line (the file alone parses).
func TestCheckConfigCompilesRules(t *testing.T) {
	path := writeConfig(t, "sites:\n  - name: a\n    hosts: [a.example]\n    origins:\n      - url: http://127.0.0.1:1\n    rules:\n      - name: x\n        redirect:\n          location: \"https://{hots}{uri}\"\n")
	var out strings.Builder
	err := run(context.Background(), []string{"-check-config", path}, &out, &out, nil)
	if err == nil || !strings.Contains(err.Error(), ":9: sites[0].rules[0].redirect.location: at offset 8: unknown variable {hots}") {
		t.Errorf("err = %v", err)
	}
}
