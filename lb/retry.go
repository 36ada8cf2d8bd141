package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// Retry configures how the Pool retries a request on the next shard in ring
// order after a try that may have reached the origin: the connection was
// reset or closed before any response, no response headers came within
// Config.ResponseHeaderTimeout (the per-try first-byte timeout), or (with
// OnStatus) the shard answered 502, 503 or 504. Only replayable requests are retried (see Pool.Do). The
// zero value retries at most twice, within a budget of 20% of requests over
// 10s plus 10 retries a second, the defaults of Finagle's RetryBudget.
//
// A try that could not connect (a DialError) reached no origin, so moving on
// from it neither counts against Max nor draws on the budget: a dial failure
// adds no load anywhere.
type Retry struct {
	// Max is the number of retries after tries that may have reached an
	// origin. Zero means 2; negative means none.
	Max int

	// OnStatus also retries a 502, 503 or 504 answer. The answer is
	// returned when no retry is allowed.
	OnStatus bool

	// BudgetPercent caps retries at this share of the pool's requests over
	// BudgetWindow, on top of the MinPerSecond floor. Zero means 20;
	// negative means 0 (only the floor); more than 100 is rejected.
	BudgetPercent int

	// BudgetWindow is the sliding window of the budget. Zero means 10s.
	BudgetWindow time.Duration

	// MinPerSecond is the floor of the budget: this many retries a second,
	// averaged over BudgetWindow, are allowed however few requests there
	// were, so a quiet pool can still retry. Zero means 10; negative means
	// 0.
	MinPerSecond int
}

// Retry defaults, applied by NewPool to zero fields.
const (
	defaultMaxRetries    = 2
	defaultBudgetPercent = 20
	defaultBudgetWindow  = 10 * time.Second
	defaultMinPerSecond  = 10
	// budgetSlots is how many slots the budget window is split into; the
	// window slides by one slot at a time.
	budgetSlots = 10
)

func (r *Retry) setDefaults() error {
	switch {
	case r.BudgetPercent > 100:
		return fmt.Errorf("lb: Retry.BudgetPercent %d is more than 100", r.BudgetPercent)
	case r.BudgetWindow < 0:
		return errors.New("lb: Retry.BudgetWindow is negative")
	}
	if r.Max == 0 {
		r.Max = defaultMaxRetries
	}
	r.Max = max(r.Max, 0)
	if r.BudgetPercent == 0 {
		r.BudgetPercent = defaultBudgetPercent
	}
	r.BudgetPercent = max(r.BudgetPercent, 0)
	if r.BudgetWindow == 0 {
		r.BudgetWindow = defaultBudgetWindow
	}
	if r.MinPerSecond == 0 {
		r.MinPerSecond = defaultMinPerSecond
	}
	r.MinPerSecond = max(r.MinPerSecond, 0)
	return nil
}

// Retry reasons, the "reason" label of edged_upstream_retries_total: the
// connect and reset reasons of outlier detection, and the status ones.
var retryReasons = []string{reasonConnect, reasonReset, reasonTimeout, reason502, reason503, reason504}

// retryReason says whether the outcome of one try allows another on the next
// shard, and why: "" when it does not. A dial failure always does; a reset
// or an early close before any response does, and so does a try's own
// timeout (Config.ResponseHeaderTimeout, the per-try time to first byte); a
// gateway status does when onStatus is set. Nothing does once the caller
// gave up or its deadline passed.
func retryReason(ctx context.Context, resp *http.Response, err error, onStatus bool) string {
	if ctx.Err() != nil {
		return ""
	}
	if err == nil {
		if !onStatus {
			return ""
		}
		switch resp.StatusCode {
		case http.StatusBadGateway:
			return reason502
		case http.StatusServiceUnavailable:
			return reason503
		case http.StatusGatewayTimeout:
			return reason504
		}
		return ""
	}
	if isDialError(err) {
		return reasonConnect
	}
	if isReset(err) {
		return reasonReset
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return reasonTimeout
	}
	return ""
}

// isReset reports whether err means the connection was reset or closed
// before a response arrived: the only transport errors, besides dial
// failures, after which another shard would likely answer. A TLS
// verification error, a malformed or too large response head are not.
func isReset(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE)
}

// retryBudget counts a pool's requests and retries over a sliding window of
// budgetSlots slots and allows a retry while retries stay within
// max(percent × requests, minPerSecond × window). A mutex guards it: a
// request takes it once, a retry once more.
type retryBudget struct {
	percent int
	floor   int64 // retries always allowed per window
	slot    int64 // nanoseconds per slot
	now     func() time.Time

	mu    sync.Mutex
	epoch [budgetSlots]int64 // slot number each entry counts for
	reqs  [budgetSlots]int64
	rets  [budgetSlots]int64
}

func newRetryBudget(r Retry, now func() time.Time) *retryBudget {
	return &retryBudget{
		percent: r.BudgetPercent,
		floor:   int64(float64(r.MinPerSecond) * r.BudgetWindow.Seconds()),
		slot:    max(int64(r.BudgetWindow)/budgetSlots, 1),
		now:     now,
	}
}

// current returns the index of now's slot, clearing it if it last counted
// for an older slot. b.mu must be held.
func (b *retryBudget) current() (int, int64) {
	n := b.now().UnixNano() / b.slot
	i := int(n % budgetSlots)
	if i < 0 {
		i += budgetSlots
	}
	if b.epoch[i] != n {
		b.epoch[i], b.reqs[i], b.rets[i] = n, 0, 0
	}
	return i, n
}

// request counts one request (its first try).
func (b *retryBudget) request() {
	b.mu.Lock()
	i, _ := b.current()
	b.reqs[i]++
	b.mu.Unlock()
}

// withdraw counts one retry and reports true if the budget allows it; it
// counts nothing and reports false otherwise.
func (b *retryBudget) withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, n := b.current()
	var reqs, rets int64
	for j := range budgetSlots {
		if b.epoch[j] > n-budgetSlots {
			reqs += b.reqs[j]
			rets += b.rets[j]
		}
	}
	if rets >= max(reqs*int64(b.percent)/100, b.floor) {
		return false
	}
	b.rets[i]++
	return true
}
