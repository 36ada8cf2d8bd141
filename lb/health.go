package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HealthCheck configures active health checks: each shard of the pool is
// sent a request of its own every Interval, and a shard that fails Fall
// checks in a row is left out of picks until it passes Rise in a row
// (HAProxy's rise and fall). A shard back from failed checks gets slow
// start (Outlier.SlowStart) as one back from an ejection does. When every
// shard is out, all are used (panic mode), so checks alone never fail a
// site. The zero value is off.
//
// Shards start healthy, as HAProxy's do, so a pool serves from the moment
// it is built; the first check runs at once, and until a shard has passed
// one check, a single failed check takes it out (HAProxy's init-state
// "up"), so a shard that is down at start or at a reload is out after one
// check, not Fall.
//
// Checks use connections of their own, one per check (no keep-alive), with
// the shards' TLS settings (Config.TLS, Config.TLSClientConfig) and
// Config.Protocol: each check connects and handshakes as a request on a
// new connection would, and checks neither take request connections nor
// count in the reuse metrics.
type HealthCheck struct {
	// Enabled turns the checks on.
	Enabled bool

	// Path is the request target checked: a path starting with "/", with
	// an optional query. Empty means "/".
	Path string

	// Method is "GET" or "HEAD". Empty means GET.
	Method string

	// Host is the Host header of the checks. Empty means each shard's
	// host[:port] from its URL.
	Host string

	// Interval is the time from the end of one check of a shard to the
	// start of the next, before jitter. Zero means 5s.
	Interval time.Duration

	// JitterPercent spreads the checks: each wait is Interval plus or
	// minus up to this share of it, drawn at random, so that shards and
	// edges do not check in step. Zero means 15; negative means none; more
	// than 50 is rejected.
	JitterPercent int

	// Timeout bounds one check: connecting, the TLS handshake and the
	// response headers. A check with no answer by then fails. Zero means
	// 2s.
	Timeout time.Duration

	// ExpectedStatus is the status codes of a passing check: codes and
	// ranges separated by commas, such as "200-399" or "200,204,300-399".
	// Empty means "200-399".
	ExpectedStatus string

	// Rise is the number of passing checks in a row that bring a shard
	// back. Zero means 2.
	Rise int

	// Fall is the number of failing checks in a row that take a shard
	// out. Zero means 3.
	Fall int
}

// HealthCheck defaults, applied by NewPool to zero fields.
const (
	defaultHealthPath     = "/"
	defaultHealthInterval = 5 * time.Second
	defaultHealthJitter   = 15
	defaultHealthTimeout  = 2 * time.Second
	defaultHealthStatus   = "200-399"
	defaultHealthRise     = 2
	defaultHealthFall     = 3
	maxHealthJitter       = 50

	healthUserAgent = "edged-health-check"
)

// Health check results, the "result" label of
// edged_upstream_health_checks_total: the check passed, the shard answered
// with a status outside ExpectedStatus, it could not be connected to, no
// answer came within Timeout, or anything else went wrong (a reset, a
// failed TLS handshake).
const (
	healthOK        = "ok"
	healthBadStatus = "bad_status"
	healthConnect   = reasonConnect
	healthTimeout   = reasonTimeout
	healthError     = "error"
)

var healthResults = []string{healthOK, healthBadStatus, healthConnect, healthTimeout, healthError}

// HealthCheckError is a bad field of a HealthCheck.
type HealthCheckError struct {
	// Field is the HealthCheck field at fault, e.g. "ExpectedStatus".
	Field string
	// Err says what is wrong.
	Err error
}

func (e *HealthCheckError) Error() string {
	return "lb: HealthCheck." + e.Field + ": " + e.Err.Error()
}

// Unwrap returns e.Err.
func (e *HealthCheckError) Unwrap() error { return e.Err }

// CheckHealthCheck checks h as NewPool would, whether or not it is
// enabled, returning the first problem as a *HealthCheckError, or nil. It
// is for configuration checks that should fail where starting would.
func CheckHealthCheck(h HealthCheck) error {
	return h.setDefaults()
}

