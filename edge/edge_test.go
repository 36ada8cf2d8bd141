package edge_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb"
	"github.com/edged-proxy/edged/storage"
)

// origin is a test origin that counts requests per path (a testkit.Origin).
type origin struct {
	*testkit.Origin
}

func newOrigin(t testing.TB, h http.HandlerFunc) *origin {
	t.Helper()
	return &origin{testkit.NewOrigin(t, h)}
}

func (o *origin) hits(path string) int { return o.Hits(path) }

func (o *origin) lastRequest() *http.Request { return o.Last() }

type edgeOpts struct {
	disk        bool                 // run with a disk tier in a temp dir
	onDisk      func(*storage.Store) // receives that disk tier
	store       *storage.Store       // a disk tier to use instead (another edge's: a restart)
	rangeFwd    int64
	verifyLimit int64
	strip       []string
	diskMax     int64
	hooks       edge.Hooks
	site        func(*edge.Site)
	maxObject   int64
	unknown     int
	cacheBytes  int64
	reg         *prometheus.Registry            // receives the cache's metrics, for tests that wait on them
	h2c         bool                            // the server takes HTTP/2 with prior knowledge too
	listener    func(net.Listener) net.Listener // wraps the edge's listener
	trusted     []string                        // edge.Config.TrustedProxies
	now         func() time.Time                // the edge's clock
	metrics     *edge.Metrics
	tracer      trace.Tracer // the edge's and the cache's (trace_test.go)
	access      io.Writer    // edge.Config.AccessLog, with the three below
	accessFmt   string
	fields      []string
	sample      float64
}

// newEdge starts a real edge listener in front of the origins and returns
// its base URL and cache.
func newEdge(t *testing.T, opts edgeOpts, origins ...*origin) (string, *cache.Cache) {
	t.Helper()
	urls := make([]string, len(origins))
	for i, o := range origins {
		urls[i] = o.URL
	}
	base, _, c := buildEdge(t, opts, urls...)
	return base, c
}

// buildEdge wires a pool over the origin URLs, a cache and a Handler, and
// serves the Handler on a loopback listener.
func buildEdge(tb testing.TB, opts edgeOpts, urls ...string) (string, http.Handler, *cache.Cache) {
	tb.Helper()
	shards := make([]lb.Shard, len(urls))
	for i, u := range urls {
		shards[i] = lb.Shard{Name: fmt.Sprintf("o%d", i), URL: u, Weight: 1}
	}
	pool, err := lb.NewPool(lb.Config{Name: "test", Shards: shards})
	if err != nil {
		tb.Fatal(err)
	}
	disk := opts.store
	if opts.disk && disk == nil {
		disk, err = storage.Open(storage.Options{Dir: tb.TempDir(), Fsync: storage.FsyncNever, MaxBytes: opts.diskMax})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { disk.Close() })
		if opts.onDisk != nil {
			opts.onDisk(disk)
		}
	}
	var reg prometheus.Registerer
	if opts.reg != nil {
		reg = opts.reg
	}
	c, err := cache.New(cache.Config{MaxBytes: max(opts.cacheBytes, 64<<20), MaxObjectBytes: opts.maxObject, FillTimeout: time.Minute, Disk: disk, RangeForwardOffset: opts.rangeFwd, VerifyLimit: opts.verifyLimit, Registerer: reg, Tracer: opts.tracer})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	site := &edge.Site{Name: "test", Hosts: []string{"*.example.com", "example.com"}, Origin: pool}
	if opts.site != nil {
		opts.site(site)
	}
	h, err := edge.New(edge.Config{Sites: []*edge.Site{site}, Cache: c, Hooks: opts.hooks, UnknownHostStatus: opts.unknown, StripResponseHeaders: opts.strip, TrustedProxies: opts.trusted,
		Now: opts.now, Metrics: opts.metrics, Tracer: opts.tracer, AccessLog: opts.access, AccessFormat: opts.accessFmt, AccessFields: opts.fields, AccessSample: opts.sample})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	// The daemon's stack: connection limits, then the edge's server with
	// the HTTP/1 loop the environment chooses.
	ln = edge.LimitListener(ln, edge.ConnLimits{})
	if opts.listener != nil {
		ln = opts.listener(ln)
	}
	serveTest(tb, h, ln, edge.ServerConfig{H2C: opts.h2c})
	return "http://" + ln.Addr().String(), h, c
}

