package edge

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the edge's Prometheus series; see docs/metrics.md.
type Metrics struct {
	requests       *prometheus.CounterVec
	bytes          *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	invalidations  *prometheus.CounterVec
	rejected       *prometheus.CounterVec
	denied         *prometheus.CounterVec
	limited        *prometheus.CounterVec
	refused        *prometheus.CounterVec
	evicted        prometheus.Counter
	proxyRejected  *prometheus.CounterVec
	unused         prometheus.Counter
	fast           prometheus.Counter
	websockets     prometheus.Counter
	websocketsOpen prometheus.Gauge
	peerRequests   *prometheus.CounterVec
	peerFallbacks  *prometheus.CounterVec
	hitBytes       *prometheus.CounterVec
	tierBytes      [2]prometheus.Counter // hitBytes' children by Session.tier-1: memory, disk

	// series caches the per-request children by label values, so a
	// request costs one lock-free lookup instead of three label hashes
	// under the vectors' read locks (shared cache lines on every core).
	series sync.Map // seriesKey → *requestSeries
}

type seriesKey struct {
	site, cache string
	class       uint8 // status / 100
}

// requestSeries are the children one request updates.
type requestSeries struct {
	requests prometheus.Counter
	bytes    prometheus.Counter
	duration prometheus.Observer
}

// Refused counts a connection refused at accept (ConnLimits.OnRefuse).
func (m *Metrics) Refused(reason string) { m.refused.WithLabelValues(reason).Inc() }

// Evicted counts a connection closed to make room for a newer one from
// its address (ConnLimits.OnEvict).
func (m *Metrics) Evicted() { m.evicted.Inc() }

// ProxyRejected counts a connection closed for its PROXY protocol header
// (ProxyProtocol.OnReject).
func (m *Metrics) ProxyRejected(reason string) { m.proxyRejected.WithLabelValues(reason).Inc() }

// Rejected counts a connection the strict reader refused (StrictConfig's
// OnReject hook).
func (m *Metrics) Rejected(reason string, status int) {
	m.rejected.WithLabelValues(strconv.Itoa(status)).Inc()
}

// NewMetrics creates the edge series and registers them on reg (nil leaves
// them unregistered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_requests_total",
			Help: "Client requests by site, cache result (hit, miss, stale, pass, bypass, error, reject) and status class.",
		}, []string{"site", "cache", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_response_bytes_total",
			Help: "Response body bytes sent to clients, by site and cache result.",
		}, []string{"site", "cache"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "edged_request_duration_seconds",
			Help:    "Time from request arrival until the last response byte was written, by site and cache result.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"site", "cache"}),
		invalidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_invalidations_total",
			Help: "Cache keys invalidated because an unsafe method (POST, PUT, DELETE, ...) succeeded on them (RFC 9111 §4.4).",
		}, []string{"site"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_rejected_requests_total",
			Help: "Connections closed by the strict HTTP/1 reader for ambiguous or oversized request framing, by the status sent (400, 414, 431, 501, 505; 0 = closed without one).",
		}, []string{"code"}),
		unused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_client_connections_unused_total",
			Help: "Client connections closed before they carried a request: cut off by server.read_header_timeout (slow clients), idle, or refused by the strict reader on their first request.",
		}),
		fast: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_fast_path_responses_total",
			Help: "Responses sent by the HTTP/1 loop's fast path for cache hits (server.http1: edged), without building an http.Request; a subset of edged_requests_total{cache=\"hit\"}.",
		}),
		websockets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_websocket_connections_total",
			Help: "WebSocket connections joined to an origin after a 101 Switching Protocols.",
		}),
		websocketsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edged_websocket_connections_open",
			Help: "WebSocket connections open now.",
		}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_denied_total",
			Help: "Requests answered 403 because the site's address lists (sites[].clients) refuse the client, by site.",
		}, []string{"site"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_rate_limited_total",
			Help: "Requests answered 429 because the client was over a rate limit, by site and rule (\"\" for the site's own sites[].rate_limit).",
		}, []string{"site", "rule"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_refused_connections_total",
			Help: "Client connections refused at accept because of server.max_conns (reason=total) or server.max_conns_per_ip (reason=per_ip).",
		}, []string{"reason"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_evicted_connections_total",
			Help: "Client connections closed to make room for a newer one from the same address at server.max_conns_per_ip: the address's oldest connection that had not yet sent a complete request head.",
		}),
		peerRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_peer_requests_total",
			Help: "Peer fetches this node answered as a key's owner for another node of its PoP, by site and cache result (not counted in edged_requests_total, which counts client requests).",
		}, []string{"site", "cache"}),
		peerFallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_peer_fallbacks_total",
			Help: "Fills of keys a peer owns that asked the origin instead: the peer was unreachable, or its copy predated a purge applied here.",
		}, []string{"reason"}),
		hitBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_hit_bytes_total",
			Help: "Response body bytes of cache hits, by the tier that held them (memory, disk).",
		}, []string{"tier"}),
		proxyRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_proxy_protocol_rejected_total",
			Help: "Client connections closed for their PROXY protocol header (server.proxy_protocol): untrusted, missing, invalid or timeout.",
		}, []string{"reason"}),
	}
	m.tierBytes = [2]prometheus.Counter{m.hitBytes.WithLabelValues("memory"), m.hitBytes.WithLabelValues("disk")}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.bytes, m.duration, m.invalidations, m.rejected, m.denied, m.limited, m.refused, m.evicted, m.proxyRejected, m.websockets, m.websocketsOpen, m.unused, m.fast, m.peerRequests, m.peerFallbacks, m.hitBytes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("edge: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

var statusClasses = [...]string{"1xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

// classOf is the index into statusClasses of a status code.
func classOf(code int) uint8 {
	switch {
	case code >= 500:
		return 5
	case code >= 400:
		return 4
	case code >= 300:
		return 3
	case code >= 200:
		return 2
	}
	return 1
}

func (m *Metrics) observe(s *Session, seconds float64) {
	site := "_none"
	if s.Site != nil {
		site = s.Site.Name
	}
	k := seriesKey{site: site, cache: string(s.CacheResult), class: classOf(s.Status)}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, &requestSeries{
			requests: m.requests.WithLabelValues(site, string(s.CacheResult), statusClasses[k.class]),
			bytes:    m.bytes.WithLabelValues(site, string(s.CacheResult)),
			duration: m.duration.WithLabelValues(site, string(s.CacheResult)),
		})
	}
	rs := v.(*requestSeries)
	rs.requests.Inc()
	rs.bytes.Add(float64(s.Bytes))
	if s.tier != 0 {
		m.tierBytes[s.tier-1].Add(float64(s.Bytes))
	}
	rs.duration.Observe(seconds)
}

// observePeer counts a peer fetch this node answered.
func (m *Metrics) observePeer(s *Session) {
	site := "_none"
	if s.Site != nil {
		site = s.Site.Name
	}
	m.peerRequests.WithLabelValues(site, string(s.CacheResult)).Inc()
}
