// Package origin is an HTTP origin simulator for load tests: it serves
// objects with deterministic bodies under /obj/{id}, lets each request ask for
// a size, Cache-Control, latency, a slow body or an injected failure through
// its query string, and counts requests per path so that request coalescing in
// a proxy in front of it can be checked from outside (GET /__stats).
//
// Query parameters of /obj/{id} (each overrides the matching Config field):
//
//	size=N        body size (10KiB, 1MiB, 512); default Config.Sizes by id, else 1KiB
//	v=S           object version; changes the ETag, not the bytes
//	cc=S          Cache-Control value; "none" or empty sends no Cache-Control
//	delay=D       time to first byte (Go duration, e.g. 50ms)
//	rate=R        body rate in bytes per second (1MB/s, 256KiB/s)
//	status=N      answer with status N and a short text body instead of the object
//	reset=after:N send the headers and N body bytes, then reset the connection
//	fail=P        probability in [0,1] of an injected failure (Config.FailStatus or reset)
//	text=1        a compressible text body (text/html; words in fixed slots) instead of bytes
//
// Bodies are a function of id and offset only (see Expected and Verifier),
// ETags of id, size and version; Last-Modified is fixed. Conditional and range
// requests are answered by http.ServeContent.
package origin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-proxy/edged/loadtest/sizemix"
)

// DefaultCacheControl is the Cache-Control sent when Config.CacheControl is
// empty.
const DefaultCacheControl = "public, max-age=3600"

// DefaultLastModified is the Last-Modified of every object when
// Config.LastModified is zero.
var defaultLastModified = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Config configures an Origin. The zero value serves 1 KiB objects with
// DefaultCacheControl, no delay and no failures.
type Config struct {
	// CacheControl is sent with every object; "" means DefaultCacheControl,
	// "none" sends no Cache-Control header.
	CacheControl string
	// Sizes picks an object's size from its id when the request has no size
	// parameter. The empty Mix means DefaultSize.
	Sizes sizemix.Mix
	// DefaultSize is the size used when neither ?size nor Sizes decides; 0
	// means 1 KiB.
	DefaultSize int64
	// MaxSize caps ?size; 0 means 1 GiB.
	MaxSize int64
	// Version goes into every ETag; "" means "1".
	Version string
	// LastModified is every object's Last-Modified; zero means 2024-01-01.
	LastModified time.Time
	// Delay is added before the response headers; Jitter adds a uniformly
	// random extra in [0, Jitter). Zero means none.
	Delay, Jitter time.Duration
	// Rate throttles bodies to this many bytes per second; 0 is unlimited.
	Rate int64
	// FailProb is the probability in [0,1] that a request fails: with
	// FailStatus, or if FailReset, by a connection reset half way through the
	// body. 0 never fails.
	FailProb float64
	// FailStatus is the status of injected failures; 0 means 503.
	FailStatus int
	// FailReset makes probabilistic failures connection resets.
	FailReset bool
	// MaxPaths bounds the number of distinct paths counted in Stats; later
	// paths only count in Requests and PathsDropped. 0 means 1,000,000.
	MaxPaths int
	// Float64 returns uniform random numbers in [0,1) for jitter and failure
	// draws; nil means math/rand/v2.Float64. It must be safe for concurrent use.
	Float64 func() float64
}

// Stats are the Origin's counters since it started or was last reset.
type Stats struct {
	// Requests counts every request except those to /__stats.
	Requests int64 `json:"requests"`
	// Bytes counts body bytes written.
	Bytes int64 `json:"bytes"`
	// Failures counts injected failures (status, reset and probabilistic).
	Failures int64 `json:"injected_failures"`
	// Inflight is the number of requests being served now; MaxInflight the
	// largest it has been.
	Inflight    int64 `json:"inflight"`
	MaxInflight int64 `json:"max_inflight"`
	// Paths counts requests per URL path (query excluded).
	Paths map[string]int64 `json:"paths,omitempty"`
	// PathsDropped counts requests whose path was not tracked (MaxPaths).
	PathsDropped int64 `json:"paths_dropped,omitempty"`
	// Connections counts the connections accepted, except those whose
	// first request was to /__stats (the polls): a proxy's new
	// connections, whether they carried a request or not. It counts only
	// when the server's ConnContext is the Origin's (ConnContext).
	Connections int64 `json:"connections"`
}

// Origin is the simulator's http.Handler. It is safe for concurrent use.
type Origin struct {
	cfg Config

	requests, bytes, failures atomic.Int64
	conns                     atomic.Int64
	inflight, maxInflight     atomic.Int64
	mu                        sync.Mutex
	paths                     map[string]int64
	dropped                   int64
}

