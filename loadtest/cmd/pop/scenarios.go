package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edged-proxy/edged/loadtest/load"
	"github.com/edged-proxy/edged/loadtest/origin"
	"github.com/edged-proxy/edged/loadtest/sizemix"
)

// host is the Host header of every request, so that every node computes
// the same cache key for a path: http://pop.test/obj/ID?size=N.
const host = "pop.test"

// env is what every scenario shares: the edged binary, the in-process
// origin and the options.
type env struct {
	ctx       context.Context
	bin, dir  string
	origin    *origin.Origin
	originURL string
	opt       options
	log       io.Writer // progress lines
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.log, "pop %s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// originRequests is the origin's request count so far.
func (e *env) originRequests() int64 { return e.origin.Stats([]string{}).Requests }

// loadConfig is the Zipf workload of the hit and kill scenarios against
// addr (host:port).
func (e *env) loadConfig(addr string, conc int, seed uint64) load.Config {
	return load.Config{
		URL:         "http://" + addr + "/obj/{id}?size={size}",
		Host:        host,
		Concurrency: conc,
		Keys:        e.opt.keys,
		Zipf:        e.opt.zipf,
		Sizes:       e.opt.sizes,
		Seed:        seed,
		Timeout:     5 * time.Second,
	}
}

// keyOf is edged's cache key for object id of size bytes requested with
// Host pop.test.
func keyOf(id int, size int64) string {
	return "http://" + host + "/obj/" + strconv.Itoa(id) + "?size=" + strconv.FormatInt(size, 10)
}

// ---- hit ----

// hitRow is one configuration of the hit-ratio table in one run.
type hitRow struct {
	Label         string  `json:"label"`
	Cluster       bool    `json:"cluster"`
	Requests      int64   `json:"requests"`
	OriginFetches int64   `json:"origin_fetches"`
	HitRatio      num     `json:"hit_ratio"`
	RPS           float64 `json:"rps"`
	P50           float64 `json:"p50_ms"`
	P99           float64 `json:"p99_ms"`
	Errors        int64   `json:"errors"`
	// PeerFetches and Replicas are the increase over the measured phase,
	// summed over the nodes (PoP only), of edged_cluster_peer_fetches_total
	// and of edged_cluster_replica_admissions_total{result="admitted"}.
	PeerFetches float64      `json:"peer_fetches,omitempty"`
	Replicas    float64      `json:"replicas_admitted,omitempty"`
	Skipped     string       `json:"skipped,omitempty"`
	Result      *load.Result `json:"load,omitempty"`
}

type hitSetup struct {
	label   string
	nodes   int
	mem     int64
	cluster bool
}

func (e *env) hitSetups() []hitSetup {
	m := e.opt.mem
	return []hitSetup{
		{"(a) one node, 3×M", 1, 3 * m, false},
		{"(b) three nodes, cluster off, M each", 3, m, false},
		{"(c) three-node PoP, M each", 3, m, true},
	}
}

// hitRun runs the three configurations once each, from cold.
func (e *env) hitRun(run int) ([]hitRow, error) {
	var rows []hitRow
	for _, s := range e.hitSetups() {
		r, err := e.hitOne(run, s)
		if errors.Is(err, errNoPoP) {
			rows = append(rows, hitRow{Label: s.label, Cluster: s.cluster, Skipped: err.Error()})
			continue
		}
		if err != nil {
			return rows, fmt.Errorf("%s: %w", s.label, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func (e *env) hitOne(run int, s hitSetup) (hitRow, error) {
	row := hitRow{Label: s.label, Cluster: s.cluster}
	e.logf("hit %s: starting %d node(s)", s.label, s.nodes)
	p, err := startPoP(e.ctx, e.bin, e.dir, s.nodes, nodeConfig{MemBytes: s.mem, OriginURL: e.originURL, Cluster: s.cluster, HotThreshold: e.opt.hot})
	if err != nil {
		return row, err
	}
	defer p.stop()
	lb, err := newBalancer(p.edges())
	if err != nil {
		return row, err
	}
	defer lb.Close()
	// Warmup and measured phase are bounded in count, so that every row
	// sees the same key sequences, and in time, so that a slow row ends.
	warm := e.loadConfig(lb.Addr(), e.opt.conc, uint64(1000+run))
	warm.Requests, warm.Duration = e.opt.warmupRequests, e.opt.warmup
	if _, err := load.Run(e.ctx, warm); err != nil {
		return row, err
	}
	before := e.originRequests()
	fetches0, replicas0 := clusterCounters(p.nodes)
	cfg := e.loadConfig(lb.Addr(), e.opt.conc, uint64(2000+run))
	cfg.Requests, cfg.Duration, cfg.Label = e.opt.requests, e.opt.duration, s.label
	res, err := load.Run(e.ctx, cfg)
	if err != nil {
		return row, err
	}
	row.OriginFetches = e.originRequests() - before
	row.Requests = res.Requests
	row.HitRatio = num(hitRatio(res.Requests, row.OriginFetches))
	row.RPS, row.P50, row.P99 = res.RPS, res.Latency.P50, res.Latency.P99
	row.Errors = res.ErrorCount()
	row.Result = res
	if s.cluster {
		fetches, replicas := clusterCounters(p.nodes)
		row.PeerFetches, row.Replicas = fetches-fetches0, replicas-replicas0
	}
	e.logf("hit %s: %d requests, %d origin fetches, hit ratio %.4f, %.0f req/s", s.label, row.Requests, row.OriginFetches, row.HitRatio, row.RPS)
	return row, nil
}

// clusterCounters sums the peer fetches sent and the replicas admitted
// over nodes' metrics so far; nodes without them count 0.
func clusterCounters(nodes []*node) (fetches, replicas float64) {
	for _, n := range nodes {
		if m, err := n.metrics("edged_cluster_peer_fetches_total"); err == nil {
			for _, v := range m {
				fetches += v
			}
		}
		if m, err := n.metrics("edged_cluster_replica_admissions_total"); err == nil {
			for k, v := range m {
				if strings.Contains(k, `result="admitted"`) {
					replicas += v
				}
			}
		}
	}
	return fetches, replicas
}

// ---- cold ----

// coldResult is one run of the cold scenario.
type coldResult struct {
	Objects    int     `json:"objects"`
	ExactlyOne int     `json:"exactly_one"`
	Fetches    []int64 `json:"origin_fetches"` // per object
	Errors     int     `json:"errors"`         // requests that failed or were not 200
	Requests   int     `json:"requests"`
}

// coldRun asks a fresh PoP for never-requested objects, each concurrently
// from every node, and counts the origin's fetches of each.
func (e *env) coldRun(run int) (coldResult, error) {
	var r coldResult
	e.logf("cold: starting the PoP")
	p, err := startPoP(e.ctx, e.bin, e.dir, 3, nodeConfig{MemBytes: e.opt.mem, OriginURL: e.originURL, Cluster: true})
	if err != nil {
		return r, err
	}
	defer p.stop()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: e.opt.coldPerNode}}
	defer client.CloseIdleConnections()
	for i := range e.opt.coldObjects {
		path := fmt.Sprintf("/obj/cold-%d-%d", run, i)
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, n := range p.nodes {
			for range e.opt.coldPerNode {
				wg.Go(func() {
					<-start
					ok := getOK(e.ctx, client, "http://"+n.edge+path+"?size=8KiB&delay=200ms")
					mu.Lock()
					r.Requests++
					if !ok {
						r.Errors++
					}
					mu.Unlock()
				})
			}
		}
		close(start)
		wg.Wait()
		f := e.origin.Stats([]string{path}).Paths[path]
		r.Fetches = append(r.Fetches, f)
		r.Objects++
		if f == 1 {
			r.ExactlyOne++
		}
	}
	e.logf("cold: %d of %d objects fetched exactly once; fetches %v", r.ExactlyOne, r.Objects, r.Fetches)
	return r, nil
}

// getOK GETs u with Host pop.test, reads the body and reports a clean 200.
func getOK(ctx context.Context, c *http.Client, u string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK
}

// ---- latency ----

// The classes of the latency scenario.
const (
	classLocal = "local hit"
	classPeer  = "peer hit"
	classOther = "other"
)

// hopClass sorts a response received from node self by its Cache-Status:
// a local hit (the last member is self's, with hit), a peer hit (the last
// member says fwd=peer and the first, the owner's, hit) or other.
func hopClass(cacheStatus []string, self string) string {
	var members []string
	for _, v := range cacheStatus {
		for m := range strings.SplitSeq(v, ",") {
			if m = strings.TrimSpace(m); m != "" {
				members = append(members, m)
			}
		}
	}
	if len(members) == 0 {
		return classOther
	}
	name, params := member(members[len(members)-1])
	switch {
	case name == self && hasParam(params, "hit", ""):
		return classLocal
	case len(members) > 1 && hasParam(params, "fwd", "peer"):
		if _, first := member(members[0]); hasParam(first, "hit", "") {
			return classPeer
		}
	}
	return classOther
}

// member splits a Cache-Status member into its cache name and parameters.
func member(m string) (name string, params []string) {
	parts := strings.Split(m, ";")
	for _, p := range parts[1:] {
		params = append(params, strings.TrimSpace(p))
	}
	return strings.Trim(strings.TrimSpace(parts[0]), `"`), params
}

// hasParam reports whether params has name, with value when value is not "".
func hasParam(params []string, name, value string) bool {
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), name) && (value == "" || strings.Trim(strings.TrimSpace(v), `"`) == value) {
			return true
		}
	}
	return false
}

