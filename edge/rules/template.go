package rules

import (
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
)

// template is a compiled value template: literal text and variables.
type template struct {
	parts    []tpart
	captures bool // uses {1}..{9}: the path regex must run with submatches
	literal  string
	isLit    bool
}

type tpart struct {
	lit  string
	kind tvar
	arg  string // header or cookie or query name; the group number
}

type tvar uint8

const (
	tLit tvar = iota
	tHost
	tPath
	tQuery
	tURI
	tScheme
	tMethod
	tClientIP
	tRequestID
	tGroup
	tHeader
	tCookie
	tQueryParam
)

var tvars = map[string]tvar{
	"host": tHost, "path": tPath, "query": tQuery, "uri": tURI, "scheme": tScheme,
	"method": tMethod, "client_ip": tClientIP, "request_id": tRequestID,
}

// templateVars lists the variables for error messages.
const templateVars = "{host}, {path}, {query}, {uri}, {scheme}, {method}, {client_ip}, {request_id}, {1}..{9}, {header.NAME}, {cookie.NAME}, {query.NAME}"

// compileTemplate parses s: "{name}" is a variable, "{{" and "}}" are
// literal braces. groups is the number of groups of the rule's path regex
// (-1: the rule has none).
func compileTemplate(s string, groups int) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, tpart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{', c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte(c)
			i++
		case c == '}':
			return t, fmt.Errorf("at offset %d: unmatched '}' (write }} for a literal brace)", i)
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return t, fmt.Errorf("at offset %d: unclosed '{' (write {{ for a literal brace)", i)
			}
			name := s[i+1 : i+end]
			p, err := templateVar(name, groups)
			if err != nil {
				return t, fmt.Errorf("at offset %d: %w", i, err)
			}
			flush()
			t.parts = append(t.parts, p)
			if p.kind == tGroup {
				t.captures = true
			}
			i += end
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	switch len(t.parts) {
	case 0:
		t.isLit = true
	case 1:
		if t.parts[0].kind == tLit {
			t.isLit, t.literal = true, t.parts[0].lit
		}
	}
	return t, nil
}

func templateVar(name string, groups int) (tpart, error) {
	if k, ok := tvars[name]; ok {
		return tpart{kind: k}, nil
	}
	if len(name) == 1 && name[0] >= '1' && name[0] <= '9' {
		n := int(name[0] - '0')
		if groups < 0 {
			return tpart{}, fmt.Errorf("{%s} needs match.path_regex with groups", name)
		}
		if n > groups {
			return tpart{}, fmt.Errorf("{%s}: match.path_regex has %d group(s)", name, groups)
		}
		return tpart{kind: tGroup, arg: name}, nil
	}
	if prefix, arg, ok := strings.Cut(name, "."); ok && arg != "" {
		switch prefix {
		case "header":
			if !validToken(arg) {
				return tpart{}, fmt.Errorf("{%s}: invalid header field name %q", name, arg)
			}
			return tpart{kind: tHeader, arg: textproto.CanonicalMIMEHeaderKey(arg)}, nil
		case "cookie":
			return tpart{kind: tCookie, arg: arg}, nil
		case "query":
			return tpart{kind: tQueryParam, arg: arg}, nil
		}
	}
	return tpart{}, fmt.Errorf("unknown variable {%s} (known: %s)", name, templateVars)
}

// render appends the template's value for in to dst. groups holds the path
// regex's submatch indexes into in.Path when the template uses captures.
func (t *template) render(dst []byte, in *Input, groups []int) []byte {
	if t.isLit {
		return append(dst, t.literal...)
	}
	for _, p := range t.parts {
		switch p.kind {
		case tLit:
			dst = append(dst, p.lit...)
		case tHost:
			dst = append(dst, in.Host...)
		case tPath:
			dst = append(dst, in.Path...)
		case tQuery:
			dst = append(dst, in.Query...)
		case tURI:
			dst = append(dst, in.Path...)
			if in.Query != "" {
				dst = append(dst, '?')
				dst = append(dst, in.Query...)
			}
		case tScheme:
			dst = append(dst, in.Scheme...)
		case tMethod:
			dst = append(dst, in.Method...)
		case tClientIP:
			if in.Client.IsValid() {
				dst = in.Client.AppendTo(dst)
			}
		case tRequestID:
			if in.RequestID != nil {
				dst = append(dst, in.RequestID()...)
			}
		case tGroup:
			n, _ := strconv.Atoi(p.arg)
			if 2*n+1 < len(groups) && groups[2*n] >= 0 {
				dst = append(dst, in.Path[groups[2*n]:groups[2*n+1]]...)
			}
		case tHeader:
			v, _ := get(in.Fields, p.arg)
			dst = append(dst, v...)
		case tCookie:
			v, _ := in.cookie(p.arg)
			dst = append(dst, v...)
		case tQueryParam:
			v, _ := queryParam(in.Query, p.arg)
			dst = append(dst, v...)
		}
	}
	return dst
}

// validToken reports whether s is a non-empty RFC 9110 token (a field name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
