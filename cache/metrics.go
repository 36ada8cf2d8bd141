package cache

import (
	"fmt"

	"github.com/edged-proxy/edged/storage"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cache's Prometheus series. They are registered on the
// Registerer given in Config; a nil Registerer leaves them unregistered.
type metrics struct {
	fills         *prometheus.CounterVec
	fillTime      prometheus.Histogram
	coalesced     prometheus.Counter
	promotions    prometheus.Counter
	streamReaders prometheus.Counter
	diskWrites    *prometheus.CounterVec
	admissions    *prometheus.CounterVec
	revalidations *prometheus.CounterVec
	staleOnError  *prometheus.CounterVec
	// compressed counts fill-time compressions by coding and result;
	// compressSeconds is the CPU time they took.
	compressed      *prometheus.CounterVec
	compressSeconds prometheus.Counter
	// warm start (warm.go)
	warmObjects, warmBytes prometheus.Counter
	warmSeconds            prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, mem *memoryTier, disk *storage.Store) (*metrics, error) {
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
			Help: "Requests that joined another request's in-flight origin fetch instead of fetching themselves (counted when they join).",
		}),
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_disk_admissions_total",
			Help: "Disk-tier admission decisions on storable fills (and on memory hits of objects waiting for admission), by result: admitted (second request within the window, or admission always), rejected (kept in memory only), large (larger than cache.disk.admit_larger_than, or streamed: admitted at once).",
		}, []string{"result"}),
		promotions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_disk_promotions_total",
			Help: "Disk-tier hits on objects small enough for memory that were copied into the memory tier.",
		}),
		streamReaders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_cache_stream_readers_total",
			Help: "Requests that read an object while its fill was still being written to disk (read-while-write), leader excluded.",
		}),
		revalidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_cache_revalidations_total",
			Help: "Stale entries handled without a full refetch: not_modified (a 304 refreshed the entry), head_updated (a matching 200 to a HEAD revalidation refreshed it), head_changed (a 200 to a HEAD revalidation did not match it: passed through, entry left stale), background (a stale-while-revalidate refresh started), stale_if_error (a failed fill published the stale entry instead).",
		}, []string{"result"}),
		staleOnError: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_cache_stale_on_error_total",
			Help: "Requests answered with a stale stored response because the origin failed (each waiter of a failed fill counts), by reason: origin_error (500, 502, 503, 504), origin_unreachable (refused, reset, truncated), origin_timeout.",
		}, []string{"reason"}),
		compressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_cache_compressed_fills_total",
			Help: "Filled responses compressed for storage beside the identity body, by coding (br, zstd, gzip) and result (stored; no_gain: less than a sixteenth smaller, not stored).",
		}, []string{"coding", "result"}),
		compressSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_cache_compress_seconds_total",
			Help: "Time spent compressing filled responses, all codings.",
		}),
		warmObjects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_disk_warm_start_objects_total",
			Help: "Disk objects (and Vary markers) the warm start after a restart copied into the memory tier.",
		}),
		warmBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_disk_warm_start_bytes_total",
			Help: "Memory-tier bytes (bodies, headers and per-item overhead) the warm start after a restart filled.",
		}),
		warmSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edged_disk_warm_start_seconds",
			Help: "How long the last warm start took, from its start until it stopped (done, budget, timeout or shutdown); 0 until one has finished.",
		}),
		diskWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_disk_writes_total",
			Help: "Background copies of memory-filled entries to the disk tier, by result (stored, error, skipped when the write-behind queue was full, invalidated).",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.fills, m.fillTime, m.coalesced, m.promotions, m.streamReaders, m.diskWrites, m.admissions, m.revalidations, m.staleOnError, m.compressed, m.compressSeconds, m.warmObjects, m.warmBytes, m.warmSeconds}
	if disk != nil {
		cs = append(cs, newDiskCollector(disk))
	}
	for _, c := range append(cs,
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
	) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cache: registering metrics: %w", err)
		}
	}
	return m, nil
}

