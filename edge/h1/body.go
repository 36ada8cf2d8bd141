package h1

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	"github.com/edged-proxy/edged/edge/strict"
)

// body is a request body. It reads from the connection's buffer, then the
// connection, by Content-Length or chunked (through a strict.ChunkDecoder,
// so by the strict reader's rules), and never past its own end: what
// follows it stays in the buffer for the next request. It sends "100
// Continue" before its first read when the client asked for it.
type body struct {
	c   *conn
	ctx *requestContext
	req *http.Request // gets the trailer fields of a chunked body
	// left is what a Content-Length body has to go.
	left    int64
	chunked bool
	dec     strict.ChunkDecoder
	trailer []byte // a chunked body's trailer section as it arrives
	expect  bool
	eof     bool
	err     error // sticky: a malformed chunked body, or the connection failed
}

// newBody returns the body of c.head's request (req) and its length (-1:
// chunked), and makes it c.body; a head without a body gets http.NoBody.
func (c *conn) newBody(req *http.Request) (io.ReadCloser, int64, error) {
	h := &c.head
	c.body = nil
	if !h.Chunked && h.ContentLength <= 0 {
		return http.NoBody, 0, nil
	}
	b := &body{c: c, req: req, expect: req.ProtoMinor == 1 && strings.EqualFold(req.Header.Get("Expect"), "100-continue")}
	c.body = b
	if !h.Chunked {
		b.left = h.ContentLength
		return b, h.ContentLength, nil
	}
	b.chunked = true
	b.dec.Reset(c.s.Strict)
	delete(req.Header, "Transfer-Encoding")
	req.TransferEncoding = []string{"chunked"}
	if err := announcedTrailer(req); err != nil {
		return nil, 0, err
	}
	return b, -1, nil
}

// announcedTrailer moves the Trailer field of a chunked request to
// Request.Trailer, the names announced with nil values, as net/http does;
// it refuses the names that may not be trailers.
func announcedTrailer(req *http.Request) error {
	vv, ok := req.Header["Trailer"]
	if !ok {
		return nil
	}
	delete(req.Header, "Trailer")
	for _, v := range vv {
		for name := range strings.SplitSeq(v, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			switch name {
			case "":
				continue
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return &strict.HeadError{Status: http.StatusBadRequest, Reason: "bad trailer key"}
			}
			if req.Trailer == nil {
				req.Trailer = make(http.Header)
			}
			req.Trailer[name] = nil
		}
	}
	return nil
}

func (b *body) Read(p []byte) (int, error) {
	if b.expect {
		b.expect = false
		b.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		b.c.bw.Flush()
	}
	switch {
	case b.eof:
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	case b.c.hijacked:
		return 0, http.ErrHijacked // the connection is the handler's now
	case len(p) == 0:
		return 0, nil
	}
	var n int
	var err error
	if b.chunked {
		n, err = b.readChunked(p)
	} else {
		n, err = b.readLength(p)
	}
	switch {
	case err == io.EOF:
		b.eof = true
		b.ctx.bodyDone()
	case err != nil:
		b.err = err
	}
	return n, err
}

func (b *body) Close() error { return nil }

// readLength reads a Content-Length body, from the buffer or, when that is
// empty and p can take at least a buffer's worth of the body, straight
// into p. With the last byte it returns io.EOF, as net/http does.
func (b *body) readLength(p []byte) (int, error) {
	c := b.c
	var n int
	if k := min(int64(len(p)), b.left); c.r == c.w && k >= int64(len(c.raw)) {
		var err error
		if n, err = c.nc.Read(p[:k]); n == 0 {
			return 0, b.connFailed(err)
		}
	} else {
		if c.r == c.w {
			if err := c.fill(); err != nil {
				return 0, b.connFailed(err)
			}
		}
		n = copy(p[:k], c.raw[c.r:c.w])
		c.r += n
	}
	b.left -= int64(n)
	if b.left == 0 {
		return n, io.EOF
	}
	return n, nil
}

// readChunked decodes a chunked body into p: what the buffer holds, or,
// when that is empty, one read from the connection (straight into p when
// p can take at least a buffer's worth of the current chunk). It returns
// io.EOF with the last data when the body's end is already buffered.
func (b *body) readChunked(p []byte) (n int, err error) {
	c := b.c
	for {
		if c.r == c.w {
			if n > 0 {
				return n, nil
			}
			if k := min(int64(len(p)), b.dec.Remaining()); k >= int64(len(c.raw)) {
				n, err = c.nc.Read(p[:k])
				b.dec.Skip(n)
				if n == 0 {
					return 0, b.connFailed(err)
				}
				return n, nil
			}
			if err := c.fill(); err != nil {
				return 0, b.connFailed(err)
			}
		}
		inTrailer := b.dec.InTrailer()
		k, data, done, err := b.dec.Decode(c.raw[c.r:c.w], len(p)-n)
		if inTrailer {
			b.trailer = append(b.trailer, c.raw[c.r:c.r+k]...)
		}
		n += copy(p[n:], data)
		c.r += k
		switch {
		case err != nil:
			return n, err
		case done:
			b.setTrailer()
			return n, io.EOF
		case k == 0: // p is full, and chunk data comes next
			return n, nil
		}
	}
}

// connFailed returns the error a body read reports when reading the
// connection failed with err (the end of input is io.ErrUnexpectedEOF),
// and cancels the request's context, as net/http does: the client is gone.
func (b *body) connFailed(err error) error {
	b.ctx.cancel()
	switch err {
	case nil:
		return io.ErrNoProgress
	case io.EOF:
		return io.ErrUnexpectedEOF
	}
	return err
}

// setTrailer puts the trailer fields the body ended with into
// Request.Trailer, replacing announced names' values, as net/http does.
// The decoder checked their grammar and limits.
func (b *body) setTrailer() {
	sec := b.trailer
	b.trailer = nil
	if len(sec) <= len("\r\n") {
		return
	}
	got := make(http.Header)
	for len(sec) > 0 {
		line, rest, _ := bytes.Cut(sec, []byte("\r\n"))
		sec = rest
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		key := http.CanonicalHeaderKey(string(name))
		got[key] = append(got[key], string(bytes.Trim(value, " \t")))
	}
	if b.req.Trailer == nil {
		b.req.Trailer = got
		return
	}
	for k, vv := range got {
		b.req.Trailer[k] = vv
	}
}

// drainBody reads what the handler left of the request body, so the next
// request's head is next; false when there is too much, when it is
// malformed or cut short (or was never asked for with Expect:
// 100-continue): then the connection closes.
func (c *conn) drainBody() bool {
	b := c.body
	if b == nil || b.eof {
		return true
	}
	if b.err != nil {
		return false
	}
	if b.expect {
		return false // the client waits for 100 Continue and has sent no body
	}
	n, err := io.Copy(io.Discard, io.LimitReader(b, maxDrain+1))
	return err == nil && n <= maxDrain && b.eof
}
