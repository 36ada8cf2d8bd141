package edge_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/edge/rules"
	"github.com/edged-proxy/edged/internal/testkit"
)

// clientFrom returns a keep-alive client whose connections come from the
// loopback address ip (127.0.0.2, ...), so that one edge sees several
// clients; h2 speaks HTTP/2 with prior knowledge.
func clientFrom(t *testing.T, ip string, h2 bool) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	if h2 {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// answer is what a limits test checks of a response.
type answer struct {
	status              int
	body, cacheStatus   string
	retryAfter, proto   string
	contentType, cc     string
	contentTypeOptions  string
	fromCache, received bool
}

func fetchAs(t *testing.T, c *http.Client, base, method, path string) answer {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "www.example.com"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, body: string(b), cacheStatus: resp.Header.Get("Cache-Status"),
		retryAfter: resp.Header.Get("Retry-After"), proto: resp.Proto, contentType: resp.Header.Get("Content-Type"),
		cc: resp.Header.Get("Cache-Control"), contentTypeOptions: resp.Header.Get("X-Content-Type-Options"),
		fromCache: strings.Contains(resp.Header.Get("Cache-Status"), "; hit"), received: true}
}

// Address lists, over a real listener, for clients at 127.0.0.1-3: deny
// wins, a non-empty allow list admits only its ranges, a refused client
// gets 403 with a short body and detail=denied on a hit too (the fast
// path declines it, the general path refuses it), over HTTP/1 and HTTP/2.
func TestAddressLists(t *testing.T) {
	const ok, no = 200, 403
	tests := []struct {
		name        string
		allow, deny []string
		want        [3]int // for 127.0.0.1, .2, .3
	}{
		{"no lists", nil, nil, [3]int{ok, ok, ok}},
		{"deny one", nil, []string{"127.0.0.2"}, [3]int{ok, no, ok}},
		{"deny a range", nil, []string{"127.0.0.2/31"}, [3]int{ok, no, no}},
		{"allow one", []string{"127.0.0.1/32"}, nil, [3]int{ok, no, no}},
		{"allow a range, deny inside it wins", []string{"127.0.0.0/8"}, []string{"127.0.0.3"}, [3]int{ok, ok, no}},
		{"allow other ranges only", []string{"10.0.0.0/8", "2001:db8::/32"}, nil, [3]int{no, no, no}},
		{"empty allow list admits all", []string{}, []string{"127.0.0.3"}, [3]int{ok, ok, no}},
	}
	for _, tt := range tests {
		for _, h2 := range []bool{false, true} {
			name := tt.name + "/HTTP1"
			if h2 {
				name = tt.name + "/HTTP2"
			}
			t.Run(name, func(t *testing.T) {
				o := newOrigin(t, cacheable("hot"))
				reg := prometheus.NewRegistry()
				m, err := edge.NewMetrics(reg)
				if err != nil {
					t.Fatal(err)
				}
				base, _ := newEdge(t, edgeOpts{h2c: true, metrics: m, site: func(s *edge.Site) {
					s.AllowClients, s.DenyClients = tt.allow, tt.deny
				}}, o)
				denied := 0
				for round := range 2 { // a miss or a hit, then a hit
					for i, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
						for _, method := range []string{"GET", "HEAD"} {
							a := fetchAs(t, clientFrom(t, ip, h2), base, method, "/hot")
							if a.status != tt.want[i] {
								t.Fatalf("round %d, %s %s from %s: %d, want %d", round, method, "/hot", ip, a.status, tt.want[i])
							}
							if h2 && a.proto != "HTTP/2.0" {
								t.Fatalf("answered over %s, want HTTP/2.0", a.proto)
							}
							if a.status == ok {
								continue
							}
							denied++
							want := answer{status: 403, body: "403 Forbidden: this client address may not use this site\n",
								cacheStatus: "edged; fwd=bypass; detail=denied", proto: a.proto, contentType: "text/plain; charset=utf-8",
								cc: "no-store", contentTypeOptions: "nosniff", received: true}
							if method == "HEAD" {
								want.body = ""
							}
							if a != want {
								t.Errorf("%s from %s:\n got %+v\nwant %+v", method, ip, a, want)
							}
						}
					}
				}
				if v, _ := testkit.Metric(t, reg, "edged_denied_total", "site", "test"); int(v) != denied {
					t.Errorf("edged_denied_total = %v, want %d", v, denied)
				}
				if n := o.hits("/hot"); n > 1 {
					t.Errorf("origin asked %d times", n)
				}
			})
		}
	}
}

