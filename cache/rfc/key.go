package rfc

import (
	"net/http"
	"strings"
)

// KeyFor returns the primary cache key of r: the normalized absolute URI
// scheme://host/path?query. scheme is "http" or "https" (the edge knows
// whether the request came over TLS).
//
// Normalization, in order:
//   - scheme and host are lowercased; a trailing dot on the host and the
//     scheme's default port (:80 for http, :443 for https) are removed
//     (NormalizeHost);
//   - an empty path becomes "/";
//   - in the path, percent-encoded unreserved characters
//     (ALPHA / DIGIT / "-" / "." / "_" / "~") are decoded and the hex digits
//     of every other percent-encoding are uppercased (RFC 3986 §6.2.2);
//   - dot segments ("." and "..") are removed from the path (RFC 3986 §5.2.4);
//     repeated slashes are kept, origins may give them meaning;
//   - the query is kept byte for byte as the client sent it (order,
//     escapes, empty parameters); only an empty query loses its "?";
//   - the fragment is never part of the key.
//
// The key and the origin agree: the edge sends the origin exactly the
// target the key was built from, the normalized host (NormalizeHost), the
// normalized path (NormalizePath) and the query as sent, so a response
// stored under a key was generated for that key's target and no other.
// The query is not sorted because the origin would then have to be sent
// the sorted query too, and origins may give parameter order and escapes
// meaning (signed URLs, repeated parameters).
func KeyFor(r *http.Request, scheme string) string {
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	return NormalizeKey(scheme, host, r.URL.EscapedPath(), r.URL.RawQuery)
}

// NormalizePath returns an escaped request path normalized the way the
// cache key normalizes it (percent-encoding and dot segments; see KeyFor).
// The edge sends this same path to the origin, so that two requests that
// share a key cannot reach different origin resources.
func NormalizePath(escapedPath string) string {
	p := normalizePercent(escapedPath)
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return removeDotSegments(p)
}

// NormalizeKey builds a primary cache key from its parts; see KeyFor.
// rawQuery is used as it is.
func NormalizeKey(scheme, host, path, rawQuery string) string {
	scheme = strings.ToLower(scheme)
	host = NormalizeHost(scheme, host)
	path = NormalizePath(path)
	var b strings.Builder
	b.Grow(len(scheme) + 3 + len(host) + len(path) + 1 + len(rawQuery))
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	b.WriteString(path)
	if rawQuery != "" {
		b.WriteByte('?')
		b.WriteString(rawQuery)
	}
	return b.String()
}

// KeyPrefix returns the key prefix that every primary key for scheme, host
// and a path starting with pathPrefix begins with: the purge-by-prefix and
// purge-by-host form (pathPrefix "" is the whole host). pathPrefix is given
// without its leading slash and is percent-normalized as keys are.
func KeyPrefix(scheme, host, pathPrefix string) string {
	scheme = strings.ToLower(scheme)
	return scheme + "://" + NormalizeHost(scheme, host) + "/" + normalizePercent(pathPrefix)
}

// NormalizeHost returns a Host header value (host[:port]) as the key
// holds it: lowercased, without a trailing dot on the name or the
// scheme's default port. scheme must be lowercase. The edge sends this
// form to the origin. It does not allocate when host is already normal.
func NormalizeHost(scheme, host string) string {
	lower := strings.ToLower(host)
	name, port := lower, ""
	if i := strings.LastIndexByte(lower, ':'); i >= 0 && !strings.Contains(lower[i:], "]") {
		name, port = lower[:i], lower[i+1:]
	}
	trimmed := strings.TrimSuffix(name, ".")
	switch {
	case port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443"):
		return trimmed
	case len(trimmed) == len(name):
		return lower
	}
	return trimmed + ":" + port
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// normalizePercent decodes percent-encoded unreserved characters and
// uppercases the hex digits of the remaining escapes. A string with a
// malformed escape is left as it is: decoding around it could form a new
// escape ("%7%30" → "%70") and the key would not be stable.
func normalizePercent(s string) string {
	if strings.IndexByte(s, '%') < 0 || !wellEscaped(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' || i+2 >= len(s) {
			b = append(b, c)
			continue
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			b = append(b, c)
			continue
		}
		if d := hi<<4 | lo; unreserved(d) {
			b = append(b, d)
		} else {
			b = append(b, '%', upperHex(s[i+1]), upperHex(s[i+2]))
		}
		i += 2
	}
	return string(b)
}

func wellEscaped(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+2 >= len(s) {
			return false
		}
		if _, ok := unhex(s[i+1]); !ok {
			return false
		}
		if _, ok := unhex(s[i+2]); !ok {
			return false
		}
		i += 2
	}
	return true
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

// removeDotSegments implements RFC 3986 §5.2.4 on an absolute path.
func removeDotSegments(p string) string {
	if !strings.Contains(p, "/.") { // every dot segment follows a slash
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	r := strings.Join(out, "/")
	if r == "" || r[0] != '/' {
		r = "/" + r
	}
	return r
}
