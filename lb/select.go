package lb

import (
	"math"
	"net/http"
	"time"

	"github.com/edged-proxy/edged/lb/ketama"
)

// Upstream is one origin shard as a Selector sees it: its name and weight,
// and the live state a policy may balance on. Its methods are safe for
// concurrent use.
type Upstream struct {
	s     *shard
	pool  *Pool
	index int
}

// Name is the shard's name (Shard.Name, or its host[:port]).
func (u *Upstream) Name() string { return u.s.name }

// Weight is the shard's configured weight, 1 or more.
func (u *Upstream) Weight() int { return u.s.weight }

// Index is the shard's position in Config.Shards, fixed for the pool's
// life: a policy may keep per-shard state in a slice indexed by it.
func (u *Upstream) Index() int { return u.index }

// InFlight is the number of requests sent to the shard whose response has
// not finished: waiting for a connection or for the response headers, or
// with the response body not yet read to its end or closed.
func (u *Upstream) InFlight() int { return int(u.s.inflight.Load()) }

// Share is the fraction of its normal traffic the shard should take now:
// 1, or while it is in slow start after an ejection or failed health
// checks (Outlier.SlowStart) a value ramping from 0.1 to 1. Weighted
// policies multiply the weight by it.
func (u *Upstream) Share() float64 {
	e := u.pool.ejector
	st := e.state[u.s]
	if (e.disabled || st.ejectedUntil.Load() == 0) && st.recoveredAt.Load() == 0 {
		return 1 // never ejected nor back from failed checks: skip the clock, which policies ask per shard
	}
	return e.share(u.s, u.pool.now())
}

// Latency is the shard's recent time to response headers: a peak EWMA
// (Finagle's and Linkerd's), which jumps up to a slower response at once
// and decays toward faster ones with a time constant of 10s, and toward
// zero while no response comes, so a shard that was slow is tried again in
// time. Zero means no response yet.
func (u *Upstream) Latency() time.Duration {
	return u.s.latency.at(time.Now())
}

// Selector orders the shards a request is tried on: a balancing policy.
// Config.Policy names the built-in ones; Config.Selector plugs in one of the
// Go API user's own.
//
// Select is given the request's routing key, the request itself and the
// shards eligible for it, in Config.Shards order: never empty, and every
// shard when none is eligible (panic mode). It returns the shards to try,
// first choice first, then the order of retries; it may reorder and return
// ups itself (a fresh slice each call) and must return at least one. Shards
// it leaves out are not tried. Select is called concurrently.
type Selector interface {
	Select(key string, req *http.Request, ups []*Upstream) []*Upstream
}

// SelectorFunc adapts a function to a Selector.
type SelectorFunc func(key string, req *http.Request, ups []*Upstream) []*Upstream

// Select calls f(key, req, ups).
func (f SelectorFunc) Select(key string, req *http.Request, ups []*Upstream) []*Upstream {
	return f(key, req, ups)
}

// Interface guards.
var (
	_ Selector = SelectorFunc(nil)
	_ Selector = (*ketamaSelector)(nil)
	_ Selector = (*roundRobin)(nil)
	_ Selector = leastConn{}
	_ Selector = p2cEWMA{}
)

// newSelector returns cfg.Selector, or else the built-in policy
// cfg.Policy names (validated by setDefaults) over ups, the pool's shards in
// config order, which are also ring's members in the same order.
func newSelector(cfg *Config, ring *ketama.Ring, ups []*Upstream) Selector {
	if cfg.Selector != nil {
		return cfg.Selector
	}
	switch cfg.Policy {
	case policyRoundRobin:
		return newRoundRobin(len(ups))
	case policyLeastConn:
		return leastConn{}
	case policyP2CEWMA:
		return p2cEWMA{}
	}
	return &ketamaSelector{ring: ring, ups: ups, factor: cfg.HashBalanceFactor}
}

// ketamaSelector is the "ketama" policy: ring order from the key, with slow
// start by key share and, when factor is set, bounded loads.
type ketamaSelector struct {
	ring   *ketama.Ring
	ups    []*Upstream // by Index, which is also the ring's member index
	factor float64     // Config.HashBalanceFactor; 0 means no bound
}

// stackShards is the shard count up to which selection keeps its scratch
// space on the stack; larger pools allocate it per call.
const stackShards = 64

