package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/edge/rules"
	"github.com/edged-proxy/edged/purge/selector"
)

func withRules(tb testing.TB, specs ...rules.Spec) func(*edge.Site) {
	set, err := rules.Compile(specs, rules.Options{Origins: []string{"default"}})
	if err != nil {
		tb.Fatal(err)
	}
	return func(s *edge.Site) { s.Rules = set }
}

func isHit(resp *http.Response) bool {
	return strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit")
}

// A URL purge removes every object a rule's key actions made of the URL
// (one per cookie value here), from both tiers, and nothing else.
func TestRulesPurgeURLCoversKeyExtras(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", disk), func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=600")
				fmt.Fprintf(w, "%s %s", r.URL.Path, r.Header.Get("Cookie"))
			})
			base, c := newEdge(t, edgeOpts{disk: disk, site: withRules(t, rules.Spec{Name: "ab", Key: rules.Key{Cookies: []string{"ab"}}})}, o)
			objs := [][2]string{{"/x", "ab=1"}, {"/x", "ab=2"}, {"/x", ""}, {"/xy", "ab=1"}}
			for _, ob := range objs {
				get(t, base, "GET", "example.com", ob[0], "Cookie", ob[1])
			}
			waitFor(t, func() bool {
				for _, ob := range objs {
					if resp, _ := get(t, base, "HEAD", "example.com", ob[0], "Cookie", ob[1]); !isHit(resp) {
						return false
					}
				}
				return true
			})
			n, err := c.Purge(context.Background(), selector.Selector{URLs: []string{"https://example.com/x"}})
			if err != nil {
				t.Fatal(err)
			}
			if n.URLs != 3 {
				t.Errorf("purge matched %d objects, want 3", n.URLs)
			}
			for i, ob := range objs {
				resp, _ := get(t, base, "GET", "example.com", ob[0], "Cookie", ob[1])
				if want := i < 3; isHit(resp) == want {
					t.Errorf("%s with %q: hit=%v after purging /x", ob[0], ob[1], isHit(resp))
				}
			}
		})
	}
}

