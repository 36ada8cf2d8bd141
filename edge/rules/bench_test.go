package rules_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge/rules"
)

// twentyRules is a realistic site: path prefixes and suffixes, a host,
// methods, a cookie, a query parameter and a CIDR, none matching the
// benchmark's request except the last two.
func twentyRules() []rules.Spec {
	var specs []rules.Spec
	for i := range 14 {
		specs = append(specs, rules.Spec{Name: fmt.Sprintf("prefix-%d", i),
			Match: rules.Match{Paths: []string{fmt.Sprintf("/section-%d/*", i)}}, Cache: rules.Cache{TTL: time.Duration(i+1) * time.Minute}})
	}
	specs = append(specs,
		rules.Spec{Name: "css", Match: rules.Match{Paths: []string{"*.css", "*.js"}}, Cache: rules.Cache{TTL: 24 * time.Hour}},
		rules.Spec{Name: "api", Match: rules.Match{Hosts: []string{"api.example.com"}, Methods: []string{"POST"}}, Cache: rules.Cache{Bypass: true}},
		rules.Spec{Name: "logged-in", Match: rules.Match{Cookies: []string{"session"}}, Cache: rules.Cache{Bypass: true}},
		rules.Spec{Name: "debug", Match: rules.Match{Query: []string{"debug"}}, Cache: rules.Cache{Bypass: true}},
		rules.Spec{Name: "office", Match: rules.Match{Clients: []string{"10.0.0.0/8"}}, ResponseHeaders: rules.HeaderOps{Set: []string{"X-Office: 1"}}},
		rules.Spec{Name: "images", Match: rules.Match{Paths: []string{"/img/*"}}, Cache: rules.Cache{TTL: time.Hour, StaleWhileRevalidate: time.Minute}},
	)
	return specs
}

// BenchmarkEval is the rule evaluation of a cache hit: 20 rules of simple
// matchers over a request with a few fields. The budget is 200 ns
// and 0 allocations.
func BenchmarkEval(b *testing.B) {
	s, err := rules.Compile(twentyRules(), rules.Options{})
	if err != nil {
		b.Fatal(err)
	}
	h := http.Header{"Accept": {"image/webp,*/*"}, "Cookie": {"theme=dark; lang=en"}, "User-Agent": {"bench"}}
	in := &rules.Input{Method: "GET", Scheme: "https", Host: "www.example.com", Path: "/img/logo.png",
		Query: "v=3", Client: netip.MustParseAddr("192.0.2.1"), Fields: rules.Header(h)}
	var res rules.Result
	b.ReportAllocs()
	for b.Loop() {
		s.Eval(in, &res)
	}
	if res.Cache.Rule != "images" {
		b.Fatalf("decided by %q", res.Cache.Rule)
	}
}

// BenchmarkEvalNoRules is a site without rules: a nil set.
func BenchmarkEvalNoRules(b *testing.B) {
	var s *rules.Set
	in := &rules.Input{Method: "GET", Scheme: "https", Host: "www.example.com", Path: "/img/logo.png"}
	var res rules.Result
	b.ReportAllocs()
	for b.Loop() {
		s.Eval(in, &res)
	}
}

func TestEvalAllocatesNothing(t *testing.T) {
	s, err := rules.Compile(twentyRules(), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Cookie": {"theme=dark; lang=en"}}
	in := &rules.Input{Method: "GET", Scheme: "https", Host: "www.example.com", Path: "/img/logo.png",
		Query: "v=3&debug=0", Client: netip.MustParseAddr("10.1.2.3"), Fields: rules.Header(h)}
	var res rules.Result
	if n := testing.AllocsPerRun(100, func() { s.Eval(in, &res) }); n != 0 {
		t.Fatalf("Eval allocates %v times per call", n)
	}
	if !res.Cache.Bypass || res.Cache.Rule != "images" {
		t.Fatalf("Cache = %+v", res.Cache)
	}
}