// Select walks the ring from key over the eligible shards. A shard in slow
// start that does not accept key yet (a hash of the key, independent of the
// ring's, as a fraction of the hash space, is at or above its share) goes
// after the other eligible shards. With bounded loads, the first choice is
// then the first shard of that order with room (bound), and the others
// follow in that order.
func (ks *ketamaSelector) Select(key string, _ *http.Request, ups []*Upstream) []*Upstream {
	n := len(ks.ups)
	var eligBuf [stackShards]bool
	var orderBuf [stackShards]int
	elig, order := eligBuf[:0], orderBuf[:0]
	if n <= stackShards {
		elig = eligBuf[:n]
	} else {
		elig = make([]bool, n)
	}
	for _, u := range ups {
		elig[u.index] = true
	}
	order = ks.ring.AppendOrder(order, ketama.Point(key), n)
	out := ups[:0] // every eligible shard is in order: reuse ups
	var laterBuf [4]*Upstream
	later := laterBuf[:0]
	frac := -1.0
	for _, i := range order {
		u := ks.ups[i]
		if !elig[i] {
			continue
		}
		if share := u.Share(); share < 1 {
			if frac < 0 {
				frac = keyFraction(key)
			}
			if frac >= share {
				later = append(later, u)
				continue
			}
		}
		out = append(out, u)
	}
	accepted := len(out)
	out = append(out, later...)
	if ks.factor > 0 && len(out) > 1 {
		if c := ks.bound(key, out, accepted, elig); c > 0 {
			first := out[c]
			copy(out[1:c+1], out[:c])
			out[0] = first
			out[1].s.metrics.overflow()
		}
	}
	return out
}

// bound returns the position in order (the shards in ring order, those
// accepting the key in slow start, the first accepted) of the shard that
// takes the request under bounded loads: the first, if its in-flight
// requests with this one stay within its bound, ceil(factor × the
// eligible shards' in-flight requests, this one included, × its share of
// their weight). Otherwise the owner is overloaded, and the overflow jumps:
// to the owners of ring positions derived from the key and the attempt
// (Envoy's and the paper's follow-ups' answer to cascades: a hot shard's
// keys overflow to different shards, not all to its ring successor, while
// each key keeps overflowing to the same place), skipping shards without
// room; after as many jumps as shards, the next in order with room; and if
// none has room (loads changed meanwhile), the least loaded for its
// weight.
func (ks *ketamaSelector) bound(key string, order []*Upstream, accepted int, elig []bool) int {
	var loadBuf [stackShards]int
	load := loadBuf[:0]
	if len(ks.ups) <= stackShards {
		load = loadBuf[:len(ks.ups)]
	} else {
		load = make([]int, len(ks.ups))
	}
	total, weights := 1, 0 // total counts this request
	for _, u := range order {
		l := u.InFlight()
		load[u.index] = l
		total += l
		weights += u.Weight()
	}
	perWeight := ks.factor * float64(total) / float64(weights)
	fits := func(u *Upstream) bool {
		// The epsilon keeps float error from raising a whole bound by one.
		return float64(load[u.index]+1) <= math.Ceil(perWeight*float64(u.Weight())-1e-9)
	}
	if fits(order[0]) {
		return 0
	}
	h := ketama.KeyHash(key)
	var jumpBuf [1]int
	for attempt := 1; attempt <= len(order); attempt++ {
		j := ks.ring.AppendOrder(jumpBuf[:0], ketama.JumpPoint(h, attempt), 1)
		if len(j) == 0 || !elig[j[0]] {
			continue
		}
		u := ks.ups[j[0]]
		for pos := 1; pos < accepted; pos++ {
			if order[pos] == u && fits(u) {
				return pos
			}
		}
	}
	best := 0
	for pos := 1; pos < len(order); pos++ {
		if fits(order[pos]) {
			return pos
		}
		if float64(load[order[pos].index])/float64(order[pos].Weight()) <
			float64(load[order[best].index])/float64(order[best].Weight()) {
			best = pos
		}
	}
	return best
}

// eligible returns the shards a request may be sent to now, in config
// order: neither marked down, ejected nor failing health checks; all of
// them when that leaves none (panic mode).
func (p *Pool) eligible(now time.Time) []*Upstream {
	out := make([]*Upstream, 0, len(p.ups))
	for _, u := range p.ups {
		if u.s.available(now) && !p.ejector.ejected(u.s, now) && u.s.health.healthy() {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		out = append(out, p.ups...)
	}
	return out
}
