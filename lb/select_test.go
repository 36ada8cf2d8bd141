package lb_test

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/lb"
)

// hdrHold names the hold of a request to a holdOrigin.
const hdrHold = "X-Hold"

// holds lets a test keep origin responses open: a holdOrigin sends the
// response headers of a request carrying hdrHold at once and its body's
// end only when the test releases that hold, so the request stays in
// flight, at the origin and in the pool, for as long as the test wants.
type holds struct {
	mu   sync.Mutex
	next int
	ch   map[string]chan struct{}
	open map[string]*atomic.Int64 // by origin name: requests inside the handler
}

func newHolds() *holds {
	return &holds{ch: make(map[string]chan struct{}), open: make(map[string]*atomic.Int64)}
}

// origin starts an origin named name that holds requests (see holds) and
// answers others at once, after delay.
func (h *holds) origin(t *testing.T, name string, delay time.Duration) *httptest.Server {
	t.Helper()
	n := new(atomic.Int64)
	h.mu.Lock()
	h.open[name] = n
	h.mu.Unlock()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		defer n.Add(-1) // before the body ends: the client sees EOF after
		time.Sleep(delay)
		w.Header().Set(hdrOrigin, name)
		id := r.Header.Get(hdrHold)
		if id == "" {
			return
		}
		h.mu.Lock()
		ch := h.ch[id]
		h.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-ch:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// held is one request a holdOrigin holds open.
type held struct {
	resp  *http.Response
	shard string
	id    string
}

// hold sends a request keyed by key that its origin holds open, and
// returns once the response headers are in: from then on the request is
// counted in flight by the origin and by the pool.
func (h *holds) hold(t *testing.T, p *lb.Pool, key string) held {
	t.Helper()
	h.mu.Lock()
	h.next++
	id := strconv.Itoa(h.next)
	h.ch[id] = make(chan struct{})
	h.mu.Unlock()
	req := newRequest(t, "GET", "http://example.test/"+key, nil)
	req.Header.Set(hdrHold, id)
	resp, rt, err := p.Do(req, key)
	if err != nil {
		t.Fatalf("key %s: %v", key, err)
	}
	t.Cleanup(func() { h.release(t, held{resp, rt.Shard, id}) })
	return held{resp, rt.Shard, id}
}

// release lets the origin finish a held request and reads its body to
// the end, so neither the origin nor the pool counts it any more.
func (h *holds) release(t *testing.T, r held) {
	t.Helper()
	h.mu.Lock()
	ch, ok := h.ch[r.id]
	delete(h.ch, r.id)
	h.mu.Unlock()
	if !ok {
		return
	}
	close(ch)
	io.Copy(io.Discard, r.resp.Body)
	r.resp.Body.Close()
}

// inFlight returns the requests each origin is serving now, and their sum.
func (h *holds) inFlight() (map[string]int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, total := make(map[string]int, len(h.open)), 0
	for name, n := range h.open {
		m[name] = int(n.Load())
		total += m[name]
	}
	return m, total
}

func letterNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = string(rune('a' + i))
	}
	return names
}

