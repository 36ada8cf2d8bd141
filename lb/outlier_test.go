package lb_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/lb"
)

// switchOrigin starts an origin named name that answers 503 while fail is set
// and 200 otherwise, naming itself in hdrOrigin.
func switchOrigin(t *testing.T, name string, fail *atomic.Bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(hdrOrigin, name)
		if fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// outlierPool builds a pool over origins named a, b, c... (one per flag; a set
// flag makes that origin answer 503) with cfg's Outlier, a fake clock and a
// fresh registry.
func outlierPool(t *testing.T, o lb.Outlier, fails ...*atomic.Bool) (*lb.Pool, *fakeClock, *prometheus.Registry) {
	t.Helper()
	var shards []lb.Shard
	for i, f := range fails {
		name := string(rune('a' + i))
		shards = append(shards, lb.Shard{Name: name, URL: switchOrigin(t, name, f).URL})
	}
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	p := newPool(t, lb.Config{Name: "site", Shards: shards, Outlier: o, Now: clock.Now, Metrics: lb.NewMetrics(reg)})
	return p, clock, reg
}

// answer sends a GET keyed by key and returns the shard that answered and the
// status.
func answer(t *testing.T, p *lb.Pool, key string) (string, int) {
	t.Helper()
	resp, _, rt, err := send(t, p, newRequest(t, "GET", "http://example.test/"+key, nil), key)
	if err != nil {
		t.Fatalf("key %s: %v", key, err)
	}
	return rt.Shard, resp.StatusCode
}

func flag(v bool) *atomic.Bool {
	b := new(atomic.Bool)
	b.Store(v)
	return b
}

func TestOutlierEjectsFailingShard(t *testing.T) {
	bad := flag(true)
	p, clock, reg := outlierPool(t, lb.Outlier{}, flag(false), bad, flag(false))
	key := keyOwnedBy(t, p, "b")
	for i := range 5 { // the default ConsecutiveFailures
		if shard, code := answer(t, p, key); shard != "b" || code != 503 {
			t.Fatalf("request %d: %s answered %d, want b 503 (not ejected yet)", i, shard, code)
		}
	}
	for i := range 20 {
		k := keyOwnedBy(t, p, "b") + "-" + strconv.Itoa(i)
		if p.Pick(k) != "b" {
			continue
		}
		if shard, code := answer(t, p, k); shard == "b" || code != 200 {
			t.Fatalf("key %s after ejection: %s answered %d, want another shard's 200", k, shard, code)
		}
	}
	labels := map[string]string{"pool": "site", "shard": "b"}
	if got := metricValue(t, reg, "edged_upstream_ejected", labels); got != 1 {
		t.Errorf("edged_upstream_ejected{b} = %v, want 1", got)
	}
	labels["reason"] = "status_503"
	if got := metricValue(t, reg, "edged_upstream_ejections_total", labels); got != 1 {
		t.Errorf("edged_upstream_ejections_total{b,status_503} = %v, want 1", got)
	}

	// After the base ejection and the slow start, b owns its keys again.
	bad.Store(false)
	clock.Advance(30*time.Second + 30*time.Second)
	if shard, code := answer(t, p, key); shard != "b" || code != 200 {
		t.Fatalf("after recovery: %s answered %d, want b 200", shard, code)
	}
	delete(labels, "reason")
	if got := metricValue(t, reg, "edged_upstream_ejected", labels); got != 0 {
		t.Errorf("edged_upstream_ejected{b} after recovery = %v, want 0", got)
	}
}

// A shard that resets connections or times out before answering is ejected
// like one answering 503, with the reason in the metric; a reset request that
// was retried on the next shard still counts against the shard that reset.
func TestOutlierEjectsOnTransportFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		reason  string
	}{
		{"reset", func(w http.ResponseWriter, r *http.Request) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		}, "reset"},
		{"timeout", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := httptest.NewServer(tc.handler)
			t.Cleanup(bad.Close)
			reg := prometheus.NewRegistry()
			p := newPool(t, lb.Config{
				Name:                  "site",
				Shards:                []lb.Shard{{Name: "a", URL: testOrigin(t, "a").URL}, {Name: "b", URL: bad.URL}},
				ResponseHeaderTimeout: 50 * time.Millisecond,
				Outlier:               lb.Outlier{ConsecutiveFailures: 2},
				Now:                   newFakeClock().Now,
				Metrics:               lb.NewMetrics(reg),
			})
			key := keyOwnedBy(t, p, "b")
			for range 2 {
				resp, _, route, err := send(t, p, newRequest(t, "GET", "http://example.test/", nil), key)
				if err == nil && (resp.Header.Get(hdrOrigin) != "a" || route.Attempts != 2) {
					t.Fatalf("answer from %q after %d tries, want a retry on a", resp.Header.Get(hdrOrigin), route.Attempts)
				}
			}
			if shard, code := answer(t, p, key); shard != "a" || code != 200 {
				t.Fatalf("after ejection: %s answered %d, want a 200", shard, code)
			}
			labels := map[string]string{"pool": "site", "shard": "b", "reason": tc.reason}
			if got := metricValue(t, reg, "edged_upstream_ejections_total", labels); got != 1 {
				t.Errorf("edged_upstream_ejections_total{b,%s} = %v, want 1", tc.reason, got)
			}
		})
	}
}

