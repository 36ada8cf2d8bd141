// Package load is an HTTP load generator for caching proxies: closed loop at
// a fixed concurrency or open loop at a fixed arrival rate, over uniform or
// Zipf-distributed keys with a size mix, with HDR-style latency histograms,
// cache hit ratios read from response headers, and errors by kind. It talks
// only to loopback addresses.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edged-proxy/edged/loadtest/origin"
	"github.com/edged-proxy/edged/loadtest/sizemix"
)

// Limits enforced by Run so that every run is bounded.
const (
	MaxDuration    = 10 * time.Minute
	MaxConcurrency = 10000
	MaxRate        = 1e6
)

// ErrNotLoopback is returned for a target that is not a loopback address.
var ErrNotLoopback = errors.New("load: target is not a loopback address")

// Config describes a run. Its zero value is not runnable: URL is required.
type Config struct {
	// URL is the target template. "{id}" is replaced by the key's index
	// (decimal) and "{size}" by its size in bytes from Sizes, e.g.
	// "http://127.0.0.1:8080/obj/{id}?size={size}". The host must be a
	// loopback IP or "localhost"; the scheme http.
	URL string
	// Concurrency is the number of workers: in closed loop each sends its
	// next request when the last one ends; in open loop it caps requests in
	// flight. 0 means 64.
	Concurrency int
	// Rate > 0 selects open loop: requests are due at fixed intervals of
	// 1/Rate seconds and latency counts from the due time, so a stalled
	// target is charged for the queueing it causes (no coordinated omission).
	// 0 selects closed loop.
	Rate float64
	// Duration bounds the measured phase; Requests bounds it in count. With
	// both zero Duration is 10s; with only Requests set Duration is
	// MaxDuration. Neither may exceed its limit.
	Duration time.Duration
	Requests int64
	// Warmup runs the same load for this long before measuring; its results
	// are discarded. 0 means none.
	Warmup time.Duration
	// Keys is the number of distinct objects; 0 means 1000.
	Keys int
	// Zipf is the Zipf exponent (> 1) for key popularity; 0 means uniform.
	Zipf float64
	// Sizes picks each object's size by its id for "{size}"; the empty Mix
	// means 1 KiB.
	Sizes sizemix.Mix
	// Seed seeds the key sequence; runs with equal configs and seeds ask for
	// the same keys (in closed loop, per worker).
	Seed uint64
	// Timeout bounds each request including its body; 0 means 10s.
	Timeout time.Duration
	// Verify checks each 200 body against origin.Expected, taking the
	// object id from the last path segment of the URL, and its length
	// against the size the URL asked for.
	Verify bool
	// Progress receives one status line per ProgressEvery (0 means 1s);
	// nil prints nothing.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Label names the run in its Result.
	Label string
	// Host, if set, is every request's Host header in place of the URL's
	// host (which still decides where to connect): nodes behind a balancer
	// then all see, and key their caches by, the same host. "" sends the
	// URL's host.
	Host string
	// Class, if set, names the class of each complete response (called after
	// its body was read; "" puts it in no class); Result.Classes then holds
	// a count and a latency summary per class, e.g. local against peer hits.
	// It is called from every worker at once and must be safe for that.
	Class func(*http.Response) string
}

// template is a parsed Config.URL.
type template struct {
	parts []string // literal, then placeholder, alternating; placeholders are "{id}" or "{size}"
	size  bool
}

func parseTemplate(s string) (template, error) {
	var t template
	for len(s) > 0 {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			t.parts = append(t.parts, s)
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			t.parts = append(t.parts, s)
			break
		}
		ph := s[i : i+j+1]
		switch ph {
		case "{id}", "{size}":
		default:
			return t, fmt.Errorf("load: unknown placeholder %s in URL (want {id} or {size})", ph)
		}
		t.size = t.size || ph == "{size}"
		t.parts = append(t.parts, s[:i], ph)
		s = s[i+j+1:]
	}
	return t, nil
}

func (t template) expand(b []byte, id string, size int64) []byte {
	for _, p := range t.parts {
		switch p {
		case "{id}":
			b = append(b, id...)
		case "{size}":
			b = strconv.AppendInt(b, size, 10)
		default:
			b = append(b, p...)
		}
	}
	return b
}

