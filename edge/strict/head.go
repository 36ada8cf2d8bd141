package strict

import (
	"bytes"
	"math"
	"net/http"
	"net/netip"
)

// fault describes a framing violation. The zero value means none.
type fault struct {
	status int
	reason string
	body   bool // found in a request body (chunked framing or trailers)
}

func (f fault) ok() bool { return f.status == 0 }

func bad(reason string) fault { return fault{status: http.StatusBadRequest, reason: reason} }

// headInfo is what validateHead learns about one request head. The byte
// slices alias the connection buffer and are valid only during the call.
type headInfo struct {
	method, target []byte
	minor          byte  // '0' or '1'
	contentLength  int64 // -1 when absent
	chunked        bool
	preface        bool     // "PRI * HTTP/2.0" with no fields
	fields         *[]Field // when not nil, every field line is appended here
}

const h2Preface = "PRI * HTTP/2.0"

// validateHead checks a complete request head h (request-line, field lines,
// final empty line; every LF is known to be preceded by CR). It does not
// allocate on valid input.
func validateHead(h []byte, cfg *Config, info *headInfo) fault {
	*info = headInfo{contentLength: -1, fields: info.fields}
	eol := bytes.IndexByte(h, '\n')
	line := h[:eol-1]
	rest := h[eol+1:]

	if string(line) == h2Preface {
		if len(rest) != 2 {
			return bad("HTTP/2 preface with header fields")
		}
		info.preface = true
		info.method, info.target = line[:3], line[4:5]
		return fault{}
	}
	authority, scheme, f := checkRequestLine(line, cfg, info)
	if !f.ok() {
		return f
	}

	var fr framing
	count := 0
	for {
		eol = bytes.IndexByte(rest, '\n')
		line, rest = rest[:eol-1], rest[eol+1:]
		if len(line) == 0 {
			break
		}
		count++
		if count > cfg.MaxHeaderCount {
			return fault{status: http.StatusRequestHeaderFieldsTooLarge, reason: "too many header fields"}
		}
		name, val, f := splitField(line)
		if !f.ok() {
			return f
		}
		if info.fields != nil {
			*info.fields = append(*info.fields, Field{Name: name, Value: val})
		}
		if f := fr.field(name, val, info); !f.ok() {
			return f
		}
	}
	return fr.check(info, authority, scheme)
}

// checkRequestLine checks a request-line other than the HTTP/2 preface and
// records its method, target and minor version in info. It returns the
// authority and scheme of absolute- and authority-form targets.
func checkRequestLine(line []byte, cfg *Config, info *headInfo) (authority, scheme []byte, f fault) {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return nil, nil, bad("malformed request-line")
	}
	method := line[:sp1]
	for _, c := range method {
		if !isTchar(c) {
			return nil, nil, bad("invalid method token")
		}
	}
	line = line[sp1+1:]
	sp2 := bytes.IndexByte(line, ' ')
	if sp2 < 0 {
		return nil, nil, bad("malformed request-line")
	}
	target, version := line[:sp2], line[sp2+1:]
	if len(target) == 0 {
		return nil, nil, bad("empty request-target")
	}
	if len(version) == 8 && string(version[:7]) == "HTTP/1." && (version[7] == '0' || version[7] == '1') {
		info.minor = version[7]
	} else if len(version) == 8 && string(version[:5]) == "HTTP/" && isDigit(version[5]) && version[6] == '.' && isDigit(version[7]) {
		return nil, nil, fault{status: http.StatusHTTPVersionNotSupported, reason: "unsupported HTTP version"}
	} else {
		return nil, nil, bad("malformed HTTP-version")
	}
	if len(target) > cfg.MaxURILength {
		return nil, nil, fault{status: http.StatusRequestURITooLong, reason: "request-target too long"}
	}
	info.method, info.target = method, target
	return checkTarget(target, method, string(method) == "CONNECT")
}

// splitField checks one field line (not the final empty line) and returns
// its name and its value without surrounding whitespace.
func splitField(line []byte) (name, val []byte, f fault) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, bad("obs-fold (line folding) in header")
	}
	colon := -1
	for i, c := range line {
		if c == ':' {
			colon = i
			break
		}
		if !isTchar(c) {
			if c == ' ' || c == '\t' {
				return nil, nil, bad("whitespace in header field name")
			}
			return nil, nil, bad("invalid header field name")
		}
	}
	if colon < 0 {
		return nil, nil, bad("header field line without colon")
	}
	if colon == 0 {
		return nil, nil, bad("empty header field name")
	}
	name, raw := line[:colon], line[colon+1:]
	for _, c := range raw {
		if !isValueByte(c) {
			return nil, nil, bad("invalid character in header field value")
		}
	}
	return name, trimOWS(raw), fault{}
}

