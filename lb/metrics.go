package lb

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the Prometheus collectors for upstream traffic. One Metrics
// may be shared by any number of pools; each pool's series carry its
// Config.Name in the "pool" label and the shard name in the "shard" label.
// Pools sharing a Metrics should have distinct names: series of pools with the
// same name are merged, and edged_upstream_shard_up reports the pool created
// last.
//
// The series are:
//
//	edged_upstream_requests_total{pool,shard,code}      counter: attempts by status code, or code="error"
//	edged_upstream_connections_total{pool,shard,reused} counter: connections obtained, reused="true"/"false"
//	edged_upstream_duration_seconds{pool,shard}         histogram: time to response headers
//	edged_upstream_failovers_total{pool,shard}          counter: dial failures after which another shard was tried
//	edged_upstream_shard_up{pool,shard}                 gauge: 1, or 0 while the shard is marked down
//	edged_upstream_ejections_total{pool,shard,reason}   counter: outlier ejections, by the failure that ejected
//	edged_upstream_ejected{pool,shard}                  gauge: 1 while the shard is ejected, else 0
//	edged_upstream_retries_total{pool,reason}           counter: tries sent to the next shard, by what failed
//	edged_upstream_retry_budget_exhausted_total{pool}   counter: retries refused by the retry budget
//	edged_upstream_balance_overflows_total{pool,shard}  counter: picks a bounded-load ketama pool sent past this overloaded key owner
//	edged_upstream_pending{pool,shard}                  gauge: requests waiting for a connection to the shard
//	edged_upstream_in_flight{pool,shard}                gauge: requests the shard is serving (Upstream.InFlight)
//	edged_upstream_breaker_trips_total{pool,shard,limit} counter: tries not sent, the shard over a limit (pending, in_flight, connections)
//	edged_upstream_health_checks_total{pool,shard,result} counter: active health checks, by result
//	edged_upstream_healthy{pool,shard}                  gauge: 1, or 0 while the shard fails its health checks (pools with checks only)
//	edged_upstream_dials_total{pool,shard,result}       counter: TCP dials, result="ok"/"error"
//	edged_upstream_tls_handshakes_total{pool,shard,result} counter: TLS handshakes, result="ok"/"error"
//	edged_upstream_open_connections{pool,shard}         gauge: connections open (every protocol)
//	edged_upstream_idle_connections{pool,shard}         gauge: HTTP/1 connections no request is using
//	edged_upstream_idle_pool_target{pool,shard}         gauge: connections the idle pool keeps (auto: peak use + 25%, or the cap)
//	edged_upstream_idle_trimmed_total{pool,shard}       counter: idle connections closed by the trimmer
type Metrics struct {
	requests    *prometheus.CounterVec
	connections *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	failovers   *prometheus.CounterVec
	ejections   *prometheus.CounterVec
	retries     *prometheus.CounterVec
	exhausted   *prometheus.CounterVec
	overflows   *prometheus.CounterVec
	up          *upCollector
	trips       *prometheus.CounterVec
	load        *loadCollector
	checks      *prometheus.CounterVec
	conns       *connCollectors // dials, handshakes, open and idle connections (conns.go)
}

// durationBuckets spans 1ms to 30s, roughly ×2.5 per step.
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics creates the upstream collectors and registers them with reg. A
// nil reg leaves them unregistered (the Metrics still works, which suits
// tests). It panics if reg already holds collectors with these names, as
// prometheus.Registerer.MustRegister does.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_upstream_requests_total",
			Help: "Requests sent to origin shards, by status code (\"error\" when no response was received).",
		}, []string{"pool", "shard", "code"}),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_upstream_connections_total",
			Help: "Connections obtained for origin requests, by whether an idle connection was reused.",
		}, []string{"pool", "shard", "reused"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "edged_upstream_duration_seconds",
			Help:    "Time from sending a request to an origin shard until its response headers arrived.",
			Buckets: durationBuckets,
		}, []string{"pool", "shard"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_upstream_failovers_total",
			Help: "Dial failures of a shard after which the request was sent to the next shard.",
		}, []string{"pool", "shard"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_upstream_ejections_total",
			Help: "Outlier ejections of a shard after consecutive gateway failures, by the failure that ejected it.",
		}, []string{"pool", "shard", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_upstream_retries_total",
			Help: "Requests sent on to the next shard after a try failed, by the failure (connect_error, reset, status_502/503/504).",
		}, []string{"pool", "reason"}),
		exhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_upstream_retry_budget_exhausted_total",
			Help: "Retries not made because the pool's retry budget was spent; the failed try's outcome was returned.",
		}, []string{"pool"}),
		overflows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_upstream_balance_overflows_total",
			Help: "Requests whose key's shard was at its bounded-load limit (hash_balance_factor), so another shard took them.",
		}, []string{"pool", "shard"}),
		up: &upCollector{
			desc: prometheus.NewDesc("edged_upstream_shard_up",
				"Whether the shard is eligible for picks (1) or marked down after a dial failure (0).",
				[]string{"pool", "shard"}, nil),
			ejected: prometheus.NewDesc("edged_upstream_ejected",
				"Whether the shard is ejected by outlier detection (1) or not (0).",
				[]string{"pool", "shard"}, nil),
			shards: make(map[upKey]upEntry),
		},
		trips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_upstream_breaker_trips_total",
			Help: "Tries not sent to a shard because it was over a circuit-breaking limit (pending, in_flight, connections); the request moved to the next shard or failed with 503.",
		}, []string{"pool", "shard", "limit"}),
		load: newLoadCollector(),
	}
	m.checks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edged_upstream_health_checks_total",
		Help: "Active health checks of origin shards, by result (ok, bad_status, connect_error, timeout, error).",
	}, []string{"pool", "shard", "result"})
	m.up.healthy = prometheus.NewDesc("edged_upstream_healthy",
		"Whether the shard passes its active health checks (1) or is out of picks after failing them (0); pools with checks only.",
		[]string{"pool", "shard"}, nil)
	if reg != nil {
		reg.MustRegister(m.requests, m.connections, m.duration, m.failovers, m.ejections, m.retries, m.exhausted, m.overflows, m.up)
		reg.MustRegister(m.trips, m.load)
		reg.MustRegister(m.checks)
	}
	m.conns = newConnCollectors(reg)
	return m
}

