package cache

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"

	"github.com/edged-proxy/edged/storage"
)

// A flight is one origin fill and the single shape of every miss: the
// request that starts it (the leader), every request that joins it while it
// runs (waiters, and later arrivals while its body is still being written)
// and, once the head is known, one body that each of them reads with a
// cursor of its own.
//
// The body is one of:
//   - a memory buffer: the whole body, in head.Body;
//   - a disk object: an open storage.Object read with pread (the stored
//     entry a revalidation refreshed or served stale, or the re-check found);
//   - a disk stream: a fill being written to disk (read-while-write);
//   - a live origin response that may not be shared (private, Set-Cookie,
//     too large, ...): only the leader reads it; a waiter that finds the
//     flight not shareable with it fetches on its own, in a flight of one.
//
// A flight is counted: the table holds one reference while the flight is
// joinable, the fill one until it has published (a stream's pump one more
// until the body is written), and each request that started or joined it
// one until it closes its body or leaves. The disk object, stream
// writer or origin body is released with the last reference.
type flight struct {
	ready chan struct{} // closed by publish
	key   string        // where table holds it; table nil: a flight of one
	table *flightTable

	// Set once by publish, before ready closes; read-only after.
	head   *Entry // nil when err is set or the response is live
	shared bool   // others than the leader may read the body
	out    fillOutcome

	// The body's resource: set by the fill (under mu, before publish),
	// released with the last reference.
	mu     sync.Mutex
	refs   int
	obj    *storage.Object // disk object body
	stream *stream         // disk stream body
	live   io.ReadCloser   // live body (leader only); nil once taken or closed

	// With tracing on (Config.Tracer): the fill's span, set by the fill
	// before it publishes (a pointer, so that a flight without tracing
	// stays as small as before), and the requests that joined before the
	// head was published.
	span   *trace.SpanContext
	joined atomic.Int32
}

// fillOutcome is what a fill reports about itself to each of its readers.
type fillOutcome struct {
	err       error
	live      *http.Response // an unshared origin response (its head; Body in flight.live)
	hit       bool           // the re-check inside the flight found a usable entry
	stored    bool           // the fill stored what it fetched
	validated bool           // the head is the origin's answer to the leader (a new response, or a 304 for the stored one)
	fwdStatus int            // the origin's status code, when it answered
	detail    Detail         // stale-if-error when the stale entry is served
	notStored string         // why a live response was not stored
	upstream  string         // the origin server that answered
	peer      string         // the peer that answered instead (upstream without PeerPrefix)
}

// newFlight returns a flight holding its caller's reference.
func newFlight() *flight { return &flight{ready: make(chan struct{}), refs: 1} }

// publish makes the flight's head, body and outcome visible to its readers
// and drops the fill's reference, unless the fill goes on writing the body
// (a disk stream: the pump drops it when the body is complete).
//
// A flight that is complete leaves the table first, so that a request
// arriving after its readers were answered starts a fill of its own, never
// joins one that is over.
func (f *flight) publish(head *Entry, out fillOutcome) {
	f.head, f.out, f.shared = head, out, out.live == nil && out.err == nil
	if f.stream == nil && f.table != nil {
		f.table.remove(f.key, f)
	}
	close(f.ready)
	if f.stream == nil {
		f.release()
	}
}

// hold sets the body's resource (obj, stream or live) for the fill, under
// the lock: a request may leave, and release, while the fill runs.
func (f *flight) hold(set func()) {
	f.mu.Lock()
	set()
	f.mu.Unlock()
}

// published reports whether publish has run.
func (f *flight) published() bool {
	select {
	case <-f.ready:
		return true
	default:
		return false
	}
}

// wait blocks until the flight is published or ctx ends.
func (f *flight) wait(ctx context.Context) error {
	select {
	case <-f.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retain adds a reference (a request joining).
func (f *flight) retain() {
	f.mu.Lock()
	f.refs++
	f.mu.Unlock()
}

// release drops a reference; the last one releases the body's resources.
func (f *flight) release() {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0
	obj, st, live := f.obj, f.stream, f.live
	if last {
		f.obj, f.live = nil, nil
	}
	f.mu.Unlock()
	if !last {
		return
	}
	if obj != nil {
		obj.Close()
	}
	if live != nil {
		live.Close()
	}
	if st != nil {
		st.w.Close() // after Commit: closes the file; otherwise discards it
	}
}

// body returns a reader's Body over the published flight; its Close drops
// the reader's reference. It fails with ErrFillFailed when the stream the
// body comes from has already failed. The leader alone may read a live
// body.
func (f *flight) body() (Body, error) {
	switch {
	case f.stream != nil:
		if f.stream.failed() {
			f.release()
			return nil, ErrFillFailed
		}
		return &streamBody{s: f.stream, f: f}, nil
	case f.obj != nil:
		return &objBody{obj: f.obj, f: f}, nil
	case f.out.live != nil:
		f.mu.Lock()
		rc := f.live
		f.live = nil
		f.mu.Unlock()
		return &liveBody{rc: rc, size: f.out.live.ContentLength, f: f}, nil
	}
	b := (*memBody)(&f.head.Body)
	f.release() // bytes need no reference
	return b, nil
}

// leave drops the reference of a request that will not read the body (it
// left, or the flight cannot be shared with it). A live body nobody will
// read is closed at once.
func (f *flight) leave() { f.release() }

// flightTable holds the joinable flights by key: from the start of a fill
// until its head is published, and a disk stream's flight until its body is
// complete.
type flightTable struct {
	mu sync.Mutex
	m  map[string]*flight
}

// join returns the flight for key with a reference for the caller, starting
// a new one (led true: the caller must run it) when there is none.
func (t *flightTable) join(key string) (f *flight, led bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f = t.m[key]; f != nil {
		f.retain()
		return f, false
	}
	if t.m == nil {
		t.m = make(map[string]*flight)
	}
	f = newFlight()
	f.key, f.table = key, t
	f.refs++ // the table's
	t.m[key] = f
	return f, true
}

// lookup returns the flight for key with a reference for the caller, if
// one is joinable and already published (a later arrival).
func (t *flightTable) lookup(key string) *flight {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[key]
	if f == nil {
		return nil
	}
	if !f.published() {
		return nil
	}
	f.retain()
	return f
}

// add makes f joinable under another key too (a Vary variant's stored key),
// unless a flight is already there, and reports whether it did.
func (t *flightTable) add(key string, f *flight) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[key] != nil {
		return false
	}
	f.retain()
	t.m[key] = f
	return true
}

// remove stops f being joinable under key, dropping the table's reference.
func (t *flightTable) remove(key string, f *flight) {
	t.mu.Lock()
	ok := t.m[key] == f
	if ok {
		delete(t.m, key)
	}
	t.mu.Unlock()
	if ok {
		f.release()
	}
}
