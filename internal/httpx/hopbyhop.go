// Package httpx holds small HTTP helpers shared by edge and cache: the
// hop-by-hop header rules of RFC 9110 §7.6.1 and header copying.
package httpx

import (
	"iter"
	"net/http"
	"net/textproto"
	"slices"
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
	for name := range connectionNames(h["Connection"]) {
		h.Del(name)
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// HopByHop returns RemoveHopByHop's rule for a message whose Connection
// field values are connection: whether a field name (canonical) is one of
// the fixed hop-by-hop fields or one that Connection names. The names are
// parsed once, for a caller that asks about every field.
func HopByHop(connection []string) func(name string) bool {
	var named []string
	for name := range connectionNames(connection) {
		named = append(named, textproto.CanonicalMIMEHeaderKey(name))
	}
	return func(name string) bool {
		return slices.Contains(hopHeaders[:], name) || slices.Contains(named, name)
	}
}

// connectionNames yields the field names the Connection field values
// list, as written.
func connectionNames(connection []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, v := range connection {
			for name := range strings.SplitSeq(v, ",") {
				if name = textproto.TrimString(name); name != "" && !yield(name) {
					return
				}
			}
		}
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