// CheckLoopback returns an error wrapping ErrNotLoopback unless host is
// "localhost" or a loopback IP (127.0.0.0/8, ::1).
func CheckLoopback(host string) error {
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if err != nil || !a.Unmap().IsLoopback() {
		return fmt.Errorf("%w: host %q (only 127.0.0.0/8, ::1 and localhost may be load-tested)", ErrNotLoopback, host)
	}
	return nil
}

// loopbackDial refuses, at connect time, any address that is not loopback,
// whatever a name resolved to.
func loopbackDial(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Unmap().IsLoopback() {
		return fmt.Errorf("%w: refusing to connect to %s", ErrNotLoopback, address)
	}
	return nil
}

func (c *Config) check() (template, error) {
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.Keys == 0 {
		c.Keys = 1000
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = time.Second
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
		if c.Requests > 0 {
			c.Duration = MaxDuration
		}
	}
	if c.Sizes.Max() == 0 {
		c.Sizes, _ = sizemix.Parse("1KiB")
	}
	switch {
	case c.Concurrency < 1 || c.Concurrency > MaxConcurrency:
		return template{}, fmt.Errorf("load: concurrency %d outside [1, %d]", c.Concurrency, MaxConcurrency)
	case c.Rate < 0 || c.Rate > MaxRate:
		return template{}, fmt.Errorf("load: rate %v outside [0, %v]", c.Rate, MaxRate)
	case c.Duration < 0 || c.Duration > MaxDuration || c.Warmup < 0 || c.Warmup > MaxDuration:
		return template{}, fmt.Errorf("load: duration and warmup must be within [0, %v]", MaxDuration)
	case c.Requests < 0:
		return template{}, errors.New("load: negative request count")
	case c.Timeout < 0 || c.ProgressEvery < 0:
		return template{}, errors.New("load: negative timeout or progress interval")
	}
	if _, err := NewKeys(c.Keys, c.Zipf, 0, 0); err != nil {
		return template{}, err
	}
	t, err := parseTemplate(c.URL)
	if err != nil {
		return t, err
	}
	u, err := url.Parse(string(t.expand(nil, "0", 1)))
	if err != nil {
		return t, fmt.Errorf("load: bad URL %q: %w", c.URL, err)
	}
	if u.Scheme != "http" {
		return t, fmt.Errorf("load: URL %q: scheme must be http", c.URL)
	}
	if err := CheckLoopback(u.Hostname()); err != nil {
		return t, err
	}
	return t, nil
}

// Error kinds, in report order.
const (
	errConnect = iota
	errTimeout
	errReset
	errStatus5xx
	errStatus4xx
	errStatusOther
	errMismatch
	errOther
	numErrKinds
)

var errNames = [numErrKinds]string{"connect", "timeout", "reset", "status_5xx", "status_4xx", "status_other", "mismatch", "other"}

// errKind sorts a transport or body error into a kind.
func errKind(err error) int {
	var ne net.Error
	var op *net.OpError
	switch {
	case errors.Is(err, origin.ErrMismatch):
		return errMismatch
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	case errors.As(err, &op) && op.Op == "dial", errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, ErrNotLoopback):
		return errConnect
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errReset
	}
	return errOther
}

// workerStats is one worker's tally; only its worker touches it.
type workerStats struct {
	hist                  Histogram
	ok, bytes             int64
	hits, misses, unknown int64
	errs                  [numErrKinds]int64
	status                map[int]int64
	lastErr               [numErrKinds]string
	classes               map[string]*Histogram
	// firstErrAt and lastErrAt are when the first and last failure ended.
	firstErrAt, lastErrAt time.Time
}

// newWorkerStats returns an empty tally.
func newWorkerStats() *workerStats {
	return &workerStats{status: map[int]int64{}, classes: map[string]*Histogram{}}
}

// failedAt notes a failure that ended at t.
func (s *workerStats) failedAt(t time.Time) {
	if s.firstErrAt.IsZero() || t.Before(s.firstErrAt) {
		s.firstErrAt = t
	}
	if t.After(s.lastErrAt) {
		s.lastErrAt = t
	}
}