// framing is what the field lines of one head say about the request's Host
// and body framing, gathered by field and judged by check.
type framing struct {
	host          []byte
	hostSeen      bool
	clSeen        bool
	teSeen        bool
	teOther       bool // a coding other than chunked
	teLastChunked bool
}

// field takes one field line's name and value: Host, Content-Length and
// Transfer-Encoding are checked and recorded (in fr, and the body framing in
// info); other fields are ignored.
func (fr *framing) field(name, val []byte, info *headInfo) fault {
	switch len(name) {
	case 4:
		if !eqFold(name, "host") {
			return fault{}
		}
		if fr.hostSeen {
			return bad("duplicate Host")
		}
		fr.hostSeen = true
		if len(val) == 0 || !validAuthority(val, false) {
			return bad("invalid Host")
		}
		fr.host = val
	case 14:
		if !eqFold(name, "content-length") {
			return fault{}
		}
		if fr.clSeen {
			return bad("duplicate Content-Length")
		}
		fr.clSeen = true
		n, ok := parseDecimal(val)
		if !ok {
			return bad("invalid Content-Length")
		}
		info.contentLength = n
	case 17:
		if !eqFold(name, "transfer-encoding") {
			return fault{}
		}
		return fr.transferEncoding(val, info)
	}
	return fault{}
}

// transferEncoding takes the value of one Transfer-Encoding field line: a
// comma-separated list of transfer-codings, of which chunked may appear once.
func (fr *framing) transferEncoding(val []byte, info *headInfo) fault {
	fr.teSeen = true
	if len(val) == 0 {
		return bad("empty Transfer-Encoding")
	}
	for len(val) > 0 {
		var elem []byte
		if i := bytes.IndexByte(val, ','); i >= 0 {
			elem, val = trimOWS(val[:i]), val[i+1:]
			if len(trimOWS(val)) == 0 {
				return bad("empty transfer-coding")
			}
		} else {
			elem, val = trimOWS(val), nil
		}
		if len(elem) == 0 {
			return bad("empty transfer-coding")
		}
		for _, c := range elem {
			if !isTchar(c) {
				return bad("invalid transfer-coding")
			}
		}
		if eqFold(elem, "chunked") {
			if info.chunked {
				return bad("chunked applied more than once")
			}
			info.chunked, fr.teLastChunked = true, true
		} else {
			fr.teOther, fr.teLastChunked = true, false
		}
	}
	return fault{}
}

// check judges the whole head once every field line is taken: the body
// framing (Transfer-Encoding against the version and Content-Length), Host
// present for HTTP/1.1 and agreeing with an absolute- or authority-form
// target, and a zero Content-Length when the body has no framing.
func (fr *framing) check(info *headInfo, authority, scheme []byte) fault {
	if fr.teSeen {
		if info.minor == '0' {
			return bad("Transfer-Encoding in HTTP/1.0 request")
		}
		if fr.clSeen {
			return bad("both Content-Length and Transfer-Encoding")
		}
		if !fr.teLastChunked {
			return bad("final transfer-coding is not chunked")
		}
		if fr.teOther {
			return fault{status: http.StatusNotImplemented, reason: "unsupported transfer-coding"}
		}
	}
	if !fr.hostSeen && info.minor == '1' {
		return bad("missing Host")
	}
	if fr.hostSeen && authority != nil && !sameAuthority(authority, fr.host, scheme) {
		return bad("Host disagrees with request-target")
	}
	if !info.chunked && info.contentLength < 0 {
		info.contentLength = 0
	}
	return fault{}
}

