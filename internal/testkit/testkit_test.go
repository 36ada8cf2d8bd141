package testkit_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/internal/testkit"
)

// fakeT records a failure instead of ending the test, so that the helpers'
// failure paths can be checked.
type fakeT struct {
	testing.TB
	failed atomic.Bool
	msg    atomic.Value
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed.Store(true)
	f.msg.Store(format)
	panic(f) // stands in for runtime.Goexit
}

// fails runs fn with a fakeT and reports whether fn failed it.
func fails(t *testing.T, fn func(testing.TB)) bool {
	f := &fakeT{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != any(f) {
				panic(r)
			}
		}()
		fn(f)
	}()
	return f.failed.Load()
}

func TestPoll(t *testing.T) {
	n := 0
	if !testkit.Poll(5*time.Second, func() bool { n++; return n == 5 }) || n != 5 {
		t.Fatalf("Poll stopped after %d calls", n)
	}
	start := time.Now()
	if testkit.Poll(30*time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll reported a condition that never held")
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("Poll gave up after %v, before its timeout", d)
	}
}

func TestEventually(t *testing.T) {
	var v atomic.Bool
	go func() { v.Store(true) }()
	if fails(t, func(tb testing.TB) { testkit.Eventually(tb, 5*time.Second, v.Load, "v") }) {
		t.Fatal("Eventually failed although the condition came true")
	}
	if !fails(t, func(tb testing.TB) {
		testkit.Eventually(tb, 10*time.Millisecond, func() bool { return false }, "never")
	}) {
		t.Fatal("Eventually did not fail on a condition that never held")
	}
}

func TestGate(t *testing.T) {
	g := testkit.NewGate(t)
	select {
	case <-g.Opened():
		t.Fatal("a new gate is open")
	default:
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if g.Wait(ctx) {
		t.Fatal("Wait passed a closed gate")
	}
	passed := make(chan bool)
	go func() { passed <- g.Wait(context.Background()) }()
	g.Open()
	g.Open()
	if !<-passed {
		t.Fatal("Wait reported false after Open")
	}
	if !g.Wait(ctx) {
		t.Fatal("an open gate held a waiter whose context had ended")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestOriginCounts(t *testing.T) {
	o := testkit.NewOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path+" #"+strconv.Itoa(testkit.RequestNumber(r)))
	}))
	if o.Last() != nil {
		t.Fatal("Last before any request")
	}
	arrivedB := o.Arrived("/b", 1)
	for _, p := range []string{"/a", "/a?x=1", "/b"} {
		get(t, o.URL+p)
	}
	select {
	case <-arrivedB:
	default:
		t.Error("Arrived(/b, 1) not closed after the request for /b")
	}
	select {
	case <-o.Arrived("/a", 3):
		t.Error("Arrived(/a, 3) closed after two requests")
	default:
	}
	<-o.Arrived("", 3) // already true: closed at once
	if got := get(t, o.URL+"/a"); got != "/a #3" {
		t.Errorf("third /a answered %q, want its number 3", got)
	}
	o.Await(t, "/a", 3)
	if o.Hits("/a") != 3 || o.Hits("/b") != 1 || o.Hits("/c") != 0 || o.Total() != 4 {
		t.Errorf("hits /a %d /b %d /c %d total %d", o.Hits("/a"), o.Hits("/b"), o.Hits("/c"), o.Total())
	}
	if rs := o.Requests("/a"); len(rs) != 3 || rs[1].URL.RawQuery != "x=1" {
		t.Errorf("Requests(/a) = %v", rs)
	}
	if n := len(o.Requests("")); n != 4 {
		t.Errorf("Requests(\"\") has %d, want 4", n)
	}
	if r := o.Last(); r.URL.Path != "/a" || r.Body != http.NoBody {
		t.Errorf("Last = %v", r)
	}
	if testkit.RequestNumber(o.Last()) != 0 {
		t.Error("a recorded request has a number")
	}
}

func TestOriginHold(t *testing.T) {
	var released atomic.Bool
	o := testkit.NewOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !released.Load() {
			t.Error("a held request was handled before Release")
		}
		io.WriteString(w, "ok")
	}))
	o.Hold()
	o.Hold()
	done := make(chan string, 2)
	for range 2 {
		go func() { done <- get(t, o.URL+"/held") }()
	}
	o.Await(t, "/held", 2)
	if n := o.InFlight(); n != 2 {
		t.Errorf("InFlight = %d with two requests held", n)
	}
	released.Store(true)
	o.Release()
	for range 2 {
		if got := <-done; got != "ok" {
			t.Errorf("held request answered %q", got)
		}
	}
	if got := get(t, o.URL+"/after"); got != "ok" {
		t.Errorf("request after Release answered %q", got)
	}
}

// A held request whose client gives up ends without reaching the handler.
func TestOriginHoldClientGivesUp(t *testing.T) {
	o := testkit.NewOrigin(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the handler ran for a request whose client gave up")
	}))
	o.Hold()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", o.URL+"/gone", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	o.Await(t, "/gone", 1)
	cancel()
	if err := <-errc; err == nil {
		t.Error("the cancelled request succeeded")
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return o.InFlight() == 0 }, "the held handler to end")
}

// The test's cleanup releases held requests before it closes the server,
// which waits for them: a test that forgets Release still ends.
func TestOriginCleanupReleases(t *testing.T) {
	outer := t
	done := make(chan string, 1)
	t.Run("forgets", func(t *testing.T) {
		o := testkit.NewOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "late")
		}))
		o.Hold()
		go func() { done <- get(outer, o.URL+"/x") }()
		o.Await(t, "/x", 1)
	})
	if got := <-done; got != "late" {
		t.Errorf("held request answered %q after cleanup", got)
	}
}

func TestMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "things_total", Help: "h"}, []string{"kind", "outcome"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "took_seconds", Help: "h"})
	reg.MustRegister(c, h)
	c.WithLabelValues("a", "ok").Add(3)
	c.WithLabelValues("b", "ok").Inc()
	h.Observe(1)
	h.Observe(2)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
		found  bool
	}{
		{"things_total", []string{"kind", "a", "outcome", "ok"}, 3, true},
		{"things_total", []string{"kind", "b"}, 1, true},
		{"things_total", []string{"kind", "c"}, 0, false},
		{"took_seconds", nil, 2, true},
		{"absent_total", nil, 0, false},
	} {
		if v, found := testkit.Metric(t, reg, tc.name, tc.labels...); v != tc.want || found != tc.found {
			t.Errorf("Metric(%s, %q) = %v, %v; want %v, %v", tc.name, tc.labels, v, found, tc.want, tc.found)
		}
	}
	// A selector matching two series is an error, not the first one.
	if !fails(t, func(tb testing.TB) { testkit.Metric(tb, reg, "things_total", "outcome", "ok") }) {
		t.Error("an ambiguous selector did not fail the test")
	}
}

// RefusedAddr refuses connections, and keeps the port: a listener cannot
// be opened on it, which a closed listener's port would allow.
func TestRefusedAddr(t *testing.T) {
	addr := testkit.RefusedAddr(t)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("a connection to %s was accepted", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %s: %v, want connection refused", addr, err)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Errorf("a listener was opened on %s while it is held", addr)
	}
}
