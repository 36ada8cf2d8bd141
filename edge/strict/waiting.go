package strict

import "net"

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
	headClosed              // the connection was closed first
)

// firstHead records the connection's first complete head and tells the
// wrapped connection's HeadMarker. It reports false when the connection
// was closed first: the head is then not delivered.
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
