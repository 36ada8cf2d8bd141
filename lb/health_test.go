package lb_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb"
)

const healthPath = "/health"

// arrival is what a health check brought to a checkOrigin.
type arrival struct{ method, host, agent string }

// checkOrigin is an origin whose answers to health checks (healthPath)
// the test gives one at a time: a check waits in the handler, announced on
// arrivals, until step gives its status. Since a shard's checks run one
// after another, the arrival of the next check means the checker has acted
// on the previous answer: a test steps through checks on events, without
// timing. Other paths are answered 200 with the origin's name.
type checkOrigin struct {
	*httptest.Server
	arrivals chan arrival
	answers  chan int
	pending  bool
}

func newCheckOrigin(t *testing.T, name string) *checkOrigin {
	t.Helper()
	o := &checkOrigin{arrivals: make(chan arrival), answers: make(chan int)}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(hdrOrigin, name)
		if r.URL.Path != healthPath {
			return
		}
		select {
		case o.arrivals <- arrival{r.Method, r.Host, r.UserAgent()}:
		case <-r.Context().Done():
			return
		}
		select {
		case code := <-o.answers:
			w.WriteHeader(code)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(o.Close)
	return o
}

// await waits for the next check to arrive.
func (o *checkOrigin) await(t *testing.T) arrival {
	t.Helper()
	select {
	case a := <-o.arrivals:
		o.pending = true
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("no health check arrived within 30s")
		return arrival{}
	}
}

// step answers the waiting check (awaiting it first if need be) with code
// and waits until the next one arrives, so that the checker has acted on
// code.
func (o *checkOrigin) step(t *testing.T, code int) {
	t.Helper()
	if !o.pending {
		o.await(t)
	}
	o.answers <- code
	o.pending = false
	o.await(t)
}

// healthOrigin answers health checks with 200 at once.
func healthOrigin(t *testing.T, name string) *httptest.Server {
	return testOrigin(t, name)
}

// syncBuffer is a bytes.Buffer for a logger that goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// healthPool builds a pool named "site" over shards with hc (checks every
// millisecond, no jitter, unless hc says otherwise), a fake clock, a fresh
// registry and a logger writing to the returned buffer; Close runs at
// cleanup, before the origins close.
func healthPool(t *testing.T, hc lb.HealthCheck, o lb.Outlier, shards ...lb.Shard) (*lb.Pool, *fakeClock, *prometheus.Registry, *syncBuffer) {
	t.Helper()
	hc.Enabled = true
	if hc.Path == "" {
		hc.Path = healthPath
	}
	if hc.Interval == 0 {
		hc.Interval = time.Millisecond
	}
	if hc.JitterPercent == 0 {
		hc.JitterPercent = -1
	}
	if hc.Timeout == 0 {
		hc.Timeout = time.Minute // step-driven checks wait for the test
	}
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	logs := new(syncBuffer)
	p, err := lb.NewPool(lb.Config{
		Name: "site", Shards: shards, HealthCheck: hc, Outlier: o, Now: clock.Now,
		Metrics: lb.NewMetrics(reg), Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p, clock, reg, logs
}

func healthy(t *testing.T, reg prometheus.Gatherer, shard string) float64 {
	t.Helper()
	return metricValue(t, reg, "edged_upstream_healthy", map[string]string{"pool": "site", "shard": shard})
}

func checks(t *testing.T, reg prometheus.Gatherer, shard, result string) float64 {
	t.Helper()
	return metricValue(t, reg, "edged_upstream_health_checks_total", map[string]string{"pool": "site", "shard": shard, "result": result})
}

// A shard that starts failing its checks stays in for Fall-1 failures and
// goes out at Fall: its keys go to the other shards, it gets no request,
// the gauge says so and a warning names the shard and the reason.
func TestHealthCheckFallTakesShardOut(t *testing.T) {
	b := newCheckOrigin(t, "b")
	p, _, reg, logs := healthPool(t, lb.HealthCheck{Fall: 3}, lb.Outlier{},
		lb.Shard{Name: "a", URL: healthOrigin(t, "a").URL},
		lb.Shard{Name: "b", URL: b.URL},
		lb.Shard{Name: "c", URL: healthOrigin(t, "c").URL})
	key := keyOwnedBy(t, p, "b")

	b.step(t, 200)
	for i := range 2 {
		b.step(t, 503)
		if shard, _ := answer(t, p, key); shard != "b" || healthy(t, reg, "b") != 1 {
			t.Fatalf("after %d failed checks of 3: key answered by %s, healthy %v; want b, 1", i+1, shard, healthy(t, reg, "b"))
		}
	}
	b.step(t, 503)
	if got := healthy(t, reg, "b"); got != 0 {
		t.Fatalf("edged_upstream_healthy{b} = %v after 3 failed checks, want 0", got)
	}
	for i := range 50 {
		k := key + "-" + strconv.Itoa(i)
		if p.Pick(k) != "b" {
			continue
		}
		if shard, code := answer(t, p, k); shard == "b" || code != 200 {
			t.Fatalf("key %s owned by b: answered %d by %s, want 200 from another shard", k, code, shard)
		}
	}
	if got := checks(t, reg, "b", "bad_status"); got != 3 {
		t.Errorf("checks{b,bad_status} = %v, want 3", got)
	}
	if got := healthy(t, reg, "a"); got != 1 {
		t.Errorf("edged_upstream_healthy{a} = %v, want 1", got)
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN msg=\"upstream shard failed its health checks\" pool=site shard=b reason=bad_status") {
		t.Errorf("no warning naming the shard and reason in the log:\n%s", l)
	}
}

// A shard whose checks alternate never crosses Fall while in, nor Rise
// while out.
func TestHealthCheckFlappingShard(t *testing.T) {
	b := newCheckOrigin(t, "b")
	p, _, reg, _ := healthPool(t, lb.HealthCheck{Rise: 2, Fall: 2}, lb.Outlier{},
		lb.Shard{Name: "a", URL: healthOrigin(t, "a").URL},
		lb.Shard{Name: "b", URL: b.URL})
	key := keyOwnedBy(t, p, "b")
	b.step(t, 200)
	for i := range 10 {
		b.step(t, []int{503, 200}[i%2])
		if got := healthy(t, reg, "b"); got != 1 {
			t.Fatalf("alternating check %d took b out", i)
		}
	}
	if shard, _ := answer(t, p, key); shard != "b" {
		t.Fatalf("flapping shard's key answered by %s, want b", shard)
	}
	b.step(t, 503)
	b.step(t, 503)
	for i := range 10 {
		b.step(t, []int{200, 503}[i%2])
		if got := healthy(t, reg, "b"); got != 0 {
			t.Fatalf("alternating check %d brought b back", i)
		}
	}
	if shard, _ := answer(t, p, key); shard != "a" {
		t.Fatalf("failed shard's key answered by %s, want a", shard)
	}
}

// A shard back after Rise passing checks takes back its keys with slow
// start: its share ramps from 10% over Outlier.SlowStart, by the pool's
// clock.
func TestHealthCheckRiseWithSlowStart(t *testing.T) {
	b := newCheckOrigin(t, "b")
	p, clock, reg, logs := healthPool(t, lb.HealthCheck{Rise: 3, Fall: 1}, lb.Outlier{SlowStart: 100 * time.Second},
		lb.Shard{Name: "a", URL: healthOrigin(t, "a").URL},
		lb.Shard{Name: "b", URL: b.URL})
	var keys []string
	for i := 0; len(keys) < 400; i++ {
		if k := "k" + strconv.Itoa(i); p.Pick(k) == "b" {
			keys = append(keys, k)
		}
	}
	share := func() float64 {
		n := 0
		for _, k := range keys {
			if shard, _ := answer(t, p, k); shard == "b" {
				n++
			}
		}
		return float64(n) / float64(len(keys))
	}
	b.step(t, 200)
	b.step(t, 500)
	for i := range 2 {
		b.step(t, 200)
		if got := healthy(t, reg, "b"); got != 0 {
			t.Fatalf("back after %d passing checks of 3", i+1)
		}
	}
	b.step(t, 200)
	if got := healthy(t, reg, "b"); got != 1 {
		t.Fatalf("edged_upstream_healthy{b} = %v after 3 passing checks, want 1", got)
	}
	for _, step := range []struct {
		at   time.Duration
		want float64
	}{{0, 0.10}, {50, 0.55}, {100, 1}} {
		if step.at > 0 {
			clock.Advance(50 * time.Second)
		}
		if got := share(); got < step.want-0.08 || got > step.want+0.08 {
			t.Errorf("%ds into slow start: b took %.2f of its keys, want about %.2f", step.at, got, step.want)
		}
	}
	if l := logs.String(); !strings.Contains(l, "level=INFO msg=\"upstream shard passed its health checks\" pool=site shard=b") {
		t.Errorf("no info line for the recovery in the log:\n%s", l)
	}
}

// The first check decides alone: a shard down at start is out after one
// failed check, whatever Fall, and shards start healthy.
func TestHealthCheckStartState(t *testing.T) {
	b := newCheckOrigin(t, "b")
	p, _, reg, _ := healthPool(t, lb.HealthCheck{Fall: 5}, lb.Outlier{},
		lb.Shard{Name: "a", URL: healthOrigin(t, "a").URL},
		lb.Shard{Name: "b", URL: b.URL})
	b.await(t)
	if got := healthy(t, reg, "b"); got != 1 {
		t.Fatalf("before any check: edged_upstream_healthy{b} = %v, want 1 (shards start healthy)", got)
	}
	if shard, _ := answer(t, p, keyOwnedBy(t, p, "b")); shard != "b" {
		t.Fatalf("before any check, b's key answered by %s, want b", shard)
	}
	b.step(t, 503)
	if got := healthy(t, reg, "b"); got != 0 {
		t.Fatalf("after a failed first check: edged_upstream_healthy{b} = %v, want 0", got)
	}
}

// When every shard fails its checks, all are used (panic mode): health
// state alone never fails a site.
func TestHealthCheckPanicUsesAll(t *testing.T) {
	a, b := newCheckOrigin(t, "a"), newCheckOrigin(t, "b")
	p, _, reg, _ := healthPool(t, lb.HealthCheck{Fall: 1}, lb.Outlier{},
		lb.Shard{Name: "a", URL: a.URL}, lb.Shard{Name: "b", URL: b.URL})
	a.step(t, 503)
	b.step(t, 503)
	if healthy(t, reg, "a") != 0 || healthy(t, reg, "b") != 0 {
		t.Fatal("both shards should have failed their checks")
	}
	for _, s := range []string{"a", "b"} {
		if shard, code := answer(t, p, keyOwnedBy(t, p, s)); shard != s || code != 200 {
			t.Errorf("panic mode: %s's key answered %d by %s, want 200 by %s", s, code, shard, s)
		}
	}
}

// Method and Host header of the checks, and their defaults.
func TestHealthCheckRequest(t *testing.T) {
	for _, tc := range []struct {
		name         string
		method, host string
		wantMethod   string
		wantHost     string // "" means the shard's host:port
	}{
		{name: "defaults", wantMethod: "GET"},
		{name: "HEAD", method: "HEAD", wantMethod: "HEAD"},
		{name: "Host", host: "health.example", wantMethod: "GET", wantHost: "health.example"},
		{name: "HEAD and Host with port", method: "HEAD", host: "health.example:8080", wantMethod: "HEAD", wantHost: "health.example:8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newCheckOrigin(t, "a")
			healthPool(t, lb.HealthCheck{Method: tc.method, Host: tc.host}, lb.Outlier{}, lb.Shard{Name: "a", URL: o.URL})
			got := o.await(t)
			want := arrival{tc.wantMethod, tc.wantHost, "edged-health-check"}
			if want.host == "" {
				want.host = strings.TrimPrefix(o.URL, "http://")
			}
			if got != want {
				t.Errorf("check arrived as %+v, want %+v", got, want)
			}
		})
	}
}

// Each way a check can fail is counted by its result, in bounded time: a
// shard that never answers fails at Timeout.
func TestHealthCheckResults(t *testing.T) {
	handler := func(h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	for _, tc := range []struct {
		name   string
		url    func(t *testing.T) string
		expect string
		result string
	}{
		{"ok", func(t *testing.T) string { return testOrigin(t, "a").URL }, "", "ok"},
		{"status outside the range", func(t *testing.T) string {
			return handler(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) })
		}, "", "bad_status"},
		{"status in a chosen range", func(t *testing.T) string {
			return handler(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) })
		}, "200,404-410", "ok"},
		{"refused", deadURL, "", "connect_error"},
		{"hang", func(t *testing.T) string {
			return handler(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		}, "", "timeout"},
		{"reset", func(t *testing.T) string {
			return handler(func(w http.ResponseWriter, r *http.Request) {
				if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
					c.Close()
				}
			})
		}, "", "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			timeout := time.Minute // only the hanging shard should time out, however loaded the machine
			if tc.result == "timeout" {
				timeout = 100 * time.Millisecond
			}
			_, _, reg, _ := healthPool(t, lb.HealthCheck{Interval: time.Hour, Timeout: timeout, ExpectedStatus: tc.expect},
				lb.Outlier{}, lb.Shard{Name: "a", URL: tc.url(t)})
			testkit.Eventually(t, 30*time.Second, func() bool { return checks(t, reg, "a", tc.result) == 1 },
				"the first check, counted as "+tc.result)
			want := 0.0
			if tc.result == "ok" {
				want = 1
			}
			if got := healthy(t, reg, "a"); got != want {
				t.Errorf("edged_upstream_healthy{a} = %v, want %v", got, want)
			}
		})
	}
}

