package edge

import (
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/edged-proxy/edged/cache/rfc"
)

// byteRange is one satisfiable range of a representation: [start, start+length).
type byteRange struct{ start, length int64 }

// rangeOutcome says how to answer a request's Range field.
type rangeOutcome int

const (
	rangeIgnore        rangeOutcome = iota // send the whole representation (200)
	rangePartial                           // send one range (206)
	rangeUnsatisfiable                     // 416
)

// evalRange decides how to answer a request with method, Range spec and
// If-Range ir for a stored 200 response of size bytes with header h (RFC 9110 §14). Only single ranges are served: a request for
// several ranges gets the whole representation, which §14.2 allows, so that
// no multipart/byteranges body is ever built. An invalid Range, a Range on
// anything but GET, and an If-Range that does not match are ignored. ref is
// the reference for a two-digit year in If-Range and Last-Modified.
func evalRange(method, spec, ir string, h http.Header, size int64, ref time.Time) (byteRange, rangeOutcome) {
	if spec == "" || method != http.MethodGet || size < 0 {
		return byteRange{}, rangeIgnore
	}
	if ir != "" && !ifRangeMatches(ir, h, ref) {
		return byteRange{}, rangeIgnore
	}
	unit, set, ok := strings.Cut(spec, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") || strings.Contains(set, ",") {
		return byteRange{}, rangeIgnore
	}
	first, last, ok := strings.Cut(strings.TrimSpace(set), "-")
	if !ok {
		return byteRange{}, rangeIgnore
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" { // suffix range: the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 || last[0] == '+' {
			return byteRange{}, rangeIgnore
		}
		if n == 0 || size == 0 {
			return byteRange{}, rangeUnsatisfiable
		}
		n = min(n, size)
		return byteRange{start: size - n, length: n}, rangePartial
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 || first[0] == '+' {
		return byteRange{}, rangeIgnore
	}
	end := size - 1
	if last != "" {
		e, err := strconv.ParseInt(last, 10, 64)
		if err != nil || e < start || last[0] == '+' {
			return byteRange{}, rangeIgnore
		}
		end = min(e, size-1)
	}
	if start >= size {
		return byteRange{}, rangeUnsatisfiable
	}
	return byteRange{start: start, length: end - start + 1}, rangePartial
}

// ifRangeMatches evaluates If-Range (RFC 9110 §13.1.5): a strong entity-tag
// match, or an HTTP-date (rfc.ParseHTTPDate) equal to a valid Last-Modified.
func ifRangeMatches(ir string, h http.Header, ref time.Time) bool {
	ir = textproto.TrimString(ir)
	if strings.HasPrefix(ir, `"`) || strings.HasPrefix(ir, "W/") {
		etag := first(h, "Etag")
		return etag != "" && !strings.HasPrefix(ir, "W/") && !strings.HasPrefix(etag, "W/") && ir == etag
	}
	t, ok := rfc.ParseHTTPDate(ir, ref)
	if !ok {
		return false
	}
	lm, ok := rfc.ParseHTTPDate(textproto.TrimString(first(h, "Last-Modified")), ref)
	return ok && t.Equal(lm)
}

func contentRange(r byteRange, size int64) string {
	return "bytes " + strconv.FormatInt(r.start, 10) + "-" + strconv.FormatInt(r.start+r.length-1, 10) + "/" + strconv.FormatInt(size, 10)
}

// rangeStart is the first byte a single "bytes=N-..." Range asks for, or -1.
func rangeStart(r *http.Request) int64 {
	spec := first(r.Header, "Range")
	if spec == "" || r.Method != http.MethodGet {
		return -1
	}
	unit, set, ok := strings.Cut(spec, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") || strings.Contains(set, ",") {
		return -1
	}
	first, _, ok := strings.Cut(strings.TrimSpace(set), "-")
	if !ok || first == "" || first[0] == '+' {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}
