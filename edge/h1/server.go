package h1

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-proxy/edged/edge/strict"
)

// Server serves HTTP/1 on the connections of a listener. The zero value of
// every field but Handler is usable.
type Server struct {
	// Handler answers every request. Required.
	Handler http.Handler
	// Strict holds the request-head limits (strict.Config). Zero values
	// are strict's defaults.
	Strict strict.Config
	// ReadHeaderTimeout bounds reading one request head; IdleTimeout the
	// wait for the next request on a keep-alive connection. Zero means
	// 10 s and 120 s.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// ReadTimeout bounds reading a request's body, from the end of its
	// head; zero means no limit.
	ReadTimeout time.Duration
	// Logger receives handler panics. Nil discards.
	Logger *slog.Logger
	// ConnContext, when set, returns the context of a new connection, which
	// the contexts of its requests derive from (as http.Server's).
	ConnContext func(context.Context, net.Conn) context.Context
	// HTTP2, when set, takes over the connections that speak HTTP/2: TLS
	// connections whose ALPN chose h2, and cleartext ones that open with
	// the prior-knowledge preface when Strict.AllowH2C is set. The
	// connection it gets replays what the loop already read. Without it
	// the preface is refused with 505 and an h2 TLS connection is closed.
	HTTP2 func(net.Conn)
	// Fast, when set, is offered every request without a body before the
	// Handler (see Fast).
	Fast Fast
	// Unused, when set, is called once for each connection that ends
	// without having carried a request (idle or slow clients, scanners,
	// heads the strict rules refuse).
	Unused func()

	// Test hooks: a request's context starts watching its connection; the
	// watcher's read returned; the watcher's delay (watchDelay when zero,
	// none when negative).
	onWatch     func()
	onWatchRead func(n int, err error)
	watchAfter  time.Duration

	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*conn]struct{}
	shutting atomic.Bool
}

// watchDelay is the watcher's delay (watch.go's watchDelay unless a test
// set watchAfter).
func (s *Server) watchDelay() time.Duration {
	switch {
	case s.watchAfter > 0:
		return s.watchAfter
	case s.watchAfter < 0:
		return 0
	}
	return watchDelay
}

const (
	readBufSize  = 4 << 10
	writeBufSize = 4 << 10
	// maxDrain is how much of an unread request body is read and dropped
	// to keep the connection; beyond it the connection is closed.
	maxDrain = 256 << 10
)

// Serve accepts connections on ln and serves each on its own goroutine
// until ln fails (then it returns that error) or Shutdown closes it (then
// http.ErrServerClosed).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.lns == nil {
		s.lns = make(map[net.Listener]struct{})
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			return err
		}
		go s.serveConn(c)
	}
}

// Shutdown stops the server gracefully: it closes the listeners, closes
// connections waiting for a request, lets those serving one finish (their
// response says Connection: close) and returns when none is left, or with
// ctx's error when ctx ends first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.mu.Lock()
	for ln := range s.lns {
		ln.Close()
	}
	s.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection at once (hijacked ones
// are their handler's).
func (s *Server) Close() error {
	s.shutting.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.nc.Close()
		delete(s.conns, c)
	}
	return nil
}

// closeIdle ends the connections waiting for a request and returns how
// many connections are left. It does not close them outright: a request
// may be on its way (a client reusing a keep-alive connection, or a new
// connection's first request), and closing a socket with unread bytes
// resets it, which the client cannot retry. Each gets its read deadline
// moved to shutdownGrace from now instead: a request that arrives by then
// is answered (with Connection: close), and the connection ends when the
// deadline passes without one. Connections serving a request finish it.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.Load() == stateIdle && c.nudged.CompareAndSwap(false, true) {
			c.nc.SetReadDeadline(time.Now().Add(shutdownGrace))
		}
	}
	return len(s.conns)
}

