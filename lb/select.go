package lb

import (
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
	return u.pool.ejector.share(u.s, u.pool.now())
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

// ketamaSelector is the "ketama" policy: ring order from the key, with slow
// start by key share.
type ketamaSelector struct {
	ring   *ketama.Ring
	byName map[string]*Upstream
	n      int
}

func newKetamaSelector(ring *ketama.Ring, ups []*Upstream) *ketamaSelector {
	ks := &ketamaSelector{ring: ring, byName: make(map[string]*Upstream, len(ups)), n: len(ups)}
	for _, u := range ups {
		ks.byName[u.Name()] = u
	}
	return ks
}

// Select walks the ring from key over the eligible shards. A shard in slow
// start that does not accept key yet (a hash of the key, independent of the
// ring's, as a fraction of the hash space, is at or above its share) goes
// after the other eligible shards.
func (ks *ketamaSelector) Select(key string, _ *http.Request, ups []*Upstream) []*Upstream {
	var eligible [64]bool
	var elig []bool
	if ks.n <= len(eligible) {
		elig = eligible[:ks.n]
	} else {
		elig = make([]bool, ks.n)
	}
	for _, u := range ups {
		elig[u.index] = true
	}
	names := ks.ring.LookupN(key, ks.n)
	out := ups[:0]
	var later []*Upstream
	frac := -1.0
	for _, n := range names {
		u := ks.byName[n]
		if !elig[u.index] {
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
	return append(out, later...)
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