// A reload (SetSites) changes the lists for the next request.
func TestAddressListsReload(t *testing.T) {
	o := newOrigin(t, cacheable("hot"))
	var site *edge.Site
	base, h, _ := buildEdge(t, edgeOpts{site: func(s *edge.Site) { site = s }}, o.URL)
	c2 := clientFrom(t, "127.0.0.2", false)
	steps := []struct {
		allow, deny []string
		want        int
	}{
		{nil, nil, 200},
		{nil, []string{"127.0.0.2"}, 403},
		{[]string{"127.0.0.2"}, nil, 200},
		{[]string{"127.0.0.1"}, nil, 403},
		{nil, nil, 200},
	}
	for i, st := range steps {
		ns := *site
		ns.AllowClients, ns.DenyClients = st.allow, st.deny
		if err := h.(*edge.Handler).SetSites([]*edge.Site{&ns}); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if a := fetchAs(t, c2, base, "GET", "/hot"); a.status != st.want {
				t.Errorf("step %d (allow %v, deny %v): %d, want %d", i, st.allow, st.deny, a.status, st.want)
			}
		}
	}
}

// clock is a settable clock for the edge.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// A site's rate limit over a real listener: each client address its own
// bucket; after the burst, 429 with Retry-After (seconds until a token,
// rounded up) and detail=rate-limited, on cache hits too (edged's loop
// charges them on its fast path); the bucket refills with the clock; the
// series counts the refusals.
func TestSiteRateLimit(t *testing.T) {
	o := newOrigin(t, cacheable("hot"))
	clk := newClock()
	reg := prometheus.NewRegistry()
	m, err := edge.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := newEdge(t, edgeOpts{now: clk.Now, metrics: m, site: func(s *edge.Site) {
		s.RateLimit = rules.RateLimit{Rate: 0.4, Burst: 3} // a token every 2.5s
	}}, o)
	c2, c3 := clientFrom(t, "127.0.0.2", false), clientFrom(t, "127.0.0.3", false)
	limited := answer{status: 429, body: "429 Too Many Requests: this client is over its rate limit; retry in 3s\n",
		cacheStatus: "edged; fwd=bypass; detail=rate-limited", retryAfter: "3", proto: "HTTP/1.1",
		contentType: "text/plain; charset=utf-8", cc: "no-store", contentTypeOptions: "nosniff", received: true}
	for i := range 3 {
		if a := fetchAs(t, c2, base, "GET", "/hot"); a.status != 200 {
			t.Fatalf("request %d within the burst: %d", i, a.status)
		}
	}
	if a := fetchAs(t, c2, base, "GET", "/hot"); a != limited {
		t.Errorf("over the burst:\n got %+v\nwant %+v", a, limited)
	}
	if a := fetchAs(t, c3, base, "GET", "/hot"); a.status != 200 || !a.fromCache {
		t.Errorf("another client: %d (%s), want a 200 hit", a.status, a.cacheStatus)
	}
	clk.advance(time.Second) // 1.5s to the next token: Retry-After rounds up
	a := fetchAs(t, c2, base, "HEAD", "/hot")
	if a.status != 429 || a.retryAfter != "2" {
		t.Errorf("1s later: %d, Retry-After %q; want 429, 2", a.status, a.retryAfter)
	}
	clk.advance(1500 * time.Millisecond)
	if a := fetchAs(t, c2, base, "GET", "/hot"); a.status != 200 || !a.fromCache {
		t.Errorf("after a refill: %d (%s), want a 200 hit", a.status, a.cacheStatus)
	}
	if a := fetchAs(t, c2, base, "GET", "/hot"); a.status != 429 || a.retryAfter != "3" {
		t.Errorf("the refilled token spent: %d, Retry-After %q; want 429, 3", a.status, a.retryAfter)
	}
	if v, _ := testkit.Metric(t, reg, "edged_rate_limited_total", "site", "test", "rule", ""); v != 3 {
		t.Errorf("edged_rate_limited_total = %v, want 3", v)
	}
	if v, _ := testkit.Metric(t, reg, "edged_requests_total", "site", "test", "cache", "reject", "code", "4xx"); v != 3 {
		t.Errorf("edged_requests_total{cache=reject} = %v, want 3", v)
	}
	fast, _ := testkit.Metric(t, reg, "edged_fast_path_responses_total")
	if mode := os.Getenv("EDGED_TEST_HTTP1"); (mode == "" || mode == edge.HTTP1Edged) && fast == 0 {
		t.Error("no hit took the fast path: its limit went untested")
	}
}

