package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// bufferBeforeFraming is how much body a response holds back before it
// must choose its framing: a handler that writes less and returns gets a
// Content-Length, a longer or flushed body is chunked (HTTP/1.1) or ends
// with the connection (HTTP/1.0). It is net/http's figure, so the two
// servers frame the same handler's output alike.
const bufferBeforeFraming = 2048

// responseWriter is the http.ResponseWriter of one request.
type responseWriter struct {
	c      *conn
	req    *http.Request
	header http.Header // the handler's
	head   http.Header // the header as it was at WriteHeader: what the head sends

	status      int  // the final status, once the handler set it
	wroteHeader bool // a final status is set
	committed   bool // the response head is in the write buffer
	pending     []byte
	written     int64 // body bytes the handler wrote
	declared    int64 // the Content-Length the handler set, or -1
	chunked     bool
	noBody      bool // HEAD, or a status without a body
	closeAfter  bool
	trailers    bool // the handler announced trailers: the body is chunked
	hijacked    bool

	// ctx is the request's context, here to share this allocation.
	ctx requestContext
}

var (
	_ http.Flusher  = (*responseWriter)(nil)
	_ http.Hijacker = (*responseWriter)(nil)
	_ io.ReaderFrom = (*responseWriter)(nil)
)

func newResponseWriter(c *conn, req *http.Request) *responseWriter {
	return &responseWriter{c: c, req: req, header: make(http.Header), declared: -1, closeAfter: req.Close || c.s.shutting.Load()}
}

func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader sets the status. Informational statuses (1xx but 101) are
// sent at once, with the header as it stands; a second final status is
// ignored.
func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.writeStatusLine(code)
		w.header.Write(w.c.bw)
		w.c.bw.WriteString("\r\n")
		w.c.bw.Flush()
		return
	}
	w.wroteHeader, w.status = true, code
	w.head = w.header.Clone() // later changes are trailers, or nothing (as in net/http)
	if cl := w.head.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.declared = n
		}
	}
	w.noBody = w.req.Method == http.MethodHead || !bodyAllowed(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.declared >= 0 && w.written > w.declared {
		return 0, http.ErrContentLength
	}
	if !w.committed {
		if len(w.pending)+len(p) <= bufferBeforeFraming {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.commit(false, p)
	}
	return len(p), w.failed(w.writeBody(p))
}

// failed passes on a write error, cancelling the request's context: the
// client is gone (net/http's checkConnErrorWriter).
func (w *responseWriter) failed(err error) error {
	if err != nil {
		w.ctx.cancel()
	}
	return err
}

// Flush sends the head and what is buffered; the body, if it goes on, is
// chunked (or, on HTTP/1.0, ends with the connection).
func (w *responseWriter) Flush() { w.FlushError() }

// FlushError is Flush reporting the write error (http.ResponseController).
func (w *responseWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false, nil)
	}
	return w.failed(w.c.bw.Flush())
}

// finish ends the response after the handler returned.
func (w *responseWriter) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true, nil)
	}
	if w.chunked {
		w.c.bw.WriteString("0\r\n")
		w.trailerFields().Write(w.c.bw)
		w.c.bw.WriteString("\r\n")
	}
	if w.declared >= 0 && w.written < w.declared && !w.noBody {
		w.closeAfter = true // a short body: the client must not take it for whole
	}
	return w.c.bw.Flush()
}

// commit writes the status line and header, choosing the framing; done
// means the handler has returned, so the pending bytes are the whole body.
// next is the write that did not fit the pending bytes, if that is why:
// the Content-Type is sniffed from the pending bytes and then next, as
// net/http sniffs its buffer.
func (w *responseWriter) commit(done bool, next []byte) {
	w.committed = true
	h := w.head
	if w.c.s.shutting.Load() {
		w.closeAfter = true // shutting down: this response is the connection's last
	}
	if v := h["Connection"]; len(v) > 0 && strings.EqualFold(strings.Join(v, ","), "close") {
		w.closeAfter = true
	}
	if b := w.c.body; b != nil && b.err != nil {
		w.closeAfter = true // a malformed or cut body: its rest is no next request
	}
	extra := make([]string, 0, 8)
	if _, ok := h["Date"]; !ok {
		extra = append(extra, "Date", time.Now().UTC().Format(http.TimeFormat))
	}
	if bodyAllowed(w.status) {
		_, haveType := h["Content-Type"]
		if !haveType && h.Get("Content-Encoding") == "" && h.Get("Transfer-Encoding") == "" && len(w.pending)+len(next) > 0 {
			extra = append(extra, "Content-Type", sniff(w.pending, next))
		}
	} else {
		for _, k := range suppressed(w.status) {
			delete(h, k)
		}
	}
	_, haveCL := h["Content-Length"]
	w.trailers = hasTrailers(h)
	if done && !haveCL && !w.trailers && bodyAllowed(w.status) && (w.req.Method != http.MethodHead || len(w.pending) > 0) {
		extra = append(extra, "Content-Length", strconv.Itoa(len(w.pending)))
		haveCL = true
	}
	switch {
	case w.noBody, haveCL:
	case w.req.ProtoMinor == 1:
		w.chunked = true
		extra = append(extra, "Transfer-Encoding", "chunked")
	default:
		w.closeAfter = true // HTTP/1.0 and no length: the close ends the body
	}
	if _, ok := h["Connection"]; !ok {
		switch {
		case w.req.ProtoMinor == 0:
			if !w.closeAfter { // HTTP/1.0 closes unless told otherwise
				extra = append(extra, "Connection", "keep-alive")
			}
		case w.closeAfter:
			extra = append(extra, "Connection", "close")
		}
	}
	w.writeStatusLine(w.status)
	h.WriteSubset(w.c.bw, trailerKeys(h))
	for i := 0; i < len(extra); i += 2 {
		w.c.bw.WriteString(extra[i] + ": " + extra[i+1] + "\r\n")
	}
	w.c.bw.WriteString("\r\n")
	if len(w.pending) > 0 {
		w.writeBody(w.pending)
		w.pending = nil
	}
}

