package purge

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	purges   *prometheus.CounterVec
	objects  prometheus.Counter
	duration prometheus.Histogram
	lag      prometheus.Histogram
	failures *prometheus.CounterVec
	pending  prometheus.Gauge
	applied  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		purges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_purges_total",
			Help: "Purge requests received by this node, by selector kind (url, prefix, tag, host, mixed, unknown) and outcome (ok, unauthorized, forbidden, bad_request, error).",
		}, []string{"kind", "outcome"}),
		objects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_purge_objects_total",
			Help: "Objects removed or marked stale by purges applied on this node (its own and the fleet's).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "edged_purge_duration_seconds",
			Help:    "Time to apply one purge to the local cache tiers.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "edged_purge_propagation_lag_seconds",
			Help:    "Time from a purge's acceptance on its origin node to its application on this node (fleet purges only).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_purge_propagation_failures_total",
			Help: "Fleet propagation failures by stage (connect, publish, queue, decode, apply, receipt).",
		}, []string{"stage"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edged_purge_pending",
			Help: "Purges applied locally and waiting to be published to the fleet.",
		}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_purge_fleet_applied_total",
			Help: "Purges from other nodes applied on this node.",
		}),
	}
	for _, s := range []string{StageConnect, StagePublish, StageQueue, StageDecode, StageApply, StageReceipt} {
		m.failures.WithLabelValues(s)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.purges, m.objects, m.duration, m.lag, m.failures, m.pending, m.applied} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