// serveTest serves h on ln until the test ends, with cfg and the HTTP/1
// server EDGED_TEST_HTTP1 names ("edged", the default, or "net/http"):
// CI runs the end-to-end suites once with each.
func serveTest(tb testing.TB, h http.Handler, ln net.Listener, cfg edge.ServerConfig) *edge.Server {
	tb.Helper()
	cfg.HTTP1 = cmp.Or(cfg.HTTP1, os.Getenv("EDGED_TEST_HTTP1"))
	srv, err := edge.NewServer(h, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return srv
}

// get sends a request with the given Host and extra header lines.
func get(t *testing.T, base, method, host, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func cacheable(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, body+r.URL.Path)
	}
}

func TestMissThenHit(t *testing.T) {
	o := newOrigin(t, cacheable("hello "))
	base, _ := newEdge(t, edgeOpts{}, o)

	resp, body := get(t, base, "GET", "example.com", "/a")
	if resp.StatusCode != 200 || body != "hello /a" {
		t.Fatalf("first: %d %q", resp.StatusCode, body)
	}
	if cs := resp.Header.Get("Cache-Status"); cs != "edged; fwd=uri-miss; fwd-status=200; stored; ttl=60" {
		t.Errorf("first Cache-Status = %q", cs)
	}
	if resp.Header.Get("Age") != "0" {
		t.Errorf("first Age = %q", resp.Header.Get("Age"))
	}
	resp, body = get(t, base, "GET", "example.com", "/a")
	if resp.StatusCode != 200 || body != "hello /a" {
		t.Fatalf("second: %d %q", resp.StatusCode, body)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "edged; hit; ttl=") {
		t.Errorf("second Cache-Status = %q", cs)
	}
	if resp.Header.Get("Age") == "" {
		t.Error("hit has no Age header")
	}
	if got := o.hits("/a"); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
	// HEAD is answered from the same entry, without a body.
	resp, body = get(t, base, "HEAD", "example.com", "/a")
	if !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") || body != "" || resp.ContentLength != int64(len("hello /a")) {
		t.Errorf("HEAD: %q body %q length %d", resp.Header.Get("Cache-Status"), body, resp.ContentLength)
	}
	// The normalized key makes an equivalent URL a hit too.
	resp, _ = get(t, base, "GET", "EXAMPLE.com:80", "/x/../%61")
	if !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
		t.Errorf("equivalent URL: Cache-Status %q", resp.Header.Get("Cache-Status"))
	}
}

func TestCoalescing100ConcurrentMisses(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "shared body")
	})
	reg := prometheus.NewRegistry()
	base, _ := newEdge(t, edgeOpts{reg: reg}, o)

	const n = 100
	var wg sync.WaitGroup
	var bad atomic.Int32
	collapsed := atomic.Int32{}
	started := make(chan struct{}, n)
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", base+"/one", nil)
			req.Host = "example.com"
			started <- struct{}{}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				bad.Add(1)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "shared body" {
				bad.Add(1)
			}
			if strings.Contains(resp.Header.Get("Cache-Status"), "collapsed") {
				collapsed.Add(1)
			}
		})
	}
	for range n {
		<-started
	}
	// Let every request join the flight before the origin answers.
	waitJoined(t, reg, n-1)
	close(release)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d requests failed or got a wrong body", bad.Load())
	}
	if got := o.hits("/one"); got != 1 {
		t.Errorf("origin saw %d requests for one key, want 1", got)
	}
	if collapsed.Load() == 0 {
		t.Error("no response said collapsed")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, cond, "condition")
}

// metricValue is the value of the series name{labels...} in reg, 0 when
// there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	v, _ := testkit.Metric(t, reg, name, labels...)
	return v
}