// New checks cfg, fills in its defaults and returns an Origin.
func New(cfg Config) (*Origin, error) {
	if cfg.CacheControl == "" {
		cfg.CacheControl = DefaultCacheControl
	}
	if cfg.DefaultSize == 0 {
		cfg.DefaultSize = 1024
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = 1 << 30
	}
	if cfg.Version == "" {
		cfg.Version = "1"
	}
	if cfg.LastModified.IsZero() {
		cfg.LastModified = defaultLastModified
	}
	if cfg.FailStatus == 0 {
		cfg.FailStatus = http.StatusServiceUnavailable
	}
	if cfg.MaxPaths == 0 {
		cfg.MaxPaths = 1_000_000
	}
	if cfg.Float64 == nil {
		cfg.Float64 = rand.Float64
	}
	switch {
	case cfg.DefaultSize < 0 || cfg.MaxSize < 0 || cfg.DefaultSize > cfg.MaxSize:
		return nil, fmt.Errorf("origin: DefaultSize %d must be in [0, MaxSize %d]", cfg.DefaultSize, cfg.MaxSize)
	case cfg.Sizes.Max() > cfg.MaxSize:
		return nil, fmt.Errorf("origin: size mix %s exceeds MaxSize %d", cfg.Sizes, cfg.MaxSize)
	case cfg.Delay < 0 || cfg.Jitter < 0 || cfg.Rate < 0:
		return nil, errors.New("origin: Delay, Jitter and Rate must not be negative")
	case cfg.FailProb < 0 || cfg.FailProb > 1:
		return nil, fmt.Errorf("origin: FailProb %v outside [0,1]", cfg.FailProb)
	case cfg.FailStatus < 100 || cfg.FailStatus > 999:
		return nil, fmt.Errorf("origin: FailStatus %d is not an HTTP status", cfg.FailStatus)
	case cfg.MaxPaths < 0:
		return nil, errors.New("origin: MaxPaths must not be negative")
	}
	return &Origin{cfg: cfg, paths: map[string]int64{}}, nil
}

// Stats returns a snapshot of the counters, with the per-path counts of all
// paths when paths is nil, or of just the given paths.
func (o *Origin) Stats(paths []string) Stats {
	s := Stats{
		Requests:    o.requests.Load(),
		Bytes:       o.bytes.Load(),
		Failures:    o.failures.Load(),
		Inflight:    o.inflight.Load(),
		MaxInflight: o.maxInflight.Load(),
		Connections: o.conns.Load(),
		Paths:       map[string]int64{},
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	s.PathsDropped = o.dropped
	if paths == nil {
		for p, n := range o.paths {
			s.Paths[p] = n
		}
	}
	for _, p := range paths {
		s.Paths[p] = o.paths[p]
	}
	return s
}

// ResetStats zeroes all counters except Inflight; connections accepted
// before are not counted again.
func (o *Origin) ResetStats() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests.Store(0)
	o.bytes.Store(0)
	o.failures.Store(0)
	o.conns.Store(0)
	o.maxInflight.Store(o.inflight.Load())
	o.paths = map[string]int64{}
	o.dropped = 0
}

// connKey is the context key of a connection's connMark.
type connKey struct{}

// connMark is set by the first request on a connection.
type connMark struct{ seen atomic.Bool }

// ConnContext is the http.Server ConnContext hook that counts accepted
// connections (Stats.Connections): set Server.ConnContext to it.
func (o *Origin) ConnContext(ctx context.Context, _ net.Conn) context.Context {
	o.conns.Add(1)
	return context.WithValue(ctx, connKey{}, new(connMark))
}

// firstRequest marks r's connection as having carried a request and
// reports whether r is its first.
func firstRequest(r *http.Request) bool {
	m, ok := r.Context().Value(connKey{}).(*connMark)
	return ok && m.seen.CompareAndSwap(false, true)
}

func (o *Origin) count(r *http.Request) {
	path := r.URL.Path
	firstRequest(r)
	o.requests.Add(1)
	n := o.inflight.Add(1)
	for m := o.maxInflight.Load(); n > m && !o.maxInflight.CompareAndSwap(m, n); m = o.maxInflight.Load() {
	}
	o.mu.Lock()
	if _, ok := o.paths[path]; ok || len(o.paths) < o.cfg.MaxPaths {
		o.paths[path]++
	} else {
		o.dropped++
	}
	o.mu.Unlock()
}