// An https shard is checked with the pool's TLS settings: its CA and
// server name pass, the system roots do not.
func TestHealthCheckTLS(t *testing.T) {
	ca := testkit.NewCA(t, "origin-ca")
	srv := tlsOrigin(t, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "origin.internal").TLS}})
	for _, tc := range []struct {
		name   string
		tls    lb.TLS
		result string
	}{
		{"the pool's CA and server name", lb.TLS{ServerName: "origin.internal", CAFile: ca.File}, "ok"},
		{"system roots", lb.TLS{ServerName: "origin.internal"}, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			p, err := lb.NewPool(lb.Config{Name: "site", Shards: []lb.Shard{{Name: "a", URL: srv.URL}}, TLS: tc.tls,
				HealthCheck: lb.HealthCheck{Enabled: true, Interval: time.Hour, Timeout: time.Minute}, Metrics: lb.NewMetrics(reg)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			testkit.Eventually(t, 30*time.Second, func() bool { return checks(t, reg, "a", tc.result) == 1 },
				"the first check, counted as "+tc.result)
		})
	}
}

// checkerGoroutines counts the goroutines running health checks.
func checkerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "created by github.com/edged-proxy/edged/lb.startHealthChecks ")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Close cancels a check in flight, waits for the checkers to end (so a
// reload, which closes the old pools, leaks none) and may be called again.
func TestHealthCheckCloseStopsCheckers(t *testing.T) {
	hang := newCheckOrigin(t, "a") // its checks wait for answers that never come
	// A checker whose pool was closed may still be returning from run.
	testkit.Eventually(t, 30*time.Second, func() bool { return checkerGoroutines() == 0 }, "earlier tests' checkers to end")
	p, err := lb.NewPool(lb.Config{Name: "site", Shards: []lb.Shard{{Name: "a", URL: hang.URL}, {Name: "b", URL: testOrigin(t, "b").URL}},
		HealthCheck: lb.HealthCheck{Enabled: true, Path: healthPath, Interval: time.Millisecond, Timeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if got := checkerGoroutines(); got != 2 {
		t.Fatalf("%d checker goroutines for 2 shards", got)
	}
	hang.await(t) // a check is in flight
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return: it waits for a check in flight instead of cancelling it")
	}
	// Close has waited for them; they may still be returning.
	testkit.Eventually(t, 30*time.Second, func() bool { return checkerGoroutines() == 0 }, "no checker goroutine left after Close")
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestHealthCheckConfigRejected(t *testing.T) {
	url := testOrigin(t, "a").URL
	for _, tc := range []struct {
		hc    lb.HealthCheck
		field string
	}{
		{lb.HealthCheck{ExpectedStatus: "2xx"}, "ExpectedStatus"},
		{lb.HealthCheck{ExpectedStatus: "399-200"}, "ExpectedStatus"},
		{lb.HealthCheck{ExpectedStatus: "200,"}, "ExpectedStatus"},
		{lb.HealthCheck{ExpectedStatus: "600"}, "ExpectedStatus"},
		{lb.HealthCheck{Method: "POST"}, "Method"},
		{lb.HealthCheck{Path: "health"}, "Path"},
		{lb.HealthCheck{Path: "/a b"}, "Path"},
		{lb.HealthCheck{Host: "a b"}, "Host"},
		{lb.HealthCheck{JitterPercent: 51}, "JitterPercent"},
		{lb.HealthCheck{Interval: -1}, "Interval"},
		{lb.HealthCheck{Timeout: -1}, "Timeout"},
		{lb.HealthCheck{Rise: -1}, "Rise"},
		{lb.HealthCheck{Fall: -1}, "Fall"},
	} {
		// Checked whether enabled or not, as configuration checks do.
		for _, enabled := range []bool{false, true} {
			tc.hc.Enabled = enabled
			_, err := lb.NewPool(lb.Config{Shards: []lb.Shard{{URL: url}}, HealthCheck: tc.hc})
			if err == nil {
				t.Errorf("NewPool(%+v) accepted", tc.hc)
				continue
			}
			var he *lb.HealthCheckError
			if !errors.As(err, &he) || he.Field != tc.field {
				t.Errorf("NewPool(%+v) = %v, want a *HealthCheckError for %s", tc.hc, err, tc.field)
			}
			if err2 := lb.CheckHealthCheck(tc.hc); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("CheckHealthCheck(%+v) = %v, want NewPool's %v", tc.hc, err2, err)
			}
		}
	}
	if err := lb.CheckHealthCheck(lb.HealthCheck{ExpectedStatus: " 200 - 299 , 304 "}); err != nil {
		t.Errorf("spaces around items: %v", err)
	}
}