// waitJoined waits until n requests have joined another's fill: the
// cache counts a waiter when it joins the flight.
func waitJoined(t *testing.T, reg *prometheus.Registry, n int) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() bool {
		return metricValue(t, reg, "edged_cache_coalesced_waiters_total") >= float64(n)
	}, fmt.Sprintf("%d requests joining the flight", n))
}

// A client that gives up while its request leads the fill must not cancel
// the fill for the others.
func TestLeaderDisconnectDoesNotCancelFill(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "survived")
	})
	reg := prometheus.NewRegistry()
	base, _ := newEdge(t, edgeOpts{reg: reg}, o)

	ctx, cancel := context.WithCancel(context.Background())
	leaderDone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/slow", nil)
		req.Host = "example.com"
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		leaderDone <- err
	}()
	waitFor(t, func() bool { return o.hits("/slow") == 1 })

	waiter := make(chan string, 1)
	go func() {
		_, body := get(t, base, "GET", "example.com", "/slow")
		waiter <- body
	}()
	waitJoined(t, reg, 1)
	cancel()
	if err := <-leaderDone; err == nil {
		t.Fatal("leader request succeeded; it should have been cancelled")
	}
	close(release)
	if got := <-waiter; got != "survived" {
		t.Fatalf("waiter got %q", got)
	}
	resp, _ := get(t, base, "GET", "example.com", "/slow")
	if !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
		t.Errorf("after the fill: Cache-Status %q, want a hit", resp.Header.Get("Cache-Status"))
	}
	if got := o.hits("/slow"); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
}

// Responses a shared cache must not store are never served to another client.
func TestUnshareableResponsesNotServedToOthers(t *testing.T) {
	var n atomic.Int32
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
		case "/private":
			w.Header().Set("Cache-Control", "private, max-age=600")
		case "/auth":
			w.Header().Set("Cache-Control", "max-age=600") // no public/s-maxage/must-revalidate
		case "/auth-public":
			w.Header().Set("Cache-Control", "public, max-age=600")
		case "/cookie":
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header().Set("Set-Cookie", "session=secret")
		}
		fmt.Fprintf(w, "user=%s n=%d", r.Header.Get("Authorization"), n.Add(1))
	})
	base, _ := newEdge(t, edgeOpts{}, o)

	tests := []struct {
		path      string
		auth      string
		wantShare bool
		detail    string
	}{
		{"/nostore", "", false, "no-store"},
		{"/private", "", false, "private"},
		{"/auth", "Bearer alice", false, "authorization"},
		{"/auth-public", "Bearer alice", true, ""},
		{"/cookie", "", false, "set-cookie"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			var hdr []string
			if tt.auth != "" {
				hdr = []string{"Authorization", tt.auth}
			}
			r1, b1 := get(t, base, "GET", "example.com", tt.path, hdr...)
			r2, b2 := get(t, base, "GET", "example.com", tt.path)
			shared := b1 == b2
			if shared != tt.wantShare {
				t.Fatalf("first %q, second %q: shared=%v, want %v", b1, b2, shared, tt.wantShare)
			}
			if !tt.wantShare {
				if cs := r1.Header.Get("Cache-Status"); !strings.Contains(cs, "detail="+tt.detail) {
					t.Errorf("Cache-Status %q lacks detail=%s", cs, tt.detail)
				}
				if strings.Contains(r2.Header.Get("Cache-Status"), "hit") {
					t.Errorf("second request was a hit: %q", r2.Header.Get("Cache-Status"))
				}
			}
		})
	}
}

// Concurrent requests for an unshareable response each get their own.
func TestUnshareableNotCoalesced(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "private")
		io.WriteString(w, "for "+r.Header.Get("X-User"))
	})
	reg := prometheus.NewRegistry()
	base, _ := newEdge(t, edgeOpts{reg: reg}, o)
	var wg sync.WaitGroup
	bodies := make([]string, 5)
	for i := range bodies {
		wg.Go(func() {
			_, bodies[i] = get(t, base, "GET", "example.com", "/me", "X-User", fmt.Sprint(i))
		})
	}
	waitJoined(t, reg, len(bodies)-1) // one leads, the others join its flight
	close(release)
	wg.Wait()
	for i, b := range bodies {
		if b != fmt.Sprintf("for %d", i) {
			t.Errorf("client %d got %q", i, b)
		}
	}
}

