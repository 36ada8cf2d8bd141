package lb_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb"
)

// connOrigin is an origin that counts, at its end, the connections it
// accepted and those open now.
type connOrigin struct {
	*httptest.Server
	accepted, open atomic.Int64
}

func (o *connOrigin) connState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		o.accepted.Add(1)
		o.open.Add(1)
	case http.StateClosed, http.StateHijacked:
		o.open.Add(-1)
	}
}

// newConnOrigin starts an origin answering 200 "ok" (TLS with cfg when not
// nil) that counts its connections.
func newConnOrigin(t *testing.T, cfg *tls.Config) *connOrigin {
	t.Helper()
	o := &connOrigin{}
	o.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	o.Config.ConnState = o.connState
	if cfg != nil {
		o.TLS = cfg
		o.StartTLS()
	} else {
		o.Start()
	}
	t.Cleanup(o.Close)
	return o
}

// sendN sends n requests with distinct keys through p at concurrency c and
// fails the test on any error or non-200 answer.
func sendN(t *testing.T, p *lb.Pool, n, c int) {
	t.Helper()
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				resp, _, _, err := send(t, p, newRequest(t, http.MethodGet, "http://site.example/", nil), "k"+strconv.FormatInt(i, 10))
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d requests failed", f, n)
	}
}

