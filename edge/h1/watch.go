package h1

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// requestContext is a request's context, under the connection's
// (Server.ConnContext). As net/http's, it is cancelled when the client
// goes away (the connection reads EOF or fails once the body is read),
// when a write to the connection fails, and when the handler returns.
// Unlike net/http's, watching the connection costs nothing until someone
// asks: the first Done (context.WithCancel and WithTimeout call it on
// their parent, so a fill sent to the origin does) makes the cancellation
// channel and starts one read of the connection, a watcher, once the body
// is read to its end. A request that never calls Done (a cache hit on the
// general path) starts no goroutine and makes no channel.
//
// Err reports the cancellation from a failed read or write of the body or
// response, the handler's end or the connection's context, whether or not
// Done was called, but only a watcher sees a client that is gone while the
// handler writes nothing: poll with Done, not Err.
//
// The watcher reads into the free room of the connection's buffer: bytes
// it gets are the next (pipelined) request and stay there, and do not
// cancel. While it runs nothing else reads the connection: it starts only
// after the body's end, and Hijack and the handler's return stop it first
// (a read deadline in the past, as net/http's abortPendingRead).
type requestContext struct {
	c         *conn
	parent    context.Context // the connection's (Server.ConnContext)
	made      atomic.Bool     // inner exists: Done was called
	cancelled atomic.Bool
	inner     context.Context // a cancelCtx under parent, so contexts derived from this one attach to it
	cancelIn  context.CancelFunc

	mu       sync.Mutex    // guards the fields below and the making of inner
	ready    bool          // the body is read to its end, or there is none
	ended    bool          // the handler returned or hijacked: never watch again
	watched  bool          // the one watch of this request was considered
	stopping bool          // end is stopping the watcher with a past deadline
	stop     chan struct{} // closed when the watcher returns; nil when none runs
	delay    *time.Timer   // the watcher's start, while it waits (watchDelay)
}

// watchDelay is how long a request waits, once it asked for Done and its
// body is read, before the watcher starts. Most requests that ask (a cache
// miss waiting on its fill) are answered well within it, and then no
// goroutine, read or deadline is spent on a client that did not leave;
// one that waits longer (a slow origin, a long poll) notices a client that
// left at most this late, which is nothing against the wait it frees.
const watchDelay = 50 * time.Millisecond

var _ context.Context = (*requestContext)(nil)

// aLongTimeAgo is a read deadline that makes a pending read return at once.
var aLongTimeAgo = time.Unix(1, 0)

func (x *requestContext) Deadline() (time.Time, bool) { return x.parent.Deadline() }

// Done returns the channel closed on cancellation, making it (and starting
// the watcher, when the body is read) on the first call.
func (x *requestContext) Done() <-chan struct{} {
	if x.made.Load() {
		return x.inner.Done()
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.made.Load() {
		x.inner, x.cancelIn = context.WithCancel(x.parent)
		if x.cancelled.Load() {
			x.cancelIn()
		}
		x.made.Store(true)
		x.watchLocked()
	}
	return x.inner.Done()
}

func (x *requestContext) Err() error {
	if x.made.Load() {
		return x.inner.Err()
	}
	if x.cancelled.Load() {
		return context.Canceled
	}
	return x.parent.Err()
}

// Value returns the connection context's values (and, once Done made
// inner, answers the context package's own question for the cancelCtx
// that derived contexts attach to).
func (x *requestContext) Value(key any) any {
	if x.made.Load() {
		return x.inner.Value(key)
	}
	return x.parent.Value(key)
}

func (x *requestContext) String() string { return "h1.requestContext" }

// cancel cancels the context: the connection failed, or the request is over.
func (x *requestContext) cancel() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.cancelled.Store(true)
	if x.made.Load() {
		x.cancelIn()
	}
}

// bodyDone records that the body is read to its end: the connection may
// be watched.
func (x *requestContext) bodyDone() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.ready = true
	x.watchLocked()
}

// watchLocked starts the watcher if Done was called, the body is read and
// the request is not over, once per request. When the buffer already holds
// bytes past the body (the next request), the client is there: nothing to
// watch. x.mu must be held.
func (x *requestContext) watchLocked() {
	if !x.made.Load() || !x.ready || x.ended || x.watched || x.cancelled.Load() {
		return
	}
	x.watched = true
	if d := x.c.s.watchDelay(); d > 0 {
		x.delay = time.AfterFunc(d, x.delayed)
		return
	}
	x.startLocked()
}

// delayed starts the watcher when its delay ran out, unless the request
// ended or was cancelled meanwhile.
func (x *requestContext) delayed() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.delay == nil || x.cancelled.Load() { // nil: sealed meanwhile
		return
	}
	x.delay = nil
	x.startLocked()
}

// startLocked starts the watcher. x.mu must be held.
func (x *requestContext) startLocked() {
	c := x.c
	if c.r < c.w {
		return
	}
	c.r, c.w = 0, 0 // the watcher's read has the whole buffer
	x.stop = make(chan struct{})
	c.nc.SetReadDeadline(time.Time{})
	if c.s.onWatch != nil {
		c.s.onWatch()
	}
	go x.watch(x.stop)
}

// watch reads the connection once: bytes are kept for the next request, an
// error (but the deadline end sets to stop it) cancels the context.
func (x *requestContext) watch(stop chan struct{}) {
	defer close(stop)
	c := x.c
	n, err := c.nc.Read(c.raw[c.w:])
	c.w += n
	if c.s.onWatchRead != nil {
		c.s.onWatchRead(n, err)
	}
	if err == nil {
		return
	}
	x.mu.Lock()
	stopped := x.stopping
	x.mu.Unlock()
	if stopped && errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	x.cancel()
}

// seal ends the request for watching: no watcher starts after it (a Done
// from another goroutine once the handler returned), while one already
// running goes on until end. It is called when the handler returns, before
// the response's last bytes are written.
func (x *requestContext) seal() {
	x.mu.Lock()
	x.sealLocked()
	x.mu.Unlock()
}

// sealLocked is seal with x.mu held.
func (x *requestContext) sealLocked() {
	x.ended = true
	if x.delay != nil {
		x.delay.Stop() // a start that fired meanwhile finds delay nil
		x.delay = nil
	}
}

// end stops watching for good, waiting for a running watcher to return:
// then the connection and its buffer are the caller's again, with no read
// deadline. It is called when the handler returns or hijacks.
func (x *requestContext) end() {
	x.mu.Lock()
	x.sealLocked()
	stop := x.stop
	x.stop = nil
	x.stopping = stop != nil
	x.mu.Unlock()
	if stop == nil {
		return
	}
	select {
	case <-stop: // it read the next request, or the connection failed
	default:
		x.c.nc.SetReadDeadline(aLongTimeAgo)
		<-stop
		x.c.nc.SetReadDeadline(time.Time{})
	}
}