func (s *workerStats) merge(o *workerStats) {
	s.hist.Merge(&o.hist)
	s.ok += o.ok
	s.bytes += o.bytes
	s.hits += o.hits
	s.misses += o.misses
	s.unknown += o.unknown
	for i := range s.errs {
		s.errs[i] += o.errs[i]
		if o.lastErr[i] != "" {
			s.lastErr[i] = o.lastErr[i]
		}
	}
	for k, v := range o.status {
		s.status[k] += v
	}
	for k, h := range o.classes {
		if s.classes[k] == nil {
			s.classes[k] = new(Histogram)
		}
		s.classes[k].Merge(h)
	}
	if !o.firstErrAt.IsZero() {
		s.failedAt(o.firstErrAt)
		s.failedAt(o.lastErrAt)
	}
}

// live holds the counters the progress line reads while workers run.
type live struct {
	done, errs, hits, misses atomic.Int64
}

func (l *live) reset() {
	l.done.Store(0)
	l.errs.Store(0)
	l.hits.Store(0)
	l.misses.Store(0)
}

type runner struct {
	cfg  Config
	tmpl template
	rt   http.RoundTripper
	live live
}

// Run performs the warmup, if any, then the measured phase, and returns the
// measured results. Cancelling ctx stops the run early; what was measured so
// far is returned with Interrupted set.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	tmpl, err := cfg.check()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy: nil, // never via an environment proxy
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
			Control:   loopbackDial,
		}).DialContext,
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	r := &runner{cfg: cfg, tmpl: tmpl, rt: tr}
	if cfg.Warmup > 0 {
		r.phase(ctx, "warmup", cfg.Warmup, 0, 1)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return r.phase(ctx, "run", cfg.Duration, cfg.Requests, 2), nil
}