// TestBoundedLoadUnderHotKey drives a pool with a hot-key skew (half the
// requests for one key, the rest over 200 keys), holding up to 48 requests
// open at origins at once and releasing them at random, and checks every
// pick against the bound: the chosen shard's in-flight requests, this one
// included, within ceil(c × the mean over the shards). Plain ketama must
// break the bound under the same load, or the test proves nothing.
func TestBoundedLoadUnderHotKey(t *testing.T) {
	tests := []struct {
		name      string
		factor    float64
		wantBound bool
	}{
		{"c=1.25", 1.25, true},
		{"c=1", 1, true},
		{"off", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHolds()
			var shards []lb.Shard
			names := letterNames(4)
			for _, name := range names {
				shards = append(shards, lb.Shard{Name: name, URL: h.origin(t, name, 0).URL})
			}
			reg := prometheus.NewRegistry()
			p := newPool(t, lb.Config{Name: "site", Shards: shards, HashBalanceFactor: tt.factor, Metrics: lb.NewMetrics(reg)})
			bound := tt.factor
			if bound == 0 {
				bound = 1.25
			}

			rng := rand.New(rand.NewPCG(1, 2))
			var open []held
			picks, broken, moved := 0, 0, 0
			worst := 0.0
			for step := range 600 {
				if len(open) > 0 && (len(open) >= 48 || rng.IntN(3) == 0) {
					i := rng.IntN(len(open))
					h.release(t, open[i])
					open = append(open[:i], open[i+1:]...)
					continue
				}
				key := "hot"
				if rng.IntN(2) == 0 {
					key = "k" + strconv.Itoa(rng.IntN(200))
				}
				r := h.hold(t, p, key)
				open = append(open, r)
				picks++
				if r.shard != p.Pick(key) {
					moved++
				}
				load, total := h.inFlight()
				limit := int(math.Ceil(bound * float64(total) / float64(len(names))))
				if total >= 16 { // small totals make ratios meaningless
					worst = max(worst, float64(load[r.shard])*float64(len(names))/float64(total))
				}
				if load[r.shard] > limit {
					broken++
					if tt.wantBound {
						t.Fatalf("step %d: key %s went to %s with %d in flight of %d (loads %v): above ceil(%v × mean) = %d",
							step, key, r.shard, load[r.shard], total, load, bound, limit)
					}
				}
			}
			t.Logf("%d picks, %d above ceil(%v × mean), %d off the key's owner; worst chosen load %.2f × mean (at 16 or more in flight)",
				picks, broken, bound, moved, worst)
			if !tt.wantBound && broken == 0 {
				t.Fatalf("plain ketama never broke the bound: the skew is too weak to test it")
			}
			var overflows float64
			for _, name := range names {
				overflows += max(metricValue(t, reg, "edged_upstream_balance_overflows_total",
					map[string]string{"pool": "site", "shard": name}), 0)
			}
			if int(overflows) != moved {
				t.Errorf("edged_upstream_balance_overflows_total sums to %v, want %d (picks off the owner)", overflows, moved)
			}
		})
	}
}

// TestBoundedLoadKeepsKeysOnMembershipChange checks that bounds cost no
// locality at steady low load: with two requests held open on every shard,
// adding or removing a shard moves the same keys with c = 1.25 as plain
// ketama does, within 10% of plain ketama's moved fraction.
func TestBoundedLoadKeepsKeysOnMembershipChange(t *testing.T) {
	h := newHolds()
	urls := make(map[string]string)
	for _, name := range letterNames(5) {
		urls[name] = h.origin(t, name, 0).URL
	}
	pool := func(factor float64, names ...string) *lb.Pool {
		var shards []lb.Shard
		for _, n := range names {
			shards = append(shards, lb.Shard{Name: n, URL: urls[n]})
		}
		p := newPool(t, lb.Config{Name: "site", Shards: shards, HashBalanceFactor: factor})
		for range 2 { // round by round, so no hold overflows
			for _, n := range names {
				if r := h.hold(t, p, keyOwnedBy(t, p, n)); r.shard != n {
					t.Fatalf("background request for %s went to %s", n, r.shard)
				}
			}
		}
		return p
	}
	const keys = 1000
	routes := func(p *lb.Pool) []string {
		out := make([]string, keys)
		for i := range out {
			out[i], _ = answer(t, p, "obj/"+strconv.Itoa(i))
		}
		return out
	}
	tests := []struct {
		name          string
		before, after []string
	}{
		{"add a shard", letterNames(4), letterNames(5)},
		{"remove a shard", letterNames(4), letterNames(4)[1:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, after := pool(1.25, tt.before...), pool(1.25, tt.after...)
			rb, ra := routes(before), routes(after)
			movedPlain, movedBounded := 0, 0
			for i := range keys {
				k := "obj/" + strconv.Itoa(i)
				if before.Pick(k) != after.Pick(k) {
					movedPlain++
				}
				if rb[i] != ra[i] {
					movedBounded++
				}
			}
			plain, bounded := float64(movedPlain)/keys, float64(movedBounded)/keys
			t.Logf("keys moved: plain ketama %.1f%%, bounded c=1.25 %.1f%%", 100*plain, 100*bounded)
			if math.Abs(bounded-plain) > 0.1*plain {
				t.Errorf("bounded loads moved %.1f%% of keys, plain ketama %.1f%%: more than 10%% apart", 100*bounded, 100*plain)
			}
		})
	}
}

