package lb

// Connection accounting and the size of each shard's idle pool.
//
// Every connection a shard's transport dials is a trackedConn, which counts
// itself open until it is closed (below TLS, so HTTP/2 connections count
// too). An HTTP/1 connection also knows whether a request is using it: the
// request's httptrace GotConn acquires it, and PutIdleConn(nil) of that same
// request releases it to the idle pool. Ownership is by generation: the
// transport puts a connection into its idle pool before it calls
// PutIdleConn, so another request may already have acquired it; a release
// counts only if no acquire came after the one it answers.
//
// With Config.MaxIdleConnsPerShard zero (auto) the transport's idle cap is a
// ceiling (maxIdleCeiling, or MaxConnsPerShard when lower), so that
// concurrency above a fixed cap does not churn connections (a transport
// closes a connection returned to a full idle pool), and the pool's trimmer
// closes the idle connections above what the shard needed: the peak of
// connections in use over the last idleWindow, plus a quarter. It closes the
// least recently used first; the transport hands out the most recently used,
// so those are the ones the load did not need. Quiet shards are also trimmed
// by Config.IdleConnTimeout, as always.
//
// Closing an idle connection races with a request taking it from the idle
// pool. The connection's state decides: the trimmer closes only a connection
// it moved from idle to closed under the connection's lock, and an acquire
// that finds it closed leaves it so. Such a request then writes to a closed
// connection, nothing is written, and the transport retries it on another
// connection, as it does when an origin closed an idle connection (for a
// request without a body or with GetBody, which the pool's requests have).

import (
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// maxIdleCeiling caps a shard's idle pool in auto mode.
	maxIdleCeiling = 1024
	// idleTick is how often the trimmer runs; idleSlots ticks make the
	// window whose peak use sets the idle pool's size.
	idleTick   = 10 * time.Second
	idleSlots  = 6
	idleWindow = idleTick * idleSlots
)

// connState is where a tracked connection is in its life.
type connState uint8

const (
	connOther  connState = iota // not HTTP/1 (h2, h2c), or not known yet: counted open only
	connFresh                   // HTTP/1, dialled, not yet used: idle, not trimmed
	connActive                  // HTTP/1, a request is using it
	connIdle                    // HTTP/1, released to the idle pool by its last request
	connClosed
)

// connStats is one shard's connection accounting. It belongs to the
// shard's transport (the dial functions hold it), and moves with it when a
// new pool takes the transport over (Config.Previous).
type connStats struct {
	m *connMetrics // nil: not exported

	open   atomic.Int64 // dialled and not closed, every protocol
	active atomic.Int64 // HTTP/1 connections in use
	idle   atomic.Int64 // HTTP/1 connections not in use
	peak   atomic.Int64 // the most active since the last tick

	mu       sync.Mutex // guards the fields below; taken before a trackedConn's
	conns    map[*trackedConn]struct{}
	peaks    [idleSlots]int64 // per tick, the last idleSlots ticks
	slot     int
	lastTick time.Time
}

func newConnStats(m *connMetrics) *connStats {
	return &connStats{m: m, conns: make(map[*trackedConn]struct{})}
}

// dialed counts a TCP dial's outcome and, on success, tracks the connection.
func (cs *connStats) dialed(c net.Conn, err error) (*trackedConn, error) {
	cs.m.dial(err)
	if err != nil {
		return nil, err
	}
	cs.open.Add(1)
	cs.m.openDelta(1)
	return &trackedConn{Conn: c, cs: cs}, nil
}

func (cs *connStats) addActive(n int64) {
	v := cs.active.Add(n)
	if n > 0 {
		for p := cs.peak.Load(); v > p && !cs.peak.CompareAndSwap(p, v); p = cs.peak.Load() {
		}
	}
}

func (cs *connStats) addIdle(n int64) {
	cs.idle.Add(n)
	cs.m.idleDelta(float64(n))
}

// need is the number of HTTP/1 connections the shard used at most over the
// window, plus a quarter for headroom.
func (cs *connStats) need() int64 {
	n := max(cs.peak.Load(), cs.active.Load())
	for _, p := range cs.peaks {
		n = max(n, p)
	}
	return n + (n+3)/4
}