// The connection series agree with what the origins saw: dials and TLS
// handshakes by result, open connections, idle connections once every
// response is read, and open connections back to zero once idle ones are
// closed.
func TestConnectionSeries(t *testing.T) {
	ca := testkit.NewCA(t, "origin-ca")
	plain := newConnOrigin(t, nil)
	secure := newConnOrigin(t, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1").TLS}})
	reg := prometheus.NewRegistry()
	m := lb.NewMetrics(reg)
	p := newPool(t, lb.Config{Name: "site", Metrics: m,
		Shards: []lb.Shard{{Name: "plain", URL: plain.URL}}})
	ps := newPool(t, lb.Config{Name: "tls", Metrics: m, TLS: lb.TLS{CAFile: ca.File},
		Shards: []lb.Shard{{Name: "secure", URL: secure.URL}}})
	sendN(t, p, 200, 8)
	sendN(t, ps, 200, 8)

	val := func(name, pool, shard string, kv ...string) float64 {
		t.Helper()
		l := map[string]string{"pool": pool, "shard": shard}
		for i := 0; i+1 < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return metricValue(t, reg, name, l)
	}
	for _, c := range []struct {
		pool, shard string
		o           *connOrigin
		handshakes  float64
	}{
		{"site", "plain", plain, 0},
		{"tls", "secure", secure, float64(secure.accepted.Load())},
	} {
		acc, open := float64(c.o.accepted.Load()), float64(c.o.open.Load())
		// A dial that loses the race to a connection freed meanwhile
		// goes to the idle pool unused: connections obtained new may be
		// fewer than dials.
		fresh := val("edged_upstream_connections_total", c.pool, c.shard, "reused", "false")
		if fresh < 1 || fresh > acc {
			t.Errorf("%s: %v connections obtained new, want 1 to the %v the origin accepted", c.shard, fresh, acc)
		}
		checks := []struct {
			name string
			kv   []string
			want float64
		}{
			{"edged_upstream_dials_total", []string{"result", "ok"}, acc},
			{"edged_upstream_dials_total", []string{"result", "error"}, 0},
			{"edged_upstream_tls_handshakes_total", []string{"result", "ok"}, c.handshakes},
			{"edged_upstream_connections_total", []string{"reused", "true"}, 200 - fresh},
			{"edged_upstream_open_connections", nil, open},
			{"edged_upstream_idle_connections", nil, open},
		}
		for _, ck := range checks {
			if got := val(ck.name, c.pool, c.shard, ck.kv...); got != ck.want {
				t.Errorf("%s %s%v = %v, want %v", c.shard, ck.name, ck.kv, got, ck.want)
			}
		}
	}
	newPool(t, lb.Config{Name: "fixed", Metrics: m, MaxIdleConnsPerShard: 8, Shards: []lb.Shard{{Name: "plain", URL: plain.URL}}})
	if got := val("edged_upstream_idle_pool_target", "fixed", "plain"); got != 8 {
		t.Errorf("idle pool target with a fixed cap of 8 = %v", got)
	}
	p.CloseIdleConnections()
	ps.CloseIdleConnections()
	for _, c := range []struct{ pool, shard string }{{"site", "plain"}, {"tls", "secure"}} {
		for _, name := range []string{"edged_upstream_open_connections", "edged_upstream_idle_connections"} {
			if got := val(name, c.pool, c.shard); got != 0 {
				t.Errorf("%s %s after closing idle connections = %v, want 0", c.shard, name, got)
			}
		}
	}
}

// Failed dials and failed handshakes are counted as errors, and leave no
// connection counted open.
func TestConnectionSeriesFailures(t *testing.T) {
	ca, other := testkit.NewCA(t, "origin-ca"), testkit.NewCA(t, "other-ca")
	bad := newConnOrigin(t, &tls.Config{Certificates: []tls.Certificate{other.Issue(t, "127.0.0.1").TLS}})
	reg := prometheus.NewRegistry()
	m := lb.NewMetrics(reg)
	dead := newPool(t, lb.Config{Name: "dead", Metrics: m, Shards: []lb.Shard{{Name: "d", URL: deadURL(t)}}})
	if _, _, _, err := send(t, dead, newRequest(t, http.MethodGet, "http://site.example/", nil), ""); err == nil {
		t.Fatal("a refused shard answered")
	}
	tp := newPool(t, lb.Config{Name: "tls", Metrics: m, TLS: lb.TLS{CAFile: ca.File}, Shards: []lb.Shard{{Name: "b", URL: bad.URL}}})
	if _, _, _, err := send(t, tp, newRequest(t, http.MethodGet, "https://site.example/", nil), ""); err == nil {
		t.Fatal("a shard with another CA's certificate answered")
	}
	for _, c := range []struct {
		name, pool, shard, result string
		want                      float64
	}{
		{"edged_upstream_dials_total", "dead", "d", "error", 1},
		{"edged_upstream_dials_total", "dead", "d", "ok", 0},
		{"edged_upstream_dials_total", "tls", "b", "ok", 1},
		{"edged_upstream_tls_handshakes_total", "tls", "b", "error", 1},
		{"edged_upstream_tls_handshakes_total", "tls", "b", "ok", 0},
	} {
		got := metricValue(t, reg, c.name, map[string]string{"pool": c.pool, "shard": c.shard, "result": c.result})
		if got != c.want {
			t.Errorf("%s{pool=%s,result=%s} = %v, want %v", c.name, c.pool, c.result, got, c.want)
		}
	}
	for _, pool := range []string{"dead", "tls"} {
		shard := map[string]string{"dead": "d", "tls": "b"}[pool]
		if got := metricValue(t, reg, "edged_upstream_open_connections", map[string]string{"pool": pool, "shard": shard}); got != 0 {
			t.Errorf("%s: open connections = %v, want 0", pool, got)
		}
	}
}

// The classic reverse-proxy reuse bug: with a fixed idle cap below the
// concurrency, the transport closes every connection returned to a full
// idle pool and dials a new one for the next request. The default (auto)
// keeps what the load uses: once a first round of load has opened its
// connections, a second round at the same concurrency opens (almost) none.
func TestAutoIdlePoolDoesNotChurn(t *testing.T) {
	const n, c = 1000, 16
	for _, tc := range []struct {
		name    string
		maxIdle int
		churns  bool
	}{
		{"fixed cap 2", 2, true},
		{"auto", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newConnOrigin(t, nil)
			p := newPool(t, lb.Config{Name: "site", MaxIdleConnsPerShard: tc.maxIdle,
				Shards: []lb.Shard{{Name: "a", URL: o.URL}}})
			sendN(t, p, n, c)
			first := o.accepted.Load()
			sendN(t, p, n, c)
			second := o.accepted.Load() - first
			if tc.churns {
				// How much a fixed cap churns depends on timing: Go's
				// transport hands a returning connection straight to a
				// request waiting for one, so a tight loop on a slow
				// machine may churn little. Logged, not asserted: the
				// assertion is auto's.
				t.Logf("fixed cap %d: %d new connections in the second round of %d requests at concurrency %d", tc.maxIdle, second, n, c)
			}
			if !tc.churns && second > 2 {
				t.Errorf("auto: %d new connections in the second round of %d requests at concurrency %d (%d in the first), want at most 2",
					second, n, c, first)
			}
		})
	}
}