// shutdownGrace is how long Shutdown waits for a request on a connection
// that is waiting for one: the strict reader's, for both servers alike.
var shutdownGrace = strict.ShutdownGrace // a variable for the tests

// track adds c to the server's connections, or removes it (gone).
func (s *Server) track(c *conn, gone bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	if gone {
		delete(s.conns, c)
		return
	}
	s.conns[c] = struct{}{}
}

// The states of a connection (conn.state). Shutdown closes idle ones; a
// request that starts arriving makes its connection active unless
// Shutdown closed it first. Atomic, so a request costs no lock.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

// activate marks c as serving a request, reporting false when Shutdown
// already closed it.
func (c *conn) activate() bool {
	return c.state.Load() == stateActive || c.state.CompareAndSwap(stateIdle, stateActive)
}

// conn is one client connection: its read buffer (raw[r:w] unconsumed)
// and its buffered writer.
type conn struct {
	s    *Server
	nc   net.Conn
	ctx  context.Context // the connection's (Server.ConnContext)
	raw  []byte
	r, w int
	bw   *bufio.Writer
	head strict.Head
	// body is the current request's body; nil when it has none.
	body *body
	// hijacked: a handler took the connection over; it is theirs to close.
	hijacked bool
	fast     FastWriter
	clientIP string // FastWriter.ClientIP's, once computed
	state    atomic.Int32
	nudged   atomic.Bool // Shutdown moved the read deadline to its grace
	// rdl is the read deadline readHead last set, in Unix nanoseconds; 0
	// when unknown (a request's body, the context watcher or a handler
	// may have moved it).
	rdl int64
}

func (s *Server) serveConn(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok && s.HTTP2 != nil && tc.ConnectionState().NegotiatedProtocol == "h2" {
		s.HTTP2(nc)
		return
	}
	c := &conn{s: s, nc: nc, ctx: context.Background(), raw: make([]byte, readBufSize), bw: bufio.NewWriterSize(nc, writeBufSize)}
	if s.ConnContext != nil {
		c.ctx = s.ConnContext(c.ctx, nc)
	}
	s.track(c, false)
	served := false
	mark := strict.HeadMarkerOf(nc) // told of the first head (the connection limiter's)
	defer func() {
		s.track(c, true)
		if !served && !c.hijacked && s.Unused != nil {
			s.Unused()
		}
		if !c.hijacked {
			nc.Close()
		}
	}()
	for first := true; ; first = false {
		// (While shutting down, every response closes its connection, so
		// a connection comes back here only for its first request, which
		// readHead waits for within shutdownGrace.)
		if err := c.readHead(first); err != nil {
			if first && errors.Is(err, strict.ErrPreface) && s.HTTP2 != nil && s.Strict.AllowH2C {
				if mark != nil {
					mark.MarkHead()
				}
				c.hijacked = true
				s.HTTP2(&replayConn{Conn: nc, buf: bytes.Clone(c.raw[c.r:c.w])})
				return
			}
			c.refuse(err)
			return
		}
		if !served {
			served = true
			if mark != nil {
				mark.MarkHead()
			}
		}
		if !c.activate() { // (a pipelined head arrives without a read)
			return
		}
		if s.Fast != nil {
			if answered, keep := c.serveFast(); answered {
				if !keep {
					return
				}
				c.state.Store(stateIdle)
				continue
			}
		}
		if !c.serveRequest() {
			return
		}
		c.state.Store(stateIdle)
	}
}

