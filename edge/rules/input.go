package rules

import (
	"net/http"
	"net/netip"
	"strings"
)

// Input is the request a Set evaluates: its parts as the cache key sees
// them. Building one allocates nothing.
type Input struct {
	// Method is the request method.
	Method string
	// Scheme is "http" or "https".
	Scheme string
	// Host is the normalized request host: lowercase, no port, no
	// trailing dot.
	Host string
	// Path is the normalized escaped path (rfc.NormalizePath).
	Path string
	// Query is the raw query string, without '?'.
	Query string
	// Client is the client's address; the zero Addr matches no Clients.
	Client netip.Addr
	// Fields are the request's header fields; nil means none.
	Fields Fields
	// RequestID returns the request's ID for {request_id}; nil renders
	// nothing.
	RequestID func() string
}

// Fields gives read access to request header fields, so a Set reads a
// net/http header map and edged's own parsed request head alike.
type Fields interface {
	// Value returns the i-th field line (from 0) of the field named name,
	// given in canonical form (textproto.CanonicalMIMEHeaderKey), and
	// whether there is one.
	Value(name string, i int) (string, bool)
}

// Header adapts an http.Header to Fields.
type Header http.Header

// Value implements Fields.
func (h Header) Value(name string, i int) (string, bool) {
	v := h[name]
	if i < len(v) {
		return v[i], true
	}
	return "", false
}

// Get returns the first line of a field.
func get(f Fields, name string) (string, bool) {
	if f == nil {
		return "", false
	}
	return f.Value(name, 0)
}

// cookie returns the value of the first cookie called name in the
// request's Cookie field lines.
func (in *Input) cookie(name string) (string, bool) {
	if in.Fields == nil {
		return "", false
	}
	for i := 0; ; i++ {
		line, ok := in.Fields.Value("Cookie", i)
		if !ok {
			return "", false
		}
		if v, ok := cookieIn(line, name); ok {
			return v, true
		}
	}
}

// cookieIn finds cookie name in one Cookie line ("a=1; b=2"): each
// occurrence of name is checked to start a pair (at the line's start or
// after ';' and spaces) and to be followed by '='.
func cookieIn(line, name string) (string, bool) {
	for off := 0; off < len(line); {
		i := strings.Index(line[off:], name)
		if i < 0 {
			return "", false
		}
		i += off
		off = i + 1
		j := i - 1
		for j >= 0 && (line[j] == ' ' || line[j] == '\t') {
			j--
		}
		if j >= 0 && line[j] != ';' {
			continue
		}
		k := i + len(name)
		for k < len(line) && (line[k] == ' ' || line[k] == '\t') {
			k++
		}
		if k >= len(line) || line[k] != '=' {
			continue
		}
		v := line[k+1:]
		if end := strings.IndexByte(v, ';'); end >= 0 {
			v = v[:end]
		}
		v = strings.Trim(v, " \t") // optional whitespace: SP and HTAB only, as around the name
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v, true
	}
	return "", false
}

// queryParam returns the raw value of the first parameter called name
// (compared as sent, percent-encoding and all) in a raw query string.
func queryParam(query, name string) (string, bool) {
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		n, v, _ := strings.Cut(pair, "=")
		if n == name {
			return v, true
		}
	}
	return "", false
}