// With every shard failing, the default cap (50%) ejects one of three shards
// and of four shards two: at least half stay in picks.
func TestOutlierCapKeepsHalf(t *testing.T) {
	for _, n := range []int{2, 3, 4} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			var fails []*atomic.Bool
			for range n {
				fails = append(fails, flag(true))
			}
			p, _, reg := outlierPool(t, lb.Outlier{ConsecutiveFailures: 1}, fails...)
			for i := range 200 {
				answer(t, p, "k"+strconv.Itoa(i))
			}
			ejected := 0
			for i := range n {
				labels := map[string]string{"pool": "site", "shard": string(rune('a' + i))}
				ejected += int(metricValue(t, reg, "edged_upstream_ejected", labels))
			}
			if want := max(1, n/2); ejected != want {
				t.Errorf("%d of %d shards ejected, want %d", ejected, n, want)
			}
		})
	}
}

// When every shard is ejected (MaxEjectedPercent 100), picks use all of them
// in ring order rather than failing the site.
func TestOutlierPanicUsesAll(t *testing.T) {
	p, _, reg := outlierPool(t, lb.Outlier{ConsecutiveFailures: 1, MaxEjectedPercent: 100},
		flag(true), flag(true), flag(true))
	for _, s := range []string{"a", "b", "c"} {
		answer(t, p, keyOwnedBy(t, p, s))
		if got := metricValue(t, reg, "edged_upstream_ejected", map[string]string{"pool": "site", "shard": s}); got != 1 {
			t.Fatalf("shard %s: ejected = %v, want 1", s, got)
		}
	}
	for _, s := range []string{"a", "b", "c"} {
		if shard, code := answer(t, p, keyOwnedBy(t, p, s)); shard != s || code != 503 {
			t.Errorf("all ejected: key of %s answered by %s with %d, want its owner (panic mode)", s, shard, code)
		}
	}
}

// Each ejection that follows soon after the previous one lasts twice as long,
// up to MaxEjection; a quiet period of MaxEjection starts over at the base.
func TestOutlierEjectionDoubles(t *testing.T) {
	p, clock, _ := outlierPool(t, lb.Outlier{
		ConsecutiveFailures: 1, BaseEjection: 10 * time.Second, MaxEjection: 40 * time.Second, SlowStart: -1,
	}, flag(false), flag(true))
	key := keyOwnedBy(t, p, "b")
	if shard, _ := answer(t, p, key); shard != "b" {
		t.Fatalf("first request answered by %s, want b", shard)
	}
	for i, d := range []time.Duration{10, 20, 40, 40} {
		d *= time.Second
		clock.Advance(d - time.Millisecond)
		if shard, _ := answer(t, p, key); shard != "a" {
			t.Fatalf("ejection %d: %v in, answered by %s, want a (still ejected)", i+1, d-time.Millisecond, shard)
		}
		clock.Advance(time.Millisecond)
		if shard, _ := answer(t, p, key); shard != "b" { // fails again: ejected anew
			t.Fatalf("ejection %d: after %v, answered by %s, want b (back)", i+1, d, shard)
		}
	}
	// Ejected for 40s now; stay quiet for more than MaxEjection after it.
	clock.Advance(40*time.Second + 41*time.Second)
	answer(t, p, key) // ejected again, for the base time
	clock.Advance(10 * time.Second)
	if shard, _ := answer(t, p, key); shard != "b" {
		t.Fatalf("after a quiet period, ejection lasted more than the base: answered by %s", shard)
	}
}

