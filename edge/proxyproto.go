package edge

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/edged-proxy/edged/edge/rules"
	"github.com/edged-proxy/edged/edge/strict"
)

// The values of ProxyProtocol.Mode.
const (
	ProxyProtocolOff      = "off"
	ProxyProtocolOptional = "optional"
	ProxyProtocolRequired = "required"
)

// ProxyProtocol configures reading the PROXY protocol header (v1 and v2,
// as HAProxy and AWS NLB send it) at the start of an edge listener's
// connections, so that the address it names is the connection's
// RemoteAddr for everything above: connection limits, the access log,
// rules, X-Forwarded-For.
//
// Who may send one: when Trusted is set, only its peers' headers are
// read. With ProxyProtocolRequired a connection from any other peer is
// closed, and so is one from a trusted peer that does not start with a
// valid header within Timeout. With ProxyProtocolOptional a connection
// from another peer is served as it is, its bytes unread (a PROXY line
// from it is then a bad request, never an address), and a trusted peer
// may send a header or not. Required with no Trusted set reads every
// peer's header (for a listener only the balancer can reach); optional
// needs Trusted, as it would otherwise let any client name its address.
type ProxyProtocol struct {
	// Mode is ProxyProtocolOff (or ""), ProxyProtocolOptional or
	// ProxyProtocolRequired.
	Mode string
	// Trusted are the peers (CIDR prefixes or addresses) whose headers
	// are read; none reads every peer's (allowed with
	// ProxyProtocolRequired only).
	Trusted []string
	// Timeout bounds the wait for a header, from accept; zero means 5 s.
	Timeout time.Duration
	// MaxPending bounds the connections whose header is being read at
	// once; the listener accepts no more until one is done. Zero means
	// 4096.
	MaxPending int
	// OnReject, if set, is called for each connection closed for its
	// header, with the reason: "untrusted" (required, from a peer not
	// trusted), "missing", "invalid" or "timeout".
	OnReject func(reason string)
}

// ListenProxyProtocol wraps ln to read the PROXY protocol header of its
// connections as cfg says, each in its own goroutine so that a slow peer
// holds up no other; with ProxyProtocolOff it returns ln. Put it at the
// bottom of the listener stack, under LimitListener, so that the limits
// count the addresses the headers name. The connections it returns keep
// their socket's abilities (sendfile, writev, cork) for the servers above.
func ListenProxyProtocol(ln net.Listener, cfg ProxyProtocol) (net.Listener, error) {
	switch cfg.Mode {
	case "", ProxyProtocolOff:
		return ln, nil
	case ProxyProtocolRequired:
	case ProxyProtocolOptional:
		if len(cfg.Trusted) == 0 {
			return nil, errors.New("edge: PROXY protocol optional needs trusted proxies: any client could name its address")
		}
	default:
		return nil, fmt.Errorf("edge: unknown PROXY protocol mode %q (want off, optional or required)", cfg.Mode)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 4096
	}
	l := &proxyListener{handoff: newHandoff(ln), cfg: cfg, pending: make(chan struct{}, cfg.MaxPending)}
	if len(cfg.Trusted) > 0 {
		set, err := rules.ParseAddrSet(cfg.Trusted)
		if err != nil {
			return nil, fmt.Errorf("edge: ProxyProtocol.Trusted%w", err)
		}
		l.trusted = set
	}
	go l.run()
	return l, nil
}

type proxyListener struct {
	handoff
	cfg     ProxyProtocol
	trusted *rules.AddrSet // nil: every peer
	pending chan struct{}  // a slot per header being read
}

func (l *proxyListener) run() {
	for {
		select {
		case l.pending <- struct{}{}:
		case <-l.done:
			return
		}
		c, err := l.inner.Accept()
		if err != nil {
			l.fail(err)
			return
		}
		go l.serve(c)
	}
}

// serve reads c's header and hands c on, or closes it.
func (l *proxyListener) serve(c net.Conn) {
	out, reason := l.readHeader(c)
	<-l.pending
	if reason != "" {
		c.Close()
		if l.cfg.OnReject != nil {
			l.cfg.OnReject(reason)
		}
		return
	}
	l.deliver(out)
}

// readHeader returns c as the servers above should see it, or why it is
// closed.
func (l *proxyListener) readHeader(c net.Conn) (net.Conn, string) {
	if l.trusted != nil && !l.trusted.Contains(peerAddr(c)) {
		if l.cfg.Mode == ProxyProtocolRequired {
			return nil, "untrusted"
		}
		return c, "" // unread: its bytes are its own
	}
	deadline := time.Now().Add(l.cfg.Timeout)
	c.SetReadDeadline(deadline)
	br := bufio.NewReaderSize(c, 256)
	hdr, err := proxyproto.Read(br)
	c.SetReadDeadline(time.Time{})
	switch {
	case err != nil && !time.Now().Before(deadline):
		return nil, "timeout" // (the parser does not always wrap the deadline's error)
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		if l.cfg.Mode == ProxyProtocolRequired {
			return nil, "missing"
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return nil, "missing"
	case err != nil:
		return nil, "invalid"
	}
	pc := &proxiedConn{Conn: c}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		pc.rest = append([]byte(nil), b...)
	}
	if hdr != nil && hdr.Command.IsProxy() {
		// LOCAL (the balancer's own health checks) and v1 UNKNOWN keep
		// the socket's address.
		if src, _, ok := hdr.TCPAddrs(); ok {
			pc.remote = src
		}
	}
	if pc.remote == nil && pc.rest == nil {
		return c, ""
	}
	return pc, ""
}

// peerAddr is c's peer address (IPv4-mapped ones as IPv4), or the zero
// Addr.
func peerAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap.Addr().Unmap()
}

// proxiedConn is a connection whose PROXY header has been read: its
// RemoteAddr is the header's source, and the bytes read past the header
// come first. Writes, sendfile (ReadFrom), writev and cork reach the
// socket directly.
type proxiedConn struct {
	net.Conn
	remote net.Addr // nil: the socket's
	// rest are the bytes read past the header, not yet read by the
	// server (only the server's goroutine reads).
	rest []byte
}

func (c *proxiedConn) Read(p []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		if c.rest = c.rest[n:]; len(c.rest) == 0 {
			c.rest = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *proxiedConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// ReadFrom passes response bodies to the socket's ReadFrom (sendfile,
// splice).
func (c *proxiedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// WriteBuffers passes a vectored write on to the socket (one writev).
func (c *proxiedConn) WriteBuffers(b *net.Buffers) (int64, error) {
	return strict.WriteBuffers(c.Conn, b)
}

// SyscallConn exposes the socket, for corking.
func (c *proxiedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNoSocket
}

// NetConn returns the socket.
func (c *proxiedConn) NetConn() net.Conn { return c.Conn }
