package strict

import (
	"net"
	"time"
)

// HeadMarker is an optional interface of the connection an HTTP/1 server
// reads from: the server calls MarkHead once it has read the connection's
// first complete request head (or the HTTP/2 prior-knowledge preface it
// hands on), so that a layer below the server learns which connections
// have sent a request and which are still waiting to. edged's connection
// limiter implements it: a connection that has sent no head yet may be
// closed to make room for a newer one from the same address.
//
// A Conn calls it for the connection it wraps, and so does edged's HTTP/1
// loop (edge/h1); both find it with HeadMarkerOf.
type HeadMarker interface {
	// MarkHead is called from the goroutine reading the connection, once,
	// before the request is served. It must not block.
	MarkHead()
}

// HeadMarkerOf returns the HeadMarker of c, or of the connection c wraps
// (followed through NetConn methods, as *tls.Conn and Conn have), or nil
// when there is none.
func HeadMarkerOf(c net.Conn) HeadMarker {
	for c != nil {
		if m, ok := c.(HeadMarker); ok {
			return m
		}
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = w.NetConn()
	}
	return nil
}

// The states of Conn.first: whether a request head has come.
const (
	headNone   int32 = iota // no complete head yet
	headRead                // the first head was validated
	headClosed              // CloseWaiting closed the connection first
)

// firstHead records the connection's first complete head and tells the
// wrapped connection's HeadMarker. It reports false when CloseWaiting
// closed the connection first: the head is then not delivered.
func (c *Conn) firstHead() bool {
	if c.first.Load() == headRead {
		return true
	}
	if !c.first.CompareAndSwap(headNone, headRead) {
		return false
	}
	if c.marker != nil {
		c.marker.MarkHead()
	}
	return true
}

// CloseWaiting closes the connection if no request head has been read
// from it within ShutdownGrace, and reports false when one has been read
// already. A head completing within the grace is delivered and served as
// usual; one completing later is not. It is how a server shutting down
// ends the connections that have not begun a request (net/http waits up
// to 5 s for them) without resetting one whose first request is on its
// way (closing a socket with unread bytes resets it, and the client cannot
// tell whether its request was served). It never cuts a request the
// server already has. It is safe to call from any goroutine.
func (c *Conn) CloseWaiting() bool {
	if c.first.Load() != headNone {
		return false
	}
	time.AfterFunc(ShutdownGrace, func() {
		if c.first.CompareAndSwap(headNone, headClosed) {
			// The socket alone: its server's read fails and the server
			// then calls Close, whose linger after a rejection must not
			// hold the timer.
			c.Conn.Close()
		}
	})
	return true
}

// ShutdownGrace is how long a server shutting down waits for the first
// request of a connection that has sent none (CloseWaiting), and edged's
// HTTP/1 loop for the next request of a waiting keep-alive connection.
var ShutdownGrace = 50 * time.Millisecond

// armFirstByte starts Config.FirstByteTimeout: until the first byte
// arrives, the read deadline is the earlier of the one the server sets and
// the first-byte deadline.
func (c *Conn) armFirstByte() {
	if c.cfg.FirstByteTimeout <= 0 {
		return
	}
	dl := time.Now().Add(c.cfg.FirstByteTimeout)
	c.firstByteBy.Store(dl.UnixNano())
	c.Conn.SetReadDeadline(dl)
}

// SetReadDeadline implements net.Conn. Until the connection's first byte
// arrives it keeps the first-byte deadline if that is earlier; the
// server's deadline applies from the first byte on.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if by := c.firstByteBy.Load(); by != 0 {
		c.askedBy.Store(unixNano(t))
		if t.IsZero() || t.UnixNano() > by {
			t = time.Unix(0, by)
		}
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline implements net.Conn, as SetReadDeadline and
// SetWriteDeadline do.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.firstByteBy.Load() == 0 {
		return c.Conn.SetDeadline(t)
	}
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// gotFirstByte lifts the first-byte deadline once input arrived: the
// server's own deadline (its header timeout) bounds the rest of the head.
// Until the first request, only the goroutine reading sets deadlines (as
// net/http does), so this does not race with SetReadDeadline.
func (c *Conn) gotFirstByte() {
	if c.firstByteBy.Load() == 0 {
		return
	}
	c.firstByteBy.Store(0)
	asked := c.askedBy.Load()
	if asked == 0 {
		c.Conn.SetReadDeadline(time.Time{})
		return
	}
	c.Conn.SetReadDeadline(time.Unix(0, asked))
}

// unixNano is t in Unix nanoseconds, 0 for the zero time (no deadline).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
