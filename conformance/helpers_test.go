package conformance_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb"
	"github.com/edged-proxy/edged/storage"
)

// epoch is where every fake clock starts: a whole second, so that HTTP dates
// (second resolution) and the clock agree exactly.
var epoch = time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)

// clock is a fake clock shared by the cache, the edge and the origin.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: epoch} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// httpDate formats t as an IMF-fixdate.
func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// originFunc answers one origin request; n is the 1-based number of the
// request for this path (method ignored). The origin has already set Date
// from the fake clock; the function may override or delete it.
type originFunc func(w http.ResponseWriter, r *http.Request, n int)

// origin is a scripted origin server, a testkit.Origin that counts and
// records what it receives, with Date from the fake clock.
type origin struct {
	*testkit.Origin
	clock *clock
}

func newOrigin(t *testing.T, c *clock, h originFunc) *origin {
	t.Helper()
	return &origin{clock: c, Origin: testkit.NewOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", httpDate(c.Now()))
		if h == nil {
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "body of "+r.URL.Path)
			return
		}
		h(w, r, testkit.RequestNumber(r))
	}))}
}

// hits is how many requests the origin received for path.
func (o *origin) hits(path string) int { return o.Hits(path) }

// last returns the last request received for path.
func (o *origin) last(t *testing.T, path string) *http.Request {
	t.Helper()
	rr := o.Requests(path)
	if len(rr) == 0 {
		t.Fatalf("origin received no request for %s", path)
	}
	return rr[len(rr)-1]
}