// Hits that a matched rule changes leave the fast path; those it does not
// stay on it; both answer as the rules say.
func TestRulesOnHits(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Server", "origin")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, r.URL.Path)
	})
	base, _ := newEdge(t, edgeOpts{site: withRules(t,
		rules.Spec{Name: "ttl", Match: rules.Match{Paths: []string{"/plain/*"}}, Cache: rules.Cache{TTL: time.Hour}},
		rules.Spec{Name: "hdr", Match: rules.Match{Paths: []string{"/hdr/*"}}, ResponseHeaders: rules.HeaderOps{Set: []string{"X-Rule: {path}"}, Remove: []string{"Server"}}},
		rules.Spec{Name: "browser", Match: rules.Match{Paths: []string{"/browser/*"}}, Cache: rules.Cache{BrowserTTL: time.Minute}},
		rules.Spec{Name: "block", Match: rules.Match{Query: []string{"block"}}, Respond: rules.Respond{Status: 403, Body: "no {query.block}"}},
	)}, o)
	for _, p := range []string{"/plain/a", "/hdr/a", "/browser/a"} {
		get(t, base, "GET", "example.com", p)
	}
	resp, _ := get(t, base, "GET", "example.com", "/plain/a")
	if !isHit(resp) || resp.Header.Get("Server") != "origin" || !strings.Contains(resp.Header.Get("Cache-Status"), "ttl=3600") && !strings.Contains(resp.Header.Get("Cache-Status"), "ttl=3599") {
		t.Errorf("/plain/a: %v", resp.Header)
	}
	resp, _ = get(t, base, "GET", "example.com", "/hdr/a")
	if !isHit(resp) || resp.Header.Get("X-Rule") != "/hdr/a" || resp.Header.Get("Server") != "" {
		t.Errorf("/hdr/a hit: %v", resp.Header)
	}
	resp, _ = get(t, base, "GET", "example.com", "/browser/a")
	if !isHit(resp) || resp.Header.Get("Cache-Control") != "max-age=60" {
		t.Errorf("/browser/a hit: Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	resp, body := get(t, base, "GET", "example.com", "/plain/a?block=7")
	if resp.StatusCode != 403 || body != "no 7" || resp.Header.Get("Cache-Status") != "edged; fwd=bypass; detail=rule:block" {
		t.Errorf("blocked: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if n := o.hits("/plain/a"); n != 1 {
		t.Errorf("origin asked %d times for /plain/a, want 1", n)
	}
}

// Each matcher, over a real listener: a rule answering 418 when it
// matches, for a request that should and one that should not match.
func TestRuleMatchersOverListeners(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "origin")
	})
	type req struct {
		method, host, path string
		fields             []string
	}
	g := func(path string, fields ...string) req { return req{"GET", "www.example.com", path, fields} }
	tests := []struct {
		name    string
		match   rules.Match
		yes, no req
	}{
		{"path prefix", rules.Match{Paths: []string{"/static/*"}}, g("/static/a.css"), g("/stat")},
		{"path suffix", rules.Match{Paths: []string{"*.php"}}, g("/a/b.php"), g("/a/b.php5")},
		{"path normalized", rules.Match{Paths: []string{"/admin/*"}}, g("/x/../admin/%70anel"), g("/x/admin/")},
		{"path regex", rules.Match{PathRegex: `^/v[0-9]+/`}, g("/v2/a"), g("/vx/a")},
		{"host", rules.Match{Hosts: []string{"*.example.com"}}, g("/"), req{"GET", "example.com", "/", nil}},
		{"method", rules.Match{Methods: []string{"DELETE"}}, req{"DELETE", "www.example.com", "/", nil}, g("/")},
		{"query present", rules.Match{Query: []string{"debug"}}, g("/?debug"), g("/?debugx=1")},
		{"query absent", rules.Match{Query: []string{"!token"}}, g("/?a=1"), g("/?token=x")},
		{"query value", rules.Match{Query: []string{"lang=en-*"}}, g("/?lang=en-GB"), g("/?lang=de")},
		{"header", rules.Match{Headers: []string{"user-agent=*bot*"}}, g("/", "User-Agent", "googlebot/2"), g("/", "User-Agent", "firefox")},
		{"cookie", rules.Match{Cookies: []string{"beta=1"}}, g("/", "Cookie", "a=b; beta=1"), g("/", "Cookie", "beta=2")},
		{"client", rules.Match{Clients: []string{"127.0.0.0/8"}}, g("/"), g("/")},
		{"not client", rules.Match{NotClients: []string{"127.0.0.1"}}, g("/"), g("/")},
		{"scheme", rules.Match{Scheme: "http"}, g("/"), g("/")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := newEdge(t, edgeOpts{site: withRules(t, rules.Spec{Name: "m", Match: tt.match, Respond: rules.Respond{Status: 418}})}, o)
			send := func(r req) int {
				resp, _ := get(t, base, r.method, r.host, r.path, r.fields...)
				return resp.StatusCode
			}
			switch tt.name {
			case "client", "scheme": // the test's client is 127.0.0.1 on plain HTTP: always a match
				if s := send(tt.yes); s != 418 {
					t.Errorf("matching request: %d", s)
				}
			case "not client": // never a match
				if s := send(tt.no); s != 200 {
					t.Errorf("excluded client: %d", s)
				}
			default:
				if s := send(tt.yes); s != 418 {
					t.Errorf("matching request: %d, want 418", s)
				}
				if s := send(tt.no); s != 200 {
					t.Errorf("other request: %d, want 200", s)
				}
			}
		})
	}
}

// A rule's no_compress leaves its responses as the origin sent them, on
// the fill and on hits, while the site compresses the others.
func TestRuleNoCompress(t *testing.T) {
	o := newOrigin(t, compressOrigin)
	rulesOpt := withRules(t, rules.Spec{Name: "raw", Match: rules.Match{Paths: []string{"/page2"}}, Cache: rules.Cache{NoCompress: true}})
	base, _ := newEdge(t, edgeOpts{site: func(s *edge.Site) { compressing(s); rulesOpt(s) }}, o)
	for range 2 { // the fill, then a hit
		resp, body := fetch(t, base, "GET", "/page2", "gzip, br")
		if ce := resp.Header.Get("Content-Encoding"); ce != "" || !bytes.Equal(body, page) {
			t.Errorf("/page2 under no_compress: Content-Encoding %q, %d bytes", ce, len(body))
		}
		resp, body = fetch(t, base, "GET", "/page", "gzip, br")
		if ce := resp.Header.Get("Content-Encoding"); ce != "br" || !bytes.Equal(decoded(t, ce, body), page) {
			t.Errorf("/page: Content-Encoding %q", ce)
		}
	}
}
