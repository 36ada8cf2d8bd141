package load

import (
	"net/http"
	"strings"
)

// CacheResult is what a response's headers say about the proxy cache.
type CacheResult int

// The cache outcomes Classify reports.
const (
	Unknown CacheResult = iota // no recognised cache header
	Hit                        // served from cache without contacting the origin
	Miss                       // the origin was contacted (miss, revalidation, bypass)
)

func (c CacheResult) String() string {
	switch c {
	case Hit:
		return "hit"
	case Miss:
		return "miss"
	}
	return "unknown"
}

// Classify reads the cache outcome from response headers, trying in order:
//
//   - Cache-Status (RFC 9211): the last list member is the cache nearest the
//     client; it is a hit if it carries the "hit" parameter, otherwise a miss
//     (fwd=uri-miss, fwd=stale, ...).
//   - X-Cache-Status, as nginx sets it from $upstream_cache_status: HIT, STALE
//     and UPDATING (served from cache) are hits; MISS, EXPIRED, REVALIDATED,
//     BYPASS are misses.
//   - X-Cache (Varnish setups, many CDNs): the last comma-separated value,
//     hit if it starts with HIT.
//   - X-Varnish: two transaction ids ("32773 32771") mean a hit, one a miss.
//
// Anything else is Unknown.
func Classify(h http.Header) CacheResult {
	if v := h.Values("Cache-Status"); len(v) > 0 {
		return classifyCacheStatus(v[len(v)-1])
	}
	if v := h.Get("X-Cache-Status"); v != "" {
		switch strings.ToUpper(strings.TrimSpace(v)) {
		case "HIT", "STALE", "UPDATING":
			return Hit
		}
		return Miss
	}
	if v := h.Get("X-Cache"); v != "" {
		if i := strings.LastIndexByte(v, ','); i >= 0 {
			v = v[i+1:]
		}
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(v)), "HIT") {
			return Hit
		}
		return Miss
	}
	if v := h.Get("X-Varnish"); v != "" {
		if len(strings.Fields(v)) >= 2 {
			return Hit
		}
		return Miss
	}
	return Unknown
}

// classifyCacheStatus classifies one Cache-Status field line. Quoted cache
// names may hold commas and semicolons, so it scans rather than splits.
func classifyCacheStatus(v string) CacheResult {
	// Find the start of the last list member, outside quotes.
	start, inQuote := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			start = i + 1
		}
	}
	member := v[start:]
	if strings.TrimSpace(member) == "" {
		return Unknown
	}
	// Skip the cache name, then look at each parameter's name.
	params, inQuote := "", false
	for i := 0; i < len(member); i++ {
		c := member[i]
		if c == '\\' && inQuote {
			i++
			continue
		}
		if c == '"' {
			inQuote = !inQuote
		}
		if c == ';' && !inQuote {
			params = member[i:]
			break
		}
	}
	for p := range strings.SplitSeq(params, ";") {
		name, _, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "hit") {
			return Hit
		}
	}
	return Miss
}
