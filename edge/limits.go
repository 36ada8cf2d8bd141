package edge

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
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
	// address. A new connection from an address at its limit takes the
	// place of that address's oldest connection that has not yet sent a
	// complete request head, which is closed (a slow or silent client
	// cannot crowd out the others behind its address); it is refused only
	// when every connection of the address has sent one.
	MaxConnsPerIP int
	// OnRefuse, if set, is called for each refused connection with the
	// reason ("total" or "per_ip").
	OnRefuse func(reason string)
	// OnEvict, if set, is called for each connection closed to make room
	// for a newer one from its address.
	OnEvict func()
}

// LimitListener wraps ln so that connections over the limits are refused
// as soon as they are accepted, cheaply: a fixed 503 written with a short
// deadline, then close, before any request is read. An HTTP/1 server
// tells each connection when its first request head has come
// (strict.HeadMarker), which is how the listener knows which connections
// it may close for MaxConnsPerIP; edged's servers do, and a TLS
// connection that negotiates HTTP/2 counts as having sent one.
func LimitListener(ln net.Listener, lim ConnLimits) net.Listener {
	if lim.MaxConns <= 0 && lim.MaxConnsPerIP <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, lim: lim, perIP: make(map[string]*addrConns)}
}

type limitListener struct {
	net.Listener
	lim   ConnLimits
	mu    sync.Mutex
	total int
	perIP map[string]*addrConns
}

// addrConns are the open connections of one client address: how many,
// and those that had sent no request head when last looked at, oldest
// first (a connection leaves the list when it closes, or when an eviction
// finds it has sent a head).
type addrConns struct {
	n          int
	head, tail *limitedConn
}

func (a *addrConns) push(c *limitedConn) {
	c.prev, c.next, c.queued = a.tail, nil, true
	if a.tail != nil {
		a.tail.next = c
	} else {
		a.head = c
	}
	a.tail = c
}

func (a *addrConns) remove(c *limitedConn) {
	if !c.queued {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		a.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		a.tail = c.prev
	}
	c.prev, c.next, c.queued = nil, nil, false
}

// oldestWaiting takes the oldest connection that has sent no request head
// off the list and marks it evicted, or returns nil when there is none.
// Connections found to have sent one leave the list for good.
func (a *addrConns) oldestWaiting() *limitedConn {
	for c := a.head; c != nil; c = a.head {
		a.remove(c)
		if c.state.CompareAndSwap(connWaiting, connEvicted) {
			return c
		}
	}
	return nil
}

var refusal = []byte("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\ntoo many connections")

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l, ip: remoteIP(c)}
		reason, evicted := l.admit(lc)
		if evicted != nil {
			// Its place is lc's already; closing it ends its server's
			// read, and the server's Close then finds it released.
			evicted.Conn.Close()
			if l.lim.OnEvict != nil {
				l.lim.OnEvict()
			}
		}
		if reason != "" {
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
		return lc, nil
	}
}

// admit counts the new connection c, or says why it is refused. When c's
// address is at MaxConnsPerIP, c takes the place of the address's oldest
// connection without a request head, which admit releases and returns for
// the caller to close.
func (l *limitListener) admit(c *limitedConn) (reason string, evicted *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.perIP[c.ip]
	if a != nil && l.lim.MaxConnsPerIP > 0 && a.n >= l.lim.MaxConnsPerIP {
		if evicted = a.oldestWaiting(); evicted == nil {
			return "per_ip", nil
		}
		l.releaseLocked(evicted)
	} else if l.lim.MaxConns > 0 && l.total >= l.lim.MaxConns {
		return "total", nil
	}
	if a = l.perIP[c.ip]; a == nil { // (releasing the evicted may have dropped it)
		a = &addrConns{}
		l.perIP[c.ip] = a
	}
	l.total++
	a.n++
	a.push(c)
	return "", evicted
}

// releaseLocked gives c's place back, once. l.mu is held.
func (l *limitListener) releaseLocked(c *limitedConn) {
	if c.released {
		return
	}
	c.released = true
	l.total--
	a := l.perIP[c.ip]
	a.remove(c)
	if a.n--; a.n <= 0 {
		delete(l.perIP, c.ip)
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
	l     *limitListener
	ip    string
	state atomic.Int32 // connWaiting, connHeard or connEvicted
	// Guarded by l.mu: the address's list of waiting connections, and
	// whether the connection's place was given back.
	prev, next       *limitedConn
	queued, released bool
}

// The states of a limitedConn: it may be evicted only while waiting.
const (
	connWaiting int32 = iota // no request head yet
	connHeard                // a request head came (MarkHead)
	connEvicted              // closed for a newer connection
)

var _ strict.HeadMarker = (*limitedConn)(nil)

// MarkHead records that the connection has sent a request head: from now
// on it is never evicted. Its server calls it (strict.HeadMarker). A
// connection evicted just before keeps its eviction: its socket is closed.
func (c *limitedConn) MarkHead() { c.state.CompareAndSwap(connWaiting, connHeard) }

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
	c.l.mu.Lock()
	c.l.releaseLocked(c)
	c.l.mu.Unlock()
	return err
}
