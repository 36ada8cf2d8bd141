package edge

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/edged-proxy/edged/edge/strict"
)

// ConnLimits bounds the client connections an edge listener keeps open.
// Zero fields mean no limit.
type ConnLimits struct {
	// MaxConns is the most connections open at once.
	MaxConns int
	// MaxConnsPerIP is the most connections open at once from one client
	// address.
	MaxConnsPerIP int
	// OnRefuse, if set, is called for each refused connection with the
	// reason ("total" or "per_ip").
	OnRefuse func(reason string)
}

// LimitListener wraps ln so that connections over the limits are refused
// as soon as they are accepted, cheaply: a fixed 503 written with a short
// deadline, then close, before any request is read.
func LimitListener(ln net.Listener, lim ConnLimits) net.Listener {
	if lim.MaxConns <= 0 && lim.MaxConnsPerIP <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, lim: lim, perIP: make(map[string]int)}
}

type limitListener struct {
	net.Listener
	lim   ConnLimits
	mu    sync.Mutex
	total int
	perIP map[string]int
}

var refusal = []byte("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\ntoo many connections")

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if reason := l.admit(ip); reason != "" {
			// Counted before the client can see the refusal, so that a
			// scrape after a 503 always includes it.
			if l.lim.OnRefuse != nil {
				l.lim.OnRefuse(reason)
			}
			c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			c.Write(refusal)
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, l: l, ip: ip}, nil
	}
}

// admit counts a new connection from ip, or says why it is refused.
func (l *limitListener) admit(ip string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.lim.MaxConns > 0 && l.total >= l.lim.MaxConns:
		return "total"
	case l.lim.MaxConnsPerIP > 0 && l.perIP[ip] >= l.lim.MaxConnsPerIP:
		return "per_ip"
	}
	l.total++
	l.perIP[ip]++
	return ""
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

type limitedConn struct {
	net.Conn
	l    *limitListener
	ip   string
	once sync.Once
}

// ReadFrom passes response bodies on to the wrapped connection's ReadFrom,
// so that net/http (through the strict reader) keeps sendfile and splice
// for disk hits: without it, io.Copy would move every byte through a user
// buffer.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// WriteBuffers passes a vectored write on to the wrapped connection, so the
// strict reader's Gather (one writev for a response head and a large body)
// works with the limits on.
func (c *limitedConn) WriteBuffers(b *net.Buffers) (int64, error) {
	return strict.WriteBuffers(c.Conn, b)
}

// SyscallConn exposes the wrapped socket, so that the strict reader can
// cork it while a response head and a sendfile body go out.
func (c *limitedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNoSocket
}

var errNoSocket = errors.New("edge: the connection has no socket")

// NetConn returns the wrapped connection.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}
