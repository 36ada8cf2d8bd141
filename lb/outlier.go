package lb

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Outlier configures passive outlier detection: shards that fail in a row are
// ejected (skipped by picks) for a while, and come back with slow start. The
// zero value turns it on with the defaults below, which follow Envoy's
// outlier_detection (consecutive_gateway_failure 5, base_ejection_time 30s,
// max_ejection_time 300s) except MaxEjectedPercent (Envoy: 10%, which with
// the few shards of an edge site would allow no ejection at all; we take
// Envoy's healthy_panic_threshold of 50% instead) and SlowStart (Envoy has
// none by default).
type Outlier struct {
	// Disabled turns outlier detection off: only dial failures (DownFor)
	// take shards out of picks.
	Disabled bool

	// ConsecutiveFailures is the number of gateway failures in a row that
	// ejects a shard. A gateway failure is a connection that cannot be
	// established, an error before the response headers (a reset or
	// timeout), or a 502, 503 or 504 response. A request the caller
	// cancelled counts neither way; any other response resets the count.
	// Zero means 5.
	ConsecutiveFailures int

	// BaseEjection is how long the first ejection lasts; each ejection that
	// follows within MaxEjection of the end of the previous one lasts twice
	// as long as that one, up to MaxEjection. Zero means 30s.
	BaseEjection time.Duration

	// MaxEjection caps an ejection's length; a shard that has not been
	// ejected for MaxEjection after its last ejection ended starts again
	// at BaseEjection. Zero means 300s; less than BaseEjection is raised to
	// it.
	MaxEjection time.Duration

	// MaxEjectedPercent caps the share of a pool's shards ejected at once,
	// rounded down but at least one shard when the pool has two or more
	// (a pool of one shard never ejects it). A shard that reaches
	// ConsecutiveFailures while the cap is reached stays in picks. Zero
	// means 50; more than 100 is rejected. When no shard is left for picks
	// (ejected or down), all are used in ring order (panic mode).
	MaxEjectedPercent int

	// SlowStart is how long a shard takes, after its ejection ends or its
	// health checks pass again (HealthCheck), to get back its full share
	// of keys. Its share ramps linearly from 10% to
	// 100%: a key the shard owns is accepted when a hash of the key, as a
	// fraction of the hash space, is below the share, and otherwise goes to
	// the next shard in ring order. The accepted keys only grow during the
	// window, so a key moves back once and stays. Zero means 30s; negative
	// means none (the full share at once).
	SlowStart time.Duration
}

// Outlier defaults, applied by NewPool to zero fields.
const (
	defaultConsecutiveFailures = 5
	defaultBaseEjection        = 30 * time.Second
	defaultMaxEjection         = 300 * time.Second
	defaultMaxEjectedPercent   = 50
	defaultSlowStart           = 30 * time.Second
	// slowStartMinShare is a recovering shard's share at the start of
	// its slow start (Envoy's min_weight_percent default).
	slowStartMinShare = 0.1
)

func (o *Outlier) setDefaults() error {
	switch {
	case o.ConsecutiveFailures < 0:
		return errors.New("lb: Outlier.ConsecutiveFailures is negative")
	case o.BaseEjection < 0:
		return errors.New("lb: Outlier.BaseEjection is negative")
	case o.MaxEjection < 0:
		return errors.New("lb: Outlier.MaxEjection is negative")
	case o.MaxEjectedPercent < 0 || o.MaxEjectedPercent > 100:
		return fmt.Errorf("lb: Outlier.MaxEjectedPercent %d is not in 0..100", o.MaxEjectedPercent)
	}
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = defaultConsecutiveFailures
	}
	if o.BaseEjection == 0 {
		o.BaseEjection = defaultBaseEjection
	}
	if o.MaxEjection == 0 {
		o.MaxEjection = defaultMaxEjection
	}
	o.MaxEjection = max(o.MaxEjection, o.BaseEjection)
	if o.MaxEjectedPercent == 0 {
		o.MaxEjectedPercent = defaultMaxEjectedPercent
	}
	if o.SlowStart == 0 {
		o.SlowStart = defaultSlowStart
	}
	return nil
}

// ejector is a pool's outlier detector. The state that picks read is atomic
// (outlierState.failures, ejectedUntil); mu serialises ejections, so that the
// cap on ejected shards holds. The state map is built once and only read.
type ejector struct {
	cfg      Outlier
	disabled bool
	maxOut   int // shards that may be ejected at once
	pool     string
	state    map[*shard]*outlierState
	now      func() time.Time
	logger   *slog.Logger
	mu       sync.Mutex
}

// outlierState is one shard's outlier detection state.
type outlierState struct {
	failures     atomic.Int64 // consecutive gateway failures
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 = never ejected
	recoveredAt  atomic.Int64 // unix nanoseconds the shard passed its health checks again; 0 = never

	// Guarded by ejector.mu.
	ejections    int       // ejections in a row, for the doubling
	lastEjectEnd time.Time // when the last ejection ended (or ends)
}

