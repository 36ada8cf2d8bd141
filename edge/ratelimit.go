package edge

import (
	"crypto/rand"
	"encoding/binary"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/edged-proxy/edged/edge/rules"
)

// limiter is the token buckets of one rate limit (a site's or a rule's),
// one per client address, in a fixed-size table: the state is bounded
// whatever the number of addresses that send requests.
//
// The table is set-associative: an address hashes (with a per-limiter
// random seed, so that clients cannot choose their neighbours) to one set
// of limiterWays slots, and lives in one of them. A new address takes the
// slot of the set whose bucket is the fullest, that is the one least
// recently charged relative to its refill; an address whose bucket has
// refilled completely loses nothing by being forgotten. When every slot
// of the set holds a client that is still refilling, the fullest is
// forgotten all the same, and that client starts again with a full
// bucket: under a flood of distinct addresses, a limited client may get
// up to one extra burst per eviction. The table is sharded by hash, each
// shard under its own mutex.
//
// Each bucket is one integer, its theoretical arrival time (GCRA): the
// time at which the bucket would be full again. A request is admitted
// when charging it leaves the bucket no more than Burst requests ahead of
// now. Admitting allocates nothing.
type limiter struct {
	interval  int64 // nanoseconds per token
	tolerance int64 // burst × interval
	seed      uint64
	setMask   uint64 // sets per shard − 1
	shards    [limiterShards]limiterShard
	limit     rules.RateLimit
}

const (
	limiterWays   = 8
	limiterShards = 16
	// defaultMaxClients is RateLimit.MaxClients' zero value.
	defaultMaxClients = 1 << 16
)

type limiterShard struct {
	mu    sync.Mutex
	slots []bucket
	_     [40]byte // keep shards' mutexes off each other's cache lines
}

// bucket is one client's state; tat zero is an empty slot.
type bucket struct {
	hi, lo uint64 // the client's key (clientKey)
	tat    int64  // Unix nanoseconds at which the bucket is full again
}

// newLimiter returns the buckets of l, which must limit (l.Rate > 0,
// checked by rules.CheckRateLimit).
func newLimiter(l rules.RateLimit) *limiter {
	burst := l.Burst
	if burst == 0 {
		burst = max(1, int(math.Ceil(l.Rate)))
	}
	interval := max(int64(float64(time.Second)/l.PerSecond()), 1)
	capacity := l.MaxClients
	if capacity == 0 {
		capacity = defaultMaxClients
	}
	// Sets per shard: a power of two, so that the table holds at least
	// one set per shard and at most MaxClients slots (rounded up to a
	// whole set per shard).
	sets := 1
	for sets*2*limiterWays*limiterShards <= capacity {
		sets *= 2
	}
	var seed [8]byte
	rand.Read(seed[:])
	lim := &limiter{
		interval:  interval,
		tolerance: int64(burst) * interval,
		seed:      binary.LittleEndian.Uint64(seed[:]),
		setMask:   uint64(sets - 1),
		limit:     l,
	}
	for i := range lim.shards {
		lim.shards[i].slots = make([]bucket, sets*limiterWays)
	}
	return lim
}

// capacity is the most clients the limiter tracks at once.
func (l *limiter) capacity() int { return len(l.shards) * len(l.shards[0].slots) }

// clientKey is the key of a client address: IPv4 addresses as themselves,
// IPv6 ones by their /64 (one host usually holds a whole /64, so a key
// per address would let it make its own buckets at will).
func clientKey(a netip.Addr) (hi, lo uint64) {
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.Is4() { // as the IPv4-mapped address: ::ffff:a.b.c.d
		b := a.As4()
		return 0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b[:]))
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), 0
}

// slot finds the client's set.
func (l *limiter) set(hi, lo uint64) (*limiterShard, []bucket) {
	h := (hi ^ l.seed) * 0x9e3779b97f4a7c15
	h ^= lo
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	sh := &l.shards[h&(limiterShards-1)]
	i := ((h >> 8) & l.setMask) * limiterWays
	return sh, sh.slots[i : i+limiterWays : i+limiterWays]
}

// allow charges the client one request at now and reports whether it is
// within its limit; if not, nothing is charged and wait is how long until
// it would be. With take false it only looks.
func (l *limiter) allow(a netip.Addr, now time.Time, take bool) (ok bool, wait time.Duration) {
	hi, lo := clientKey(a)
	t := now.UnixNano()
	sh, set := l.set(hi, lo)
	sh.mu.Lock()
	b := (*bucket)(nil)
	victim := &set[0]
	for i := range set {
		s := &set[i]
		if s.tat != 0 && s.hi == hi && s.lo == lo {
			b = s
			break
		}
		if s.tat < victim.tat {
			victim = s
		}
	}
	tat := t
	if b != nil && b.tat > t {
		tat = b.tat
	}
	next := tat + l.interval
	if next-t > l.tolerance {
		sh.mu.Unlock()
		return false, time.Duration(next - t - l.tolerance)
	}
	if take {
		if b == nil {
			b = victim
			b.hi, b.lo = hi, lo
		}
		b.tat = next
	}
	sh.mu.Unlock()
	return true, 0
}

// clients counts the clients tracked, for tests.
func (l *limiter) clients() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for _, b := range sh.slots {
			if b.tat != 0 {
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// retryAfter is the Retry-After value for a wait: whole seconds, rounded
// up, at least 1.
func retryAfter(wait time.Duration) int64 {
	s := int64((wait + time.Second - 1) / time.Second)
	return max(s, 1)
}