// trim ends a tick at now: it records the tick's peak use and closes the
// least recently used idle HTTP/1 connections above need, returning how
// many. A call less than half a tick after the previous one does nothing
// (two pools share a transport for a moment after a takeover).
func (cs *connStats) trim(now time.Time) int {
	cs.mu.Lock()
	if !cs.lastTick.IsZero() && now.Sub(cs.lastTick) < idleTick/2 {
		cs.mu.Unlock()
		return 0
	}
	cs.lastTick = now
	cs.peaks[cs.slot] = cs.peak.Swap(cs.active.Load())
	cs.slot = (cs.slot + 1) % idleSlots
	need := cs.need()
	cs.m.target(need)
	surplus := int64(len(cs.conns)) - need
	var idle []*trackedConn
	if surplus > 0 {
		for c := range cs.conns {
			c.mu.Lock()
			if c.unused(now) {
				idle = append(idle, c)
			}
			c.mu.Unlock()
		}
	}
	cs.mu.Unlock()
	if surplus > 0 && int64(len(idle)) > surplus {
		slices.SortFunc(idle, func(a, b *trackedConn) int { return a.since().Compare(b.since()) })
		idle = idle[:surplus]
	}
	n := 0
	for _, c := range idle {
		if c.trim(now) {
			n++
		}
	}
	cs.m.trimmed(n)
	return n
}

// trackedConn is a connection dialled by a shard's transport.
type trackedConn struct {
	net.Conn
	cs *connStats

	mu        sync.Mutex
	state     connState
	gen       uint64    // acquisitions so far
	idleSince time.Time // when it was last released
}

// setHTTP1 marks the connection as HTTP/1 (known after ALPN for TLS): it
// is idle until a request acquires it, and may be trimmed once released,
// or when no request acquired it for idleTick (a dial that lost the race
// to a connection freed meanwhile goes to the idle pool unused; a dial
// that did not is acquired at once).
func (c *trackedConn) setHTTP1() {
	c.mu.Lock()
	if c.state != connOther {
		c.mu.Unlock()
		return
	}
	c.state, c.idleSince = connFresh, time.Now()
	c.mu.Unlock()
	c.cs.addIdle(1)
	c.cs.mu.Lock()
	c.cs.conns[c] = struct{}{}
	c.cs.mu.Unlock()
}

// acquire notes that a request got the connection (httptrace GotConn) and
// returns the generation its release must name; 0 when the connection was
// closed meanwhile (trimmed: the request's write fails and the transport
// retries it).
func (c *trackedConn) acquire() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case connFresh, connIdle:
		c.cs.addIdle(-1)
		c.cs.addActive(1)
	case connActive:
	default:
		return 0
	}
	c.state = connActive
	c.gen++
	return c.gen
}

// release notes that the request of generation gen returned the connection
// to the idle pool (httptrace PutIdleConn with a nil error), unless another
// request has acquired it since.
func (c *trackedConn) release(gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == 0 || gen != c.gen || c.state != connActive {
		return
	}
	c.state, c.idleSince = connIdle, now
	c.cs.addActive(-1)
	c.cs.addIdle(1)
}

func (c *trackedConn) since() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idleSince
}

// unused reports, with c.mu held, whether the trimmer may close the
// connection at now: released to the idle pool, or never acquired for
// idleTick since its dial (a fresh connection is acquired at once, unless
// its dial lost the race and it went to the idle pool).
func (c *trackedConn) unused(now time.Time) bool {
	return c.state == connIdle || c.state == connFresh && now.Sub(c.idleSince) >= idleTick
}

// trim closes the connection if it is unused at now, and reports whether
// it did.
func (c *trackedConn) trim(now time.Time) bool {
	if !c.closed(now) {
		return false
	}
	c.Conn.Close()
	return true
}

// Close closes the connection and counts it closed, once.
func (c *trackedConn) Close() error {
	c.closed(time.Time{})
	return c.Conn.Close()
}

// closed moves the connection to connClosed, if unusedAt is not zero only
// when it is unused then, and updates the counts; it reports whether it
// moved it.
func (c *trackedConn) closed(unusedAt time.Time) bool {
	c.mu.Lock()
	prev := c.state
	if prev == connClosed || !unusedAt.IsZero() && !c.unused(unusedAt) {
		c.mu.Unlock()
		return false
	}
	c.state = connClosed
	c.mu.Unlock()
	cs := c.cs
	switch prev {
	case connFresh, connIdle:
		cs.addIdle(-1)
	case connActive:
		cs.addActive(-1)
	}
	if prev != connOther {
		cs.mu.Lock()
		delete(cs.conns, c)
		cs.mu.Unlock()
	}
	cs.open.Add(-1)
	cs.m.openDelta(-1)
	return true
}

