package cluster

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the cluster's collectors (the package doc lists the
// series), with the label values of the hot path bound once.
type metrics struct {
	members    prometheus.Gauge
	changes    *prometheus.CounterVec
	ownerShare prometheus.Gauge
	lookupSelf prometheus.Counter
	lookupPeer prometheus.Counter
	fetches    *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	ejections  *prometheus.CounterVec
	admitted   prometheus.Counter
	rejected   prometheus.Counter
	overflows  prometheus.Counter
}

// fetchBuckets spans 0.1ms (a replica on a LAN peer) to 30s (an owner
// filling from a slow origin), roughly ×2.5 per step.
var fetchBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// newMetrics creates the collectors and registers them with reg unless it
// is nil. It panics if reg already holds them, as MustRegister does.
func newMetrics(reg prometheus.Registerer) *metrics {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edged_cluster_lookups_total",
		Help: "Owner lookups, by whether this node or a peer owns the key.",
	}, []string{"owner"})
	admissions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edged_cluster_replica_admissions_total",
		Help: "Misses of peer-owned keys, by whether the key was hot enough to keep a local replica.",
	}, []string{"result"})
	m := &metrics{
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edged_cluster_members",
			Help: "Live members of the PoP, this node included.",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_cluster_membership_changes_total",
			Help: "Membership events: a member joined, left (or failed), or changed its metadata.",
		}, []string{"event"}),
		ownerShare: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edged_cluster_owner_share",
			Help: "Fraction of the ring's hash space this node owns (1 when alone).",
		}),
		lookupSelf: lookups.WithLabelValues("self"),
		lookupPeer: lookups.WithLabelValues("peer"),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_cluster_peer_fetches_total",
			Help: "Fetches sent to peers, by peer and whether a response head came back.",
		}, []string{"peer", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "edged_cluster_peer_fetch_duration_seconds",
			Help:    "Time from sending a fetch to a peer until its response head arrived.",
			Buckets: fetchBuckets,
		}, []string{"peer"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edged_cluster_peer_ejections_total",
			Help: "Passive ejections of a peer that could not be reached.",
		}, []string{"peer"}),
		admitted: admissions.WithLabelValues("admitted"),
		rejected: admissions.WithLabelValues("rejected"),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edged_cluster_balance_overflows_total",
			Help: "Lookups whose owner was over its bounded load, sent to another member.",
		}),
	}
	for _, e := range []string{eventJoin, eventLeave, eventUpdate} {
		m.changes.WithLabelValues(e)
	}
	if reg != nil {
		reg.MustRegister(m.members, m.changes, m.ownerShare, lookups, m.fetches, m.duration,
			m.ejections, admissions, m.overflows)
	}
	return m
}

// Membership event label values.
const (
	eventJoin   = "join"
	eventLeave  = "leave"
	eventUpdate = "update"
)