func (st *outlierState) ejected(now time.Time) bool {
	return now.UnixNano() < st.ejectedUntil.Load()
}

func newEjector(cfg Outlier, pool string, shards []*shard, now func() time.Time, logger *slog.Logger) *ejector {
	n := len(shards)
	k := n * cfg.MaxEjectedPercent / 100
	if k < 1 && n > 1 {
		k = 1
	}
	e := &ejector{cfg: cfg, disabled: cfg.Disabled, maxOut: k, pool: pool,
		state: make(map[*shard]*outlierState, n), now: now, logger: logger}
	for _, s := range shards {
		e.state[s] = new(outlierState)
	}
	return e
}

// ejected reports whether s is ejected at now.
func (e *ejector) ejected(s *shard, now time.Time) bool {
	return !e.disabled && e.state[s].ejected(now)
}

// Failure reasons, the "reason" label of edged_upstream_ejections_total.
const (
	reasonConnect = "connect_error"
	reasonTimeout = "timeout"
	reasonReset   = "reset"
	reasonTLS     = "tls_error"
	reason502     = "status_502"
	reason503     = "status_503"
	reason504     = "status_504"
)

// gatewayFailure classifies the outcome of one attempt: the failure reason,
// or "" when the attempt counts as a success. counted is false when the
// attempt says nothing about the shard (the caller gave up).
func gatewayFailure(ctx context.Context, resp *http.Response, err error) (reason string, counted bool) {
	if err == nil {
		switch resp.StatusCode {
		case http.StatusBadGateway:
			return reason502, true
		case http.StatusServiceUnavailable:
			return reason503, true
		case http.StatusGatewayTimeout:
			return reason504, true
		}
		return "", true
	}
	if ctx.Err() != nil {
		return "", false
	}
	if isDialError(err) {
		return reasonConnect, true
	}
	var te *tlsError
	if errors.As(err, &te) {
		return reasonTLS, true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return reasonTimeout, true
	}
	return reasonReset, true
}

// record notes the outcome of one attempt on s, ejecting it when this failure
// makes ConsecutiveFailures in a row.
func (e *ejector) record(s *shard, reason string) {
	if e.disabled {
		return
	}
	st := e.state[s]
	if reason == "" {
		st.failures.Store(0)
		return
	}
	now := e.now()
	if st.ejected(now) {
		return // answers of requests sent before the ejection
	}
	if st.failures.Add(1) < int64(e.cfg.ConsecutiveFailures) {
		return
	}
	e.mu.Lock()
	if st.ejected(now) {
		e.mu.Unlock()
		return
	}
	out := 0
	for _, o := range e.state {
		if o.ejected(now) {
			out++
		}
	}
	if out >= e.maxOut {
		e.mu.Unlock()
		return // capped: the shard stays, and its next failure tries again
	}
	if !st.lastEjectEnd.IsZero() && now.Sub(st.lastEjectEnd) > e.cfg.MaxEjection {
		st.ejections = 0 // quiet for long enough: start over at the base
	}
	d := e.cfg.BaseEjection
	for i := 0; i < st.ejections && d < e.cfg.MaxEjection; i++ {
		d *= 2
	}
	d = min(d, e.cfg.MaxEjection)
	st.ejections++
	until := now.Add(d)
	st.lastEjectEnd = until
	st.ejectedUntil.Store(until.UnixNano())
	st.failures.Store(0)
	e.mu.Unlock()

	s.metrics.ejection(reason)
	e.logger.Warn("upstream shard ejected",
		slog.String("pool", e.pool), slog.String("shard", s.name),
		slog.String("reason", reason), slog.Duration("for", d))
}

// recovered starts the slow start of s at now, as the end of an ejection
// does: s is back from failed health checks (health.go). It applies with
// outlier detection off too.
func (e *ejector) recovered(s *shard, now time.Time) {
	e.state[s].recoveredAt.Store(now.UnixNano())
}

// share is the fraction of its keys s accepts at now: 0 while ejected,
// ramping from slowStartMinShare to 1 over SlowStart after the ejection or
// after a recovery from failed health checks, whichever came last, 1
// otherwise.
func (e *ejector) share(s *shard, now time.Time) float64 {
	st := e.state[s]
	until := st.recoveredAt.Load()
	if !e.disabled {
		until = max(until, st.ejectedUntil.Load())
	}
	if until == 0 {
		return 1
	}
	since := time.Duration(now.UnixNano() - until)
	switch {
	case since < 0:
		return 0
	case e.cfg.SlowStart <= 0 || since >= e.cfg.SlowStart:
		return 1
	}
	f := float64(since) / float64(e.cfg.SlowStart)
	return slowStartMinShare + (1-slowStartMinShare)*f
}

// keyFraction maps key to [0, 1), independently of the ring's hash, for slow
// start: the same key always gets the same fraction.
func keyFraction(key string) float64 {
	h := fnv.New64a()
	h.Write([]byte("edged-slow-start\x00"))
	h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 33 // fmix64 (MurmurHash3) spreads FNV's low-entropy high bits
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return float64(x>>11) / (1 << 53)
}
