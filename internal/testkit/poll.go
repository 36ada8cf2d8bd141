package testkit

import (
	"testing"
	"time"
)

// Poll calls cond until it returns true or timeout has passed, and reports
// whether it returned true. It starts checking at once and backs off from
// 1 ms to 20 ms between calls. Use it only for a condition that has no
// event to wait on, and where giving up is not a failure (a best-effort
// settle); otherwise use Eventually.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for !cond() {
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
	return true
}

// Eventually polls cond as Poll does and fails the test, naming what it
// waited for, when cond has not held within timeout. It must be called from
// the test's goroutine (it calls t.Fatalf).
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}
