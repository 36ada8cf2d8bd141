package rules_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge/rules"
)

func compile(t *testing.T, specs ...rules.Spec) *rules.Set {
	t.Helper()
	s, err := rules.Compile(specs, rules.Options{Origins: []string{"default", "api"}})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

func input(method, scheme, host, path, query string, hdr http.Header, client string) *rules.Input {
	in := &rules.Input{Method: method, Scheme: scheme, Host: host, Path: path, Query: query}
	if hdr != nil {
		in.Fields = rules.Header(hdr)
	}
	if client != "" {
		in.Client = netip.MustParseAddr(client)
	}
	return in
}

func TestMatchers(t *testing.T) {
	get := func(path string) *rules.Input {
		return input("GET", "https", "www.example.com", path, "", nil, "192.0.2.7")
	}
	withQ := func(q string) *rules.Input { return input("GET", "https", "www.example.com", "/", q, nil, "192.0.2.7") }
	withH := func(kv ...string) *rules.Input {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return input("GET", "https", "www.example.com", "/", "", h, "192.0.2.7")
	}
	tests := []struct {
		name  string
		match rules.Match
		in    *rules.Input
		want  bool
	}{
		{"empty matches all", rules.Match{}, get("/x"), true},
		{"path prefix", rules.Match{Paths: []string{"/static/*"}}, get("/static/a/b.css"), true},
		{"path prefix miss", rules.Match{Paths: []string{"/static/*"}}, get("/staticx"), false},
		{"path suffix", rules.Match{Paths: []string{"*.css", "*.js"}}, get("/a/b.js"), true},
		{"path exact root", rules.Match{Paths: []string{"/"}}, get("/"), true},
		{"path exact root miss", rules.Match{Paths: []string{"/"}}, get("/a"), false},
		{"path general", rules.Match{Paths: []string{"/v?/*/img/*"}}, get("/v2/x/y/img/z.png"), true},
		{"path ? is one byte", rules.Match{Paths: []string{"/v?/*/img/*"}}, get("/v22/x/img/z.png"), false},
		{"path general miss 2", rules.Match{Paths: []string{"/v?/img/*"}}, get("/v22/img/z.png"), false},
		{"regex", rules.Match{PathRegex: `^/u/([0-9]+)$`}, get("/u/42"), true},
		{"regex miss", rules.Match{PathRegex: `^/u/([0-9]+)$`}, get("/u/x"), false},
		{"host exact", rules.Match{Hosts: []string{"www.example.com"}}, get("/"), true},
		{"host wildcard", rules.Match{Hosts: []string{"*.example.com"}}, get("/"), true},
		{"host wildcard not apex", rules.Match{Hosts: []string{"*.www.example.com"}}, get("/"), false},
		{"method", rules.Match{Methods: []string{"POST", "PUT"}}, get("/"), false},
		{"scheme", rules.Match{Scheme: "http"}, get("/"), false},
		{"client cidr", rules.Match{Clients: []string{"192.0.2.0/24"}}, get("/"), true},
		{"client single", rules.Match{Clients: []string{"192.0.2.8"}}, get("/"), false},
		{"not clients", rules.Match{NotClients: []string{"192.0.2.0/24"}}, get("/"), false},
		{"query present", rules.Match{Query: []string{"debug"}}, withQ("a=1&debug"), true},
		{"query absent", rules.Match{Query: []string{"!debug"}}, withQ("a=1&debug=1"), false},
		{"query value glob", rules.Match{Query: []string{"lang=en*"}}, withQ("lang=en-GB"), true},
		{"query value miss", rules.Match{Query: []string{"lang=en*"}}, withQ("lang=de"), false},
		{"header present, any case", rules.Match{Headers: []string{"x-device"}}, withH("X-Device", "m"), true},
		{"header value, second line", rules.Match{Headers: []string{"Accept=image/*"}}, withH("Accept", "text/html", "Accept", "image/webp"), true},
		{"header absent", rules.Match{Headers: []string{"!Authorization"}}, withH("Accept", "x"), true},
		{"header absent but there", rules.Match{Headers: []string{"!Accept"}}, withH("Accept", "x"), false},
		{"cookie", rules.Match{Cookies: []string{"session"}}, withH("Cookie", "a=1; session=xyz"), true},
		{"cookie second line", rules.Match{Cookies: []string{"ab=b*"}}, withH("Cookie", "a=1", "Cookie", "ab=\"blue\""), true},
		{"cookie absent", rules.Match{Cookies: []string{"!session"}}, withH("Cookie", "sessionx=1"), true},
		{"no fields, absent header", rules.Match{Headers: []string{"!X"}}, get("/"), true},
		{"and across kinds", rules.Match{Paths: []string{"/api/*"}, Methods: []string{"GET"}}, get("/api/x"), true},
		{"and across kinds fails", rules.Match{Paths: []string{"/api/*"}, Methods: []string{"POST"}}, get("/api/x"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := compile(t, rules.Spec{Name: "r", Match: tt.match, Cache: rules.Cache{Bypass: true}})
			var res rules.Result
			if got := s.Eval(tt.in, &res); got != tt.want {
				t.Fatalf("Eval = %v, want %v", got, tt.want)
			}
			if res.Cache.Bypass != tt.want {
				t.Errorf("Bypass = %v, want %v", res.Cache.Bypass, tt.want)
			}
		})
	}
}

func TestLaterRulesOverride(t *testing.T) {
	s := compile(t,
		rules.Spec{Name: "all", Cache: rules.Cache{TTL: time.Minute, StaleIfError: time.Hour},
			ResponseHeaders: rules.HeaderOps{Set: []string{"X-Frame-Options: DENY"}, Remove: []string{"Server"}}},
		rules.Spec{Name: "static", Match: rules.Match{Paths: []string{"/static/*"}}, Cache: rules.Cache{TTL: 365 * 24 * time.Hour},
			ResponseHeaders: rules.HeaderOps{Add: []string{"X-Rule: static"}}},
		rules.Spec{Name: "other", Match: rules.Match{Paths: []string{"/other/*"}}, Cache: rules.Cache{TTL: time.Second}},
	)
	var res rules.Result
	in := input("GET", "https", "a.example", "/static/x.css", "", nil, "")
	s.Eval(in, &res)
	if res.Cache.TTL != 365*24*time.Hour || res.Cache.StaleIfError != time.Hour || res.Cache.Rule != "static" {
		t.Errorf("Cache = %+v", res.Cache)
	}
	if !res.Matched(0) || !res.Matched(1) || res.Matched(2) {
		t.Errorf("matched mask wrong")
	}
	h := http.Header{"Server": {"nginx"}, "X-Rule": {"origin"}}
	res.ApplyResponse(h, in)
	want := http.Header{"X-Frame-Options": {"DENY"}, "X-Rule": {"origin", "static"}}
	if !equalHeader(h, want) {
		t.Errorf("header = %v, want %v", h, want)
	}
	if !res.ChangesResponse() {
		t.Error("ChangesResponse = false")
	}
}

func TestAddDoesNotWriteIntoSharedSlice(t *testing.T) {
	s := compile(t, rules.Spec{Name: "a", ResponseHeaders: rules.HeaderOps{Add: []string{"Vary: Cookie"}}})
	stored := make([]string, 1, 4)
	stored[0] = "Accept"
	h := http.Header{"Vary": stored}
	var res rules.Result
	in := input("GET", "http", "a", "/", "", nil, "")
	s.Eval(in, &res)
	res.ApplyResponse(h, in)
	if got := stored[:2][1]; got != "" {
		t.Fatalf("Add wrote %q into the stored slice's spare capacity", got)
	}
	if strings.Join(h["Vary"], ",") != "Accept,Cookie" {
		t.Fatalf("Vary = %v", h["Vary"])
	}
}

func TestTerminalStopsEvaluation(t *testing.T) {
	s := compile(t,
		rules.Spec{Name: "https", Match: rules.Match{Scheme: "http"}, Redirect: rules.Redirect{Status: 308, Location: "https://{host}{uri}"}},
		rules.Spec{Name: "late", Cache: rules.Cache{Bypass: true}},
	)
	var res rules.Result
	in := input("GET", "http", "a.example", "/p/q", "x=1&y=2", nil, "")
	s.Eval(in, &res)
	a, ok := res.Answer(in)
	if !ok || a.Status != 308 || a.Location != "https://a.example/p/q?x=1&y=2" || a.Rule != "https" {
		t.Fatalf("Answer = %+v, %v", a, ok)
	}
	if res.Cache.Bypass {
		t.Error("a rule after the terminal one applied")
	}
	in.Scheme = "https"
	s.Eval(in, &res)
	if _, ok := res.Answer(in); ok || !res.Cache.Bypass {
		t.Errorf("https request: Answer ok=%v Bypass=%v", ok, res.Cache.Bypass)
	}
}

func TestTemplates(t *testing.T) {
	s := compile(t, rules.Spec{Name: "t", Match: rules.Match{PathRegex: `^/(\w+)/(\d+)`},
		Respond: rules.Respond{Status: 403, Body: "{{{method}}} {1}#{2} {client_ip} {header.x-id} {cookie.c} {query.q} {scheme}://{host}{path}?{query} {request_id}"}})
	h := http.Header{"X-Id": {"abc"}, "Cookie": {"c=cv"}}
	in := input("GET", "https", "h.example", "/users/42/x", "q=1", h, "2001:db8::1")
	in.RequestID = func() string { return "rid" }
	var res rules.Result
	s.Eval(in, &res)
	a, _ := res.Answer(in)
	want := "{GET} users#42 2001:db8::1 abc cv 1 https://h.example/users/42/x?q=1 rid"
	if a.Body != want || a.Status != 403 || a.ContentType != "text/plain; charset=utf-8" {
		t.Fatalf("Answer = %+v\nwant body %q", a, want)
	}
}

func TestLifetime(t *testing.T) {
	tests := []struct {
		name     string
		c        rules.Cache
		status   int
		origin   time.Duration
		explicit bool
		want     time.Duration
		wantSet  bool
	}{
		{"nothing set", rules.Cache{Bypass: true}, 200, time.Minute, true, time.Minute, false},
		{"override", rules.Cache{TTL: time.Hour}, 200, time.Minute, true, time.Hour, true},
		{"clamp up", rules.Cache{MinTTL: time.Hour}, 200, time.Minute, true, time.Hour, true},
		{"clamp down", rules.Cache{MaxTTL: time.Second}, 200, time.Minute, true, time.Second, true},
		{"within clamp", rules.Cache{MinTTL: time.Second, MaxTTL: time.Hour}, 200, time.Minute, true, time.Minute, false},
		{"default when none explicit", rules.Cache{DefaultTTL: time.Hour}, 200, 0, false, time.Hour, true},
		{"default not over explicit", rules.Cache{DefaultTTL: time.Hour}, 200, time.Minute, true, time.Minute, false},
		{"by status exact over class", rules.Cache{TTL: time.Hour, TTLByStatus: []string{"4xx: 1m", "404: 10s"}}, 404, 0, false, 10 * time.Second, true},
		{"by status class", rules.Cache{TTL: time.Hour, TTLByStatus: []string{"4xx: 1m", "404: 10s"}}, 410, 0, false, time.Minute, true},
		{"by status zero", rules.Cache{TTLByStatus: []string{"5xx: 0s"}}, 503, time.Minute, true, 0, true},
		{"by status other", rules.Cache{TTL: time.Hour, TTLByStatus: []string{"5xx: 0s"}}, 200, 0, false, time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := compile(t, rules.Spec{Name: "r", Cache: tt.c})
			var res rules.Result
			s.Eval(input("GET", "http", "a", "/", "", nil, ""), &res)
			got, set := res.Cache.Lifetime(tt.status, tt.origin, tt.explicit)
			if got != tt.want || set != tt.wantSet {
				t.Errorf("Lifetime = %v, %v; want %v, %v", got, set, tt.want, tt.wantSet)
			}
		})
	}
}