// writeBody sends body bytes once the head is committed.
func (w *responseWriter) writeBody(p []byte) error {
	if w.noBody || len(p) == 0 {
		return nil
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString(strconv.FormatInt(int64(len(p)), 16) + "\r\n")
	}
	if _, err := bw.Write(p); err != nil {
		return err
	}
	if w.chunked {
		_, err := bw.WriteString("\r\n")
		return err
	}
	return nil
}

func (w *responseWriter) writeStatusLine(code int) {
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	w.c.bw.WriteString("HTTP/1." + strconv.Itoa(w.req.ProtoMinor) + " " + strconv.Itoa(code) + " " + text + "\r\n")
}

// sniff returns the Content-Type http.DetectContentType finds in the body
// that starts with a and goes on with b.
func sniff(a, b []byte) string {
	const n = 512 // what DetectContentType looks at
	if len(a) >= n || len(b) == 0 {
		return http.DetectContentType(a)
	}
	if len(a) == 0 {
		return http.DetectContentType(b)
	}
	var buf [n]byte
	k := copy(buf[:], a)
	k += copy(buf[k:], b)
	return http.DetectContentType(buf[:k])
}

// bodyAllowed reports whether a response with status may carry a body
// (RFC 9110 §6.4.1).
func bodyAllowed(status int) bool {
	return !(status >= 100 && status < 200) && status != http.StatusNoContent && status != http.StatusNotModified
}

// suppressed are the fields a response without a body does not carry.
func suppressed(status int) []string {
	if status == http.StatusNotModified {
		return []string{"Content-Type", "Content-Length", "Transfer-Encoding"}
	}
	return []string{"Content-Length", "Transfer-Encoding"}
}

// hasTrailers reports whether the handler announced trailer fields (a
// Trailer field, or a field with http.TrailerPrefix).
func hasTrailers(h http.Header) bool {
	if _, ok := h["Trailer"]; ok {
		return true
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// trailerKeys are the header keys that are trailers, not head fields.
func trailerKeys(h http.Header) map[string]bool {
	var ex map[string]bool
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			if ex == nil {
				ex = make(map[string]bool)
			}
			ex[k] = true
		}
	}
	return ex
}

// trailerFields are the trailers to send after the last chunk: the fields
// the Trailer field announced, and those set with http.TrailerPrefix.
func (w *responseWriter) trailerFields() http.Header {
	if !w.trailers {
		return nil
	}
	t := make(http.Header)
	for _, v := range w.head["Trailer"] {
		for name := range strings.SplitSeq(v, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			if vv, ok := w.header[name]; ok && name != "" {
				t[name] = vv
			}
		}
	}
	for k, vv := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			t[http.CanonicalHeaderKey(name)] = vv
		}
	}
	return t
}

// Hijack hands the connection to the handler (a protocol switch): bytes
// already read come first from the returned reader, and the server neither
// writes to nor closes the connection afterwards.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.committed {
		return nil, nil, errors.New("h1: Hijack after the response head was written")
	}
	w.ctx.end() // the watcher, if any, stops reading; what it read is in raw
	w.hijacked = true
	c := w.c
	c.hijacked = true // the body no longer reads the connection
	c.nc.SetReadDeadline(time.Time{})
	rest := bytes.Clone(c.raw[c.r:c.w])
	c.r = c.w
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(rest), c.nc))
	return c.nc, bufio.NewReadWriter(br, bufio.NewWriter(c.nc)), nil
}

// ReadFrom sends a body from r. With a declared length and no chunking, the
// head is flushed and r is copied straight to the connection, so a file
// goes out with sendfile; otherwise it is written as any body is.
func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.declared < 0 || w.noBody || hasTrailers(w.head) {
		return io.Copy(writerOnly{w}, r)
	}
	if !w.committed {
		w.commit(false, nil)
	}
	if err := w.c.bw.Flush(); err != nil {
		return 0, w.failed(err)
	}
	src := r // a LimitedReader over a file stays one, so the copy can use sendfile
	if lr, ok := r.(*io.LimitedReader); !ok || lr.N > w.declared-w.written {
		src = io.LimitReader(r, w.declared-w.written)
	}
	n, err := io.Copy(w.c.nc, src)
	w.written += n
	return n, err
}

// writerOnly hides ReadFrom, so io.Copy does not call it again.
type writerOnly struct{ io.Writer }

// SetWriteDeadline and SetReadDeadline let http.ResponseController set the
// connection's deadlines.
func (w *responseWriter) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }
func (w *responseWriter) SetReadDeadline(t time.Time) error  { return w.c.nc.SetReadDeadline(t) }
