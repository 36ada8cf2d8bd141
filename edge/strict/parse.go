package strict

import (
	"bytes"
	"errors"
	"net/http"
)

// ParseHead is the strict reader as a parser: for a server that reads its
// own connection (rather than handing validated bytes to net/http), it
// validates one request head by the same rules as a Conn and returns what
// it already parsed, so nothing parses the head a second time.

// Head is one validated request head. Its byte slices alias the buffer
// given to ParseHead and are valid as long as that buffer is.
type Head struct {
	// Method and Target are the request-line's method token and
	// request-target, as sent.
	Method, Target []byte
	// Minor is the HTTP/1 minor version: 0 or 1.
	Minor int
	// ContentLength is the request body's length: 0 when the head frames
	// no body, -1 for a chunked one.
	ContentLength int64
	// Chunked reports Transfer-Encoding: chunked.
	Chunked bool
	// Fields are the field lines in order, names as sent, values without
	// surrounding whitespace. ParseHead reuses the slice's capacity.
	Fields []Field
	// Len is how many bytes of the buffer the head took, leading empty
	// lines included: the body (if any) starts at buf[Len].
	Len int
}

// Field is one header field line.
type Field struct{ Name, Value []byte }

// Is reports whether the field's name is name (ASCII case-insensitive).
func (f Field) Is(name string) bool { return len(f.Name) == len(name) && eqFoldString(f.Name, name) }

// Get returns the value of the first field named name (ASCII
// case-insensitive), or nil.
func (h *Head) Get(name string) []byte {
	for i := range h.Fields {
		if f := h.Fields[i].Name; len(f) == len(name) && eqFoldString(f, name) {
			return h.Fields[i].Value
		}
	}
	return nil
}

func eqFoldString(b []byte, s string) bool {
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// HeadError is a refused request head: the status to answer (400, 414,
// 431, 501 or 505) and a short fixed reason.
type HeadError struct {
	Status int
	Reason string
}

func (e *HeadError) Error() string { return "strict: " + e.Reason }

// Response is the answer a Conn gives a head it refuses: the status, a
// text/plain reason and Connection: close.
func (e *HeadError) Response() []byte { return rejection(fault{status: e.Status, reason: e.Reason}) }

// ErrIncomplete means the buffer does not hold a whole request head yet:
// read more and call ParseHead again (it fails with 431 or 414 once the
// limits are passed, so the buffer never has to grow past them).
var ErrIncomplete = errors.New("strict: incomplete request head")

// ErrPreface means the buffer starts with the HTTP/2 prior-knowledge
// preface ("PRI * HTTP/2.0"): the connection is for an HTTP/2 server. A
// server that takes none answers ErrNoH2C.Response(), as a Conn does.
var ErrPreface = errors.New("strict: HTTP/2 connection preface")

// ErrNoH2C is the refusal of an HTTP/2 prior-knowledge connection.
var ErrNoH2C = &HeadError{Status: http.StatusHTTPVersionNotSupported, Reason: "HTTP/2 prior knowledge not enabled"}

// ParseHead validates the request head at the start of buf and fills h
// with it. Up to two empty lines before the request-line are skipped (RFC
// 9112 §2.2). It returns ErrIncomplete, ErrPreface, or a *HeadError for a
// head a Conn would refuse; it does not allocate once h.Fields has room.
func ParseHead(buf []byte, cfg Config, h *Head) error {
	cfg = cfg.withDefaults()
	lead := 0
	for lead < 2*maxLeadingEmptyLines && len(buf) >= lead+2 && buf[lead] == '\r' && buf[lead+1] == '\n' {
		lead += 2
	}
	if len(buf) > lead && buf[lead] == '\n' {
		return &HeadError{http.StatusBadRequest, "bare LF in request head"}
	}
	if len(buf) >= lead+2 && buf[lead] == '\r' && buf[lead+1] == '\n' {
		return &HeadError{http.StatusBadRequest, "too many empty lines before request-line"}
	}
	end, f := headEnd(buf[lead:], &cfg)
	if !f.ok() {
		return &HeadError{f.status, f.reason}
	}
	if end < 0 {
		return ErrIncomplete
	}
	h.Fields = h.Fields[:0]
	info := headInfo{fields: &h.Fields}
	f = validateHead(buf[lead:lead+end], &cfg, &info)
	if !f.ok() {
		return &HeadError{f.status, f.reason}
	}
	if info.preface {
		return ErrPreface
	}
	h.Method, h.Target, h.Minor = info.method, info.target, int(info.minor-'0')
	h.ContentLength, h.Chunked, h.Len = info.contentLength, info.chunked, lead+end
	return nil
}

// headEnd returns the length of the request head at the start of b
// (through its final empty line), or -1 when it is not complete yet,
// checking line endings, the size and the field count as it goes.
func headEnd(b []byte, cfg *Config) (int, fault) {
	lines, start := 0, 0
	for {
		i := bytes.IndexByte(b[start:], '\n')
		if i < 0 {
			if len(b) > cfg.MaxHeaderBytes {
				return -1, tooLargeFault(b, lines, cfg)
			}
			return -1, fault{}
		}
		lf := start + i
		if lf == 0 || b[lf-1] != '\r' {
			return -1, bad("bare LF in request head")
		}
		if lf-1 == start && lines > 0 {
			return lf + 1, fault{}
		}
		lines++
		if lf+1 > cfg.MaxHeaderBytes {
			return -1, tooLargeFault(b[:lf+1], lines, cfg)
		}
		if lines-1 > cfg.MaxHeaderCount {
			return -1, fault{status: http.StatusRequestHeaderFieldsTooLarge, reason: "too many header fields"}
		}
		start = lf + 1
	}
}