// diskCollector exports the disk tier's Stats at scrape time.
type diskCollector struct {
	disk  *storage.Store
	descs []*prometheus.Desc
}

var diskSeries = []struct {
	name, help string
	counter    bool
	value      func(storage.Stats) float64
}{
	{"edged_disk_bytes", "Body bytes held by the disk tier.", false, func(s storage.Stats) float64 { return float64(s.Bytes) }},
	{"edged_disk_objects", "Objects held by the disk tier.", false, func(s storage.Stats) float64 { return float64(s.Objects) }},
	{"edged_disk_evictions_total", "Objects the disk tier evicted to stay within cache.disk.max_bytes.", true, func(s storage.Stats) float64 { return float64(s.Evictions) }},
	{"edged_disk_checksum_failures_total", "Disk objects dropped because a block failed its checksum on read; the client was served from the origin.", true, func(s storage.Stats) float64 { return float64(s.ChecksumFailures) }},
	{"edged_disk_size_mismatches_total", "Disk objects dropped on read because the blob file was missing or had the wrong size.", true, func(s storage.Stats) float64 { return float64(s.SizeMismatches) }},
	{"edged_disk_recovery_dropped_entries_total", "Index entries the start-up recovery dropped (blob missing, wrong size, undecodable).", true, func(s storage.Stats) float64 { return float64(s.RecoveryDroppedEntries) }},
	{"edged_disk_recovery_deleted_orphans_total", "Blob files the start-up recovery deleted because no index entry named them.", true, func(s storage.Stats) float64 { return float64(s.RecoveryDeletedOrphans) }},
	{"edged_disk_loaded", "1 once the disk tier's in-memory index is loaded from index.db (until then hits are looked up in the index and nothing is evicted).", false, func(s storage.Stats) float64 { return b2f(s.Loaded) }},
	{"edged_disk_recovery_done", "1 once the start-up recovery has finished.", false, func(s storage.Stats) float64 { return b2f(s.RecoveryDone) }},
	{"edged_disk_segments", "Segment files holding packed small bodies.", false, func(s storage.Stats) float64 { return float64(s.Segments) }},
	{"edged_disk_segment_bytes", "Bytes in segment files, bodies in use and dead.", false, func(s storage.Stats) float64 { return float64(s.SegmentBytes) }},
	{"edged_disk_dead_bytes", "Bytes in segment files that no object uses any more (evicted, purged or replaced bodies), waiting for their segment to be deleted or compacted; they count against cache.disk.max_bytes.", false, func(s storage.Stats) float64 { return float64(s.DeadBytes) }},
	{"edged_disk_compactions_total", "Segments compacted: their remaining bodies moved to the current segment so the segment could be deleted.", true, func(s storage.Stats) float64 { return float64(s.Compactions) }},
	{"edged_disk_relocated_total", "Bodies compaction moved to another segment (its write amplification).", true, func(s storage.Stats) float64 { return float64(s.Relocated) }},
	{"edged_disk_segments_deleted_total", "Segment files deleted because no object used them any more.", true, func(s storage.Stats) float64 { return float64(s.SegmentsDeleted) }},
	{"edged_disk_index_commits_total", "Index transactions that stored objects; each names every object whose commit was waiting for it, so stored writes per transaction is the batching.", true, func(s storage.Stats) float64 { return float64(s.IndexCommits) }},
	{"edged_disk_index_moved_aside", "1 if the index was unreadable at start and was moved aside (the node started with an empty disk tier).", false, func(s storage.Stats) float64 { return b2f(s.MovedAsideIndex) }},
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func newDiskCollector(disk *storage.Store) *diskCollector {
	c := &diskCollector{disk: disk}
	for _, s := range diskSeries {
		c.descs = append(c.descs, prometheus.NewDesc(s.name, s.help, nil, nil))
	}
	return c
}

func (c *diskCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *diskCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.disk.Stats()
	for i, s := range diskSeries {
		t := prometheus.GaugeValue
		if s.counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[i], t, s.value(st))
	}
}