func TestUnsafeMethodInvalidates(t *testing.T) {
	var version atomic.Int32
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case "POST", "PUT", "DELETE":
			version.Add(1)
			if r.URL.Path == "/fail" {
				w.WriteHeader(500)
				return
			}
			w.Header().Set("Location", "/other")
			w.WriteHeader(204)
		default:
			w.Header().Set("Cache-Control", "max-age=600")
			fmt.Fprintf(w, "v%d", version.Load())
		}
	})
	base, _ := newEdge(t, edgeOpts{}, o)

	for _, path := range []string{"/doc", "/other", "/fail"} {
		if _, b := get(t, base, "GET", "example.com", path); b != "v0" {
			t.Fatalf("warm %s: %q", path, b)
		}
	}
	resp, _ := get(t, base, "POST", "example.com", "/doc")
	if resp.StatusCode != 204 || resp.Header.Get("Cache-Status") != "edged; fwd=method; fwd-status=204" {
		t.Fatalf("POST: %d %q", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
	if _, b := get(t, base, "GET", "example.com", "/doc"); b != "v1" {
		t.Errorf("after POST, /doc = %q, want the origin's new v1", b)
	}
	if _, b := get(t, base, "GET", "example.com", "/other"); b != "v1" {
		t.Errorf("after POST with Location: /other, /other = %q, want v1", b)
	}
	get(t, base, "DELETE", "example.com", "/fail") // 500: no invalidation
	if _, b := get(t, base, "GET", "example.com", "/fail"); b != "v0" {
		t.Errorf("after a failed DELETE, /fail = %q, want the stored v0", b)
	}
}

func TestRequestHeadersToOrigin(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "must not reach the client")
		w.Header().Set("Keep-Alive", "timeout=5")
		io.WriteString(w, "ok")
	})
	base, _ := newEdge(t, edgeOpts{}, o)
	resp, _ := get(t, base, "GET", "www.example.com", "/h", "Connection", "X-Secret", "X-Secret", "hop", "X-Forwarded-For", "10.1.2.3", "Te", "deflate")
	r := o.lastRequest()
	if r.Host != "www.example.com" {
		t.Errorf("origin saw Host %q, want the client's", r.Host)
	}
	if r.Header.Get("X-Secret") != "" || r.Header.Get("Te") != "" {
		t.Errorf("hop-by-hop fields reached the origin: %v", r.Header)
	}
	if got := r.Header.Get("Via"); got != "1.1 edged" {
		t.Errorf("Via = %q", got)
	}
	if got := r.Header.Get("X-Forwarded-For"); got != "10.1.2.3, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if resp.Header.Get("X-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop fields reached the client: %v", resp.Header)
	}
	if resp.Header.Get("Via") != "1.1 edged" {
		t.Errorf("response Via = %q", resp.Header.Get("Via"))
	}
}

func TestOriginHostOverride(t *testing.T) {
	o := newOrigin(t, cacheable(""))
	base, _ := newEdge(t, edgeOpts{site: func(s *edge.Site) { s.OriginHost = "origin.internal" }}, o)
	get(t, base, "GET", "example.com", "/x")
	if got := o.lastRequest().Host; got != "origin.internal" {
		t.Errorf("origin saw Host %q, want origin.internal", got)
	}
}

func TestUnknownHost(t *testing.T) {
	o := newOrigin(t, cacheable(""))
	for _, code := range []int{0, 404} {
		base, _ := newEdge(t, edgeOpts{unknown: code}, o)
		resp, body := get(t, base, "GET", "other.org", "/")
		want := code
		if want == 0 {
			want = 421
		}
		if resp.StatusCode != want || !strings.Contains(body, "other.org") {
			t.Errorf("unknown host with UnknownHostStatus=%d: %d %q", code, resp.StatusCode, body)
		}
	}
	if o.hits("/") != 0 {
		t.Error("an unknown host reached the origin")
	}
}

