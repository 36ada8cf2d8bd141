package edge

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/edged-proxy/edged/edge/strict"
)

// CountConns wraps ln so that open counts its connections, from accept to
// their first Close: the client connections open now, for a gauge. Stack it
// first, on the raw listener, below the PROXY protocol reader and the
// limits, so that every connection counts, refused ones until they close.
// Its connections keep the socket's abilities that the wrappers above look
// for (ReadFrom for sendfile, vectored writes, the raw socket for corking).
func CountConns(ln net.Listener, open *atomic.Int64) net.Listener {
	return &countingListener{Listener: ln, open: open}
}

type countingListener struct {
	net.Listener
	open *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &countedConn{Conn: c, open: l.open}, nil
}

// countedConn is one counted connection; its first Close uncounts it.
type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

var _ strict.BuffersWriter = (*countedConn)(nil)

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.open.Add(-1) })
	return err
}

// ReadFrom passes response bodies on to the socket's ReadFrom (sendfile,
// splice), as limitedConn does.
func (c *countedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// WriteBuffers passes a vectored write on to the socket.
func (c *countedConn) WriteBuffers(b *net.Buffers) (int64, error) {
	return strict.WriteBuffers(c.Conn, b)
}

// SyscallConn exposes the socket, for corking.
func (c *countedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNoSocket
}

// CloseWrite half-closes the socket when it can.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// NetConn returns the wrapped connection.
func (c *countedConn) NetConn() net.Conn { return c.Conn }
