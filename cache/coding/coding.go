// Package coding negotiates content codings (Accept-Encoding with
// q-values, RFC 9110 §12.5.3) and compresses response bodies with br, zstd
// and gzip, once, for the cache to store beside the identity body.
package coding

import (
	"strings"
)

// Coding is one content coding edged produces; Identity is none.
type Coding uint8

// The codings, one bit each so that a Set holds any of them.
const (
	Identity Coding = 0
	Br       Coding = 1
	Zstd     Coding = 2
	Gzip     Coding = 4
)

// Preference lists the codings in the order edged prefers them when a
// client accepts several equally: the smallest output first.
var preference = [...]Coding{Br, Zstd, Gzip}

// String is the coding's token in Accept-Encoding and Content-Encoding.
func (c Coding) String() string {
	switch c {
	case Br:
		return "br"
	case Zstd:
		return "zstd"
	case Gzip:
		return "gzip"
	case Identity:
		return "identity"
	}
	return "unknown"
}

// Parse returns the coding named name ("br", "zstd", "gzip"; "x-gzip" is
// gzip, RFC 9110 §8.4.1.3), ASCII case-insensitive.
func Parse(name string) (Coding, bool) {
	switch {
	case strings.EqualFold(name, "br"):
		return Br, true
	case strings.EqualFold(name, "zstd"):
		return Zstd, true
	case strings.EqualFold(name, "gzip"), strings.EqualFold(name, "x-gzip"):
		return Gzip, true
	}
	return Identity, false
}

// Set is a set of codings. The zero Set is empty.
type Set uint8

// Has reports whether c is in s.
func (s Set) Has(c Coding) bool { return c != Identity && s&Set(c) != 0 }

// Each calls fn for each coding in s, in order of preference.
func (s Set) Each(fn func(Coding)) {
	for _, c := range preference {
		if s.Has(c) {
			fn(c)
		}
	}
}

// qUnset marks a coding the field does not name.
const qUnset = -1

// Negotiate returns the coding of the answer to a request whose
// Accept-Encoding value is ae (its lines joined with ","), choosing among
// the codings in have and identity (RFC 9110 §12.5.3):
//
//   - each coding gets the q-value of its own member, else that of "*",
//     else 0; identity gets its own, else "*"'s;
//   - the coding in have with the highest q-value above 0 wins, ties going
//     to the order br, zstd, gzip; identity wins over it only when the
//     field gives identity (by name or "*") a strictly higher q-value, so
//     "gzip;q=0.5" alone means gzip (identity is then a fallback, not a
//     preference: RFC 9110 says it is acceptable, not how much);
//   - an empty or absent field, a field naming nothing in have, and one
//     excluding everything (identity;q=0 or *;q=0 with no coding in have
//     acceptable) all give identity: edged never answers 406, which
//     §12.5.3 allows but does not require when identity is excluded too;
//     the unencoded representation is the one every client decodes.
//
// Members with an invalid q-value are ignored. It does not allocate.
func Negotiate(ae string, have Set) Coding {
	if have == 0 || ae == "" {
		return Identity
	}
	var q [len(preference)]int
	for i := range q {
		q[i] = qUnset
	}
	star, ident := qUnset, qUnset
	for rest := ae; rest != ""; {
		var member string
		member, rest, _ = strings.Cut(rest, ",")
		name, params, _ := strings.Cut(member, ";")
		name = trimOWS(name)
		if name == "" {
			continue
		}
		qv, ok := qParam(params)
		if !ok {
			continue
		}
		switch c, known := Parse(name); {
		case known:
			i := index(c)
			q[i] = max(q[i], qv)
		case name == "*":
			star = max(star, qv)
		case strings.EqualFold(name, "identity"):
			ident = max(ident, qv)
		}
	}
	best, bestQ := Identity, 0
	for i, c := range preference {
		if !have.Has(c) {
			continue
		}
		qc := q[i]
		if qc == qUnset {
			qc = max(star, 0)
		}
		if qc > bestQ {
			best, bestQ = c, qc
		}
	}
	if ident == qUnset {
		ident = star
	}
	if ident == qUnset {
		ident = 0 // acceptable, but it does not compete with a coding asked for
	}
	if best != Identity && bestQ >= ident {
		return best
	}
	return Identity
}

func index(c Coding) int {
	for i, p := range preference {
		if p == c {
			return i
		}
	}
	return 0
}

// qParam returns the q-value of a member's parameters in thousandths
// (1000 when there is none), and false when it is not a valid qvalue:
// "0" ["." 0*3DIGIT] or "1" ["." 0*3"0"]. Other parameters are ignored.
func qParam(params string) (int, bool) {
	q := 1000
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(trimOWS(k), "q") {
			continue
		}
		var ok bool
		if q, ok = parseQ(trimOWS(v)); !ok {
			return 0, false
		}
	}
	return q, true
}

// parseQ parses a qvalue (RFC 9110 §12.4.2) into thousandths.
func parseQ(s string) (int, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	n := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return n, true
	}
	if s[1] != '.' {
		return 0, false
	}
	scale := 100
	for i := 2; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' || (n == 1000 && c != '0') {
			return 0, false
		}
		n += int(c-'0') * scale
		scale /= 10
	}
	return n, true
}

// trimOWS removes spaces and tabs around s.
func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
