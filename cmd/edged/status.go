package main

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The status page (GET / on the admin listener): one HTML file, no
// external assets, that polls GET /status.json every 2 s and draws what it
// sampled. The JSON is read from the daemon's metrics registry (so the page
// shows what /metrics says) plus what no series carries: recent purge
// receipts, the PoP's members, version and uptime.
//
//go:embed status.html
var statusHTML []byte

// statusPage serves the page and its data for one daemon.
type statusPage struct {
	d       *daemon
	started time.Time
	version string
}

func newStatusPage(d *daemon, started time.Time) *statusPage {
	return &statusPage{d: d, started: started, version: buildVersion()}
}

// buildVersion is the module version and VCS revision from the build info.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}

func (sp *statusPage) serveHTML(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
	w.Write(statusHTML)
}

// statusData is GET /status.json. Counters are totals since start: the
// page takes the rates and ratios over its own samples.
type statusData struct {
	Now           float64        `json:"now"` // Unix seconds
	Version       string         `json:"version"`
	GoVersion     string         `json:"go_version"`
	Node          string         `json:"node"`
	Started       float64        `json:"started"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	Sites         []siteStatus   `json:"sites"`
	Memory        tierStatus     `json:"memory"`
	Disk          *tierStatus    `json:"disk"` // nil: no disk tier
	Shards        []shardStatus  `json:"shards"`
	Purges        []purgeStatus  `json:"purges"`
	Certificates  []certStatus   `json:"certificates"`
	Cluster       *clusterStatus `json:"cluster"` // nil: alone
	ClientConns   float64        `json:"client_connections_open"`
	Reloads       reloadStatus   `json:"reloads"`
}

// siteStatus counts a site's client requests. Lookups are the requests
// that consulted the cache (hit, miss, stale, pass, error): the hit ratio
// is Hits / Lookups, as in contrib/grafana and contrib/prometheus.
type siteStatus struct {
	Name     string             `json:"name"`
	Requests float64            `json:"requests"`
	Lookups  float64            `json:"lookups"`
	Hits     float64            `json:"hits"`
	Bytes    float64            `json:"bytes"`
	ByCache  map[string]float64 `json:"by_cache"`
}

type tierStatus struct {
	Bytes     float64 `json:"bytes"`
	MaxBytes  float64 `json:"max_bytes"`
	Objects   float64 `json:"objects"`
	Evictions float64 `json:"evictions"`
}

type shardStatus struct {
	Site     string  `json:"site"`
	Shard    string  `json:"shard"`
	Up       bool    `json:"up"`      // not skipped after a dial failure
	Ejected  bool    `json:"ejected"` // by outlier detection
	Healthy  bool    `json:"healthy"` // by active health checks (true without)
	Requests float64 `json:"requests"`
	Errors   float64 `json:"errors"` // no response, or 5xx
}

type purgeStatus struct {
	ID         string    `json:"id"`
	Selector   any       `json:"selector"`
	Origin     string    `json:"origin"`
	AcceptedAt time.Time `json:"accepted_at"`
	Fleet      string    `json:"fleet"`
	Nodes      int       `json:"nodes"` // nodes known to have applied it
	Matched    any       `json:"matched"`
}

type certStatus struct {
	Name    string  `json:"name"`
	Expires float64 `json:"expires"` // Unix seconds
}

type clusterStatus struct {
	Node    string   `json:"node"`
	Members []string `json:"members"`
}

type reloadStatus struct {
	OK          float64 `json:"ok"`
	Errors      float64 `json:"errors"`
	LastSuccess float64 `json:"last_success"` // Unix seconds
}

func (sp *statusPage) serveJSON(w http.ResponseWriter, _ *http.Request) {
	data, err := sp.collect(time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(data)
}

// statusPurges is how many recent purges the page lists.
const statusPurges = 10

func (sp *statusPage) collect(now time.Time) (*statusData, error) {
	mfs, err := sp.d.reg.Gather()
	if err != nil {
		return nil, err
	}
	fams := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		fams[mf.GetName()] = mf
	}
	out := &statusData{
		Now: unixSeconds(now), Version: sp.version, GoVersion: runtime.Version(),
		Started: unixSeconds(sp.started), UptimeSeconds: now.Sub(sp.started).Seconds(),
		Sites: []siteStatus{}, Shards: []shardStatus{}, Purges: []purgeStatus{}, Certificates: []certStatus{},
	}
	out.Node = sp.d.purger.Node()
	out.Sites = siteStatuses(fams)
	out.Memory = tierStatus{
		Bytes: single(fams, "edged_memory_bytes"), MaxBytes: single(fams, "edged_memory_max_bytes"),
		Objects: single(fams, "edged_memory_objects"), Evictions: single(fams, "edged_memory_evictions_total"),
	}
	if _, ok := fams["edged_disk_bytes"]; ok {
		out.Disk = &tierStatus{
			Bytes: single(fams, "edged_disk_bytes"), MaxBytes: single(fams, "edged_disk_max_bytes"),
			Objects: single(fams, "edged_disk_objects"), Evictions: single(fams, "edged_disk_evictions_total"),
		}
	}
	out.Shards = shardStatuses(fams)
	for _, rc := range sp.d.purger.Recent(statusPurges) {
		ps := purgeStatus{ID: rc.ID, Selector: rc.Selector, Origin: rc.Origin, AcceptedAt: rc.AcceptedAt,
			Fleet: string(rc.Fleet.State), Nodes: len(rc.Nodes)}
		for _, n := range rc.Nodes {
			if n.Node == out.Node {
				ps.Matched = n.Matched
			}
		}
		out.Purges = append(out.Purges, ps)
	}
	each(fams, "edged_tls_cert_expiry_seconds", func(l map[string]string, v float64) {
		out.Certificates = append(out.Certificates, certStatus{Name: l["name"], Expires: v})
	})
	if d := sp.d; d.cluster != nil {
		cs := &clusterStatus{Node: d.cluster.name, Members: []string{}}
		if c := d.cluster.c.Load(); c != nil {
			for _, m := range c.Live() {
				cs.Members = append(cs.Members, m.Name)
			}
		}
		slices.Sort(cs.Members)
		out.Cluster = cs
	}
	out.ClientConns = single(fams, "edged_client_connections_open")
	each(fams, "edged_config_reloads_total", func(l map[string]string, v float64) {
		if l["result"] == "ok" {
			out.Reloads.OK = v
		} else {
			out.Reloads.Errors += v
		}
	})
	out.Reloads.LastSuccess = single(fams, "edged_config_last_reload_success_timestamp_seconds")
	return out, nil
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// siteStatuses sums edged_requests_total and edged_response_bytes_total
// by site, in site order.
func siteStatuses(fams map[string]*dto.MetricFamily) []siteStatus {
	bySite := map[string]*siteStatus{}
	site := func(name string) *siteStatus {
		s, ok := bySite[name]
		if !ok {
			s = &siteStatus{Name: name, ByCache: map[string]float64{}}
			bySite[name] = s
		}
		return s
	}
	each(fams, "edged_requests_total", func(l map[string]string, v float64) {
		s := site(l["site"])
		s.Requests += v
		s.ByCache[l["cache"]] += v
		switch l["cache"] {
		case "hit":
			s.Hits += v
			s.Lookups += v
		case "miss", "stale", "pass", "error":
			s.Lookups += v
		}
	})
	each(fams, "edged_response_bytes_total", func(l map[string]string, v float64) { site(l["site"]).Bytes += v })
	out := make([]siteStatus, 0, len(bySite))
	for _, s := range bySite {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b siteStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// shardStatuses joins the per-shard series by (pool, shard).
func shardStatuses(fams map[string]*dto.MetricFamily) []shardStatus {
	type key struct{ pool, shard string }
	by := map[key]*shardStatus{}
	shard := func(l map[string]string) *shardStatus {
		k := key{l["pool"], l["shard"]}
		s, ok := by[k]
		if !ok {
			s = &shardStatus{Site: k.pool, Shard: k.shard, Up: true, Healthy: true}
			by[k] = s
		}
		return s
	}
	each(fams, "edged_upstream_shard_up", func(l map[string]string, v float64) { shard(l).Up = v == 1 })
	each(fams, "edged_upstream_ejected", func(l map[string]string, v float64) { shard(l).Ejected = v == 1 })
	each(fams, "edged_upstream_healthy", func(l map[string]string, v float64) { shard(l).Healthy = v == 1 })
	each(fams, "edged_upstream_requests_total", func(l map[string]string, v float64) {
		s := shard(l)
		s.Requests += v
		if c := l["code"]; c == "error" || strings.HasPrefix(c, "5") {
			s.Errors += v
		}
	})
	out := make([]shardStatus, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b shardStatus) int {
		return strings.Compare(a.Site+"\x00"+a.Shard, b.Site+"\x00"+b.Shard)
	})
	return out
}

// each calls f with the labels and value (a counter's or gauge's) of
// every series of the family name.
func each(fams map[string]*dto.MetricFamily, name string, f func(labels map[string]string, v float64)) {
	mf, ok := fams[name]
	if !ok {
		return
	}
	for _, m := range mf.GetMetric() {
		l := make(map[string]string, len(m.GetLabel()))
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		switch {
		case m.GetCounter() != nil:
			f(l, m.GetCounter().GetValue())
		case m.GetGauge() != nil:
			f(l, m.GetGauge().GetValue())
		}
	}
}

// single is the sum of a family's series (the value of an unlabelled one).
func single(fams map[string]*dto.MetricFamily, name string) float64 {
	var sum float64
	each(fams, name, func(_ map[string]string, v float64) { sum += v })
	return sum
}