// ServeHTTP serves /obj/{id}, GET /__stats and POST /__stats/reset.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/__stats", "/__stats/reset":
		if firstRequest(r) {
			o.conns.Add(-1) // a poll's connection is not a proxy's
		}
	}
	switch r.URL.Path {
	case "/__stats":
		o.serveStats(w, r)
		return
	case "/__stats/reset":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		o.ResetStats()
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	o.count(r)
	defer o.inflight.Add(-1)
	id, ok := strings.CutPrefix(r.URL.Path, "/obj/")
	if !ok || id == "" {
		w.Header().Set("Cache-Control", "no-store")
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	p, err := o.params(id, r.URL.Query())
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if p.delay > 0 {
		t := time.NewTimer(p.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if p.status == 0 && p.fail > 0 && o.cfg.Float64() < p.fail {
		if o.cfg.FailReset {
			p.resetAfter = p.size / 2
		} else {
			p.status = o.cfg.FailStatus
		}
	}
	if p.status != 0 {
		o.failures.Add(1)
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		if p.ccSet {
			h.Del("Cache-Control")
			if p.cc != "" {
				h.Set("Cache-Control", p.cc)
			}
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		msg := fmt.Sprintf("origin: injected status %d\n", p.status)
		h.Set("Content-Length", strconv.Itoa(len(msg)))
		w.WriteHeader(p.status)
		n, _ := w.Write([]byte(msg))
		o.bytes.Add(int64(n))
		return
	}
	if p.resetAfter >= 0 {
		o.failures.Add(1)
	}

	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if p.text {
		h.Set("Content-Type", "text/html; charset=utf-8")
	}
	h.Set("ETag", etag(id, p.size, p.version))
	if p.cc != "" {
		h.Set("Cache-Control", p.cc)
	}
	ow := &objectWriter{ResponseWriter: w, o: o, rate: p.rate, resetAfter: p.resetAfter, start: time.Now()}
	http.ServeContent(ow, r, "", o.cfg.LastModified, &body{seed: seedOf(id), size: p.size, text: p.text})
	ow.finish()
}

type params struct {
	size       int64
	version    string
	cc         string
	ccSet      bool
	delay      time.Duration
	rate       int64
	status     int
	resetAfter int64 // -1: none
	fail       float64
	text       bool
}

func (o *Origin) params(id string, q url.Values) (params, error) {
	p := params{version: o.cfg.Version, cc: o.cfg.CacheControl, delay: o.cfg.Delay, rate: o.cfg.Rate, resetAfter: -1, fail: o.cfg.FailProb}
	if p.cc == "none" {
		p.cc = ""
	}
	if s, ok := o.cfg.Sizes.Pick(id); ok {
		p.size = s
	} else {
		p.size = o.cfg.DefaultSize
	}
	var err error
	if v := q.Get("size"); v != "" {
		if p.size, err = sizemix.ParseSize(v); err != nil {
			return p, err
		}
		if p.size > o.cfg.MaxSize {
			return p, fmt.Errorf("size %d exceeds the maximum %d", p.size, o.cfg.MaxSize)
		}
	}
	if v := q.Get("v"); v != "" {
		p.version = v
	}
	if q.Has("cc") {
		p.cc, p.ccSet = q.Get("cc"), true
		if p.cc == "none" {
			p.cc = ""
		}
	}
	if v := q.Get("delay"); v != "" {
		if p.delay, err = time.ParseDuration(v); err != nil || p.delay < 0 {
			return p, fmt.Errorf("bad delay %q", v)
		}
	}
	if o.cfg.Jitter > 0 {
		p.delay += time.Duration(o.cfg.Float64() * float64(o.cfg.Jitter))
	}
	if v := q.Get("rate"); v != "" {
		if p.rate, err = ParseRate(v); err != nil {
			return p, err
		}
	}
	if v := q.Get("status"); v != "" {
		if p.status, err = strconv.Atoi(v); err != nil || p.status < 100 || p.status > 999 {
			return p, fmt.Errorf("bad status %q", v)
		}
	}
	if v := q.Get("reset"); v != "" {
		n, ok := strings.CutPrefix(v, "after:")
		if !ok {
			return p, fmt.Errorf("bad reset %q (want after:N)", v)
		}
		if p.resetAfter, err = sizemix.ParseSize(n); err != nil {
			return p, err
		}
	}
	p.text = q.Get("text") == "1"
	if v := q.Get("fail"); v != "" {
		if p.fail, err = strconv.ParseFloat(v, 64); err != nil || p.fail < 0 || p.fail > 1 {
			return p, fmt.Errorf("bad fail probability %q", v)
		}
	}
	return p, nil
}

// ETag returns the strong entity tag the origin sends for object id at size
// and version.
func ETag(id string, size int64, version string) string { return etag(id, size, version) }

func etag(id string, size int64, version string) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d:%s\x00%d\x00%s", len(id), id, size, version)
	return `"` + strconv.FormatUint(h.Sum64(), 16) + `"`
}

// ParseRate parses a byte rate such as "1MB/s", "256KiB/s" or "1000" (bytes
// per second); the "/s" suffix is optional.
func ParseRate(s string) (int64, error) {
	n, err := sizemix.ParseSize(strings.TrimSuffix(strings.TrimSpace(s), "/s"))
	if err != nil {
		return 0, fmt.Errorf("bad rate %q: %w", s, err)
	}
	return n, nil
}

func (o *Origin) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	var paths []string
	if q := r.URL.Query(); q.Has("path") {
		paths = q["path"]
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(o.Stats(paths))
}
