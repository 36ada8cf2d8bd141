package cache

import (
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edged-proxy/edged/cache/coding"
	"github.com/edged-proxy/edged/cache/rfc"
)

// Entry is one stored response. An Entry is immutable once published to a
// tier: readers share it without locks, and an update stores a new Entry.
type Entry struct {
	// Key is the key the entry is stored under: the primary cache key, or
	// for a response with Vary, its variant key (see variantKey).
	Key string
	// Primary is the primary cache key (the URL's).
	Primary string
	// Status is the stored status code.
	Status int
	// Header is the stored response header, hop-by-hop fields removed.
	// Callers must not modify it.
	Header http.Header
	// Body is the whole response body. Callers must not modify it.
	Body []byte
	// Timing holds what the age calculation needs.
	Timing rfc.Timing
	// Lifetime is the freshness lifetime decided at store time.
	Lifetime time.Duration
	// Heuristic reports that Lifetime is heuristic (or the site default).
	Heuristic bool
	// NoCache means the entry must be validated before every reuse.
	NoCache bool
	// NoCacheFields are the header fields a qualified no-cache names
	// (RFC 9111 §5.2.2.4): never sent when the entry is reused without
	// validation (see Result.Strip).
	NoCacheFields []string
	// MustRevalidate forbids serving the entry stale.
	MustRevalidate bool
	// StaleWhileRevalidate and StaleIfError are the RFC 5861 windows after
	// expiry in which the entry may still be served.
	StaleWhileRevalidate, StaleIfError time.Duration
	// Marker marks an entry that holds no response: it records, under a
	// primary key, the Vary field names its responses vary on, and
	// MarkerID, which the variant keys include (so a purge that drops the
	// marker makes old variants unreachable for good).
	Marker   bool
	MarkerID uint64
	// Tags are the purge tags the origin gave the response (Surrogate-Key,
	// Cache-Tag).
	Tags []string
	// Vary lists the canonical request header names the response varies on,
	// and VaryValues the normalized values the storing request had for them.
	Vary       []string
	VaryValues []string
	// Codings are the compressed variants of this response stored beside
	// it, each under codedKey(Key, coding) (see compress.go). Zero for
	// a response not compressed by the cache, and for the compressed
	// entries themselves.
	Codings coding.Set
	altKeys *codedKeys // the variants' keys, when Codings is not zero
	// pending is set on a memory entry the disk tier did not admit yet
	// (admit.go).
	pending *pendingDisk

	// Memo is for whoever serves the entry to keep what it derives from
	// it once (the edge's encoded response head); the cache never reads
	// it. Nil means nothing may be kept. A copy of an Entry whose Header
	// differs must get a Memo of its own.
	Memo *Memo
}

// Memo holds one value derived from an entry, with a tag saying what it
// was derived for; safe for concurrent use.
type Memo struct{ p atomic.Pointer[memoValue] }

type memoValue struct {
	tag any
	v   any
}

// Load returns the value stored with tag, or nil.
func (m *Memo) Load(tag any) any {
	if m == nil {
		return nil
	}
	if mv := m.p.Load(); mv != nil && mv.tag == tag {
		return mv.v
	}
	return nil
}

// Store keeps v for tag, replacing what was kept.
func (m *Memo) Store(tag, v any) {
	if m != nil {
		m.p.Store(&memoValue{tag, v})
	}
}

// Age returns the entry's current age at now (RFC 9111 §4.2.3).
func (e *Entry) Age(now time.Time) time.Duration { return e.Timing.CurrentAge(now) }

// TTL returns the remaining freshness at now; negative when stale.
func (e *Entry) TTL(now time.Time) time.Duration { return e.Lifetime - e.Age(now) }

// size is what the memory tier's object-size rule weighs
// (Config.MaxObjectBytes): the entry's body, header and key bytes.
func (e *Entry) size() int64 {
	n := len(e.Body) + len(e.Key) + 64
	for k, vv := range e.Header {
		n += len(k) + 16
		for _, v := range vv {
			n += len(v) + 16
		}
	}
	return int64(n)
}

// cost is the memory-tier cost of the entry: the heap it takes while
// stored, so that the tier's byte budget is the heap its entries use
// (TestMemoryCostMatchesHeap measures the two end to end). Beyond the
// body and key it counts the header as Go holds it (a map, whose size
// steps with its field count, a string header per value, the names and
// values), the edge's encoded copy of the header (Memo), and a fixed part
// (entryOverhead). The memory tier adds its own record (ristretto's
// internal cost). For a 1 KiB object from a typical origin the overhead
// is more than the body.
func (e *Entry) cost() int64 {
	n := len(e.Body) + len(e.Key) + entryOverhead
	values, text := 0, 0
	for k, vv := range e.Header {
		text += len(k)
		for _, v := range vv {
			values++
			text += len(v)
		}
	}
	n += headerMapBytes(len(e.Header)) + 16*values + 2*text + 4*values
	return int64(n)
}