func (h *HealthCheck) setDefaults() error {
	bad := func(field, format string, args ...any) error {
		return &HealthCheckError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	switch {
	case h.Interval < 0:
		return bad("Interval", "is negative")
	case h.Timeout < 0:
		return bad("Timeout", "is negative")
	case h.Rise < 0:
		return bad("Rise", "is negative")
	case h.Fall < 0:
		return bad("Fall", "is negative")
	case h.JitterPercent > maxHealthJitter:
		return bad("JitterPercent", "%d is more than %d", h.JitterPercent, maxHealthJitter)
	}
	if h.Path == "" {
		h.Path = defaultHealthPath
	}
	if err := checkHealthPath(h.Path); err != nil {
		return &HealthCheckError{Field: "Path", Err: err}
	}
	switch h.Method {
	case "":
		h.Method = http.MethodGet
	case http.MethodGet, http.MethodHead:
	default:
		return bad("Method", "must be GET or HEAD, got %q", h.Method)
	}
	if h.Host != "" && !validHostHeader(h.Host) {
		return bad("Host", "invalid Host %q: want a host name or IP address with an optional port", h.Host)
	}
	if h.ExpectedStatus == "" {
		h.ExpectedStatus = defaultHealthStatus
	}
	if _, err := parseStatusRanges(h.ExpectedStatus); err != nil {
		return &HealthCheckError{Field: "ExpectedStatus", Err: err}
	}
	if h.Interval == 0 {
		h.Interval = defaultHealthInterval
	}
	if h.JitterPercent == 0 {
		h.JitterPercent = defaultHealthJitter
	}
	if h.Timeout == 0 {
		h.Timeout = defaultHealthTimeout
	}
	if h.Rise == 0 {
		h.Rise = defaultHealthRise
	}
	if h.Fall == 0 {
		h.Fall = defaultHealthFall
	}
	return nil
}

// checkHealthPath checks a HealthCheck.Path: an origin-form request
// target (RFC 9112, 3.2.1) without fragment, spaces or control bytes.
func checkHealthPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q must start with /", p)
	}
	for _, c := range []byte(p) {
		if c <= ' ' || c == 0x7f || c == '#' {
			return fmt.Errorf("%q: want a path and optional query, without spaces, control characters or fragment", p)
		}
	}
	if _, err := url.ParseRequestURI(p); err != nil {
		return fmt.Errorf("%q: %w", p, err)
	}
	return nil
}

// validHostHeader reports whether h may be sent as a Host header: a host
// name or IP address (IPv6 in brackets) with an optional port.
func validHostHeader(h string) bool {
	for _, c := range []byte(h) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']'
		if !ok {
			return false
		}
	}
	return h != "" && h[0] != ':'
}

// statusRange is the status codes lo to hi, both included.
type statusRange struct{ lo, hi int }

// statusRanges is a parsed HealthCheck.ExpectedStatus.
type statusRanges []statusRange

// parseStatusRanges parses codes and ranges separated by commas ("200",
// "200-399", "200,204,300-399"), with optional spaces around each item. A
// code is three digits from 100 to 599; a range's first code is not above
// its last.
func parseStatusRanges(s string) (statusRanges, error) {
	var out statusRanges
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, "-")
		a, okA := statusCode(strings.TrimSpace(lo))
		b, okB := a, okA
		if isRange {
			b, okB = statusCode(strings.TrimSpace(hi))
		}
		switch {
		case item == "":
			return nil, fmt.Errorf("%q has an empty item; want status codes and ranges such as 200-399 or 200,204", s)
		case !okA || !okB:
			return nil, fmt.Errorf("%q is not a status code (100 to 599) or a range of them such as 200-399", item)
		case a > b:
			return nil, fmt.Errorf("range %q ends before it starts", item)
		}
		out = append(out, statusRange{a, b})
	}
	return out, nil
}

// statusCode parses three digits from 100 to 599.
func statusCode(s string) (int, bool) {
	if len(s) != 3 {
		return 0, false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 100 && n <= 599
}

func (r statusRanges) match(code int) bool {
	for _, x := range r {
		if code >= x.lo && code <= x.hi {
			return true
		}
	}
	return false
}

// String writes r as parseStatusRanges reads it.
func (r statusRanges) String() string {
	var b strings.Builder
	for i, x := range r {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(x.lo))
		if x.hi != x.lo {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(x.hi))
		}
	}
	return b.String()
}

// healthState is one shard's active health, read by picks. A nil
// *healthState (a pool without checks) is always healthy.
type healthState struct {
	down atomic.Bool
}

func (h *healthState) healthy() bool { return h == nil || !h.down.Load() }

