package rfc

// This file parses Structured Field Dictionaries (RFC 9651 §3.2, §4.2.2;
// RFC 9651 obsoletes RFC 8941 and adds the Date and Display String types),
// the syntax of the targeted cache-control fields (RFC 9213 §2.1). It
// follows the parsing algorithms of RFC 9651 §4.2 step by step and keeps
// only what targeted fields need: each member's key, type and value.
// Parameters are parsed (a malformed one fails the field) and dropped, as
// RFC 9213 §2.1 ignores them; inner lists keep only their length.

import (
	"encoding/base64"
	"strconv"
	"strings"
	"unicode/utf8"
)

// sfKind is the type of a dictionary member's value.
type sfKind uint8

const (
	sfInteger sfKind = iota + 1
	sfDecimal
	sfString
	sfToken
	sfByteSeq
	sfBoolean
	sfDate
	sfDisplayString
	sfInnerList
)

// sfMember is one dictionary member's value. A member written without a
// value ("no-store") is the Boolean true.
type sfMember struct {
	kind sfKind
	num  int64  // Integer and Date; Decimal in thousandths; Boolean 1 or 0
	str  string // String, Token, Display String (decoded)
	list []sfMember
}

// isTrue reports whether m is the Boolean true.
func (m sfMember) isTrue() bool { return m.kind == sfBoolean && m.num == 1 }

// sfDictionary is a parsed dictionary: each key's last value (RFC 9651
// §4.2.2: a repeated key overwrites the value).
type sfDictionary map[string]sfMember

// sfParseDictionary parses the field lines of one dictionary field, combined
// as RFC 9651 §4.2 says (joined with ", "; lines that are empty after
// removing their surrounding whitespace add nothing, so an empty line does
// not make a trailing comma). ok is false when the field does not parse; an
// empty field parses to an empty dictionary.
func sfParseDictionary(lines []string) (d sfDictionary, ok bool) {
	var b strings.Builder
	for _, l := range lines {
		if l = strings.Trim(l, " \t"); l != "" {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(l)
		}
	}
	p := sfParser{s: b.String()}
	for i := 0; i < len(p.s); i++ {
		if p.s[i] >= 0x80 { // §4.2 step 1: the input must be ASCII
			return nil, false
		}
	}
	p.skipSP()
	d = sfDictionary{}
	if !p.dictionary(d) {
		return nil, false
	}
	p.skipSP()
	return d, p.empty()
}

// sfParser is the input left to parse.
type sfParser struct {
	s string
	i int
}

func (p *sfParser) empty() bool { return p.i >= len(p.s) }

// peek returns the next byte, or 0 at the end (0 is never valid input).
func (p *sfParser) peek() byte {
	if p.empty() {
		return 0
	}
	return p.s[p.i]
}

func (p *sfParser) skipSP() {
	for p.peek() == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for c := p.peek(); c == ' ' || c == '\t'; c = p.peek() {
		p.i++
	}
}

// dictionary is §4.2.2, filling d.
func (p *sfParser) dictionary(d sfDictionary) bool {
	for !p.empty() {
		key, ok := p.key()
		if !ok {
			return false
		}
		var m sfMember
		if p.peek() == '=' {
			p.i++
			if m, ok = p.itemOrInnerList(); !ok {
				return false
			}
		} else {
			m = sfMember{kind: sfBoolean, num: 1}
			if !p.parameters() {
				return false
			}
		}
		d[key] = m
		p.skipOWS()
		if p.empty() {
			return true
		}
		if p.peek() != ',' {
			return false
		}
		p.i++
		p.skipOWS()
		if p.empty() { // a trailing comma
			return false
		}
	}
	return true
}

// itemOrInnerList is §4.2.1.1.
func (p *sfParser) itemOrInnerList() (sfMember, bool) {
	if p.peek() == '(' {
		return p.innerList()
	}
	return p.item()
}

// innerList is §4.2.1.2.
func (p *sfParser) innerList() (sfMember, bool) {
	p.i++ // '('
	m := sfMember{kind: sfInnerList}
	for !p.empty() {
		p.skipSP()
		if p.peek() == ')' {
			p.i++
			return m, p.parameters()
		}
		it, ok := p.item()
		if !ok {
			return sfMember{}, false
		}
		m.list = append(m.list, it)
		if c := p.peek(); c != ' ' && c != ')' {
			return sfMember{}, false
		}
	}
	return sfMember{}, false // no ')'
}

// item is §4.2.3: a bare item and its parameters.
func (p *sfParser) item() (sfMember, bool) {
	m, ok := p.bareItem()
	return m, ok && p.parameters()
}

// bareItem is §4.2.3.1.
func (p *sfParser) bareItem() (sfMember, bool) {
	switch c := p.peek(); {
	case c == '-' || sfDigit(c):
		return p.number()
	case c == '"':
		return p.str()
	case sfAlpha(c) || c == '*':
		return p.token(), true
	case c == ':':
		return p.byteSeq()
	case c == '?':
		return p.boolean()
	case c == '@': // §4.2.9: an Integer after '@'
		p.i++
		m, ok := p.number()
		if !ok || m.kind != sfInteger {
			return sfMember{}, false
		}
		m.kind = sfDate
		return m, true
	case c == '%':
		return p.displayString()
	}
	return sfMember{}, false
}

// parameters is §4.2.3.2; the parameters are checked and dropped.
func (p *sfParser) parameters() bool {
	for p.peek() == ';' {
		p.i++
		p.skipSP()
		if _, ok := p.key(); !ok {
			return false
		}
		if p.peek() == '=' {
			p.i++
			if _, ok := p.bareItem(); !ok {
				return false
			}
		}
	}
	return true
}