// latencyResult is one run of the latency scenario.
type latencyResult struct {
	Requests int64                 `json:"requests"`
	Errors   int64                 `json:"errors"`
	Classes  map[string]load.Class `json:"classes"`
}

// latencyRun warms a set of keys in a PoP that never replicates, then
// sends requests for them straight to node A and splits the latencies into
// local and peer hits.
func (e *env) latencyRun(run int) (latencyResult, error) {
	var r latencyResult
	e.logf("latency: starting the PoP (hot_threshold 255)")
	p, err := startPoP(e.ctx, e.bin, e.dir, 3, nodeConfig{MemBytes: e.opt.mem, OriginURL: e.originURL, Cluster: true, HotThreshold: 255})
	if err != nil {
		return r, err
	}
	defer p.stop()
	a := p.nodes[0]
	keys := e.opt.latencyKeys
	// Warm each key once through A: A's own keys fill at A, the others at
	// their owners, and A keeps no copy of those.
	cfg := load.Config{
		URL: "http://" + a.edge + "/obj/{id}?size={size}", Host: host,
		Concurrency: 8, Keys: keys, Sizes: e.opt.sizes, Timeout: 5 * time.Second,
	}
	if err := warmKeys(e.ctx, a.edge, keys, e.opt.sizes); err != nil {
		return r, err
	}
	cfg.Requests, cfg.Duration, cfg.Seed = e.opt.latencyRequests, e.opt.duration, uint64(3000+run)
	cfg.Class = func(resp *http.Response) string { return hopClass(resp.Header.Values("Cache-Status"), a.name) }
	res, err := load.Run(e.ctx, cfg)
	if err != nil {
		return r, err
	}
	r.Requests, r.Errors, r.Classes = res.Requests, res.ErrorCount(), res.Classes
	e.logf("latency: %d requests: local %d (p50 %.3f ms), peer %d (p50 %.3f ms), other %d",
		r.Requests, r.Classes[classLocal].Responses, r.Classes[classLocal].Latency.P50,
		r.Classes[classPeer].Responses, r.Classes[classPeer].Latency.P50, r.Classes[classOther].Responses)
	return r, nil
}

