package strict

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets the limits of a strict Conn. The zero value is ready to use.
type Config struct {
	// MaxHeaderBytes limits the request-line plus header fields (with their
	// CRLFs); also the trailer section. Zero means 64 KiB. Over it: 431.
	MaxHeaderBytes int
	// MaxHeaderCount limits the number of header fields; also the number of
	// trailer fields. Zero means 100. Over it: 431.
	MaxHeaderCount int
	// MaxURILength limits the request-target. Zero means 8 KiB. Over it: 414.
	MaxURILength int
	// MaxChunkExtBytes limits the chunk extensions of one chunk (from the
	// first ";" to the CR). Zero means 256. Over it: 400.
	MaxChunkExtBytes int
	// FirstByteTimeout bounds how long a new connection may send nothing:
	// until its first byte, the read deadline is at most this far from
	// the connection's start, whatever deadline the server sets; from the
	// first byte on, the server's own header timeout bounds the head. Zero
	// means no bound of its own.
	FirstByteTimeout time.Duration
	// AllowH2C lets a connection that opens with the HTTP/2 prior-knowledge
	// preface pass through unvalidated. False (the default) answers it 505.
	AllowH2C bool
	// OnReject, if not nil, is called once per rejected connection, from the
	// goroutine that found or reported the violation, with a short fixed
	// reason and the status sent (0 when the connection was closed without a
	// response because one was already under way). It must not block.
	OnReject func(reason string, status int, remote net.Addr)
}

const (
	defaultMaxHeaderBytes   = 64 << 10
	defaultMaxHeaderCount   = 100
	defaultMaxURILength     = 8 << 10
	defaultMaxChunkExtBytes = 256

	// maxLeadingEmptyLines is how many CRLFs before a request-line are
	// dropped (RFC 9112 §2.2 asks for at least one).
	maxLeadingEmptyLines = 2
	initialBufSize       = 4 << 10
	// rejectWriteTimeout bounds the write of a rejection response; lingerTime
	// and lingerBytes bound the draining of unread input before the close,
	// so the peer gets FIN after the response rather than a RST.
	rejectWriteTimeout = 2 * time.Second
	lingerTime         = 500 * time.Millisecond
	lingerBytes        = 64 << 10
)

// ErrRejected is returned by Write once the connection was rejected.
var ErrRejected = errors.New("strict: connection rejected")

func (cfg Config) withDefaults() Config {
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if cfg.MaxHeaderCount <= 0 {
		cfg.MaxHeaderCount = defaultMaxHeaderCount
	}
	if cfg.MaxURILength <= 0 {
		cfg.MaxURILength = defaultMaxURILength
	}
	if cfg.MaxChunkExtBytes <= 0 {
		cfg.MaxChunkExtBytes = defaultMaxChunkExtBytes
	}
	return cfg
}

// NewListener returns a listener whose Accept wraps every connection of
// inner with WrapConn.
func NewListener(inner net.Listener, cfg Config) net.Listener {
	return &listener{Listener: inner, cfg: cfg.withDefaults()}
}

type listener struct {
	net.Listener
	cfg Config
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newConn(c, l.cfg), nil
}

// ConnState returns an http.Server ConnState hook that switches a Conn to
// Passthrough when net/http hands it over (http.StateHijacked), then calls
// next (which may be nil).
func ConnState(next func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	return func(nc net.Conn, s http.ConnState) {
		if s == http.StateHijacked {
			if c, ok := nc.(*Conn); ok {
				c.Passthrough()
			}
		}
		if next != nil {
			next(nc, s)
		}
	}
}

// Parser states.
const (
	stHead    = iota // reading a request head
	stBody           // Content-Length body, bodyLeft bytes to go
	stChunked        // chunked body
	stRaw            // passthrough, no validation
)

// Write-side states.
const (
	wsClean  = iota // no response byte since the current head was released
	wsWrote         // some response byte written
	wsClosed        // rejected: writes fail
)

