package testkit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// AwaitTimeout is how long Origin.Await waits before failing the test.
const AwaitTimeout = 10 * time.Second

// Origin is a test origin: an httptest.Server on 127.0.0.1 that counts and
// records every request before passing it to the test's handler, closes
// channels as requests arrive, and can hold requests in flight until the
// test releases them. Its methods are safe from any goroutine.
type Origin struct {
	*httptest.Server

	total    atomic.Int64
	inFlight atomic.Int64

	mu      sync.Mutex
	hits    map[string]int
	reqs    []*http.Request
	waiters []arrival
	gate    *Gate // non-nil while held
}

// arrival is a channel to close once path (any path when "") has n requests.
type arrival struct {
	path string
	n    int
	ch   chan struct{}
}

type seqKey struct{}

// NewOrigin starts an Origin serving h (nil answers 200 with an empty
// body) and closes it when t ends.
func NewOrigin(t testing.TB, h http.Handler) *Origin {
	t.Helper()
	if h == nil {
		h = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	}
	o := &Origin{hits: map[string]int{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.inFlight.Add(1)
		defer o.inFlight.Add(-1)
		n, gate := o.arrive(r)
		if gate != nil && !gate.Wait(r.Context()) {
			return // the client gave up while the request was held
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), seqKey{}, n)))
	}))
	t.Cleanup(o.Close)
	// Registered after Close, so it runs first: held handlers end before
	// Close waits for them.
	t.Cleanup(o.Release)
	return o
}

// arrive counts and records r, closes the channels it satisfies, and
// returns r's number for its path and the gate to wait on, if any.
func (o *Origin) arrive(r *http.Request) (int, *Gate) {
	rec := r.Clone(context.Background())
	rec.Body = http.NoBody
	o.total.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hits[r.URL.Path]++
	n := o.hits[r.URL.Path]
	o.reqs = append(o.reqs, rec)
	kept := o.waiters[:0]
	for _, a := range o.waiters {
		if o.reached(a.path, a.n) {
			close(a.ch)
		} else {
			kept = append(kept, a)
		}
	}
	clear(o.waiters[len(kept):])
	o.waiters = kept
	return n, o.gate
}

// reached reports whether path (any path when "") has n requests; o.mu held.
func (o *Origin) reached(path string, n int) bool {
	if path == "" {
		return o.total.Load() >= int64(n)
	}
	return o.hits[path] >= n
}

// RequestNumber returns the 1-based number of r among the requests the
// Origin received for r's path, counted on arrival, or 0 if r did not come
// through an Origin. Handlers use it to answer the first request one way
// and later ones another.
func RequestNumber(r *http.Request) int {
	n, _ := r.Context().Value(seqKey{}).(int)
	return n
}

// Hits returns how many requests arrived for path (the URL path, without
// the query).
func (o *Origin) Hits(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[path]
}

// Total returns how many requests arrived, for any path.
func (o *Origin) Total() int { return int(o.total.Load()) }

// InFlight returns how many requests are being handled (held ones
// included).
func (o *Origin) InFlight() int { return int(o.inFlight.Load()) }

// Requests returns copies of the requests that arrived for path (any path
// when ""), oldest first. Their bodies are http.NoBody.
func (o *Origin) Requests(path string) []*http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*http.Request
	for _, r := range o.reqs {
		if path == "" || r.URL.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// Last returns a copy of the last request that arrived, for any path, or
// nil if none did.
func (o *Origin) Last() *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.reqs) == 0 {
		return nil
	}
	return o.reqs[len(o.reqs)-1]
}

// Arrived returns a channel that is closed once n requests have arrived for
// path (for any path when path is ""). A request counts on arrival, before
// it is held or handled, so the channel closing means the request is in the
// origin, not that it was answered.
func (o *Origin) Arrived(path string, n int) <-chan struct{} {
	ch := make(chan struct{})
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.reached(path, n) {
		close(ch)
	} else {
		o.waiters = append(o.waiters, arrival{path, n, ch})
	}
	return ch
}

// Await blocks until n requests have arrived for path (any path when ""),
// and fails the test after AwaitTimeout. Call it from the test's goroutine.
func (o *Origin) Await(t testing.TB, path string, n int) {
	t.Helper()
	select {
	case <-o.Arrived(path, n):
	case <-time.After(AwaitTimeout):
		got := o.Hits(path)
		if path == "" {
			got = o.Total()
		}
		t.Fatalf("origin: %d requests for %q after %v, want %d", got, path, AwaitTimeout, n)
	}
}

// Hold makes requests that arrive from now on wait, counted but unanswered,
// until Release or until their client gives up; a fill can so be kept in
// flight for as long as a test needs. Holding twice is the same as once.
func (o *Origin) Hold() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gate == nil {
		o.gate = &Gate{ch: make(chan struct{})}
	}
}

// Release lets every held request through; later requests are not held.
// The test's cleanup releases too.
func (o *Origin) Release() {
	o.mu.Lock()
	g := o.gate
	o.gate = nil
	o.mu.Unlock()
	if g != nil {
		g.Open()
	}
}