func TestRoundRobinIsSmoothAndExact(t *testing.T) {
	tests := []struct {
		weights []int
		cycle   string // one cycle of picks, shard names a, b, c...
	}{
		{[]int{5, 1, 1}, "aabacaa"}, // nginx's example
		{[]int{1, 1, 1}, "abc"},
		{[]int{2, 1}, "aba"},
		{[]int{3, 2}, "ababa"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.weights), func(t *testing.T) {
			var shards []lb.Shard
			for i, w := range tt.weights {
				name := string(rune('a' + i))
				shards = append(shards, lb.Shard{Name: name, URL: testOrigin(t, name).URL, Weight: w})
			}
			p := newPool(t, lb.Config{Name: "site", Shards: shards, Policy: "round_robin"})
			var got []byte
			for i := range 3 * len(tt.cycle) {
				shard, _ := answer(t, p, "same-key-"+strconv.Itoa(i%2))
				got = append(got, shard...)
			}
			want := tt.cycle + tt.cycle + tt.cycle
			if string(got) != want {
				t.Fatalf("picks %s, want %s", got, want)
			}
		})
	}
}

// TestLeastConnPicksLeastLoaded holds every request open and checks each
// pick: the chosen shard had the fewest in flight for its weight.
func TestLeastConnPicksLeastLoaded(t *testing.T) {
	tests := []struct {
		weights []int
		want    map[string]int // in flight after 8 picks
	}{
		{[]int{1, 1, 1, 1}, map[string]int{"a": 2, "b": 2, "c": 2, "d": 2}},
		{[]int{2, 1, 1}, map[string]int{"a": 4, "b": 2, "c": 2}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.weights), func(t *testing.T) {
			h := newHolds()
			var shards []lb.Shard
			weight := make(map[string]int)
			for i, w := range tt.weights {
				name := string(rune('a' + i))
				weight[name] = w
				shards = append(shards, lb.Shard{Name: name, URL: h.origin(t, name, 0).URL, Weight: w})
			}
			p := newPool(t, lb.Config{Name: "site", Shards: shards, Policy: "least_conn"})
			var open []held
			check := func(r held, before map[string]int) {
				t.Helper()
				cost := func(s string) float64 { return float64(before[s]+1) / float64(weight[s]) }
				for s := range weight {
					if cost(s) < cost(r.shard) {
						t.Fatalf("picked %s with loads %v (weights %v): %s was less loaded", r.shard, before, tt.weights, s)
					}
				}
			}
			for range 8 {
				before, _ := h.inFlight()
				r := h.hold(t, p, "k")
				check(r, before)
				open = append(open, r)
			}
			if got, _ := h.inFlight(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("in flight %v, want %v", got, tt.want)
			}
			// Free two of one shard's requests: the next two picks go there.
			freed, n := open[len(open)-1].shard, 0
			for _, r := range open {
				if r.shard == freed && n < 2 {
					h.release(t, r)
					n++
				}
			}
			for range 2 {
				before, _ := h.inFlight()
				r := h.hold(t, p, "k")
				check(r, before)
				if r.shard != freed {
					t.Fatalf("after freeing %s, picked %s (loads %v)", freed, r.shard, before)
				}
			}
		})
	}

	t.Run("ties at random", func(t *testing.T) {
		p := newPool(t, lb.Config{Name: "site", Shards: threeShards(t), Policy: "least_conn"})
		seen := make(map[string]int)
		for range 60 {
			shard, _ := answer(t, p, "k")
			seen[shard]++
		}
		if len(seen) != 3 {
			t.Errorf("60 idle picks went to %v: ties not broken at random", seen)
		}
	})
}

// TestP2CEWMAAvoidsSlowShard sends steady traffic from 2 clients over
// three shards, one of which takes 300ms more to answer: its share must
// stay far below the third round robin would give it. (The delay dwarfs
// the scheduling stalls of a loaded machine under -race, which a peak
// EWMA remembers for seconds.)
func TestP2CEWMAAvoidsSlowShard(t *testing.T) {
	h := newHolds()
	var shards []lb.Shard
	for _, name := range letterNames(3) {
		delay := time.Duration(0)
		if name == "c" {
			delay = 300 * time.Millisecond
		}
		shards = append(shards, lb.Shard{Name: name, URL: h.origin(t, name, delay).URL})
	}
	p := newPool(t, lb.Config{Name: "site", Shards: shards, Policy: "p2c_ewma"})
	const clients, each = 2, 100
	var mu sync.Mutex
	seen := make(map[string]int)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				req := newRequest(t, "GET", "http://example.test/", nil)
				resp, rt, err := p.Do(req, fmt.Sprintf("%d-%d", c, i))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				seen[rt.Shard]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	share := float64(seen["c"]) / (clients * each)
	t.Logf("picks %v: the slow shard took %.1f%%", seen, 100*share)
	if share > 0.05 {
		t.Errorf("slow shard took %.1f%% of %d requests (%v), want at most 5%%", 100*share, clients*each, seen)
	}
}