// readHead reads until raw[r:] starts with a whole request head, parsed
// into c.head.
//
// The header timeout runs from the connection's start, or from the first
// byte of a keep-alive request; between requests the idle timeout does,
// and before a new connection's first byte Strict.FirstByteTimeout does
// when it is shorter than the header timeout. Each is re-armed only when
// the deadline set is not already between half the timeout and the
// timeout away, so that a keep-alive connection moves its deadline about
// once per half timeout instead of once per request (each move is a
// runtime timer update): a connection idles between half the idle timeout
// and the idle timeout.
func (c *conn) readHead(first bool) error {
	header := cmp.Or(c.s.ReadHeaderTimeout, 10*time.Second)
	wait := cmp.Or(c.s.IdleTimeout, 120*time.Second) // until the head's first byte
	var headBy time.Time                             // a first head's deadline, when wait is shorter
	if first {
		wait = header
		if fb := c.s.Strict.FirstByteTimeout; fb > 0 && fb < header {
			wait, headBy = fb, time.Now().Add(header)
		}
	}
	c.armRead(wait)
	if c.s.shutting.Load() { // Shutdown may have moved the deadline before armRead did
		c.rdl = 0
		c.nc.SetReadDeadline(time.Now().Add(shutdownGrace))
	}
	waiting := true // for the head's first byte
	for {
		err := strict.ParseHead(c.raw[c.r:c.w], c.s.Strict, &c.head)
		if !errors.Is(err, strict.ErrIncomplete) {
			return err
		}
		if waiting && c.r < c.w { // part of a head is here: the rest within the header timeout
			waiting = false
			switch {
			case !first:
				if !c.activate() { // a request is arriving: Shutdown waits for it
					return net.ErrClosed
				}
				c.armRead(header)
			case !headBy.IsZero():
				c.rdl = headBy.UnixNano()
				c.nc.SetReadDeadline(headBy)
			}
		}
		if err := c.fill(); err != nil {
			return err
		}
	}
}

// armRead makes the read deadline d from now, unless the one set already
// is between d/2 and d away.
func (c *conn) armRead(d time.Duration) {
	now := time.Now().UnixNano()
	if left := c.rdl - now; c.rdl != 0 && left >= int64(d/2) && left <= int64(d) {
		return
	}
	c.rdl = now + int64(d)
	c.nc.SetReadDeadline(time.Unix(0, c.rdl))
}