// Bodies over the memory tier's object limit stream through, unstored.
func TestLargeBodyStreamsUnstored(t *testing.T) {
	big := strings.Repeat("x", 3<<20)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length: the edge must discover the size
		}
		io.WriteString(w, big)
	})
	base, _ := newEdge(t, edgeOpts{maxObject: 1 << 20}, o)
	for _, path := range []string{"/sized", "/chunked"} {
		for i := range 2 {
			resp, body := get(t, base, "GET", "example.com", path)
			if body != big {
				t.Fatalf("%s #%d: got %d bytes, want %d", path, i, len(body), len(big))
			}
			if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=too-large") {
				t.Errorf("%s #%d: Cache-Status %q", path, i, cs)
			}
		}
		if got := o.hits(path); got != 2 {
			t.Errorf("%s: origin saw %d requests, want 2 (not stored)", path, got)
		}
	}
}

func TestOriginDownGives502(t *testing.T) {
	o := newOrigin(t, cacheable(""))
	base, _ := newEdge(t, edgeOpts{}, o)
	o.Close()
	resp, _ := get(t, base, "GET", "example.com", "/gone")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
}

func TestClientConditionalOnHit(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		io.WriteString(w, "body")
	})
	base, _ := newEdge(t, edgeOpts{}, o)
	get(t, base, "GET", "example.com", "/c")
	tests := []struct {
		name string
		hdr  []string
		want int
	}{
		{"etag match", []string{"If-None-Match", `"v1"`}, 304},
		{"weak etag match", []string{"If-None-Match", `W/"v1"`}, 304},
		{"etag list", []string{"If-None-Match", `"v0", "v1"`}, 304},
		{"etag mismatch", []string{"If-None-Match", `"v2"`}, 200},
		{"ims not modified", []string{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 304},
		{"ims modified", []string{"If-Modified-Since", "Sun, 01 Jan 2006 15:04:05 GMT"}, 200},
		{"inm wins over ims", []string{"If-None-Match", `"v2"`, "If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, base, "GET", "example.com", "/c", tt.hdr...)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == 304 && body != "" {
				t.Errorf("304 with body %q", body)
			}
		})
	}
	if o.hits("/c") != 1 {
		t.Errorf("origin saw %d requests", o.hits("/c"))
	}
}

func TestOnlyIfCached(t *testing.T) {
	o := newOrigin(t, cacheable(""))
	base, _ := newEdge(t, edgeOpts{}, o)
	resp, _ := get(t, base, "GET", "example.com", "/oic", "Cache-Control", "only-if-cached")
	if resp.StatusCode != http.StatusGatewayTimeout || o.hits("/oic") != 0 {
		t.Errorf("only-if-cached miss: %d, origin hits %d", resp.StatusCode, o.hits("/oic"))
	}
	get(t, base, "GET", "example.com", "/oic")
	resp, _ = get(t, base, "GET", "example.com", "/oic", "Cache-Control", "only-if-cached")
	if resp.StatusCode != 200 {
		t.Errorf("only-if-cached hit: %d", resp.StatusCode)
	}
}

// versionHooks changes only the cache key and one response header; every
// other phase comes from DefaultHooks.
type versionHooks struct{ edge.DefaultHooks }

func (versionHooks) CacheKey(s *edge.Session) string {
	return rfc.KeyFor(s.Req, s.Scheme) + "|v=" + s.Req.Header.Get("X-App-Version")
}

func (versionHooks) ResponseFilter(s *edge.Session, status int, h http.Header) {
	h.Set("X-Edge-Key", s.Key)
}

func TestCustomHooks(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "app "+r.Header.Get("X-App-Version"))
	})
	base, _ := newEdge(t, edgeOpts{hooks: versionHooks{}}, o)
	_, b1 := get(t, base, "GET", "example.com", "/app", "X-App-Version", "1")
	_, b2 := get(t, base, "GET", "example.com", "/app", "X-App-Version", "2")
	r3, b3 := get(t, base, "GET", "example.com", "/app", "X-App-Version", "1")
	if b1 != "app 1" || b2 != "app 2" || b3 != "app 1" {
		t.Fatalf("bodies %q %q %q", b1, b2, b3)
	}
	if o.hits("/app") != 2 {
		t.Errorf("origin saw %d requests, want 2 (one per version)", o.hits("/app"))
	}
	if !strings.HasPrefix(r3.Header.Get("Cache-Status"), "edged; hit") {
		t.Errorf("third request: %q", r3.Header.Get("Cache-Status"))
	}
	if got := r3.Header.Get("X-Edge-Key"); got != "http://example.com/app|v=1" {
		t.Errorf("X-Edge-Key = %q", got)
	}
}