// warmKeys requests objects 0..n-1 once each from addr, 8 at a time.
func warmKeys(ctx context.Context, addr string, n int, sizes sizemix.Mix) error {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	ids := make(chan int)
	var failed sync.Map
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for id := range ids {
				size, _ := sizes.Pick(strconv.Itoa(id))
				if !getOK(ctx, client, fmt.Sprintf("http://%s/obj/%d?size=%d", addr, id, size)) {
					failed.Store(id, true)
				}
			}
		})
	}
	for id := range n {
		ids <- id
	}
	close(ids)
	wg.Wait()
	var bad int
	failed.Range(func(_, _ any) bool { bad++; return true })
	if bad > 0 {
		return fmt.Errorf("warming: %d of %d objects failed", bad, n)
	}
	return ctx.Err()
}

// ---- kill ----

// killResult is one run of the kill scenario.
type killResult struct {
	Victim   string `json:"victim"`
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"`
	ErrorPct num    `json:"error_pct"`
	// FirstError and LastError are seconds from the kill; NaN without
	// errors.
	FirstError num `json:"first_error_s"`
	LastError  num `json:"last_error_s"`
	// Detection is the seconds from the kill until both survivors list two
	// members; NaN if they did not within 10 s.
	Detection num `json:"detection_s"`
	// SampleKeys were checked; VictimOwned of them were owned by the
	// victim; Moved changed owner; MovedOnlyVictims says Moved is exactly
	// the victim's keys.
	SampleKeys       int    `json:"sample_keys"`
	VictimOwned      int    `json:"victim_owned"`
	Moved            int    `json:"moved"`
	MovedOnlyVictims bool   `json:"moved_exactly_victims"`
	Note             string `json:"note,omitempty"`
	// BrokenConns is the number of client connections the balancer had
	// open to the victim when it was killed: each ends with it, and a
	// request in flight on one fails unless the client retries it (Go's
	// http.Transport retries a GET whose reused connection closes before
	// any response byte).
	BrokenConns int `json:"broken_connections"`
	// Fallbacks is edged_peer_fallbacks_total summed over the survivors:
	// misses for the victim's keys sent to the origin before it was
	// declared dead.
	Fallbacks float64      `json:"peer_fallbacks"`
	Result    *load.Result `json:"load"`
}

