package lb

import (
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The built-in policies (Config.Policy).
const (
	policyKetama     = "ketama"
	policyRoundRobin = "round_robin"
	policyLeastConn  = "least_conn"
	policyP2CEWMA    = "p2c_ewma"
)

// weightScale turns a weight times a slow-start share into an integer
// with enough resolution for the share's ramp.
const weightScale = 1000

// effectiveWeight is u's weight scaled by its slow-start share, 1 or more.
func effectiveWeight(u *Upstream) float64 {
	return float64(u.Weight()) * u.Share()
}

// roundRobin is the "round_robin" policy: nginx's smooth weighted round
// robin. On each pick every eligible shard's current weight grows by its
// effective weight, the shard with the largest current weight is chosen,
// and its current weight drops by the sum of the effective weights. Over a
// cycle each shard is chosen in proportion to its weight, and the picks of
// a heavy shard are spread through the cycle rather than bunched (weights
// 5, 1, 1 give a a b a c a a).
type roundRobin struct {
	mu      sync.Mutex
	current []int64 // by Index
}

func newRoundRobin(n int) *roundRobin {
	return &roundRobin{current: make([]int64, n)}
}

// Select puts the chosen shard first and the others after it by current
// weight, highest first (the order of the next picks), ties in config
// order.
func (rr *roundRobin) Select(_ string, _ *http.Request, ups []*Upstream) []*Upstream {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	var total int64
	best := 0
	for i, u := range ups {
		w := max(int64(math.Round(effectiveWeight(u)*weightScale)), 1)
		rr.current[u.index] += w
		total += w
		if rr.current[u.index] > rr.current[ups[best].index] {
			best = i
		}
	}
	rr.current[ups[best].index] -= total
	ups[0], ups[best] = ups[best], ups[0]
	// Insertion sort of the rest (stable: config order among ties); a
	// pool's shards are few.
	for i := 2; i < len(ups); i++ {
		for j := i; j > 1 && rrBefore(rr.current[ups[j].index], rr.current[ups[j-1].index], ups[j], ups[j-1]); j-- {
			ups[j], ups[j-1] = ups[j-1], ups[j]
		}
	}
	return ups
}

// rrBefore orders two shards for round robin's retries: higher current weight
// first, then config order.
func rrBefore(ca, cb int64, a, b *Upstream) bool {
	if ca != cb {
		return ca > cb
	}
	return a.index < b.index
}

// leastConn is the "least_conn" policy: the shard with the fewest requests
// in flight for its weight, counting this request ((InFlight+1) / (Weight ×
// Share)), ties broken at random; retries go to the others in the same
// ranking.
type leastConn struct{}

func (leastConn) Select(_ string, _ *http.Request, ups []*Upstream) []*Upstream {
	var costBuf [stackShards]float64
	cost := costBuf[:0]
	if len(ups) > stackShards {
		cost = make([]float64, 0, len(ups))
	}
	// Shuffle first so that the stable sort breaks ties at random.
	rand.Shuffle(len(ups), func(i, j int) { ups[i], ups[j] = ups[j], ups[i] })
	for _, u := range ups {
		cost = append(cost, float64(u.InFlight()+1)/effectiveWeight(u))
	}
	sortByCost(ups, cost)
	return ups
}

// p2cEWMA is the "p2c_ewma" policy: power of two choices over a peak EWMA
// of latency, as Finagle's and Linkerd's balancers. Two distinct eligible
// shards are drawn at random and the cheaper one is chosen, the cost being
// Latency × (InFlight+1) / (Weight × Share), and a shard without a
// latency yet takes one request at a time: a slow shard or one with a
// queue is avoided without every request herding to the single best
// shard, as a pure "least cost" choice would. Retries go to the others,
// cheapest first.
type p2cEWMA struct{}

func (p2cEWMA) Select(_ string, _ *http.Request, ups []*Upstream) []*Upstream {
	n := len(ups)
	if n == 1 {
		return ups
	}
	var costBuf [stackShards]float64
	cost := costBuf[:0]
	if n > stackShards {
		cost = make([]float64, 0, n)
	}
	now := time.Now()
	for _, u := range ups {
		lat, inflight := u.s.latency.at(now), u.InFlight()
		if lat < time.Microsecond && inflight > 0 {
			// Not measured yet (or decayed to nothing): one request at
			// a time until its answer says what the shard costs, as
			// Finagle's penalty, so a slow new shard is not flooded.
			cost = append(cost, math.Inf(1))
			continue
		}
		lat = max(lat, time.Microsecond)
		cost = append(cost, lat.Seconds()*float64(inflight+1)/effectiveWeight(u))
	}
	a := rand.IntN(n)
	b := rand.IntN(n - 1)
	if b >= a {
		b++
	}
	if cost[b] < cost[a] {
		a = b
	}
	ups[0], ups[a] = ups[a], ups[0]
	cost[0], cost[a] = cost[a], cost[0]
	sortByCost(ups[1:], cost[1:])
	return ups
}

// sortByCost sorts ups by cost, lowest first, keeping the order of ties;
// cost[i] is ups[i]'s. An insertion sort: a pool's shards are few, and it
// allocates nothing.
func sortByCost(ups []*Upstream, cost []float64) {
	for i := 1; i < len(ups); i++ {
		for j := i; j > 0 && cost[j] < cost[j-1]; j-- {
			ups[j], ups[j-1] = ups[j-1], ups[j]
			cost[j], cost[j-1] = cost[j-1], cost[j]
		}
	}
}

// ewmaDecay is the time constant of a shard's latency EWMA: an
// observation's weight falls to 1/e after this long (Finagle's default).
const ewmaDecay = 10 * time.Second

// peakEWMA is a shard's latency estimate (Upstream.Latency), kept in
// atomics so that recording and reading take no lock: the estimate in
// nanoseconds as float64 bits, and the wall time of the last observation.
type peakEWMA struct {
	bits  atomic.Uint64
	stamp atomic.Int64 // unix nanoseconds
}

// observe records one time to response headers, d, at now: a slower one
// than the estimate replaces it (the peak), a faster one is blended in by
// how long it has been since the previous observation.
func (e *peakEWMA) observe(d time.Duration, now time.Time) {
	t := now.UnixNano()
	last := e.stamp.Swap(t)
	rtt := float64(d)
	w := math.Exp(-float64(max(t-last, 0)) / float64(ewmaDecay))
	for {
		old := e.bits.Load()
		v := math.Float64frombits(old)
		nv := rtt
		if rtt <= v {
			nv = v*w + rtt*(1-w)
		}
		if e.bits.CompareAndSwap(old, math.Float64bits(nv)) {
			return
		}
	}
}

// at returns the estimate at now, decayed toward zero since the last
// observation.
func (e *peakEWMA) at(now time.Time) time.Duration {
	v := math.Float64frombits(e.bits.Load())
	if v == 0 {
		return 0
	}
	idle := float64(max(now.UnixNano()-e.stamp.Load(), 0))
	return time.Duration(v * math.Exp(-idle/float64(ewmaDecay)))
}