// A reload that leaves a shard unchanged keeps its connections warm: the
// new pool (Config.Previous) takes over its transport, the old pool's Close
// leaves its idle connections open, and requests reuse them. A shard whose
// URL or transport settings changed gets new connections, and the old
// pool's Close closes the old ones.
func TestPreviousPoolKeepsConnectionsWarm(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(cfg *lb.Config, moved string)
		warm   bool
	}{
		{"unchanged", func(*lb.Config, string) {}, true},
		{"other URL", func(cfg *lb.Config, moved string) { cfg.Shards[0].URL = moved }, false},
		{"other dial timeout", func(cfg *lb.Config, _ string) { cfg.DialTimeout = 7 * time.Second }, false},
		{"other idle cap", func(cfg *lb.Config, _ string) { cfg.MaxIdleConnsPerShard = 8 }, false},
		{"other pool name", func(cfg *lb.Config, _ string) { cfg.Name = "renamed" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, moved := newConnOrigin(t, nil), newConnOrigin(t, nil)
			reg := prometheus.NewRegistry()
			cfg := lb.Config{Name: "site", Metrics: lb.NewMetrics(reg), Shards: []lb.Shard{{Name: "a", URL: a.URL}}}
			old := newPool(t, cfg)
			sendN(t, old, 100, 4)
			before := a.accepted.Load()
			fresh := func() float64 {
				return metricValue(t, reg, "edged_upstream_connections_total",
					map[string]string{"pool": cfg.Name, "shard": "a", "reused": "false"})
			}
			freshBefore := fresh()

			cfg.Previous = old
			tc.change(&cfg, moved.URL)
			p := newPool(t, cfg)
			old.Close()
			sendN(t, p, 100, 4)

			freshAfter := fresh()
			switch {
			case tc.warm && (a.accepted.Load() != before || a.open.Load() == 0):
				// Not "all open": the idle trimmer may close one of them
				// when the load it measured (peak plus a quarter) is below
				// the count sendN happened to open, which depends on timing.
				t.Errorf("unchanged shard: the origin accepted %d connections, %d open, after the reload; want only the %d from before, reused",
					a.accepted.Load(), a.open.Load(), before)
			case tc.warm && freshAfter != freshBefore:
				t.Errorf("unchanged shard: %v new connections counted, want the %v from before", freshAfter, freshBefore)
			case !tc.warm && a.accepted.Load()+moved.accepted.Load() == before:
				t.Errorf("changed shard: no new connection after the reload")
			}
		})
	}
}

// An ejected shard stays ejected across a reload that keeps it: a reload
// is no way back in for a failing origin.
func TestPreviousPoolKeepsEjection(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	good := testOrigin(t, "good")
	clock := newFakeClock()
	cfg := lb.Config{Name: "site", Now: clock.Now, Retry: lb.Retry{Max: -1},
		Outlier: lb.Outlier{ConsecutiveFailures: 2, SlowStart: -1},
		Shards:  []lb.Shard{{Name: "bad", URL: failing.URL}, {Name: "good", URL: good.URL}}}
	old := newPool(t, cfg)
	key := keyOwnedBy(t, old, "bad")
	for range 2 {
		send(t, old, newRequest(t, http.MethodGet, "http://site.example/", nil), key)
	}
	cfg.Previous = old
	cfg.DialTimeout = 3 * time.Second // a new transport: health is carried over all the same
	p := newPool(t, cfg)
	old.Close()
	if _, _, rt, err := send(t, p, newRequest(t, http.MethodGet, "http://site.example/", nil), key); err != nil || rt.Shard != "good" {
		t.Fatalf("after the reload: route %+v, err %v; want good (bad is ejected)", rt, err)
	}
	clock.Advance(31 * time.Second)
	if _, _, rt, _ := send(t, p, newRequest(t, http.MethodGet, "http://site.example/", nil), key); rt.Shard != "bad" {
		t.Fatalf("after the ejection ended: route %+v, want bad back", rt)
	}
}

// The issue's reuse target at the pool: steady load of distinct keys over
// three healthy shards, with the default (auto) idle pools, and at least
// 99.9% of the origin requests reuse a connection, counted at the origins.
// The load is measured once the pool has seen the per-shard peaks it can
// reach (a warm-up at twice, then at once the measured concurrency): any
// pool opens a connection when a shard's concurrency sets a new high.
// cmd/edged's TestReuseTargetSteadyMisses does the same through the daemon.
func TestReuseTargetSteadyLoad(t *testing.T) {
	const n, c = 5000, 32
	origins := []*connOrigin{newConnOrigin(t, nil), newConnOrigin(t, nil), newConnOrigin(t, nil)}
	shards := make([]lb.Shard, len(origins))
	for i, o := range origins {
		shards[i] = lb.Shard{Name: "s" + strconv.Itoa(i), URL: o.URL}
	}
	p := newPool(t, lb.Config{Name: "site", Shards: shards})
	sendN(t, p, 1000, 2*c)
	sendN(t, p, 1000, c)
	accepted := func() (n int64) {
		for _, o := range origins {
			n += o.accepted.Load()
		}
		return n
	}
	before := accepted()
	sendN(t, p, n, c)
	conns := accepted() - before
	t.Logf("%d requests, %d new connections: %.3f%% reused (warm-up: %d connections)", n, conns, 100*(1-float64(conns)/n), before)
	if conns*1000 > n {
		t.Errorf("%d new connections for %d requests: %.3f%% reused, want at least 99.9%%", conns, n, 100*(1-float64(conns)/n))
	}
}
