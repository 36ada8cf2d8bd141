package h1

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/edged-proxy/edged/edge/strict"
)

// Fast is the optional fast path of a Server: it sees every request that
// frames no body before an http.Request is built, and either answers it
// through the FastWriter or declines, having written nothing, so that the
// request takes the general path (Server.Handler). The edge answers cache
// hits here.
type Fast interface {
	ServeFast(w *FastWriter) bool
}

// FastWriter is what a Fast path gets for one request: the parsed head,
// the connection's facts, and writes that send a whole response in one
// system call. It is valid only during ServeFast, as are the head's bytes.
type FastWriter struct {
	c          *conn
	closeAfter bool
	written    bool
	err        error
	bufs       net.Buffers
	vec        [2][]byte
	scratch    []byte
}

// Head is the request's parsed head. Its byte slices alias the connection
// buffer: copy what must outlive ServeFast.
func (w *FastWriter) Head() *strict.Head { return &w.c.head }

// Context is the connection's context (Server.ConnContext).
func (w *FastWriter) Context() context.Context { return w.c.ctx }

// TLS reports whether the connection is TLS.
func (w *FastWriter) TLS() bool { _, ok := w.c.nc.(*tls.Conn); return ok }

// ClientIP is the client's address without the port, computed once per
// connection.
func (w *FastWriter) ClientIP() string {
	c := w.c
	if c.clientIP == "" {
		if ap, err := netip.ParseAddrPort(c.nc.RemoteAddr().String()); err == nil {
			c.clientIP = ap.Addr().String()
		} else {
			c.clientIP = c.nc.RemoteAddr().String()
		}
	}
	return c.clientIP
}

// Closing reports whether this response is the connection's last: the
// request asked for it, or the server is shutting down. Write adds the
// Connection field that says so.
func (w *FastWriter) Closing() bool { return w.closeAfter }

// CloseAfter makes this response the connection's last (Write then says
// Connection: close).
func (w *FastWriter) CloseAfter() { w.closeAfter = true }

// Buffer returns an empty buffer to build the response head in; it is the
// connection's and is reused by the next request.
func (w *FastWriter) Buffer() []byte { return w.scratch[:0] }

// SetWriteDeadline sets the connection's write deadline.
func (w *FastWriter) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// Write sends a response: head is its status line and fields, each line
// ending in CRLF, without the empty line that ends the head (Write adds
// the Connection field the request calls for, and that line), and body
// its body, which must agree with the head's framing. Head and body leave
// in one vectored write.
func (w *FastWriter) Write(head, body []byte) (int64, error) {
	head = w.endHead(head)
	if len(body) <= copyMax { // one buffer, one write: cheaper than a vector for small bodies, one record on TLS
		out := append(head, body...)
		n, err := w.c.nc.Write(out)
		w.scratch = out[:0]
		return w.done(int64(n-len(head)), err)
	}
	w.vec[0], w.vec[1] = head, body
	w.bufs = w.vec[:]
	if len(body) == 0 {
		w.bufs = w.vec[:1]
	}
	n, err := strict.WriteBuffers(w.c.nc, &w.bufs) // one writev, through connection wrappers too
	w.scratch = head[:0]
	return w.done(n-int64(len(head)), err)
}

// SendFile sends a response whose body comes from r: the head leaves with
// the connection corked, so it shares segments with the start of the body,
// and r is copied to the connection, with sendfile when it is a
// LimitedReader over an *os.File.
func (w *FastWriter) SendFile(head []byte, r io.Reader) (int64, error) {
	head = w.endHead(head)
	if sc, ok := w.c.nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil && strict.Cork(rc, true) {
			defer strict.Cork(rc, false)
		}
	}
	_, err := w.c.nc.Write(head)
	w.scratch = head[:0]
	if err != nil {
		return w.done(0, err)
	}
	n, err := io.Copy(w.c.nc, r)
	return w.done(n, err)
}

// copyMax is the largest body Write copies behind the head instead of
// sending the two as a vector.
const copyMax = 4 << 10

// endHead appends the Connection field and the empty line.
func (w *FastWriter) endHead(head []byte) []byte {
	switch {
	case w.c.head.Minor == 0: // HTTP/1.0 closes unless told otherwise
		if !w.closeAfter {
			head = append(head, "Connection: keep-alive\r\n"...)
		}
	case w.closeAfter:
		head = append(head, "Connection: close\r\n"...)
	}
	return append(head, "\r\n"...)
}

// done records the outcome of a write; n is the body bytes written (the
// head's are subtracted by the caller, so it may be negative).
func (w *FastWriter) done(n int64, err error) (int64, error) {
	n = max(n, 0)
	w.written = true
	if err != nil {
		w.err = err
	}
	return n, err
}

// serveFast offers the request to the fast path and reports whether it
// answered; keep reports whether the connection may carry another request.
func (c *conn) serveFast() (answered, keep bool) {
	h := &c.head
	if h.ContentLength != 0 || h.Chunked {
		return false, false
	}
	w := &c.fast
	w.c, w.closeAfter, w.written, w.err = c, c.s.shutting.Load() || closeRequested(h), false, nil
	if w.scratch == nil {
		w.scratch = make([]byte, 0, 1024)
	}
	if !c.s.Fast.ServeFast(w) {
		if w.written {
			return true, false // a broken fast path: end the connection
		}
		return false, false
	}
	c.r += h.Len
	w.bufs, w.vec = nil, [2][]byte{}
	return true, w.written && w.err == nil && !w.closeAfter
}

// closeRequested reports whether the request asks to close the connection
// after its response, as shouldClose does for an http.Request: a close
// token in Connection, or HTTP/1.0 without keep-alive.
func closeRequested(h *strict.Head) bool {
	hasClose, keepAlive := false, false
	for i := range h.Fields {
		if f := &h.Fields[i]; f.Is("Connection") {
			hasClose = hasClose || hasToken(f.Value, "close")
			keepAlive = keepAlive || hasToken(f.Value, "keep-alive")
		}
	}
	return hasClose || h.Minor == 0 && !keepAlive
}
