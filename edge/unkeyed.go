package edge

import (
	"net/http"
	"strings"
)

// DefaultUnkeyedHeaders returns the request fields removed before the
// origin when a site names none (Site.UnkeyedHeaders). An entry ending in
// "*" names a family: every field that starts with what comes before it.
// The slice is the caller's.
func DefaultUnkeyedHeaders() []string { return append([]string(nil), defaultUnkeyedHeaders[:]...) }

// defaultUnkeyedHeaders are the families of request fields that rewrite
// what an origin (or the framework in front of it) thinks the request is:
// its host, scheme, port, path or method, or the client's address. None
// is part of the cache key, so each could make one client's request fill
// an entry other clients are served.
var defaultUnkeyedHeaders = [...]string{
	"X-Forwarded-*", // but X-Forwarded-For, which edged extends (see fieldSet)
	"X-Original-*",
	"X-Rewrite-*",
	"X-Override-*",
	"Forwarded",
	"X-Real-Ip",
	"X-Host",
	"X-Custom-Ip-Authorization",
	"X-Http-Method",
	"X-Http-Method-Override",
	"X-Method-Override",
}

// forwardedFor is the one field a family pattern never matches: edged
// appends the client's address to it, so the chain before it stays (list
// it by name to drop the chain).
const forwardedFor = "X-Forwarded-For"

// fieldSet matches request field names against a list of names and
// families ("X-Forwarded-*"), ignoring ASCII case and taking '_' for '-'
// (CGI gateways, and servers that imitate them, read X_Forwarded_Host as
// X-Forwarded-Host). Matching does not allocate; a name whose first byte
// starts no entry is rejected after one table lookup.
type fieldSet struct {
	names    []string  // folded
	prefixes []string  // folded, without the '*'
	first    [4]uint64 // bit c: some entry starts with folded byte c
}

func newFieldSet(entries []string) *fieldSet {
	fs := &fieldSet{}
	for _, e := range entries {
		if e == "" {
			continue
		}
		f := foldName(e)
		if p, ok := strings.CutSuffix(f, "*"); ok {
			fs.prefixes = append(fs.prefixes, p)
			if p == "" {
				fs.first = [4]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
				continue
			}
		} else {
			fs.names = append(fs.names, f)
		}
		fs.first[f[0]>>6] |= 1 << (f[0] & 63)
	}
	return fs
}

// foldName lowercases name and turns '_' into '-'.
func foldName(name string) string {
	b := []byte(name)
	for i, c := range b {
		b[i] = foldByte(c)
	}
	return string(b)
}

func foldByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	case c == '_':
		return '-'
	}
	return c
}

// hasFoldedPrefix reports whether name, folded, starts with prefix (folded).
func hasFoldedPrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if foldByte(name[i]) != prefix[i] {
			return false
		}
	}
	return true
}

// match reports whether the field name is in the set.
func (fs *fieldSet) match(name string) bool {
	if name == "" {
		return false
	}
	if c := foldByte(name[0]); fs.first[c>>6]&(1<<(c&63)) == 0 {
		return false
	}
	for _, n := range fs.names {
		if len(n) == len(name) && hasFoldedPrefix(name, n) {
			return true
		}
	}
	if name == forwardedFor {
		return false
	}
	for _, p := range fs.prefixes {
		if hasFoldedPrefix(name, p) {
			return true
		}
	}
	return false
}

// strip deletes from hd every field in the set.
func (fs *fieldSet) strip(hd http.Header) {
	for name := range hd {
		if fs.match(name) {
			delete(hd, name)
		}
	}
}
