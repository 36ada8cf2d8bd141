// Package httpx holds small HTTP helpers shared by edge and cache: the
// hop-by-hop header rules of RFC 9110 §7.6.1 and header copying.
package httpx

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopHeaders are the connection-specific fields a proxy must not forward
// (RFC 9110 §7.6.1), plus the de-facto ones (Keep-Alive, Proxy-Connection).
var hopHeaders = [...]string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// RemoveHopByHop deletes from h the fixed hop-by-hop fields and every field
// named in its Connection header. h is modified in place.
func RemoveHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// IsHopByHop reports whether the field name (canonical) is hop-by-hop in a
// message whose Connection field values are connection: a fixed one, or one
// the Connection field names. It is RemoveHopByHop's rule for one name.
func IsHopByHop(name string, connection []string) bool {
	for _, h := range hopHeaders {
		if name == h {
			return true
		}
	}
	for _, v := range connection {
		for token := range strings.SplitSeq(v, ",") {
			if token = textproto.TrimString(token); token != "" && textproto.CanonicalMIMEHeaderKey(token) == name {
				return true
			}
		}
	}
	return false
}

// CopyHeader adds every value of src to dst.
func CopyHeader(dst, src http.Header) {
	for k, vv := range src {
		dst[k] = append(dst[k], vv...)
	}
}

// AppendValue appends v to the comma-separated list in field name of h,
// as RFC 9110 §5.3 allows for list-based fields (Via, X-Forwarded-For).
func AppendValue(h http.Header, name, v string) {
	if prior := h.Values(name); len(prior) > 0 {
		v = strings.Join(prior, ", ") + ", " + v
	}
	h.Set(name, v)
}

// Via returns this proxy's Via entry for a message received with protocol
// version major.minor (RFC 9110 §7.6.3): "1.1 edged", "1.0 edged" or "2 edged".
func Via(major, minor int) string {
	switch {
	case major == 2:
		return "2 edged"
	case major == 3:
		return "3 edged"
	case major == 1 && minor == 0:
		return "1.0 edged"
	}
	return "1.1 edged"
}