// fill reads more input into raw, moving what is unconsumed to its start
// and growing it when a head needs more room.
func (c *conn) fill() error {
	if c.r > 0 {
		c.w = copy(c.raw, c.raw[c.r:c.w])
		c.r = 0
	}
	if c.w == len(c.raw) {
		c.raw = append(c.raw, make([]byte, len(c.raw))...)
	}
	n, err := c.nc.Read(c.raw[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// refuse answers a head the strict rules refuse, as a strict.Conn would,
// or ends the connection quietly when the client went away or idled out.
func (c *conn) refuse(err error) {
	he, ok := err.(*strict.HeadError)
	if errors.Is(err, strict.ErrPreface) {
		he, ok = strict.ErrNoH2C, true
	}
	if !ok {
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
	c.bw.Write(he.Response())
	c.bw.Flush()
	if c.s.Strict.OnReject != nil {
		c.s.Strict.OnReject(he.Reason, he.Status, c.nc.RemoteAddr())
	}
}

// refuseWriteTimeout bounds the write of a refusal, so a client that
// does not read cannot hold the connection.
const refuseWriteTimeout = 5 * time.Second

// replayConn is a connection handed to the HTTP/2 server: it reads the
// bytes the loop already took from the connection first.
type replayConn struct {
	net.Conn
	buf []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// serveRequest runs the handler for c.head and reports whether the
// connection may carry another request.
func (c *conn) serveRequest() (keep bool) {
	req, err := c.newRequest()
	if err != nil {
		c.refuse(err)
		return false
	}
	if req.ContentLength != 0 { // the body's reads are bounded by ReadTimeout, not the head's deadline
		var dl time.Time
		if c.s.ReadTimeout > 0 {
			dl = time.Now().Add(c.s.ReadTimeout)
		}
		c.nc.SetReadDeadline(dl)
	}
	w := newResponseWriter(c, req)
	w.ctx.c, w.ctx.parent, w.ctx.ready = c, c.ctx, c.body == nil
	if c.body != nil {
		c.body.ctx = &w.ctx
	}
	*req = *req.WithContext(&w.ctx) // the same *Request, which the body gives its trailers
	defer w.ctx.cancel()            // the request is over: its context ends, as in net/http
	ok := c.runHandler(w, req)
	if !ok {
		w.ctx.end()
		return false
	}
	if w.hijacked { // Hijack stopped the watcher
		c.hijacked = true
		return false
	}
	// The response's last bytes go out before a watcher is stopped: the
	// client need not wait for that hand-off (a wake-up of the watcher's
	// goroutine and one back). finish writes, the watcher reads; neither
	// touches what the other does (the read buffer is the watcher's until
	// end returns). No watcher starts once the handler returned.
	w.ctx.seal()
	err = w.finish()
	w.ctx.end()
	if err != nil {
		return false
	}
	keep = !w.closeAfter && c.drainBody()
	c.rdl = 0 // the body, the watcher or the handler may have moved it
	return keep
}

// runHandler calls the handler, reporting false when it panicked (the
// connection is then closed without more output, as net/http does).
func (c *conn) runHandler(w *responseWriter, req *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			if p != http.ErrAbortHandler && c.s.Logger != nil {
				c.s.Logger.Error("h1: handler panic", "panic", p, "uri", req.RequestURI)
			}
		}
	}()
	c.s.Handler.ServeHTTP(w, req)
	return true
}

// newRequest turns the parsed head into an http.Request whose Body reads
// the request body from the connection. It refuses a head net/http would
// refuse after the strict rules passed it, with a *strict.HeadError.
func (c *conn) newRequest() (*http.Request, error) {
	h := &c.head
	req := &http.Request{
		Method:     string(h.Method),
		RequestURI: string(h.Target),
		Proto:      "HTTP/1." + strconv.Itoa(h.Minor),
		ProtoMajor: 1, ProtoMinor: h.Minor,
		Header:     make(http.Header, len(h.Fields)),
		RemoteAddr: c.nc.RemoteAddr().String(),
	}
	var err error
	if req.Method == http.MethodConnect && !strings.HasPrefix(req.RequestURI, "/") {
		req.URL = &url.URL{Host: req.RequestURI}
	} else if req.URL, err = url.ParseRequestURI(req.RequestURI); err != nil {
		return nil, &strict.HeadError{Status: http.StatusBadRequest, Reason: "malformed request-target"}
	}
	for _, f := range h.Fields {
		name := http.CanonicalHeaderKey(string(f.Name))
		req.Header[name] = append(req.Header[name], string(f.Value))
	}
	req.Host = req.URL.Host
	if req.Host == "" {
		req.Host = req.Header.Get("Host")
	}
	delete(req.Header, "Host")
	req.Close = shouldClose(h.Minor, req.Header)
	if tc, ok := c.nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		req.TLS = &st
	}
	c.r += h.Len
	if req.Body, req.ContentLength, err = c.newBody(req); err != nil {
		return nil, err
	}
	return req, nil
}

// shouldClose reports whether the request asks to close the connection
// after its response: HTTP/1.1 with Connection: close, or HTTP/1.0
// without Connection: keep-alive.
func shouldClose(minor int, h http.Header) bool {
	hasClose, keepAlive := false, false
	for _, v := range h["Connection"] {
		hasClose = hasClose || hasToken([]byte(v), "close")
		keepAlive = keepAlive || hasToken([]byte(v), "keep-alive")
	}
	return hasClose || minor == 0 && !keepAlive
}

// hasToken reports whether the comma-separated list v holds token (ASCII
// case-insensitive, optional whitespace around members), as net/http
// reads Connection.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var member []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			member, v = v[:i], v[i+1:]
		} else {
			member, v = v, nil
		}
		member = bytes.Trim(member, " \t")
		if (strict.Field{Name: member}).Is(token) {
			return true
		}
	}
	return false
}
