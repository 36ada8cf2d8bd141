package cache

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cache's Prometheus series. They are registered on the
// Registerer given in Config; a nil Registerer leaves them unregistered.
type metrics struct {
	fills     *prometheus.CounterVec
	fillTime  prometheus.Histogram
	coalesced prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, mem *memoryTier) (*metrics, error) {
	m := &metrics{
		fills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_cache_fills_total",
			Help: "Origin fetches made by the cache for misses, by outcome (stored, not_storable, too_large, error).",
		}, []string{"result"}),
		fillTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "edged_cache_fill_duration_seconds",
			Help:    "Time from sending a fill request to the origin until its whole body was received (stored fills) or its headers arrived (streamed fills).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_cache_coalesced_waiters_total",
			Help: "Requests that waited on another request's in-flight origin fetch instead of fetching themselves.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.fills, m.fillTime, m.coalesced,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edged_memory_bytes",
			Help: "Bytes held by the memory tier (bodies, headers and per-item overhead).",
		}, func() float64 { return float64(mem.bytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edged_memory_max_bytes",
			Help: "The memory tier's byte budget.",
		}, func() float64 { return float64(mem.c.MaxCost()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edged_memory_objects",
			Help: "Objects held by the memory tier.",
		}, func() float64 { return float64(mem.objects()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "edged_memory_evictions_total",
			Help: "Objects the memory tier evicted to stay within its byte budget.",
		}, func() float64 { return float64(mem.evictions.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "edged_memory_rejections_total",
			Help: "Objects the memory tier's TinyLFU admission policy refused.",
		}, func() float64 { return float64(mem.rejects.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cache: registering metrics: %w", err)
		}
	}
	return m, nil
}