// poolMetrics is one pool's view of Metrics with the pool label bound. A nil
// *poolMetrics records nothing.
type poolMetrics struct {
	retries   map[string]prometheus.Counter // by reason
	exhausted prometheus.Counter
}

// forPool binds the pool label, creating every retry series at zero so
// that rate() works from the first retry.
func (m *Metrics) forPool(pool string) *poolMetrics {
	if m == nil {
		return nil
	}
	pm := &poolMetrics{retries: make(map[string]prometheus.Counter, len(retryReasons)),
		exhausted: m.exhausted.WithLabelValues(pool)}
	for _, r := range retryReasons {
		pm.retries[r] = m.retries.WithLabelValues(pool, r)
	}
	return pm
}

func (pm *poolMetrics) retry(reason string) {
	if pm != nil {
		pm.retries[reason].Inc()
	}
}

func (pm *poolMetrics) budgetExhausted() {
	if pm != nil {
		pm.exhausted.Inc()
	}
}

// shardMetrics is one shard's view of Metrics with the pool and shard labels
// bound. A nil *shardMetrics records nothing.
type shardMetrics struct {
	requests   *prometheus.CounterVec // curried: only "code" left
	errors     prometheus.Counter
	connNew    prometheus.Counter
	connReused prometheus.Counter
	duration   prometheus.Observer
	failovers  prometheus.Counter
	ejections  *prometheus.CounterVec // curried: only "reason" left
	overflows  prometheus.Counter
	trips      map[string]prometheus.Counter // by limit
}

// forShard binds the labels of one shard and makes the shard visible to the
// shard_up gauge.
func (m *Metrics) forShard(pool string, s *shard, e *ejector, now func() time.Time) *shardMetrics {
	if m == nil {
		return nil
	}
	l := prometheus.Labels{"pool": pool, "shard": s.name}
	m.up.add(upKey{pool, s.name}, upEntry{s, e, now})
	reqs := m.requests.MustCurryWith(l)
	m.load.add(upKey{pool, s.name}, s)
	return &shardMetrics{
		requests:   reqs,
		errors:     reqs.WithLabelValues("error"),
		connNew:    m.connections.WithLabelValues(pool, s.name, "false"),
		connReused: m.connections.WithLabelValues(pool, s.name, "true"),
		duration:   m.duration.With(l),
		failovers:  m.failovers.With(l),
		ejections:  m.ejections.MustCurryWith(l),
		overflows:  m.overflows.With(l),
		trips:      m.tripsFor(pool, s.name),
	}
}

func (sm *shardMetrics) response(code int, d time.Duration) {
	if sm == nil {
		return
	}
	sm.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	sm.duration.Observe(d.Seconds())
}

func (sm *shardMetrics) error() {
	if sm != nil {
		sm.errors.Inc()
	}
}

func (sm *shardMetrics) gotConn(reused bool) {
	switch {
	case sm == nil:
	case reused:
		sm.connReused.Inc()
	default:
		sm.connNew.Inc()
	}
}

func (sm *shardMetrics) failover() {
	if sm != nil {
		sm.failovers.Inc()
	}
}

func (sm *shardMetrics) overflow() {
	if sm != nil {
		sm.overflows.Inc()
	}
}

func (sm *shardMetrics) ejection(reason string) {
	if sm != nil {
		sm.ejections.WithLabelValues(reason).Inc()
	}
}

// upCollector reports edged_upstream_shard_up and edged_upstream_ejected from each shard's down-until and ejected-until
// state at scrape time, so the gauge returns to 1 when DownFor expires even if
// no request touches the shard.
type upCollector struct {
	desc    *prometheus.Desc
	ejected *prometheus.Desc
	healthy *prometheus.Desc // for shards with health checks

	mu     sync.Mutex
	shards map[upKey]upEntry
}

type upKey struct{ pool, shard string }

type upEntry struct {
	s   *shard
	e   *ejector
	now func() time.Time
}

func (c *upCollector) add(k upKey, e upEntry) {
	c.mu.Lock()
	c.shards[k] = e
	c.mu.Unlock()
}

func (c *upCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.ejected
	ch <- c.healthy
}

func (c *upCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	ms := make([]prometheus.Metric, 0, len(c.shards))
	for k, e := range c.shards {
		now := e.now()
		v, ej := 0.0, 0.0
		if e.s.available(now) {
			v = 1
		}
		if e.e.ejected(e.s, now) {
			ej = 1
		}
		ms = append(ms, prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, k.pool, k.shard),
			prometheus.MustNewConstMetric(c.ejected, prometheus.GaugeValue, ej, k.pool, k.shard))
		if h := e.s.health; h != nil {
			hv := 0.0
			if h.healthy() {
				hv = 1
			}
			ms = append(ms, prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, hv, k.pool, k.shard))
		}
	}
	c.mu.Unlock()
	for _, m := range ms {
		ch <- m
	}
}