// Conn is a net.Conn whose Read returns only validated HTTP/1.x request
// bytes. All other methods delegate to the wrapped connection. It is safe
// for one reader and one writer at a time, as net/http uses it.
type Conn struct {
	net.Conn
	cfg Config

	rmu sync.Mutex // serializes Read; guards the fields below
	buf []byte
	// buf[r:v] is validated and not yet returned, buf[v:w] not yet validated.
	r, v, w  int
	st       uint8
	hscan    int // head bytes already scanned for LF
	hline    int // start of the current head line
	hlines   int // complete lines of the current head
	hlead    int // empty lines dropped before the current head
	headTail int // bytes of the last head not yet returned
	bodyLeft int64
	ck       chunkState
	released int64      // bytes returned by Read
	fail     fault      // violation at buf[v], acted on once r == v
	info     headInfo   // last head; its slices alias buf
	rerr     error      // sticky read error after a rejection
	marker   HeadMarker // the wrapped connection's, or nil; see firstHead

	pass   atomic.Bool
	wstate atomic.Int32
	first  atomic.Int32 // headNone, headRead or headClosed

	// firstByteBy is the first-byte deadline (Unix ns) until the first
	// byte arrives, then 0; askedBy the read deadline the server asked for
	// meanwhile (0: none). See armFirstByte.
	firstByteBy, askedBy atomic.Int64

	gathering atomic.Bool // Gather armed or holding: Write takes writeGathered
	g         gatherer

	mu       sync.Mutex // guards deferred, rejected
	deferred fault
	rejected bool

	closeOnce sync.Once
	closeErr  error

	trace func(*headInfo) // test hook: called for each accepted head
}

// WrapConn returns c wrapped by a strict reader.
func WrapConn(c net.Conn, cfg Config) *Conn {
	return newConn(c, cfg.withDefaults())
}

func newConn(c net.Conn, cfg Config) *Conn {
	sc := &Conn{Conn: c, cfg: cfg, marker: HeadMarkerOf(c)}
	sc.armFirstByte()
	return sc
}

// Passthrough stops validation: bytes already buffered and all later input
// are returned unchanged, and a rejection not yet sent is dropped. Use it
// when the connection switches protocols (101, CONNECT). It is safe to call
// from any goroutine.
func (c *Conn) Passthrough() { c.pass.Store(true) }

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r < c.v {
			n := copy(p, c.buf[c.r:c.v])
			c.r += n
			c.released += int64(n)
			if c.headTail > 0 {
				c.headTail -= n
				if c.headTail <= 0 {
					c.headTail = 0
					c.wstate.CompareAndSwap(wsWrote, wsClean)
				}
			}
			return n, nil
		}
		if c.pass.Load() && c.st != stRaw {
			c.enterRaw()
		}
		if c.rerr != nil {
			return 0, c.rerr
		}
		if !c.fail.ok() {
			c.reject()
			continue
		}
		if c.v < c.w && c.advance() {
			continue
		}
		if c.r == c.w {
			// Nothing buffered: stream body data straight into p.
			if k := c.direct(len(p)); k > 0 {
				n, err := c.Conn.Read(p[:k])
				c.consumed(n)
				c.released += int64(n)
				return n, err
			}
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
}

// direct returns how many bytes may go to the caller unexamined.
func (c *Conn) direct(max int) int {
	var left int64
	switch {
	case c.st == stRaw:
		return max
	case c.st == stBody:
		left = c.bodyLeft
	case c.st == stChunked && c.ck.st == csData:
		left = int64(c.ck.remain)
	}
	if left < int64(max) {
		return int(left)
	}
	return max
}

// consumed accounts for n bytes read by direct.
func (c *Conn) consumed(n int) {
	switch c.st {
	case stBody:
		c.bodyLeft -= int64(n)
		if c.bodyLeft == 0 {
			c.st = stHead
		}
	case stChunked:
		c.ck.remain -= uint64(n)
		if c.ck.remain == 0 {
			c.ck.st = csDataCR
		}
	}
}