// A Vary response is reused only for requests with the same selecting
// header values.
func TestVaryMismatchIsMiss(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		io.WriteString(w, "lang="+r.Header.Get("Accept-Language"))
	})
	base, _ := newEdge(t, edgeOpts{}, o)
	_, b := get(t, base, "GET", "example.com", "/v", "Accept-Language", "en")
	resp, b2 := get(t, base, "GET", "example.com", "/v", "Accept-Language", "fr")
	if b != "lang=en" || b2 != "lang=fr" {
		t.Fatalf("bodies %q %q", b, b2)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=vary-miss") {
		t.Errorf("Cache-Status %q, want fwd=vary-miss", cs)
	}
}

// failingHooks refuses every upstream request.
type failingHooks struct{ edge.DefaultHooks }

func (failingHooks) UpstreamRequestFilter(*edge.Session, *http.Request) error {
	return fmt.Errorf("no origin for you")
}

// A failing UpstreamRequestFilter answers 500 on every path (cached,
// pass-through, WebSocket) and reaches no origin.
func TestUpstreamHookFailure(t *testing.T) {
	o := newOrigin(t, cacheable("x"))
	base, _ := newEdge(t, edgeOpts{hooks: failingHooks{}}, o)
	for _, tc := range []struct {
		method, path string
		hdr          []string
	}{
		{"GET", "/c", nil},
		{"POST", "/p", nil},
		{"GET", "/ws", []string{"Connection", "Upgrade", "Upgrade", "websocket"}},
	} {
		resp, _ := get(t, base, tc.method, "example.com", tc.path, tc.hdr...)
		if resp.StatusCode != 500 || !strings.Contains(resp.Header.Get("Cache-Status"), "detail=hook-error") {
			t.Errorf("%s %s: %d %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Cache-Status"))
		}
	}
	if n := o.hits("/c") + o.hits("/p") + o.hits("/ws"); n != 0 {
		t.Errorf("the origin saw %d requests", n)
	}
}

// revalidationHooks refuses only revalidations (the hook runs last, so it
// sees the validators the cache set).
type revalidationHooks struct{ edge.DefaultHooks }

func (revalidationHooks) UpstreamRequestFilter(_ *edge.Session, out *http.Request) error {
	if out.Header.Get("If-None-Match") != "" {
		return fmt.Errorf("no revalidation for you")
	}
	return nil
}

// A hook that fails a revalidation is an edge error (500), not an origin
// failure: a stale-if-error window does not turn it into a stale answer.
func TestHookFailureIsNotStaleIfError(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0, stale-if-error=600")
		w.Header().Set("Etag", `"e1"`)
		io.WriteString(w, "x")
	})
	base, _ := newEdge(t, edgeOpts{hooks: revalidationHooks{}}, o)
	if resp, _ := get(t, base, "GET", "example.com", "/s"); resp.StatusCode != 200 {
		t.Fatalf("fill: %d", resp.StatusCode)
	}
	resp, _ := get(t, base, "GET", "example.com", "/s")
	if resp.StatusCode != 500 || !strings.Contains(resp.Header.Get("Cache-Status"), "detail=hook-error") {
		t.Errorf("revalidation with a failing hook: %d %q, want 500 hook-error", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
}

func TestDrainClosesConnections(t *testing.T) {
	o := newOrigin(t, cacheable("x"))
	base, h, _ := buildEdge(t, edgeOpts{}, o.URL)
	resp, _ := get(t, base, "GET", "example.com", "/d")
	if resp.Close {
		t.Fatal("closed before draining")
	}
	h.(*edge.Handler).Drain()
	resp, _ = get(t, base, "GET", "example.com", "/d")
	if !resp.Close {
		t.Error("a draining edge kept the connection open")
	}
}
