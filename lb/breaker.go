package lb

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Circuit breaking: each shard has limits on the requests waiting for a
// connection to it (pending) and on the requests it is serving (in
// flight), and, through MaxConnsPerShard, on its connections. A try over a
// limit is not sent: it never reached the origin, so the request moves on
// to the next candidate whatever its method, as after a dial failure; when
// every candidate is over its limits, Pool.Do fails at once with
// ErrOverloaded rather than queueing. Envoy's circuit breakers
// (max_connections, max_pending_requests, max_requests, 1024 each by
// default) are the model; unlike Envoy the limits are per shard, not per
// cluster, since a shard of a caching site is one origin server.

// Circuit-breaking defaults, applied by NewPool to zero fields: Envoy's
// max_requests and max_pending_requests. Generous enough that a healthy
// shard never meets them at edge load, they bound what one stuck shard can
// hold: its requests (and their client connections and goroutines) stop
// growing at 1024 instead of with the arrival rate.
const (
	defaultMaxPendingPerShard  = 1024
	defaultMaxInFlightPerShard = 1024
)

// ErrOverloaded is returned (wrapped) by Pool.Do when the request could
// not be sent because every candidate shard left was over one of its
// circuit-breaking limits (Config.MaxPendingPerShard,
// Config.MaxInFlightPerShard, or a connection wait beyond the connect
// timeout at Config.MaxConnsPerShard); the error also wraps the failure of
// an earlier try of the request, if there was one. Callers should answer at
// once (edged answers 503) rather than queue it. Its Overloaded method reports true,
// so packages that do not import lb can recognise it.
var ErrOverloaded error = overloadedError{}

type overloadedError struct{}

func (overloadedError) Error() string    { return "lb: every shard is over its circuit-breaking limits" }
func (overloadedError) Overloaded() bool { return true }

// Circuit-breaking limits, the "limit" label of
// edged_upstream_breaker_trips_total.
const (
	limitPending     = "pending"     // MaxPendingPerShard
	limitInFlight    = "in_flight"   // MaxInFlightPerShard
	limitConnections = "connections" // no connection within the connect timeout at MaxConnsPerShard
)

var breakerLimits = []string{limitPending, limitInFlight, limitConnections}

// overLimitError is a try that was not sent (or, for limitConnections,
// gave up waiting for a connection) because the shard was over a limit.
type overLimitError struct {
	shard string
	limit string
}

func (e *overLimitError) Error() string {
	return fmt.Sprintf("lb: shard %s: over its %s limit", e.shard, e.limit)
}

// overLimit returns the limit err says a shard was over, or "".
func overLimit(err error) string {
	var ol *overLimitError
	if errors.As(err, &ol) {
		return ol.limit
	}
	return ""
}

// limits are one pool's circuit-breaking limits, applied to each shard; 0
// means none.
type limits struct {
	pending  int64
	inFlight int64
	// connWait bounds a try's wait for a connection when MaxConnsPerShard
	// is set (the transport would queue it without bound); 0 means the
	// transport's dial and handshake timeouts bound the wait.
	connWait time.Duration
}

func newLimits(cfg *Config) limits {
	l := limits{pending: int64(max(cfg.MaxPendingPerShard, 0)), inFlight: int64(max(cfg.MaxInFlightPerShard, 0))}
	if cfg.MaxConnsPerShard > 0 {
		l.connWait = cfg.DialTimeout + cfg.TLSHandshakeTimeout
	}
	return l
}

// acquire admits one try to s, counting it in flight and pending, or
// returns the limit it is over and counts nothing. Counting first and
// undoing keeps each limit exact under concurrency.
func (s *shard) acquire() string {
	if n := s.inflight.Add(1); s.limits.inFlight > 0 && n > s.limits.inFlight {
		s.inflight.Add(-1)
		return limitInFlight
	}
	if n := s.pending.Add(1); s.limits.pending > 0 && n > s.limits.pending {
		s.pending.Add(-1)
		s.inflight.Add(-1)
		return limitPending
	}
	return ""
}

// pendingDone ends one try's pending state, once: at GotConn, or when the
// try ends without a connection.
type pendingDone struct {
	pending *atomic.Int64
	done    atomic.Bool
}

func (p *pendingDone) end() {
	if p.done.CompareAndSwap(false, true) {
		p.pending.Add(-1)
	}
}

// setBreakerDefaults applies the defaults of the circuit-breaking limits and
// of the timeouts (timeouts.go) to zero fields.
func (c *Config) setBreakerDefaults() {
	if c.MaxPendingPerShard == 0 {
		c.MaxPendingPerShard = defaultMaxPendingPerShard
	}
	if c.MaxInFlightPerShard == 0 {
		c.MaxInFlightPerShard = defaultMaxInFlightPerShard
	}
	if c.TLSHandshakeTimeout == 0 {
		c.TLSHandshakeTimeout = defaultTLSHandshakeTimeout
	}
	if c.BodyIdleTimeout == 0 {
		c.BodyIdleTimeout = defaultBodyIdleTimeout
	}
}

// tripsFor creates one shard's breaker trip series at zero, by limit.
func (m *Metrics) tripsFor(pool, shard string) map[string]prometheus.Counter {
	t := make(map[string]prometheus.Counter, len(breakerLimits))
	for _, l := range breakerLimits {
		t[l] = m.trips.WithLabelValues(pool, shard, l)
	}
	return t
}

func (sm *shardMetrics) trip(limit string) {
	if sm != nil {
		sm.trips[limit].Inc()
	}
}

// loadCollector reports edged_upstream_pending and edged_upstream_in_flight
// from each shard's counters at scrape time.
type loadCollector struct {
	pending  *prometheus.Desc
	inFlight *prometheus.Desc

	mu     sync.Mutex
	shards map[upKey]*shard
}

func newLoadCollector() *loadCollector {
	return &loadCollector{
		pending: prometheus.NewDesc("edged_upstream_pending",
			"Requests waiting for a connection to the shard (dialling, in a TLS handshake, or queued at max_conns_per_shard).",
			[]string{"pool", "shard"}, nil),
		inFlight: prometheus.NewDesc("edged_upstream_in_flight",
			"Requests the shard is serving: from the start of a try until its response body is read or closed.",
			[]string{"pool", "shard"}, nil),
		shards: make(map[upKey]*shard),
	}
}

func (c *loadCollector) add(k upKey, s *shard) {
	c.mu.Lock()
	c.shards[k] = s
	c.mu.Unlock()
}

func (c *loadCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.pending; ch <- c.inFlight }

func (c *loadCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	ms := make([]prometheus.Metric, 0, 2*len(c.shards))
	for k, s := range c.shards {
		ms = append(ms,
			prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(s.pending.Load()), k.pool, k.shard),
			prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(s.inflight.Load()), k.pool, k.shard))
	}
	c.mu.Unlock()
	for _, m := range ms {
		ch <- m
	}
}
