// Package realip finds a request's client address behind trusted proxies:
// from the connection's peer, walking X-Forwarded-For or Forwarded
// (RFC 7239) from the right past the hops it trusts.
//
// # The walk
//
// The address starts as the peer's, the address that connected. While it
// is trusted, the field's rightmost entry not yet taken (the one the hop
// at that address added) replaces it. The walk ends at the first address
// not trusted (the client), at the leftmost entry (every hop was trusted),
// or at an entry that names no address: a malformed entry, or Forwarded's
// "unknown" and obfuscated identifiers. Then the client is the last
// address established, the trusted hop that passed the entry on: edged
// never goes past what it cannot read, and never takes an address from a
// hop it does not trust. So a client that connects directly, or from
// behind a proxy not in the trusted set, cannot choose its address by
// sending the field.
package realip

import (
	"net/netip"
	"strings"
)

// The fields a Resolver reads.
const (
	XForwardedFor = "X-Forwarded-For"
	Forwarded     = "Forwarded"
)

// Trusted is the set of proxy addresses whose forwarded fields are
// believed (*rules.AddrSet is one).
type Trusted interface {
	Contains(netip.Addr) bool
}

// Resolver finds client addresses. The zero Resolver trusts no one: the
// client is always the peer.
type Resolver struct {
	// Trusted are the proxies whose entries are believed; nil trusts no
	// one.
	Trusted Trusted
	// Forwarded reads the Forwarded field (its for= parameters) instead of
	// X-Forwarded-For.
	Forwarded bool
}

// Field is the name of the field r reads.
func (r *Resolver) Field() string {
	if r.Forwarded {
		return Forwarded
	}
	return XForwardedFor
}

// Enabled reports whether r may ever answer anything but the peer.
func (r *Resolver) Enabled() bool { return r != nil && r.Trusted != nil }

// Trusts reports whether a is a trusted proxy.
func (r *Resolver) Trusts(a netip.Addr) bool {
	return r.Enabled() && a.IsValid() && r.Trusted.Contains(a.Unmap())
}

// Client returns the client address of a request that came from peer with
// lines, the values of the field r reads in the order received (one per
// field line). lines is not retained.
func (r *Resolver) Client(peer netip.Addr, lines []string) netip.Addr {
	cur := peer.Unmap()
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		for {
			if !r.Trusts(cur) {
				return cur
			}
			var entry string
			var more bool
			if r.Forwarded {
				line, entry, more = lastElement(line)
			} else {
				line, entry, more = lastItem(line)
			}
			if !more {
				break // this line is done: on to the line before it
			}
			if isBlank(entry) {
				continue // an empty list element (RFC 9110 §5.6.1)
			}
			var a netip.Addr
			var ok bool
			if r.Forwarded {
				a, ok = forNode(entry)
			} else {
				a, ok = parseNode(trimOWS(entry))
			}
			if !ok {
				return cur
			}
			cur = a
		}
	}
	return cur
}

// lastItem splits the last comma-separated item off s; more is false when
// s is empty.
func lastItem(s string) (rest, item string, more bool) {
	if s == "" {
		return "", "", false
	}
	i := strings.LastIndexByte(s, ',')
	if i < 0 {
		return "", s, true
	}
	return s[:i], s[i+1:], true
}

// lastElement splits the last forwarded-element off s: the text after the
// last comma outside a quoted string. A line whose quotes do not close
// gives the whole line as one element, which then fails to parse.
func lastElement(s string) (rest, elem string, more bool) {
	if s == "" {
		return "", "", false
	}
	cut := -1
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ',':
			cut = i
		}
	}
	if quoted {
		return "", s, true
	}
	if cut < 0 {
		return "", s, true
	}
	return s[:cut], s[cut+1:], true
}

// forNode returns the address of a forwarded-element's for= parameter.
// An element without one, with two, or with a syntax error names none.
func forNode(elem string) (netip.Addr, bool) {
	var node string
	found := false
	s := elem
	for {
		s = trimOWS(s)
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || !isToken(s[:eq]) {
			return netip.Addr{}, false
		}
		name := s[:eq]
		s = s[eq+1:]
		var val string
		var ok bool
		if val, s, ok = value(s); !ok {
			return netip.Addr{}, false
		}
		if strings.EqualFold(name, "for") {
			if found {
				return netip.Addr{}, false
			}
			node, found = val, true
		}
		s = trimOWS(s)
		if s == "" {
			break
		}
		if s[0] != ';' {
			return netip.Addr{}, false
		}
		s = s[1:]
	}
	if !found {
		return netip.Addr{}, false
	}
	return parseNode(node)
}

// value reads a token or a quoted-string from the start of s, returning
// it unquoted and the rest of s.
func value(s string) (val, rest string, ok bool) {
	if s == "" {
		return "", "", false
	}
	if s[0] != '"' {
		i := 0
		for i < len(s) && isTokenChar(s[i]) {
			i++
		}
		if i == 0 {
			return "", "", false
		}
		return s[:i], s[i:], true
	}
	var b []byte // only for quoted pairs, which addresses never need
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			if b != nil {
				return string(b), s[i+1:], true
			}
			return s[1:i], s[i+1:], true
		case '\\':
			if i+1 == len(s) {
				return "", "", false
			}
			if b == nil {
				b = append([]byte(nil), s[1:i]...)
			}
			i++
			b = append(b, s[i])
		default:
			if b != nil {
				b = append(b, c)
			}
		}
	}
	return "", "", false
}

// parseNode parses an address as proxies write it: an IPv4 or IPv6
// address, an IPv6 address in brackets, either with a port ("192.0.2.1:443",
// "[2001:db8::1]:443"). Zones, "unknown", obfuscated identifiers ("_x")
// and anything else name no address.
func parseNode(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	host := s
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = s[1:end]
		if p := s[end+1:]; p != "" && !isPort(p) {
			return netip.Addr{}, false
		}
		if !strings.Contains(host, ":") {
			return netip.Addr{}, false // brackets hold IPv6 only
		}
	} else if i := strings.IndexByte(s, ':'); i >= 0 && strings.Count(s, ":") == 1 {
		if !isPort(s[i:]) {
			return netip.Addr{}, false
		}
		host = s[:i]
		if strings.Contains(host, ":") {
			return netip.Addr{}, false
		}
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// isPort reports whether p is ":" and 1 to 5 digits (RFC 7239's obfuscated
// ports name an unknown one: not accepted).
func isPort(p string) bool {
	if len(p) < 2 || len(p) > 6 || p[0] != ':' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// trimOWS drops spaces and tabs at both ends (strings.Trim builds its
// set on every call: a fifth of the walk).
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func isBlank(s string) bool { return trimOWS(s) == "" }

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}

// isTokenChar reports whether c is an RFC 9110 tchar.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