// A rule's limit and the site's are separate buckets: a request counts
// against the site's and those of the rules it matches, and one refused
// by any of them is charged to none.
func TestRuleAndSiteRateLimits(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	clk := newClock()
	reg := prometheus.NewRegistry()
	m, err := edge.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := newEdge(t, edgeOpts{now: clk.Now, metrics: m, site: func(s *edge.Site) {
		s.RateLimit = rules.RateLimit{Rate: 0.001, Burst: 6}
		withRules(t, rules.Spec{Name: "login", Match: rules.Match{Paths: []string{"/login"}},
			RateLimit: rules.RateLimit{Rate: 1.0 / 60, Burst: 2}})(s)
	}}, o)
	c := clientFrom(t, "127.0.0.2", false)
	steps := []struct {
		method, path string
		status       int
		detail       string
		retryAfter   string
	}{
		{"POST", "/login", 200, "", ""},
		{"POST", "/login", 200, "", ""},
		{"POST", "/login", 429, "detail=rule:login", "60"}, // not charged to the site
		{"GET", "/other", 200, "", ""},
		{"GET", "/other", 200, "", ""},
		{"GET", "/other", 200, "", ""},
		{"GET", "/other", 200, "", ""}, // the site's sixth
		{"GET", "/other", 429, "detail=rate-limited", "1000"},
		{"POST", "/login", 429, "detail=rate-limited", "1000"}, // both refuse: the site's is checked first
	}
	for i, st := range steps {
		req, _ := http.NewRequest(st.method, base+st.path, nil)
		req.Host = "www.example.com"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cs := resp.Header.Get("Cache-Status")
		if resp.StatusCode != st.status || st.detail != "" && !strings.HasSuffix(cs, st.detail) || resp.Header.Get("Retry-After") != st.retryAfter {
			t.Errorf("step %d %s %s: %d, %q, Retry-After %q; want %d, %s, %q", i, st.method, st.path, resp.StatusCode, cs,
				resp.Header.Get("Retry-After"), st.status, st.detail, st.retryAfter)
		}
	}
	for _, tt := range []struct {
		rule string
		want float64
	}{{"login", 1}, {"", 2}} {
		if v, _ := testkit.Metric(t, reg, "edged_rate_limited_total", "site", "test", "rule", tt.rule); v != tt.want {
			t.Errorf("edged_rate_limited_total{rule=%q} = %v, want %v", tt.rule, v, tt.want)
		}
	}
}

// The address lists refuse PURGE too: a denied client cannot purge, even
// on a listener where purging is disabled (405 for the others).
func TestAddressListsRefusePurge(t *testing.T) {
	o := newOrigin(t, cacheable("hot"))
	base, _ := newEdge(t, edgeOpts{site: func(s *edge.Site) { s.DenyClients = []string{"127.0.0.2"} }}, o)
	for _, tt := range []struct {
		ip     string
		status int
		cs     string
	}{
		{"127.0.0.2", 403, "edged; fwd=bypass; detail=denied"},
		{"127.0.0.1", 405, "edged; fwd=bypass; detail=purge-disabled"},
	} {
		a := fetchAs(t, clientFrom(t, tt.ip, false), base, "PURGE", "/hot")
		if a.status != tt.status || a.cacheStatus != tt.cs {
			t.Errorf("PURGE from %s: %d %q, want %d %q", tt.ip, a.status, a.cacheStatus, tt.status, tt.cs)
		}
	}
}