// healthChecker runs a pool's active checks: one goroutine per shard,
// each checking in turn and waiting, until stop.
type healthChecker struct {
	cfg       HealthCheck
	expect    statusRanges
	pool      string
	transport *http.Transport // keep-alives off: a connection per check
	ejector   *ejector        // starts slow start on recovery
	now       func() time.Time
	logger    *slog.Logger
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// startHealthChecks starts the checks of every shard of a pool built from
// cfg (defaults applied), giving each shard its healthState. It returns
// nil when checks are off.
func startHealthChecks(cfg *Config, shards []*shard, e *ejector) *healthChecker {
	if !cfg.HealthCheck.Enabled {
		return nil
	}
	expect, _ := parseStatusRanges(cfg.HealthCheck.ExpectedStatus) // checked by setDefaults
	t := newTransport(cfg, newConnStats(nil))                      // its own connections, out of the reuse series
	t.DisableKeepAlives = true
	t.MaxConnsPerHost = 0
	t.ResponseHeaderTimeout = 0 // the check's Timeout bounds it all
	ctx, cancel := context.WithCancel(context.Background())
	hc := &healthChecker{cfg: cfg.HealthCheck, expect: expect, pool: cfg.Name, transport: t,
		ejector: e, now: cfg.Now, logger: cfg.Logger, cancel: cancel}
	for _, s := range shards {
		hc.wg.Add(1)
		go hc.run(ctx, s, cfg.Metrics.healthChecks(cfg.Name, s.name))
	}
	return hc
}

// stop cancels the checks, including those in flight, and waits for the
// goroutines to end. It is idempotent, and a nil checker does nothing.
func (hc *healthChecker) stop() {
	if hc == nil {
		return
	}
	hc.cancel()
	hc.wg.Wait()
	hc.transport.CloseIdleConnections()
}

// healthRun is the state of one shard's checks that only its goroutine
// uses: passes and failures in a row, and whether any check ran.
type healthRun struct {
	passes, fails int
	checked       bool
}

// run checks s at once, then each interval after the previous check ended,
// until ctx is done, counting results in counts (nil: not counted). A
// check cut short by ctx counts for nothing.
func (hc *healthChecker) run(ctx context.Context, s *shard, counts map[string]prometheus.Counter) {
	defer hc.wg.Done()
	var r healthRun
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		result, detail := hc.check(ctx, s)
		if ctx.Err() != nil {
			return
		}
		if counts != nil {
			counts[result].Inc()
		}
		hc.note(s, &r, result, detail)
		t.Reset(hc.wait())
	}
}

// wait is Interval with up to JitterPercent of it added or taken away.
func (hc *healthChecker) wait() time.Duration {
	d := hc.cfg.Interval
	if hc.cfg.JitterPercent <= 0 {
		return d
	}
	j := float64(d) * float64(hc.cfg.JitterPercent) / 100
	return d + time.Duration(j*(2*rand.Float64()-1))
}

// check sends one check to s and classifies the outcome: a result (the
// metric label) and, for a failure, what happened.
func (hc *healthChecker) check(ctx context.Context, s *shard) (result, detail string) {
	cctx, cancel := context.WithTimeout(ctx, hc.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, hc.cfg.Method, s.scheme+"://"+s.host+hc.cfg.Path, nil)
	if err != nil { // the path was checked: not expected
		return healthError, err.Error()
	}
	if hc.cfg.Host != "" {
		req.Host = hc.cfg.Host
	}
	req.Header.Set("User-Agent", healthUserAgent)
	resp, err := hc.transport.RoundTrip(req)
	if err != nil {
		switch {
		case isDialError(err):
			return healthConnect, err.Error()
		case errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
			return healthTimeout, fmt.Sprintf("no response within %v", hc.cfg.Timeout)
		}
		return healthError, err.Error()
	}
	resp.Body.Close() // no keep-alive: closes the connection
	if !hc.expect.match(resp.StatusCode) {
		return healthBadStatus, fmt.Sprintf("status %d, expected %s", resp.StatusCode, hc.cfg.ExpectedStatus)
	}
	return healthOK, ""
}

// note counts one check's result and moves s in or out of picks when Rise
// passes or Fall failures in a row are reached, or at the first check,
// which decides alone.
func (hc *healthChecker) note(s *shard, r *healthRun, result, detail string) {
	first := !r.checked
	r.checked = true
	h := s.health
	if result == healthOK {
		r.fails = 0
		r.passes++
		if h.down.Load() && r.passes >= hc.cfg.Rise {
			// The ramp starts before the shard is eligible, so that
			// no pick sees it back with its full share.
			hc.ejector.recovered(s, hc.now())
			h.down.Store(false)
			hc.logger.Info("upstream shard passed its health checks",
				slog.String("pool", hc.pool), slog.String("shard", s.name),
				slog.Int("checks", r.passes))
		}
		return
	}
	r.passes = 0
	r.fails++
	if !h.down.Load() && (r.fails >= hc.cfg.Fall || first) {
		h.down.Store(true)
		hc.logger.Warn("upstream shard failed its health checks",
			slog.String("pool", hc.pool), slog.String("shard", s.name),
			slog.String("reason", result), slog.String("error", detail),
			slog.Int("checks", r.fails))
	}
}

// healthChecks returns one shard's edged_upstream_health_checks_total
// series by result, every one created at zero so that rate() works from
// the first check; nil for a nil m.
func (m *Metrics) healthChecks(pool, shard string) map[string]prometheus.Counter {
	if m == nil {
		return nil
	}
	out := make(map[string]prometheus.Counter, len(healthResults))
	for _, r := range healthResults {
		out[r] = m.checks.WithLabelValues(pool, shard, r)
	}
	return out
}