// fill reads more input into buf.
func (c *Conn) fill() error {
	if c.buf == nil {
		c.buf = make([]byte, initialBufSize)
	}
	if c.r == c.w {
		c.r, c.v, c.w = 0, 0, 0
	} else if c.w == len(c.buf) && c.r > 0 {
		copy(c.buf, c.buf[c.r:c.w])
		c.v -= c.r
		c.w -= c.r
		c.r = 0
	}
	if c.w == len(c.buf) {
		// Only an incomplete head fills the buffer; advanceHead rejects it
		// before it passes MaxHeaderBytes+1.
		nb := make([]byte, min(2*len(c.buf), c.cfg.MaxHeaderBytes+initialBufSize))
		copy(nb, c.buf[:c.w])
		c.buf = nb
	}
	n, err := c.Conn.Read(c.buf[c.w:])
	c.w += n
	if n > 0 {
		c.gotFirstByte()
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// advance validates bytes at buf[v:w]. It reports whether it made progress
// (v moved, bytes were dropped, or a fault was recorded).
func (c *Conn) advance() bool {
	switch c.st {
	case stRaw:
		c.v = c.w
		return true
	case stBody:
		n := min(int64(c.w-c.v), c.bodyLeft)
		c.v += int(n)
		c.bodyLeft -= n
		if c.bodyLeft == 0 {
			c.st = stHead
		}
		return true
	case stChunked:
		n, done, f := c.ck.step(c.buf[c.v:c.w], &c.cfg, false)
		c.v += n
		if done {
			c.st = stHead
		}
		c.fail = f
		return n > 0 || done || !f.ok()
	}
	return c.advanceHead()
}

// advanceHead looks for the end of the request head at buf[v:], checking
// line endings and size limits as bytes arrive, then validates it whole.
// Head parsing starts only when r == v.
func (c *Conn) advanceHead() bool {
	b := c.buf[c.v:c.w]
	for {
		i := bytes.IndexByte(b[c.hscan:], '\n')
		if i < 0 {
			c.hscan = len(b)
			if len(b) > c.cfg.MaxHeaderBytes {
				c.fail = c.tooLarge(b)
				return true
			}
			return false
		}
		lf := c.hscan + i
		if lf == 0 || b[lf-1] != '\r' {
			c.fail = bad("bare LF in request head")
			return true
		}
		if lf-1 == c.hline {
			if c.hlines == 0 { // empty line before the request-line
				c.hlead++
				if c.hlead > maxLeadingEmptyLines {
					c.fail = bad("too many empty lines before request-line")
					return true
				}
				c.r += 2
				c.v += 2
				c.hscan, c.hline = 0, 0
				return true
			}
			return c.finishHead(b[:lf+1])
		}
		c.hlines++
		if lf+1 > c.cfg.MaxHeaderBytes {
			c.fail = c.tooLarge(b[:lf+1])
			return true
		}
		if c.hlines-1 > c.cfg.MaxHeaderCount {
			c.fail = fault{status: http.StatusRequestHeaderFieldsTooLarge, reason: "too many header fields"}
			return true
		}
		c.hline, c.hscan = lf+1, lf+1
	}
}

// tooLarge classifies an oversized head (see tooLargeFault).
func (c *Conn) tooLarge(b []byte) fault { return tooLargeFault(b, c.hlines, &c.cfg) }

// tooLargeFault classifies an oversized head b of which lines lines are
// complete: 414 when the request-line alone already carries more target
// than MaxURILength, else 431.
func tooLargeFault(b []byte, lines int, cfg *Config) fault {
	if lines <= 1 {
		line := b
		if lines == 1 {
			line = b[:bytes.IndexByte(b, '\n')]
		}
		if sp := bytes.IndexByte(line, ' '); sp >= 0 {
			t := line[sp+1:]
			if e := bytes.IndexByte(t, ' '); e >= 0 {
				t = t[:e]
			}
			if len(t) > cfg.MaxURILength {
				return fault{status: http.StatusRequestURITooLong, reason: "request-target too long"}
			}
		}
	}
	return fault{status: http.StatusRequestHeaderFieldsTooLarge, reason: "request header too large"}
}

func (c *Conn) finishHead(h []byte) bool {
	c.hscan, c.hline, c.hlines, c.hlead = 0, 0, 0, 0
	info := &c.info
	if f := validateHead(h, &c.cfg, info); !f.ok() {
		c.fail = f
		return true
	}
	if info.preface && (!c.cfg.AllowH2C || c.released > 0) {
		c.fail = fault{status: ErrNoH2C.Status, reason: ErrNoH2C.Reason}
		return true
	}
	if !c.firstHead() { // CloseWaiting was first: the server never gets it
		c.rerr = net.ErrClosed
		return true
	}
	if info.preface {
		c.st = stRaw
		c.v = c.w
		return true
	}
	if c.trace != nil {
		c.trace(info)
	}
	c.v += len(h)
	c.headTail = len(h)
	switch {
	case info.chunked:
		c.st, c.ck = stChunked, chunkState{}
	case info.contentLength > 0:
		c.st, c.bodyLeft = stBody, info.contentLength
	}
	return true
}

// enterRaw switches to passthrough unless a rejection was already sent.
func (c *Conn) enterRaw() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rejected {
		return
	}
	c.deferred, c.fail, c.rerr = fault{}, fault{}, nil
	c.st = stRaw
	c.v = c.w
}

// reject acts on c.fail, which lies at buf[r] (everything before it was
// returned). Reads end with io.EOF from now on.
func (c *Conn) reject() {
	f := c.fail
	c.fail = fault{}
	c.rerr = io.EOF
	c.mu.Lock()
	defer c.mu.Unlock()
	if !f.body && c.released > 0 {
		// net/http may still be writing earlier responses; answer once it
		// closes the connection.
		c.deferred = f
		return
	}
	c.emitLocked(f, false)
}

// emitLocked sends the rejection response (unless a response is under way
// and force is false) and shuts the write side. c.mu must be held.
func (c *Conn) emitLocked(f fault, force bool) {
	if c.rejected {
		return
	}
	c.rejected = true
	status := 0
	if c.wstate.Swap(wsClosed) == wsClean || force {
		status = f.status
		c.Conn.SetWriteDeadline(time.Now().Add(rejectWriteTimeout))
		c.Conn.Write(rejection(f))
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	if c.cfg.OnReject != nil {
		c.cfg.OnReject(f.reason, status, c.Conn.RemoteAddr())
	}
}

func rejection(f fault) []byte {
	b := make([]byte, 0, 160)
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(f.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(f.status)...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(f.reason)+1), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, f.reason...)
	return append(b, '\n')
}

const continueLine = "HTTP/1.1 100 Continue\r\n\r\n"

// Write implements net.Conn. It fails with ErrRejected after a rejection
// response was sent.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.beginWrite(p); err != nil {
		return 0, err
	}
	if c.gathering.Load() {
		return c.writeGathered(p)
	}
	return c.Conn.Write(p)
}

// NetConn returns the wrapped connection.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// ReadFrom lets net/http keep using sendfile/splice of the wrapped
// connection for response bodies.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.beginWrite(nil); err != nil {
		return 0, err
	}
	if c.gathering.Load() {
		return c.readFromGathered(r)
	}
	return c.readFrom(r)
}

func (c *Conn) readFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// beginWrite records that response bytes are about to be written.
func (c *Conn) beginWrite(p []byte) error {
	for {
		s := c.wstate.Load()
		if s == wsClosed {
			return ErrRejected
		}
		// An interim 100 Continue does not start the response.
		if s == wsWrote || string(p) == continueLine || c.wstate.CompareAndSwap(wsClean, wsWrote) {
			return nil
		}
	}
}

// Close sends a deferred rejection response, drains briefly what the peer
// still sends after a rejection, and closes the connection.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.dropGathered()
		c.mu.Lock()
		if !c.deferred.ok() {
			c.emitLocked(c.deferred, true)
		}
		linger := c.rejected
		c.mu.Unlock()
		if linger {
			c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
			io.CopyN(io.Discard, c.Conn, lingerBytes)
		}
		c.closeErr = c.Conn.Close()
	})
	return c.closeErr
}