// respond returns an originFunc that always answers status with body and the
// header fields given as name, value pairs.
func respond(status int, body string, hdr ...string) originFunc {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Add(hdr[i], hdr[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// numbered answers 200 with body "<prefix><n>" and the header pairs.
func numbered(prefix string, hdr ...string) originFunc {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Add(hdr[i], hdr[i+1])
		}
		io.WriteString(w, prefix+strconv.Itoa(n))
	}
}

// opts configures an edge under test.
type opts struct {
	policy       rfc.Policy
	keepTargeted bool
	statusKey    bool
	disabled     bool          // Site.CacheDisabled
	methods      []string      // Site.Methods; nil: the default
	disk         bool          // disk tier, with bodies over 16 bytes kept on disk only
	fillTimeout  time.Duration // zero: 10 s
}

// env is one edge with its origin and fake clock.
type env struct {
	t      *testing.T
	clock  *clock
	origin *origin
	url    string // edge base URL
	host   string // the Host requests carry
	cache  *cache.Cache
	client *http.Client
	disk   bool
	reg    *prometheus.Registry // the cache's metrics
}

// newEnv starts an origin answering with h (nil: 200, max-age=60) and an edge
// in front of it.
func newEnv(t *testing.T, o opts, h originFunc) *env {
	t.Helper()
	c := newClock()
	org := newOrigin(t, c, h)
	pool, err := lb.NewPool(lb.Config{Name: "t", Shards: []lb.Shard{{Name: "o", URL: org.URL, Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := cache.Config{MaxBytes: 64 << 20, FillTimeout: 10 * time.Second, Now: c.Now}
	if o.fillTimeout > 0 {
		cfg.FillTimeout = o.fillTimeout
	}
	if o.disk {
		store, err := storage.Open(storage.Options{Dir: t.TempDir(), Fsync: storage.FsyncNever, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		cfg.Disk = store
		cfg.MaxObjectBytes = 16
	}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	ch, err := cache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.Close)
	site := &edge.Site{
		Name: "t", Hosts: []string{"*"}, Origin: pool, Policy: o.policy,
		CacheDisabled: o.disabled, KeepTargetedHeaders: o.keepTargeted, Methods: o.methods,
	}
	hd, err := edge.New(edge.Config{Sites: []*edge.Site{site}, Cache: ch, Now: c.Now, CacheStatusKey: o.statusKey})
	if err != nil {
		t.Fatal(err)
	}
	// The HTTP/1 server EDGED_TEST_HTTP1 names: "edged" (the default, the
	// edge's own loop) or "net/http". CI runs the suite with both.
	srv, err := edge.NewServer(hd, edge.ServerConfig{HTTP1: os.Getenv("EDGED_TEST_HTTP1")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String()
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &env{
		disk: o.disk, reg: reg,
		t: t, clock: c, origin: org, url: url, host: strings.TrimPrefix(url, "http://"), cache: ch,
		client: &http.Client{
			Transport:     tr,
			Timeout:       15 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// result is one response as the client saw it.
type result struct {
	Status int
	Header http.Header
	Body   string
	CS     cacheStatus
}

func (r result) String() string {
	return fmt.Sprintf("%d Cache-Status=%q Age=%q body=%q", r.Status, r.Header.Get("Cache-Status"), r.Header.Get("Age"), r.Body)
}

// do sends a request to the edge with the header fields given as name, value
// pairs (added, so a name may repeat).
func (e *env) do(method, path string, hdr ...string) result {
	e.t.Helper()
	return e.doCtx(context.Background(), method, path, hdr...)
}

func (e *env) doCtx(ctx context.Context, method, path string, hdr ...string) result {
	e.t.Helper()
	r, err := e.try(ctx, method, path, hdr...)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	if e.disk && r.CS.has("stored") && (method == http.MethodGet || method == http.MethodHead) {
		e.settle(path, hdr, r.CS.params["ttl"])
	}
	return r
}

// settle waits, with the disk tier, until the fill that just stored path
// has been committed, so that moving the fake clock cannot race the
// background write. The probe (HEAD, only-if-cached, same headers) never
// reaches the origin; settle returns once it is a hit. An entry stored
// stale on arrival (ttl, the stored answer's Cache-Status ttl, not above
// 0) is never a hit: for it settle gives up after a second; a fresh one
// gets ten, for a machine loaded by the rest of the suite.
func (e *env) settle(path string, hdr []string, ttl string) {
	e.t.Helper()
	probe := append(append([]string(nil), hdr...), "Cache-Control", "only-if-cached")
	wait := time.Second
	if n, err := strconv.Atoi(ttl); err == nil && n > 0 {
		wait = 10 * time.Second
	}
	testkit.Poll(wait, func() bool {
		r, err := e.try(context.Background(), http.MethodHead, path, probe...)
		return err == nil && r.CS.hit() && !r.CS.has("collapsed")
	})
}

// try is do without failing the test: safe from other goroutines.
func (e *env) try(ctx context.Context, method, path string, hdr ...string) (result, error) {
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, nil)
	if err != nil {
		return result{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	return result{Status: resp.StatusCode, Header: resp.Header, Body: string(b), CS: parseCacheStatus(resp.Header.Get("Cache-Status"))}, nil
}

func (e *env) get(path string, hdr ...string) result {
	e.t.Helper()
	return e.do(http.MethodGet, path, hdr...)
}

// advance moves the shared clock.
func (e *env) advance(d time.Duration) { e.clock.Advance(d) }

// closeOrigin makes the origin unreachable: connections are refused.
func (e *env) closeOrigin() { e.origin.Close() }

// cacheStatus is the edged member of a Cache-Status field (RFC 9211 §2):
// its parameters, values unquoted, booleans mapped to "".
type cacheStatus struct {
	present bool
	first   string // the first member's cache name
	params  map[string]string
}

func parseCacheStatus(v string) cacheStatus {
	cs := cacheStatus{params: map[string]string{}}
	members := splitOutsideQuotes(v, ',')
	if len(members) == 0 || strings.TrimSpace(v) == "" {
		return cs
	}
	for i, m := range members {
		parts := splitOutsideQuotes(m, ';')
		name := strings.TrimSpace(parts[0])
		if i == 0 {
			cs.first = name
		}
		if name != "edged" {
			continue
		}
		cs.present = true
		for _, p := range parts[1:] {
			k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.HasPrefix(val, `"`) && strings.HasSuffix(val, `"`) && len(val) >= 2 {
				val = strings.ReplaceAll(val[1:len(val)-1], `\"`, `"`)
			}
			cs.params[strings.TrimSpace(k)] = val
		}
	}
	return cs
}

func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case quoted && s[i] == '\\':
			i++
		case s[i] == '"':
			quoted = !quoted
		case !quoted && s[i] == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func (c cacheStatus) has(k string) bool   { _, ok := c.params[k]; return ok }
func (c cacheStatus) get(k string) string { return c.params[k] }
func (c cacheStatus) hit() bool           { return c.has("hit") }
func (c cacheStatus) fwd() string         { return c.params["fwd"] }

// ttl returns the ttl parameter; ok is false when absent or not an integer.
func (c cacheStatus) ttl() (int, bool) {
	v, ok := c.params["ttl"]
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

// wantHit fails unless r was served from the cache without the origin.
func wantHit(t *testing.T, r result) {
	t.Helper()
	if !r.CS.hit() || r.CS.has("fwd") {
		t.Errorf("want a hit, got %v", r)
	}
}

// wantFwd fails unless r went forward to the origin for the reason fwd.
func wantFwd(t *testing.T, r result, fwd string) {
	t.Helper()
	if r.CS.hit() || r.CS.fwd() != fwd {
		t.Errorf("want fwd=%s, got %v", fwd, r)
	}
}

// wantStatus fails unless r has the status code.
func wantStatus(t *testing.T, r result, code int) {
	t.Helper()
	if r.Status != code {
		t.Errorf("status = %d, want %d (%v)", r.Status, code, r)
	}
}

// wantBody fails unless r has the body.
func wantBody(t *testing.T, r result, body string) {
	t.Helper()
	if r.Body != body {
		t.Errorf("body = %q, want %q (%v)", r.Body, body, r)
	}
}

// wantAge fails unless r's Age header is age seconds.
func wantAge(t *testing.T, r result, age int) {
	t.Helper()
	if got := r.Header.Get("Age"); got != strconv.Itoa(age) {
		t.Errorf("Age = %q, want %d (%v)", got, age, r)
	}
}

// wantHits fails unless the origin received n requests for path.
func (e *env) wantHits(path string, n int) {
	e.t.Helper()
	if got := e.origin.hits(path); got != n {
		e.t.Errorf("origin received %d requests for %s, want %d", got, path, n)
	}
}

// hangingOrigin is an originFunc that never answers until r's context ends
// or the test finishes (a stuck origin, for timeouts).
func hangingOrigin(g *testkit.Gate) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { g.Wait(r.Context()) }
}

// quiesce opens g and waits for a fill of path that a client gave up on to
// finish storing (a probe with only-if-cached stops answering 504), so that
// the test does not end while the cache is still writing. It gives up
// quietly after a second.
func (e *env) quiesce(g *testkit.Gate, path string) {
	g.Open()
	testkit.Poll(time.Second, func() bool {
		if e.origin.InFlight() != 0 {
			return false
		}
		r, err := e.try(context.Background(), http.MethodHead, path, "Cache-Control", "only-if-cached")
		return err == nil && r.Status != http.StatusGatewayTimeout
	})
}

// resetConn hijacks the connection and closes it without answering.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("origin: cannot hijack")
	}
	c, _, err := hj.Hijack()
	if err == nil {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

// tiers runs f once with the memory tier alone and once with bodies kept on
// the disk tier.
func tiers(t *testing.T, base opts, f func(t *testing.T, o opts)) {
	for _, disk := range []bool{false, true} {
		name := "memory"
		if disk {
			name = "disk"
		}
		t.Run(name, func(t *testing.T) {
			o := base
			o.disk = disk
			f(t, o)
		})
	}
}

// long pads a body past the disk variant's 16-byte memory limit.
func long(s string) string { return s + strings.Repeat(".", 32) }

// joined is how many requests have joined another's fill so far (with
// the disk tier, settle's probes reading along a fill count too): a
// baseline for awaitJoined.
func (e *env) joined() int {
	e.t.Helper()
	v, _ := testkit.Metric(e.t, e.reg, "edged_cache_coalesced_waiters_total")
	return int(v)
}

// awaitJoined waits until n requests have joined another's fill: the cache
// counts a waiter when it joins the flight.
func (e *env) awaitJoined(n int) {
	e.t.Helper()
	testkit.Eventually(e.t, 10*time.Second, func() bool {
		v, _ := testkit.Metric(e.t, e.reg, "edged_cache_coalesced_waiters_total")
		return v >= float64(n)
	}, fmt.Sprintf("%d requests joining the flight", n))
}