// phase runs load for at most d and at most n requests (0: no count bound).
func (r *runner) phase(ctx context.Context, name string, d time.Duration, n int64, salt uint64) *Result {
	r.live.reset()
	stats := make([]*workerStats, r.cfg.Concurrency)
	for i := range stats {
		stats[i] = newWorkerStats()
	}
	start := time.Now()
	stopCtx, cancel := context.WithDeadline(ctx, start.Add(d))
	defer cancel()

	progDone := make(chan struct{})
	var progWG sync.WaitGroup
	if r.cfg.Progress != nil {
		progWG.Go(func() { r.progress(name, start, progDone) })
	}

	var wg sync.WaitGroup
	var unsent int64
	if r.cfg.Rate > 0 {
		jobs := make(chan job)
		for i := range stats {
			wg.Go(func() {
				buf := make([]byte, 0, 256)
				for j := range jobs {
					buf = r.do(ctx, stats[i], buf, j.key, j.due)
				}
			})
		}
		unsent = r.schedule(stopCtx, jobs, start, d, n, salt)
		close(jobs)
	} else {
		var claimed atomic.Int64
		for i := range stats {
			wg.Go(func() {
				keys, _ := NewKeys(r.cfg.Keys, r.cfg.Zipf, r.cfg.Seed, salt<<32|uint64(i))
				buf := make([]byte, 0, 256)
				for stopCtx.Err() == nil && (n == 0 || claimed.Add(1) <= n) {
					buf = r.do(ctx, stats[i], buf, keys.Next(), time.Now())
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(progDone)
	progWG.Wait()

	total := newWorkerStats()
	for _, s := range stats {
		total.merge(s)
	}
	return r.result(total, elapsed, unsent, ctx.Err() != nil)
}

type job struct {
	key uint64
	due time.Time
}

// schedule sends a job every 1/Rate seconds until d has passed or n jobs were
// sent. When the workers fall behind, sends wait, but each job keeps its due
// time. It returns how many jobs fell due before the end but were never sent.
func (r *runner) schedule(ctx context.Context, jobs chan<- job, start time.Time, d time.Duration, n int64, salt uint64) (unsent int64) {
	keys, _ := NewKeys(r.cfg.Keys, r.cfg.Zipf, r.cfg.Seed, salt<<32)
	interval := float64(time.Second) / r.cfg.Rate
	due := func(i int64) time.Time { return start.Add(time.Duration(float64(i) * interval)) }
	total := int64(float64(d)/interval) + 1 // jobs due within d
	if n > 0 {
		total = min(total, n)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := int64(0); i < total; i++ {
		t := due(i)
		if !t.Before(start.Add(d)) {
			return 0
		}
		if wait := time.Until(t); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return 0 // not yet due: nothing owed
			}
		}
		select {
		case jobs <- job{keys.Next(), t}:
		case <-ctx.Done():
			// Due but never sent: workers were saturated until the end.
			var owed int64
			for ; i < total && due(i).Before(start.Add(d)); i++ {
				owed++
			}
			return owed
		}
	}
	return 0
}

// do sends one request for key and tallies it in s; latency counts from due.
// buf is scratch space for the URL, returned for reuse.
func (r *runner) do(ctx context.Context, s *workerStats, buf []byte, key uint64, due time.Time) []byte {
	id := strconv.FormatUint(key, 10)
	var size int64 = -1
	if r.tmpl.size {
		size, _ = r.cfg.Sizes.Pick(id)
	}
	buf = r.tmpl.expand(buf[:0], id, size)
	rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, string(buf), nil)
	if err != nil {
		r.fail(s, errOther, err)
		return buf
	}
	if r.cfg.Host != "" {
		req.Host = r.cfg.Host
	}
	resp, err := r.rt.RoundTrip(req)
	if err != nil {
		if ctx.Err() == nil {
			r.fail(s, errKind(err), err)
		}
		return buf
	}
	var w io.Writer = io.Discard
	var v *origin.Verifier
	if r.cfg.Verify && resp.StatusCode == http.StatusOK {
		p := req.URL.Path
		v = origin.NewVerifier(p[strings.LastIndexByte(p, '/')+1:])
		w = v
	}
	nbytes, err := io.Copy(w, resp.Body)
	resp.Body.Close()
	lat := time.Since(due)
	if err == nil && v != nil && size >= 0 && nbytes != size {
		err = fmt.Errorf("%w: %d bytes, want %d", origin.ErrMismatch, nbytes, size)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.fail(s, errKind(err), err)
		}
		return buf
	}
	s.hist.RecordDuration(lat)
	if r.cfg.Class != nil {
		if c := r.cfg.Class(resp); c != "" {
			h := s.classes[c]
			if h == nil {
				h = new(Histogram)
				s.classes[c] = h
			}
			h.RecordDuration(lat)
		}
	}
	s.bytes += nbytes
	s.status[resp.StatusCode]++
	r.live.done.Add(1)
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		s.ok++
		switch Classify(resp.Header) {
		case Hit:
			s.hits++
			r.live.hits.Add(1)
		case Miss:
			s.misses++
			r.live.misses.Add(1)
		default:
			s.unknown++
		}
	case c >= 500:
		s.errs[errStatus5xx]++
		s.failedAt(time.Now())
		r.live.errs.Add(1)
	case c >= 400:
		s.errs[errStatus4xx]++
		s.failedAt(time.Now())
		r.live.errs.Add(1)
	default:
		s.errs[errStatusOther]++
		s.failedAt(time.Now())
		r.live.errs.Add(1)
	}
	return buf
}

func (r *runner) fail(s *workerStats, kind int, err error) {
	s.errs[kind]++
	s.lastErr[kind] = err.Error()
	s.failedAt(time.Now())
	r.live.done.Add(1)
	r.live.errs.Add(1)
}

func (r *runner) progress(name string, start time.Time, done <-chan struct{}) {
	t := time.NewTicker(r.cfg.ProgressEvery)
	defer t.Stop()
	var last int64
	lastT := start
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			n := r.live.done.Load()
			rate := float64(n-last) / now.Sub(lastT).Seconds()
			last, lastT = n, now
			hit := "-"
			if h, m := r.live.hits.Load(), r.live.misses.Load(); h+m > 0 {
				hit = fmt.Sprintf("%.1f%%", 100*float64(h)/float64(h+m))
			}
			fmt.Fprintf(r.cfg.Progress, "%-6s %5.0fs  %9d req  %9.0f req/s  hit %6s  errors %d\n",
				name, now.Sub(start).Seconds(), n, rate, hit, r.live.errs.Load())
		}
	}
}
