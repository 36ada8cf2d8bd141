package lb

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

// selectPool builds a pool over n shards that are never sent a request.
func selectPool(t testing.TB, n int, cfg Config) *Pool {
	t.Helper()
	for i := range n {
		cfg.Shards = append(cfg.Shards, Shard{Name: "s" + strconv.Itoa(i), URL: "http://127.0.0.1:" + strconv.Itoa(1+i)})
	}
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func upNames(ups []*Upstream) []string {
	out := make([]string, len(ups))
	for i, u := range ups {
		out[i] = u.Name()
	}
	return out
}

// TestBoundedLoadOverflowSpreads overloads one shard and checks where its
// keys go: each to a shard with room, the same one every time for a key,
// spread over the other shards rather than all to its ring successor; and
// the retries after the first choice stay in ring order.
func TestBoundedLoadOverflowSpreads(t *testing.T) {
	p := selectPool(t, 5, Config{HashBalanceFactor: 1.25})
	hot := p.shards[0]
	hot.inflight.Store(20) // mean over 5 shards with the next request: 21/5; bound ceil(5.25) = 6
	defer hot.inflight.Store(0)

	got := make(map[string]int)
	successor := make(map[string]int)
	for i := 0; len(got) < 1 || i < 2000; i++ {
		key := "k" + strconv.Itoa(i)
		ring := p.ring.LookupN(key, 5)
		if ring[0] != hot.name {
			continue
		}
		out := upNames(p.sel.Select(key, nil, p.eligible(p.now())))
		if out[0] == hot.name {
			t.Fatalf("key %s stayed on the overloaded owner: %v", key, out)
		}
		if again := upNames(p.sel.Select(key, nil, p.eligible(p.now()))); !slices.Equal(again, out) {
			t.Fatalf("key %s: %v, then %v: overflow not stable per key", key, out, again)
		}
		rest := slices.DeleteFunc(slices.Clone(ring), func(n string) bool { return n == out[0] })
		if !slices.Equal(out[1:], rest) {
			t.Fatalf("key %s: order %v, want %s then ring order %v", key, out, out[0], rest)
		}
		got[out[0]]++
		successor[ring[1]]++
		if out[0] == ring[1] {
			successor["same"]++
		}
	}
	t.Logf("overflow of the hot shard's keys: %v (ring successors %v)", got, successor)
	total := 0
	for _, n := range got {
		total += n
	}
	for name, n := range got {
		if n > total*3/4 {
			t.Errorf("%s took %d of %d overflowing keys (%v): not spread", name, n, total, got)
		}
	}
	if len(got) < 3 {
		t.Errorf("overflow went to %d shards only (%v), want the 4 others or nearly", len(got), got)
	}
}

// BenchmarkSelect measures one pick per policy over a pool of n shards,
// with no load, and for bounded ketama with one shard overloaded so every
// pick overflows.
func BenchmarkSelect(b *testing.B) {
	for _, n := range []int{3, 16} {
		for _, bc := range []struct {
			name     string
			cfg      Config
			overload bool
		}{
			{"ketama", Config{}, false},
			{"ketama_bounded", Config{HashBalanceFactor: 1.25}, false},
			{"ketama_bounded_overflow", Config{HashBalanceFactor: 1.25}, true},
			{"round_robin", Config{Policy: policyRoundRobin}, false},
			{"least_conn", Config{Policy: policyLeastConn}, false},
			{"p2c_ewma", Config{Policy: policyP2CEWMA}, false},
		} {
			b.Run(fmt.Sprintf("%s/shards=%d", bc.name, n), func(b *testing.B) {
				p := selectPool(b, n, bc.cfg)
				keys := make([]string, 1024)
				for i := range keys {
					keys[i] = "http://example.com/object/" + strconv.Itoa(i)
				}
				if bc.overload {
					// Every shard but one full: most keys' owners
					// are, and the jumps mostly land on full shards
					// too, the worst case.
					for _, s := range p.shards[1:] {
						s.inflight.Store(50)
					}
				}
				base := p.eligible(p.now())
				ups := make([]*Upstream, len(base))
				req, _ := http.NewRequest("GET", "http://example.com/", nil)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					copy(ups, base)
					p.sel.Select(keys[i%len(keys)], req, ups)
					i++
				}
			})
		}
	}
}

func TestPeakEWMA(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	e1 := math.Exp(-1)
	var e peakEWMA
	steps := []struct {
		observe time.Duration // 0: only read
		at      time.Duration // since t0
		want    float64       // ms, read at at
	}{
		{0, 0, 0},                      // nothing yet
		{10 * time.Millisecond, 0, 10}, // the first observation is the estimate
		{time.Millisecond, 10 * time.Second, 10*e1 + 1*(1-e1)}, // faster: blended by the time since the last
		{20 * time.Millisecond, 10 * time.Second, 20},          // slower: the peak at once
		{0, 20 * time.Second, 20 * e1},                         // no answers: decays toward zero
	}
	for i, st := range steps {
		now := t0.Add(st.at)
		if st.observe > 0 {
			e.observe(st.observe, now)
		}
		got := float64(e.at(now)) / float64(time.Millisecond)
		if math.Abs(got-st.want) > 0.001 {
			t.Fatalf("step %d: estimate %.4fms, want %.4fms", i, got, st.want)
		}
	}
}
