package edge

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/edged-proxy/edged/edge/strict"
)

// ListenTLS terminates TLS on ln's connections and puts the strict HTTP/1
// reader in front of net/http for those that negotiate HTTP/1.x, as Listen
// does for cleartext ones. Connections that negotiate HTTP/2 go to net/http
// as *tls.Conn (its HTTP/2 server parses frames itself). Each handshake runs
// in its own goroutine, bounded by handshakeTimeout (zero: 10 s), so a slow
// client cannot hold up the others; a client that sends nothing at all is
// closed sooner, at sc.FirstByteTimeout when that is shorter. Serve the
// result with a server from NewServer: it restores Request.TLS for the
// wrapped connections.
func ListenTLS(ln net.Listener, cfg *tls.Config, sc StrictConfig, handshakeTimeout time.Duration) net.Listener {
	return listenTLS(ln, cfg, handshakeTimeout, sc.FirstByteTimeout, func(c *tls.Conn) net.Conn { return strict.WrapConn(c, sc) })
}

// listenTLS terminates TLS as ListenTLS does; wrapHTTP1, when set, wraps
// the connections that did not negotiate HTTP/2.
func listenTLS(ln net.Listener, cfg *tls.Config, handshakeTimeout, firstByte time.Duration, wrapHTTP1 func(*tls.Conn) net.Conn) net.Listener {
	if handshakeTimeout <= 0 {
		handshakeTimeout = 10 * time.Second
	}
	if firstByte >= handshakeTimeout {
		firstByte = 0
	}
	l := &tlsListener{handoff: newHandoff(ln), cfg: cfg, wrap: wrapHTTP1, timeout: handshakeTimeout, firstByte: firstByte}
	go l.run()
	return l
}

type tlsListener struct {
	handoff
	cfg     *tls.Config
	wrap    func(*tls.Conn) net.Conn
	timeout time.Duration
	// firstByte, when set, bounds the wait for the handshake's first byte
	// (shorter than timeout).
	firstByte time.Duration
}

func (l *tlsListener) run() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			l.fail(err)
			return
		}
		go l.handshake(c)
	}
}

func (l *tlsListener) handshake(c net.Conn) {
	conn := c
	if l.firstByte > 0 {
		c.SetReadDeadline(time.Now().Add(l.firstByte))
		conn = &firstByteConn{Conn: c}
	}
	tc := tls.Server(conn, l.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return
	}
	var out net.Conn = tc
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		// HTTP/2 frames never pass an HTTP/1 head parser: the connection
		// counts as having sent a request head (ConnLimits).
		if m := strict.HeadMarkerOf(c); m != nil {
			m.MarkHead()
		}
	} else if l.wrap != nil {
		out = l.wrap(tc)
	}
	l.deliver(out)
}

// firstByteConn lifts the first-byte read deadline when its first byte
// arrives; the handshake's own bound (a context) covers the rest.
type firstByteConn struct {
	net.Conn
	got bool // read by the handshake's goroutine, then by the server's
}

func (c *firstByteConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.got {
		c.got = true
		c.Conn.SetReadDeadline(time.Time{})
	}
	return n, err
}

// NetConn returns the wrapped connection (strict.HeadMarkerOf looks
// through it).
func (c *firstByteConn) NetConn() net.Conn { return c.Conn }

type connInfoKey struct{}

// connInfo is what the edge keeps per client connection, in the
// connection's context.
type connInfo struct {
	// tls is the TLS state of an HTTP/1 connection that the strict reader
	// wraps (net/http sees no *tls.Conn for it), so that ServeHTTP can
	// restore Request.TLS.
	tls *tls.ConnectionState
	// writeDeadline is the write deadline last set on an HTTP/1
	// connection, in Unix nanoseconds (see responseWriter.armWriteDeadline).
	writeDeadline atomic.Int64
	// gather is the strict reader of a cleartext HTTP/1 connection, whose
	// Gather sends a response head and a large body in one writev (nil
	// for TLS and when the reader is off).
	gather *strict.Conn
	// peer marks a connection of a peer listener (ServerConfig.Peer):
	// its requests are other nodes' peer fetches.
	peer bool
}

// connContext gives every connection its connInfo.
func connContext(ctx context.Context, c net.Conn) context.Context {
	ci := &connInfo{}
	if sc, ok := c.(*strict.Conn); ok {
		if tc, ok := sc.Conn.(*tls.Conn); ok {
			st := tc.ConnectionState()
			ci.tls = &st
		} else {
			ci.gather = sc
		}
	}
	return context.WithValue(ctx, connInfoKey{}, ci)
}

// peerConnContext is connContext for a peer listener's connections.
func peerConnContext(ctx context.Context, c net.Conn) context.Context {
	ctx = connContext(ctx, c)
	ctx.Value(connInfoKey{}).(*connInfo).peer = true
	return ctx
}

// contextFor is the ConnContext of a server: peerConnContext for a peer
// listener's.
func contextFor(peer bool) func(context.Context, net.Conn) context.Context {
	if peer {
		return peerConnContext
	}
	return connContext
}

// connOf returns the connInfo of r's connection, or nil when r did not
// come through a server from NewServer.
func connOf(r *http.Request) *connInfo {
	ci, _ := r.Context().Value(connInfoKey{}).(*connInfo)
	return ci
}

// restoreTLS sets r.TLS for requests that arrived over a wrapped TLS
// connection.
func restoreTLS(r *http.Request, ci *connInfo) {
	if r.TLS == nil && ci != nil && ci.tls != nil {
		r.TLS = ci.tls
	}
}
