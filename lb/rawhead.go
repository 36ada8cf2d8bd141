package lb

// Go's HTTP/1 client invents a field: reading a response whose first Pragma
// line is exactly "no-cache" and which has no Cache-Control, it adds
// "Cache-Control: no-cache" (net/http's fixPragmaCacheControl, done in
// ReadResponse, with no way to turn it off). edged must neither forward nor
// evaluate a field the origin did not send: an origin's "Pragma: no-cache"
// beside an Expires would make every response uncacheable, and clients
// would see a Cache-Control the origin never wrote.
//
// The Header Go returns cannot tell an invented "Cache-Control: no-cache"
// from one the origin sent, so the pool looks at the bytes: each HTTP/1
// connection to a shard is a rawHeadConn, which notes, for the response
// head read after the request was written, its status and whether it had a
// Cache-Control line. After the transport returns a response, the shard
// removes Cache-Control exactly when Go added it: the header holds just
// Go's ["no-cache"] next to a first Pragma of "no-cache", and the raw head
// of that same response (same status) had a Pragma line and no
// Cache-Control line. Whenever the note is missing or does not match, the
// header is left alone, so a doubt keeps the field, which is the cautious
// side (no-cache revalidates).
//
// Why the note belongs to this response: the transport sends one request
// at a time on an HTTP/1 connection and reads the next response only after
// writing the next request, so every write starts a new exchange (it
// clears the note), and the final head read after it is this request's.
// Interim 1xx heads (but 101, which is final for the transport too) are
// skipped as the transport skips them. A write that comes after the head
// (an origin answering before the request body is sent) clears the note,
// and the header is then left alone. HTTP/2 does not invent the field, so
// connections that negotiate h2 are not wrapped.

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"sync"
)

// rawHeadConn is an HTTP/1 connection to a shard that notes the raw facts
// of the last final response head read through it.
type rawHeadConn struct {
	net.Conn
	limit int          // a head longer than this is not followed (the transport fails it)
	track *trackedConn // the TCP connection beneath, for use accounting (conns.go); nil in tests

	mu       sync.Mutex
	reading  bool   // since the last write, until a final head ends
	buf      []byte // the head bytes read so far
	last     rawHead
	switched bool // a 101 was read: the bytes are no longer HTTP/1
}

// rawHead is what a response head said, as bytes on the wire.
type rawHead struct {
	ok           bool // a final head was read after the last write
	status       int
	cacheControl bool // a Cache-Control field line (any case)
	pragma       bool // a Pragma field line
}

func newRawHeadConn(c net.Conn, limit int) *rawHeadConn {
	return &rawHeadConn{Conn: c, limit: limit}
}

// Write starts a new exchange: the next final head read is its answer.
func (c *rawHeadConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.switched {
		c.reading, c.buf, c.last = true, c.buf[:0], rawHead{}
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// Read passes the bytes on and follows them while a head is expected.
func (c *rawHeadConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if c.reading {
			c.follow(p[:n])
		}
		c.mu.Unlock()
	}
	return n, err
}

// follow adds b to the head being read and notes each head it completes,
// until a final one.
func (c *rawHeadConn) follow(b []byte) {
	c.buf = append(c.buf, b...)
	for c.reading {
		end := rawHeadEnd(c.buf)
		if end < 0 {
			if len(c.buf) > c.limit {
				c.reading, c.buf = false, nil
			}
			return
		}
		h := parseRawHead(c.buf[:end])
		switch {
		case !h.ok:
			c.reading = false
		case h.status >= 100 && h.status < 200 && h.status != http.StatusSwitchingProtocols:
			c.buf = append(c.buf[:0], c.buf[end:]...) // an interim response: the final one follows
			continue
		default:
			c.last, c.reading = h, false
			c.switched = h.status == http.StatusSwitchingProtocols
		}
		c.buf = c.buf[:0]
	}
}

// head returns the note of the last final head read since the last write.
func (c *rawHeadConn) head() rawHead {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// rawHeadEnd returns the length of the head at the start of b, up to and
// including its empty line (CRLF or a bare LF, as the transport accepts),
// or -1 when b does not hold a whole head.
func rawHeadEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		next := i + j + 1
		if line := b[i : i+j]; i > 0 && (len(line) == 0 || len(line) == 1 && line[0] == '\r') {
			return next
		}
		i = next
	}
}

// parseRawHead reads a head's status line and the names of its field
// lines; ok is false if the status line is not one. The status is read as
// http.ReadResponse reads it: after the first space and any spaces more,
// three characters that strconv.Atoi takes, up to a space or the end.
func parseRawHead(head []byte) rawHead {
	line, rest, _ := bytes.Cut(head, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	_, status, _ := bytes.Cut(line, []byte(" "))
	status = bytes.TrimLeft(status, " ")
	code, _, _ := bytes.Cut(status, []byte(" "))
	n, err := strconv.Atoi(string(code))
	if !bytes.HasPrefix(line, []byte("HTTP/")) || len(code) != 3 || err != nil || n < 0 {
		return rawHead{}
	}
	h := rawHead{ok: true, status: n}
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue // the empty line, or a continuation of the field above
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		switch {
		case bytes.EqualFold(name, []byte("Cache-Control")):
			h.cacheControl = true
		case bytes.EqualFold(name, []byte("Pragma")):
			h.pragma = true
		}
	}
	return h
}

// undoInventedCacheControl removes the Cache-Control Go's HTTP/1 client
// added to resp, given the raw facts of resp's head, and reports whether it
// did. It does nothing unless all of Go's conditions hold and the raw head
// had a Pragma line and no Cache-Control line.
func undoInventedCacheControl(resp *http.Response, raw rawHead) bool {
	cc, pragma := resp.Header["Cache-Control"], resp.Header["Pragma"]
	if len(cc) != 1 || cc[0] != "no-cache" || len(pragma) == 0 || pragma[0] != "no-cache" ||
		!raw.ok || raw.status != resp.StatusCode || !raw.pragma || raw.cacheControl {
		return false
	}
	delete(resp.Header, "Cache-Control")
	return true
}