func TestPolicyConfigRejected(t *testing.T) {
	url := testOrigin(t, "a").URL
	tests := []struct {
		name string
		cfg  lb.Config
		ok   bool
	}{
		{"ketama", lb.Config{Policy: "ketama"}, true},
		{"ketama bounded", lb.Config{Policy: "ketama", HashBalanceFactor: 1.25}, true},
		{"default bounded", lb.Config{HashBalanceFactor: 1}, true},
		{"round_robin", lb.Config{Policy: "round_robin"}, true},
		{"least_conn", lb.Config{Policy: "least_conn"}, true},
		{"p2c_ewma", lb.Config{Policy: "p2c_ewma"}, true},
		{"unknown policy", lb.Config{Policy: "random"}, false},
		{"factor below 1", lb.Config{HashBalanceFactor: 0.9}, false},
		{"negative factor", lb.Config{HashBalanceFactor: -1}, false},
		{"NaN factor", lb.Config{HashBalanceFactor: math.NaN()}, false},
		{"infinite factor", lb.Config{HashBalanceFactor: math.Inf(1)}, false},
		{"factor with round_robin", lb.Config{Policy: "round_robin", HashBalanceFactor: 1.25}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Shards = []lb.Shard{{URL: url}}
			p, err := lb.NewPool(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("NewPool: err = %v, want ok = %v", err, tt.ok)
			}
			if p != nil {
				p.Close()
			}
		})
	}
}

// BenchmarkBoundedLoadLocality measures what bounded loads cost cache
// locality under steady uniform load: clients concurrent requests for
// uniformly random keys over three shards that answer after 1ms, and the
// share of requests sent to a shard other than the key's ring owner
// (off-owner-%; 0 for plain ketama). It is the figure behind
// hash_balance_factor's default (docs/architecture.md).
func BenchmarkBoundedLoadLocality(b *testing.B) {
	for _, clients := range []int{4, 16, 64} {
		for _, factor := range []float64{1.25, 1.5, 2} {
			b.Run(fmt.Sprintf("clients=%d/c=%v", clients, factor), func(b *testing.B) {
				var shards []lb.Shard
				for _, name := range letterNames(3) {
					srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						time.Sleep(time.Millisecond)
					}))
					b.Cleanup(srv.Close)
					shards = append(shards, lb.Shard{Name: name, URL: srv.URL})
				}
				p, err := lb.NewPool(lb.Config{Name: "site", Shards: shards, HashBalanceFactor: factor,
					MaxIdleConnsPerShard: clients})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(p.CloseIdleConnections)
				var off, total atomic.Int64
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for c := range clients {
					wg.Go(func() {
						rng := rand.New(rand.NewPCG(uint64(c), 7))
						for next.Add(1) <= int64(b.N) {
							key := "obj/" + strconv.Itoa(rng.IntN(100000))
							req, _ := http.NewRequest("GET", "http://example.test/", nil)
							resp, rt, err := p.Do(req, key)
							if err != nil {
								b.Error(err)
								return
							}
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							total.Add(1)
							if rt.Shard != p.Pick(key) {
								off.Add(1)
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(100*float64(off.Load())/float64(max(total.Load(), 1)), "off-owner-%")
			})
		}
	}
}

// TestPoliciesFailOver checks that every policy lists every eligible
// shard, so a request whose first choice refuses the connection moves on:
// with one of three shards dead, no request fails.
func TestPoliciesFailOver(t *testing.T) {
	for _, policy := range []string{"ketama", "round_robin", "least_conn", "p2c_ewma"} {
		t.Run(policy, func(t *testing.T) {
			shards := []lb.Shard{
				{Name: "a", URL: testOrigin(t, "a").URL},
				{Name: "dead", URL: deadURL(t)},
				{Name: "c", URL: testOrigin(t, "c").URL},
			}
			// DownFor 1ns: the dead shard stays eligible, so picks keep
			// choosing it first.
			p := newPool(t, lb.Config{Name: "site", Shards: shards, Policy: policy, DownFor: time.Nanosecond,
				Outlier: lb.Outlier{Disabled: true}})
			tried := 0
			for i := range 30 {
				_, _, rt, err := send(t, p, newRequest(t, "GET", "http://example.test/", nil), "k"+strconv.Itoa(i))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if rt.Attempts > 1 {
					tried++
				}
			}
			if tried == 0 {
				t.Fatalf("no request tried the dead shard first: the test proves nothing")
			}
		})
	}
}