// checkTarget validates the request-target form allowed for method and
// returns the authority and scheme of absolute- and authority-form targets.
func checkTarget(t, method []byte, isConnect bool) (authority, scheme []byte, f fault) {
	for _, c := range t {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return nil, nil, bad("invalid character in request-target")
		}
	}
	switch {
	case isConnect:
		if !validAuthority(t, true) {
			return nil, nil, bad("invalid CONNECT authority")
		}
		return t, nil, fault{}
	case t[0] == '/':
		return nil, nil, checkPathQuery(t)
	case len(t) == 1 && t[0] == '*':
		if string(method) != "OPTIONS" {
			return nil, nil, bad("asterisk-form target on non-OPTIONS request")
		}
		return nil, nil, fault{}
	}
	i := bytes.IndexByte(t, ':')
	if i <= 0 || !(eqFold(t[:i], "http") || eqFold(t[:i], "https")) {
		return nil, nil, bad("unsupported request-target form")
	}
	scheme, rest := t[:i], t[i+1:]
	if len(rest) < 2 || rest[0] != '/' || rest[1] != '/' {
		return nil, nil, bad("absolute-form target without authority")
	}
	rest = rest[2:]
	end := bytes.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority = rest[:end]
	if len(authority) == 0 || !validAuthority(authority, false) {
		return nil, nil, bad("invalid authority in request-target")
	}
	return authority, scheme, checkPathQuery(rest[end:])
}

// checkPathQuery checks pct-encodings in the path part of t (the bytes are
// already known to be visible ASCII without '#').
func checkPathQuery(t []byte) fault {
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '?':
			return fault{}
		case '%':
			if i+2 >= len(t) || unhex(t[i+1]) < 0 || unhex(t[i+2]) < 0 {
				return bad("invalid percent-encoding in request-target")
			}
			i += 2
		}
	}
	return fault{}
}

// validAuthority reports whether a is host [":" port] with the restricted
// host syntax described in the package doc.
func validAuthority(a []byte, needPort bool) bool {
	host, port, hasPort := splitHostPort(a)
	if host == nil {
		return false
	}
	if hasPort {
		if len(port) == 0 || len(port) > 5 {
			return false
		}
		n := 0
		for _, c := range port {
			if !isDigit(c) {
				return false
			}
			n = n*10 + int(c-'0')
		}
		if n > 65535 {
			return false
		}
	} else if needPort {
		return false
	}
	if host[0] == '[' {
		ip, err := netip.ParseAddr(string(host[1 : len(host)-1]))
		return err == nil && ip.Is6() && ip.Zone() == ""
	}
	for _, c := range host {
		if !isAlnum(c) && c != '-' && c != '.' && c != '_' && c != '~' {
			return false
		}
	}
	return true
}

// splitHostPort splits an authority; host is nil when it is malformed.
func splitHostPort(a []byte) (host, port []byte, hasPort bool) {
	if len(a) == 0 {
		return nil, nil, false
	}
	if a[0] == '[' {
		j := bytes.IndexByte(a, ']')
		if j < 2 {
			return nil, nil, false
		}
		host, a = a[:j+1], a[j+1:]
		if len(a) == 0 {
			return host, nil, false
		}
		if a[0] != ':' {
			return nil, nil, false
		}
		return host, a[1:], true
	}
	i := bytes.IndexByte(a, ':')
	if i < 0 {
		return a, nil, false
	}
	if i == 0 {
		return nil, nil, false
	}
	return a[:i], a[i+1:], true
}

// sameAuthority compares a target authority with a Host value; a missing
// port equals the scheme's default port.
func sameAuthority(target, host, scheme []byte) bool {
	th, tp, _ := splitHostPort(target)
	hh, hp, _ := splitHostPort(host)
	if !eqFoldBytes(th, hh) {
		return false
	}
	def := ""
	switch {
	case eqFold(scheme, "http"):
		def = "80"
	case eqFold(scheme, "https"):
		def = "443"
	}
	if len(tp) == 0 {
		tp = []byte(def)
	}
	if len(hp) == 0 {
		hp = []byte(def)
	}
	return string(tp) == string(hp)
}

// parseDecimal parses 1*DIGIT up to math.MaxInt64.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// eqFold reports whether b equals the lower-case ASCII string s, ignoring
// ASCII case in b.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

func eqFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// isTchar reports whether c is an RFC 9110 token character.
func isTchar(c byte) bool {
	if isAlnum(c) {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// isValueByte reports whether c may appear in a field value: HTAB, SP,
// VCHAR or obs-text.
func isValueByte(c byte) bool { return c == '\t' || (c >= ' ' && c != 0x7f) }

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