// After its ejection, a shard's share of its own keys ramps from 10% to 100%
// over SlowStart, and a key it takes back stays with it.
func TestOutlierSlowStartRamps(t *testing.T) {
	bad := flag(true)
	p, clock, _ := outlierPool(t, lb.Outlier{
		ConsecutiveFailures: 1, BaseEjection: 10 * time.Second, SlowStart: 100 * time.Second,
	}, flag(false), bad)
	var keys []string
	for i := 0; len(keys) < 1000; i++ {
		if k := "k" + strconv.Itoa(i); p.Pick(k) == "b" {
			keys = append(keys, k)
		}
	}
	answer(t, p, keys[0]) // ejects b
	bad.Store(false)
	clock.Advance(10 * time.Second)
	took := make(map[string]bool)
	for _, step := range []struct {
		at   time.Duration
		want float64
	}{{0, 0.10}, {25, 0.325}, {50, 0.55}, {75, 0.775}, {100, 1}} {
		if step.at > 0 {
			clock.Advance(25 * time.Second)
		}
		n := 0
		for _, k := range keys {
			shard, _ := answer(t, p, k)
			switch {
			case shard == "b":
				n++
				took[k] = true
			case took[k]:
				t.Fatalf("%ds into slow start: key %s went back to a after b took it", step.at, k)
			}
		}
		got := float64(n) / float64(len(keys))
		t.Logf("%3ds into slow start: b answers %.3f of its keys (want %.3f)", step.at, got, step.want)
		if got < step.want-0.08 || got > step.want+0.08 {
			t.Errorf("%ds into slow start: b answers %.3f of its keys, want %.3f ± 0.08", step.at, got, step.want)
		}
	}
}

// A shard that fails every other request never reaches ConsecutiveFailures,
// so it is not ejected; one that fails in runs is, and each comeback that
// fails again ejects it for longer.
func TestOutlierFlappingShard(t *testing.T) {
	bad := flag(false)
	p, clock, reg := outlierPool(t, lb.Outlier{SlowStart: -1}, flag(false), bad)
	key := keyOwnedBy(t, p, "b")
	for i := range 20 {
		bad.Store(i%2 == 0)
		if shard, _ := answer(t, p, key); shard != "b" {
			t.Fatalf("alternating request %d answered by %s, want b (never ejected)", i, shard)
		}
	}
	ejections := func() float64 {
		return metricValue(t, reg, "edged_upstream_ejections_total",
			map[string]string{"pool": "site", "shard": "b", "reason": "status_503"})
	}
	if got := ejections(); got > 0 {
		t.Fatalf("alternating shard ejected %v times", got)
	}
	// Runs of failures: down, up, down.
	bad.Store(true)
	for range 5 {
		answer(t, p, key)
	}
	if shard, _ := answer(t, p, key); shard != "a" {
		t.Fatalf("after 5 failures answered by %s, want a", shard)
	}
	clock.Advance(30 * time.Second)
	bad.Store(false)
	if shard, code := answer(t, p, key); shard != "b" || code != 200 {
		t.Fatalf("back up: %s answered %d, want b 200", shard, code)
	}
	bad.Store(true)
	for range 5 {
		answer(t, p, key)
	}
	clock.Advance(30 * time.Second) // the second ejection lasts 60s
	if shard, _ := answer(t, p, key); shard != "a" {
		t.Fatalf("30s into the second ejection answered by %s, want a", shard)
	}
	if got := ejections(); got != 2 {
		t.Errorf("ejections = %v, want 2", got)
	}
}

func TestOutlierDisabled(t *testing.T) {
	p, _, _ := outlierPool(t, lb.Outlier{Disabled: true, ConsecutiveFailures: 1}, flag(false), flag(true))
	key := keyOwnedBy(t, p, "b")
	for range 10 {
		if shard, _ := answer(t, p, key); shard != "b" {
			t.Fatalf("outlier detection disabled, but b's key answered by %s", shard)
		}
	}
}

func TestOutlierConfigRejected(t *testing.T) {
	for _, o := range []lb.Outlier{
		{ConsecutiveFailures: -1}, {BaseEjection: -1}, {MaxEjection: -1}, {MaxEjectedPercent: -1}, {MaxEjectedPercent: 101},
	} {
		if _, err := lb.NewPool(lb.Config{Shards: []lb.Shard{{URL: "http://127.0.0.1:1"}}, Outlier: o}); err == nil {
			t.Errorf("NewPool accepted Outlier %+v", o)
		}
	}
}
