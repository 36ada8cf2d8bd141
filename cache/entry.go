package cache

import (
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// Entry is one stored response. An Entry is immutable once published to a
// tier: readers share it without locks, and an update stores a new Entry.
type Entry struct {
	// Key is the primary cache key.
	Key string
	// Status is the stored status code.
	Status int
	// Header is the stored response header, hop-by-hop fields removed.
	// Callers must not modify it.
	Header http.Header
	// Body is the whole response body. Callers must not modify it.
	Body []byte
	// Timing holds what the age calculation needs.
	Timing Timing
	// Lifetime is the freshness lifetime decided at store time.
	Lifetime time.Duration
	// Heuristic reports that Lifetime is heuristic (or the site default).
	Heuristic bool
	// NoCache means the entry must be validated before every reuse.
	NoCache bool
	// MustRevalidate forbids serving the entry stale.
	MustRevalidate bool
	// Vary lists the canonical request header names the response varies on,
	// and VaryValues the normalized values the storing request had for them.
	Vary       []string
	VaryValues []string
}

// Age returns the entry's current age at now (RFC 9111 §4.2.3).
func (e *Entry) Age(now time.Time) time.Duration { return e.Timing.CurrentAge(now) }

// TTL returns the remaining freshness at now; negative when stale.
func (e *Entry) TTL(now time.Time) time.Duration { return e.Lifetime - e.Age(now) }

// cost is the memory-tier cost of the entry: its body, header and key bytes.
func (e *Entry) cost() int64 {
	n := len(e.Body) + len(e.Key) + 64
	for k, vv := range e.Header {
		n += len(k) + 16
		for _, v := range vv {
			n += len(v) + 16
		}
	}
	return int64(n)
}

// matchesVary reports whether the request headers h select this entry
// (RFC 9111 §4.1).
func (e *Entry) matchesVary(h http.Header) bool {
	for i, name := range e.Vary {
		if varyValue(h, name) != e.VaryValues[i] {
			return false
		}
	}
	return true
}

// parseVary returns the canonical field names listed by the response's Vary
// header, and star=true when it contains "*".
func parseVary(h http.Header) (names []string, star bool) {
	for _, v := range h.Values("Vary") {
		for name := range strings.SplitSeq(v, ",") {
			name = textproto.TrimString(name)
			switch name {
			case "":
			case "*":
				return nil, true
			default:
				names = append(names, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
	return names, false
}

// varyValue is the normalized value of request field name: all its lines
// joined by ", " with runs of whitespace folded to one space.
func varyValue(h http.Header, name string) string {
	vv := h.Values(name)
	switch len(vv) {
	case 0:
		return ""
	case 1:
		return strings.Join(strings.Fields(vv[0]), " ")
	}
	return strings.Join(strings.Fields(strings.Join(vv, ", ")), " ")
}