func TestQueryAndKey(t *testing.T) {
	tests := []struct {
		name string
		key  rules.Key
		raw  string
		want string
	}{
		{"keep", rules.Key{Query: "keep", Host: "x"}, "b=2&a=1", "b=2&a=1"},
		{"ignore", rules.Key{Query: "ignore"}, "b=2&a=1", ""},
		{"sort stable", rules.Key{Query: "sort"}, "b=2&a=1&b=1", "a=1&b=2&b=1"},
		{"deny", rules.Key{QueryDeny: []string{"utm_*", "fbclid"}}, "utm_source=x&id=3&fbclid=y", "id=3"},
		{"deny none present", rules.Key{QueryDeny: []string{"utm_*"}}, "id=3&p=2", "id=3&p=2"},
		{"allow", rules.Key{QueryAllow: []string{"id", "p"}}, "x=1&p=2&id=3", "p=2&id=3"},
		{"allow sorted", rules.Key{Query: "sort", QueryAllow: []string{"id", "p"}}, "x=1&p=2&id=3", "id=3&p=2"},
		{"empty pairs dropped", rules.Key{Query: "sort"}, "b=1&&a=2", "a=2&b=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := compile(t, rules.Spec{Name: "k", Key: tt.key})
			var res rules.Result
			s.Eval(input("GET", "http", "a", "/", tt.raw, nil, ""), &res)
			if got := res.Query(tt.raw); got != tt.want {
				t.Errorf("Query(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}

	s := compile(t, rules.Spec{Name: "k", Key: rules.Key{Headers: []string{"x-device"}, Cookies: []string{"ab"}, Host: "shared.example"}})
	var res rules.Result
	extra := func(h http.Header) string {
		in := input("GET", "http", "a", "/", "", h, "")
		s.Eval(in, &res)
		return string(res.AppendKeyExtra(nil, in))
	}
	a, b := extra(http.Header{"X-Device": {"mobile"}, "Cookie": {"ab=1"}}), extra(http.Header{"X-Device": {"desktop"}, "Cookie": {"ab=1"}})
	c, d := extra(http.Header{"Cookie": {"ab="}}), extra(nil)
	if a == b || c == d || a == "" {
		t.Errorf("key extras do not tell requests apart: %q %q %q %q", a, b, c, d)
	}
	if got := res.KeyHost("a.example"); got != "shared.example" {
		t.Errorf("KeyHost = %q", got)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		spec rules.Spec
		want string // substring of the error, path first
	}{
		{"no name", rules.Spec{}, "[0].name: required"},
		{"bad name", rules.Spec{Name: "a b"}, "[0].name: invalid name"},
		{"bad regex", rules.Spec{Name: "r", Match: rules.Match{PathRegex: `^/a(b`}}, `[0].match.path_regex: invalid regular expression at offset 0 ("^/a(b"): missing closing )`},
		{"bad regex class", rules.Spec{Name: "r", Match: rules.Match{PathRegex: `/x[z-a]`}}, `[0].match.path_regex: invalid regular expression at offset 3 ("z-a"): invalid character class range`},
		{"bad path", rules.Spec{Name: "r", Match: rules.Match{Paths: []string{"static"}}}, "[0].match.paths[0]: invalid path pattern"},
		{"bad host", rules.Spec{Name: "r", Match: rules.Match{Hosts: []string{"A.example"}}}, "[0].match.hosts[0]"},
		{"bad cidr", rules.Spec{Name: "r", Match: rules.Match{Clients: []string{"10.0.0.0/33"}}}, "[0].match.clients[0]: invalid address or CIDR"},
		{"bad cond", rules.Spec{Name: "r", Match: rules.Match{Query: []string{"!a=1"}}}, "[0].match.query[0]"},
		{"bad header cond", rules.Spec{Name: "r", Match: rules.Match{Headers: []string{"a b"}}}, "[0].match.headers[0]: invalid header field name"},
		{"bad scheme", rules.Spec{Name: "r", Match: rules.Match{Scheme: "ftp"}}, "[0].match.scheme"},
		{"min above max", rules.Spec{Name: "r", Cache: rules.Cache{MinTTL: time.Hour, MaxTTL: time.Minute}}, "[0].cache.min_ttl"},
		{"bad status ttl", rules.Spec{Name: "r", Cache: rules.Cache{TTLByStatus: []string{"99: 1s"}}}, "[0].cache.ttl_by_status[0]: \"99: 1s\": invalid status"},
		{"bad status ttl form", rules.Spec{Name: "r", Cache: rules.Cache{TTLByStatus: []string{"404 1s"}}}, "[0].cache.ttl_by_status[0]"},
		{"bad key query", rules.Spec{Name: "r", Key: rules.Key{Query: "drop"}}, "[0].key.query: invalid value \"drop\""},
		{"bad header op", rules.Spec{Name: "r", RequestHeaders: rules.HeaderOps{Set: []string{"X-A"}}}, "[0].request_headers.set[0]"},
		{"bad template var", rules.Spec{Name: "r", ResponseHeaders: rules.HeaderOps{Set: []string{"X-A: {nope}"}}}, "[0].response_headers.set[0]: at offset 0: unknown variable {nope}"},
		{"group without regex", rules.Spec{Name: "r", ResponseHeaders: rules.HeaderOps{Set: []string{"X-A: {1}"}}}, "needs match.path_regex"},
		{"group past regex", rules.Spec{Name: "r", Match: rules.Match{PathRegex: "(a)"}, Redirect: rules.Redirect{Location: "/{2}"}}, "[0].redirect.location: at offset 1: {2}: match.path_regex has 1 group(s)"},
		{"unclosed brace", rules.Spec{Name: "r", Respond: rules.Respond{Body: "a{host"}}, "[0].respond.body: at offset 1: unclosed"},
		{"bad redirect status", rules.Spec{Name: "r", Redirect: rules.Redirect{Status: 200, Location: "/"}}, "[0].redirect.status"},
		{"redirect without location", rules.Spec{Name: "r", Redirect: rules.Redirect{Status: 301}}, "[0].redirect.location: required"},
		{"both terminals", rules.Spec{Name: "r", Redirect: rules.Redirect{Location: "/"}, Respond: rules.Respond{Status: 403}}, "[0].respond: a rule either"},
		{"unknown origin", rules.Spec{Name: "r", Origin: "static"}, "[0].origin: no origin pool \"static\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.Compile([]rules.Spec{tt.spec}, rules.Options{Origins: []string{"default", "api"}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	_, err := rules.Compile([]rules.Spec{{Name: "a"}, {Name: "a"}}, rules.Options{})
	if err == nil || !strings.Contains(err.Error(), `[1].name: duplicate rule name "a" (first at [0])`) {
		t.Errorf("duplicate: %v", err)
	}
}

func TestNilSet(t *testing.T) {
	var s *rules.Set
	var res rules.Result
	if s.Eval(input("GET", "http", "a", "/", "", nil, ""), &res) || res.Any() || s.Rules() != 0 {
		t.Fatal("a nil set matched")
	}
	h := http.Header{"A": {"1"}}
	res.ApplyResponse(h, nil)
	res.ApplyRequest(h, nil)
	if len(h) != 1 || res.Query("a=1") != "a=1" {
		t.Fatal("a nil set changed something")
	}
}

func TestBrowserCacheControl(t *testing.T) {
	s := compile(t, rules.Spec{Name: "b", Cache: rules.Cache{BrowserTTL: 5 * time.Minute}})
	var res rules.Result
	s.Eval(input("GET", "http", "a", "/", "", nil, ""), &res)
	for cc, want := range map[string]string{
		"public, max-age=86400":   "public, max-age=300",
		"max-age=60, s-maxage=10": "max-age=300",
		"Private, max-age=5":      "private, max-age=300",
	} {
		if got, ok := res.BrowserCacheControl(cc); !ok || got != want {
			t.Errorf("BrowserCacheControl(%q) = %q, %v; want %q", cc, got, ok, want)
		}
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

// A rule's rate limit is checked at its key, and compiled ones are listed
// with their rule's index and name.
func TestRateLimitSpecs(t *testing.T) {
	for _, tt := range []struct {
		limit rules.RateLimit
		err   string
	}{
		{rules.RateLimit{Rate: 5, Per: time.Minute, Burst: 10, MaxClients: 100}, ""},
		{rules.RateLimit{}, ""},
		{rules.RateLimit{Rate: -1}, "[1].rate_limit: invalid rate -1"},
		{rules.RateLimit{Rate: 1, Per: -time.Second}, "[1].rate_limit: invalid per -1s"},
		{rules.RateLimit{Rate: 1, Burst: -2}, "[1].rate_limit: invalid burst -2"},
		{rules.RateLimit{Rate: 1, MaxClients: -3}, "[1].rate_limit: invalid max_clients -3"},
	} {
		set, err := rules.Compile([]rules.Spec{{Name: "first"}, {Name: "limited", RateLimit: tt.limit}}, rules.Options{})
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%+v: %v", tt.limit, err)
		case tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err)):
			t.Errorf("%+v: error %v, want %q", tt.limit, err, tt.err)
		case tt.err == "" && !tt.limit.IsZero():
			if got := set.RateLimits(); len(got) != 1 || got[0] != (rules.RuleLimit{Index: 1, Name: "limited", Limit: tt.limit}) {
				t.Errorf("RateLimits() = %+v", got)
			}
		case tt.err == "":
			if got := set.RateLimits(); got != nil {
				t.Errorf("no limit: RateLimits() = %+v", got)
			}
		}
	}
	if got := (rules.RateLimit{Rate: 5, Per: time.Minute}).PerSecond(); got != 5.0/60 {
		t.Errorf("5 a minute: %v a second", got)
	}
}

// ChangesRequest and ChangesResponse say whether a matched rule changes a
// header, so the edge completes the templates' input only then.
func TestChangesRequestAndResponse(t *testing.T) {
	s := compile(t,
		rules.Spec{Name: "req", Match: rules.Match{Paths: []string{"/r"}}, RequestHeaders: rules.HeaderOps{Set: []string{"X-A: 1"}}},
		rules.Spec{Name: "resp", Match: rules.Match{Paths: []string{"/s"}}, ResponseHeaders: rules.HeaderOps{Remove: []string{"Server"}}},
		rules.Spec{Name: "ttl", Cache: rules.Cache{TTL: time.Minute}},
	)
	for path, want := range map[string][2]bool{"/r": {true, false}, "/s": {false, true}, "/t": {false, false}} {
		var res rules.Result
		s.Eval(input("GET", "http", "a", path, "", nil, ""), &res)
		if got := [2]bool{res.ChangesRequest(), res.ChangesResponse()}; got != want {
			t.Errorf("%s: ChangesRequest, ChangesResponse = %v, want %v", path, got, want)
		}
	}
}