// connUse is the connection a request's try acquired, and the generation
// of that acquisition, for the try's PutIdleConn.
type connUse struct {
	c   *trackedConn
	gen uint64
}

// connCollectors are the connection series of Metrics.
type connCollectors struct {
	dials      *prometheus.CounterVec
	handshakes *prometheus.CounterVec
	open       *prometheus.GaugeVec
	idle       *prometheus.GaugeVec
	target     *prometheus.GaugeVec
	trimmed    *prometheus.CounterVec
}

func newConnCollectors(reg prometheus.Registerer) *connCollectors {
	l := []string{"pool", "shard"}
	cc := &connCollectors{
		dials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_upstream_dials_total",
			Help: "TCP connections dialled to origin shards, by result (ok, error).",
		}, []string{"pool", "shard", "result"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_upstream_tls_handshakes_total",
			Help: "TLS handshakes with origin shards, by result (ok, error).",
		}, []string{"pool", "shard", "result"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edged_upstream_open_connections",
			Help: "Connections to the origin shard that are open (in use, idle or being set up), every protocol.",
		}, l),
		idle: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edged_upstream_idle_connections",
			Help: "HTTP/1 connections to the origin shard that no request is using.",
		}, l),
		target: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edged_upstream_idle_pool_target",
			Help: "Connections the shard's idle pool keeps: the peak use over the last minute plus a quarter (auto sizing), or the fixed cap.",
		}, l),
		trimmed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_upstream_idle_trimmed_total",
			Help: "Idle connections closed by the idle pool trimmer because the shard's recent peak did not need them.",
		}, l),
	}
	if reg != nil {
		reg.MustRegister(cc.dials, cc.handshakes, cc.open, cc.idle, cc.target, cc.trimmed)
	}
	return cc
}

// connMetrics is one shard's connection series. A nil *connMetrics records
// nothing.
type connMetrics struct {
	dialOK, dialErr prometheus.Counter
	tlsOK, tlsErr   prometheus.Counter
	open, idle      prometheus.Gauge
	targetG         prometheus.Gauge
	trimmedC        prometheus.Counter
}

// forConns binds the labels of one shard's connection series, creating
// them at zero.
func (m *Metrics) forConns(pool, shard string) *connMetrics {
	if m == nil {
		return nil
	}
	cc := m.conns
	return &connMetrics{
		dialOK:   cc.dials.WithLabelValues(pool, shard, "ok"),
		dialErr:  cc.dials.WithLabelValues(pool, shard, "error"),
		tlsOK:    cc.handshakes.WithLabelValues(pool, shard, "ok"),
		tlsErr:   cc.handshakes.WithLabelValues(pool, shard, "error"),
		open:     cc.open.WithLabelValues(pool, shard),
		idle:     cc.idle.WithLabelValues(pool, shard),
		targetG:  cc.target.WithLabelValues(pool, shard),
		trimmedC: cc.trimmed.WithLabelValues(pool, shard),
	}
}

func (cm *connMetrics) dial(err error) {
	switch {
	case cm == nil:
	case err != nil:
		cm.dialErr.Inc()
	default:
		cm.dialOK.Inc()
	}
}

func (cm *connMetrics) handshake(err error) {
	switch {
	case cm == nil:
	case err != nil:
		cm.tlsErr.Inc()
	default:
		cm.tlsOK.Inc()
	}
}

func (cm *connMetrics) openDelta(n float64) {
	if cm != nil {
		cm.open.Add(n)
	}
}

func (cm *connMetrics) idleDelta(n float64) {
	if cm != nil {
		cm.idle.Add(n)
	}
}

func (cm *connMetrics) target(n int64) {
	if cm != nil {
		cm.targetG.Set(float64(n))
	}
}

func (cm *connMetrics) trimmed(n int) {
	if cm != nil && n > 0 {
		cm.trimmedC.Add(float64(n))
	}
}