// owners asks n for the owner of each sample key.
func owners(n *node, keys []string) ([]string, error) {
	o := make([]string, len(keys))
	for i, k := range keys {
		v, err := n.cluster(k)
		if err != nil {
			return nil, fmt.Errorf("%s: owner of %s: %w", n.name, k, err)
		}
		o[i] = v.Owner
	}
	return o, nil
}

// agreedOwners asks every node in ns and fails unless they agree.
func agreedOwners(ns []*node, keys []string) ([]string, error) {
	var first []string
	for _, n := range ns {
		o, err := owners(n, keys)
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = o
			continue
		}
		for i := range o {
			if o[i] != first[i] {
				return nil, fmt.Errorf("%s and %s disagree on the owner of %s: %s, %s", ns[0].name, n.name, keys[i], first[i], o[i])
			}
		}
	}
	return first, nil
}

// moved compares owners before and after a node's death: how many keys the
// victim owned, how many changed owner, and whether those are the same keys.
func moved(before, after []string, victim string) (owned, changed int, same bool) {
	same = true
	for i := range before {
		v, c := before[i] == victim, before[i] != after[i]
		if v {
			owned++
		}
		if c {
			changed++
		}
		if v != c {
			same = false
		}
	}
	return owned, changed, same
}

// killRun puts a PoP under load through the balancer and kills one node
// with SIGKILL part way through.
func (e *env) killRun(run int) (killResult, error) {
	var r killResult
	e.logf("kill: starting the PoP")
	p, err := startPoP(e.ctx, e.bin, e.dir, 3, nodeConfig{MemBytes: e.opt.mem, OriginURL: e.originURL, Cluster: true})
	if err != nil {
		return r, err
	}
	defer p.stop()
	lb, err := newBalancer(p.edges())
	if err != nil {
		return r, err
	}
	defer lb.Close()
	victim, survivors := p.nodes[2], p.nodes[:2]
	r.Victim = victim.name
	keys := make([]string, e.opt.sampleKeys)
	for i := range keys {
		size, _ := e.opt.sizes.Pick(strconv.Itoa(i))
		keys[i] = keyOf(i, size)
	}
	r.SampleKeys = len(keys)
	before, err := agreedOwners(p.nodes, keys)
	if err != nil {
		return r, err
	}
	cfg := e.loadConfig(lb.Addr(), 64, uint64(4000+run))
	cfg.Duration, cfg.Label = e.opt.killDuration, "kill"
	type done struct {
		res *load.Result
		err error
	}
	ch := make(chan done, 1)
	go func() {
		res, err := load.Run(e.ctx, cfg)
		ch <- done{res, err}
	}()
	select {
	case <-time.After(e.opt.killAt):
	case <-e.ctx.Done():
		<-ch
		return r, e.ctx.Err()
	}
	r.BrokenConns = lb.openTo(victim.edge)
	killed := time.Now()
	victim.kill()
	e.logf("kill: killed %s (SIGKILL)", victim.name)
	if d, err := waitMembers(e.ctx, survivors, 2, 10*time.Second); err == nil {
		r.Detection = num(d.Seconds())
	} else {
		r.Detection = num(math.NaN())
		r.Note = err.Error()
	}
	d := <-ch
	if d.err != nil {
		return r, d.err
	}
	res := d.res
	r.Result = res
	r.Requests, r.Errors = res.Requests, res.ErrorCount()
	r.ErrorPct = num(pct(r.Errors, r.Requests))
	r.FirstError, r.LastError = num(math.NaN()), num(math.NaN())
	if !res.FirstError.IsZero() {
		r.FirstError = num(res.FirstError.Sub(killed).Seconds())
		r.LastError = num(res.LastError.Sub(killed).Seconds())
	}
	for _, n := range survivors {
		if m, err := n.metrics("edged_peer_fallbacks_total"); err == nil {
			for _, v := range m {
				r.Fallbacks += v
			}
		}
	}
	after, err := agreedOwners(survivors, keys)
	if err != nil {
		return r, err
	}
	r.VictimOwned, r.Moved, r.MovedOnlyVictims = moved(before, after, victim.name)
	e.logf("kill: %d errors of %d requests (%.3f%%), detection %.2fs, moved %d of %d (victim owned %d, same keys %v)",
		r.Errors, r.Requests, r.ErrorPct, r.Detection, r.Moved, r.SampleKeys, r.VictimOwned, r.MovedOnlyVictims)
	return r, nil
}