// entryOverhead is the heap of a stored entry that depends on nothing in
// it: the Entry, its Memo and encoded-head record, and the memory tier's
// records beyond its internal cost. Fitted by TestMemoryCostMatchesHeap.
const entryOverhead = 640

// headerMapBytes is the heap of an http.Header map of n fields, as made
// for exactly n (storedHeader, Clone): one group of 8 slots up to 8, then
// tables of 16, 32, 64... slots at most 7/8 full, about 41 bytes a slot
// (a control byte, a string key and a []string value). Measured with Go
// 1.26: 400 bytes up to 8 fields, 792 up to 14, 1,495 up to 28, 2,775 up
// to 56.
func headerMapBytes(n int) int {
	if n <= 8 {
		return 400
	}
	c := 16
	for c*7/8 < n {
		c *= 2
	}
	return c*41 + 136
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

// varyValue is the normalized value of request field name (RFC 9111
// §4.1 allows normalizing what is semantically equal): its lines combined
// into one list (RFC 9110 §5.3) and the list normalized (normalizeList:
// whitespace around members and separators removed, runs inside a member
// folded, empty members dropped), so that "1,2", " 1 , 2 " and two lines
// "1" and "2" are one value; Accept-Encoding becomes its sorted,
// lowercased set of acceptable codings (q-values dropped, q=0 codings
// removed); Accept-Language and Accept-Charset are lowercased with spaces
// removed. An absent field is "" and differs from an empty one ("\x01").
func varyValue(h http.Header, name string) string {
	vv := h[name]
	if vv == nil {
		vv = h.Values(name)
	}
	if vv == nil {
		return ""
	}
	joined := strings.Join(vv, ",")
	var v string
	switch name {
	case "Accept-Encoding":
		return normalizeCodings(joined)
	case "Accept-Language", "Accept-Charset":
		v = strings.ToLower(strings.ReplaceAll(normalizeList(joined), " ", ""))
	default:
		v = normalizeList(joined)
	}
	if v == "" {
		return "\x01"
	}
	return v
}

// normalizeList normalizes a comma-separated field value (RFC 9110 §5.6.1)
// for comparison: each member trimmed of whitespace, runs of spaces and
// tabs inside it folded into one space, empty members dropped, and the
// members joined with ",". Quoted strings are kept as they are, commas and
// whitespace included. A field that is not a list gets the same treatment,
// which at most equates values that differ only in whitespace next to a
// comma.
func normalizeList(v string) string {
	var b strings.Builder
	b.Grow(len(v))
	quoted, space := false, false
	start := 0 // where the current member starts in b
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			b.WriteByte(c)
			switch c {
			case '\\':
				if i+1 < len(v) {
					i++
					b.WriteByte(v[i])
				}
			case '"':
				quoted = false
			}
			continue
		case c == ',':
			if b.Len() == start { // an empty member: nothing to separate
				continue
			}
			b.WriteByte(',')
			start, space = b.Len(), false
			continue
		case c == ' ' || c == '\t':
			space = true
			continue
		}
		if space && b.Len() > start {
			b.WriteByte(' ')
		}
		space = false
		b.WriteByte(c)
		quoted = c == '"'
	}
	out := b.String()
	if start > 0 && len(out) == start {
		out = out[:start-1] // the separator before trailing empty members
	}
	return out
}

// normalizeCodings reduces an Accept-Encoding value to the sorted set of
// codings it accepts.
func normalizeCodings(v string) string {
	var codings []string
	for member := range strings.SplitSeq(v, ",") {
		coding, params, _ := strings.Cut(member, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding == "" {
			continue
		}
		if q, ok := strings.CutPrefix(strings.ReplaceAll(strings.ToLower(params), " ", ""), "q="); ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
				continue
			}
		}
		if !slices.Contains(codings, coding) {
			codings = append(codings, coding)
		}
	}
	if len(codings) == 0 {
		return "\x01"
	}
	slices.Sort(codings)
	return strings.Join(codings, ",")
}

// variantKey is the key a response stored under marker's primary key is
// stored under for a request with header h: the primary key, the marker's
// id and the normalized values of the Vary fields, NUL-separated (a NUL
// cannot occur in a URL or a header value).
func variantKey(marker *Entry, h http.Header) string {
	var b strings.Builder
	b.WriteString(marker.Primary)
	b.WriteByte(0)
	b.WriteString(strconv.FormatUint(marker.MarkerID, 36))
	for _, name := range marker.Vary {
		b.WriteByte(0)
		b.WriteString(varyValue(h, name))
	}
	return b.String()
}

// parseTags collects the purge tags from the fields named (Surrogate-Key
// is space-separated, Cache-Tag comma-separated: both separators are
// accepted in each), without duplicates.
func parseTags(h http.Header, fields []string) []string {
	var tags []string
	for _, f := range fields {
		for _, line := range h.Values(f) {
			for t := range strings.FieldsFuncSeq(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
				if !slices.Contains(tags, t) {
					tags = append(tags, t)
				}
			}
		}
	}
	return tags
}

// sameNames reports whether two Vary name lists are equal.
func sameNames(a, b []string) bool { return slices.Equal(a, b) }
