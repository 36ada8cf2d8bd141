package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/internal/config"
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
