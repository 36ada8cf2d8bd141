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