// key is §4.2.3.3.
func (p *sfParser) key() (string, bool) {
	start := p.i
	if c := p.peek(); !sfLCAlpha(c) && c != '*' {
		return "", false
	}
	for c := p.peek(); sfLCAlpha(c) || sfDigit(c) || c == '_' || c == '-' || c == '.' || c == '*'; c = p.peek() {
		p.i++
	}
	return p.s[start:p.i], true
}

// number is §4.2.4: an Integer (at most 15 digits) or a Decimal (at most
// 12 integer and 3 fractional digits).
func (p *sfParser) number() (sfMember, bool) {
	neg := p.peek() == '-'
	if neg {
		p.i++
	}
	if !sfDigit(p.peek()) {
		return sfMember{}, false
	}
	start, dot := p.i, -1
	for ; !p.empty(); p.i++ {
		c := p.s[p.i]
		if c == '.' && dot < 0 {
			if p.i-start > 12 {
				return sfMember{}, false
			}
			dot = p.i
			continue
		}
		if !sfDigit(c) {
			break
		}
		if dot < 0 && p.i-start >= 15 || dot >= 0 && p.i-start >= 16 {
			return sfMember{}, false
		}
	}
	num := p.s[start:p.i]
	if dot < 0 {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return sfMember{}, false
		}
		if neg {
			n = -n
		}
		return sfMember{kind: sfInteger, num: n}, true
	}
	intPart, frac := num[:dot-start], num[dot-start+1:]
	if frac == "" || len(frac) > 3 {
		return sfMember{}, false
	}
	frac += strings.Repeat("0", 3-len(frac))
	n, err1 := strconv.ParseInt(intPart, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		return sfMember{}, false
	}
	n = n*1000 + f
	if neg {
		n = -n
	}
	return sfMember{kind: sfDecimal, num: n}, true
}

// str is §4.2.5: a quoted String of printable ASCII, with \" and \\ the
// only escapes.
func (p *sfParser) str() (sfMember, bool) {
	p.i++ // '"'
	var b strings.Builder
	for !p.empty() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.empty() {
				return sfMember{}, false
			}
			next := p.s[p.i]
			p.i++
			if next != '"' && next != '\\' {
				return sfMember{}, false
			}
			b.WriteByte(next)
		case c == '"':
			return sfMember{kind: sfString, str: b.String()}, true
		case c < 0x20 || c >= 0x7f:
			return sfMember{}, false
		default:
			b.WriteByte(c)
		}
	}
	return sfMember{}, false // no closing quote
}

// token is §4.2.6; the first byte is known to be ALPHA or '*'.
func (p *sfParser) token() sfMember {
	start := p.i
	p.i++
	for c := p.peek(); policyTokenChar(c) || c == ':' || c == '/'; c = p.peek() {
		p.i++
	}
	return sfMember{kind: sfToken, str: p.s[start:p.i]}
}

// byteSeq is §4.2.7: base64 between colons. '=' padding may be missing
// (the RFC asks parsers not to fail on that); the bytes are not kept.
func (p *sfParser) byteSeq() (sfMember, bool) {
	p.i++ // ':'
	end := strings.IndexByte(p.s[p.i:], ':')
	if end < 0 {
		return sfMember{}, false
	}
	b64 := p.s[p.i : p.i+end]
	p.i += end + 1
	for i := 0; i < len(b64); i++ {
		if c := b64[i]; !sfAlpha(c) && !sfDigit(c) && c != '+' && c != '/' && c != '=' {
			return sfMember{}, false
		}
	}
	if _, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "=")); err != nil {
		return sfMember{}, false
	}
	return sfMember{kind: sfByteSeq}, true
}

// boolean is §4.2.8: ?1 or ?0.
func (p *sfParser) boolean() (sfMember, bool) {
	p.i++ // '?'
	switch p.peek() {
	case '1':
		p.i++
		return sfMember{kind: sfBoolean, num: 1}, true
	case '0':
		p.i++
		return sfMember{kind: sfBoolean}, true
	}
	return sfMember{}, false
}

// displayString is §4.2.10: %"..." with lowercase %xx escapes, UTF-8.
func (p *sfParser) displayString() (sfMember, bool) {
	p.i++ // '%'
	if p.peek() != '"' {
		return sfMember{}, false
	}
	p.i++
	var b []byte
	for !p.empty() {
		c := p.s[p.i]
		p.i++
		switch {
		case c < 0x20 || c >= 0x7f:
			return sfMember{}, false
		case c == '%':
			if len(p.s)-p.i < 2 {
				return sfMember{}, false
			}
			hi, ok1 := sfLowerHex(p.s[p.i])
			lo, ok2 := sfLowerHex(p.s[p.i+1])
			if !ok1 || !ok2 {
				return sfMember{}, false
			}
			p.i += 2
			b = append(b, hi<<4|lo)
		case c == '"':
			if !utf8.Valid(b) {
				return sfMember{}, false
			}
			return sfMember{kind: sfDisplayString, str: string(b)}, true
		default:
			b = append(b, c)
		}
	}
	return sfMember{}, false
}

func sfDigit(c byte) bool   { return '0' <= c && c <= '9' }
func sfLCAlpha(c byte) bool { return 'a' <= c && c <= 'z' }
func sfAlpha(c byte) bool   { return sfLCAlpha(c) || 'A' <= c && c <= 'Z' }

func sfLowerHex(c byte) (byte, bool) {
	switch {
	case sfDigit(c):
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
