package rfc

import (
	"math"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/pquerna/cachecontrol/cacheobject"
)

// RequestDirectives are the request Cache-Control directives a shared cache
// honours (RFC 9111 §5.2.1). The zero value means no directives.
type RequestDirectives struct {
	// NoStore: don't store the response to this request (§5.2.1.5).
	NoStore bool
	// NoCache: don't serve a stored response without validating it
	// (§5.2.1.4). It is also set by Pragma: no-cache when the request has no
	// Cache-Control field (§5.4).
	NoCache bool
	// OnlyIfCached: answer from the cache or with 504 (§5.2.1.7).
	OnlyIfCached bool

	// MaxAge is the largest acceptable age (§5.2.1.1), valid when HasMaxAge.
	MaxAge    time.Duration
	HasMaxAge bool
	// MaxStale is how stale a response the client accepts (§5.2.1.2),
	// valid when HasMaxStale. max-stale with no value sets it to the largest
	// time.Duration.
	MaxStale    time.Duration
	HasMaxStale bool
	// MinFresh is how much freshness must remain (§5.2.1.3), valid when
	// HasMinFresh.
	MinFresh    time.Duration
	HasMinFresh bool
}

// ParseRequestDirectives reads the Cache-Control request directives from h,
// combining all its Cache-Control lines. Each directive is parsed on its own,
// so a malformed one never hides the others, and the most restrictive reading
// wins:
//   - no-cache, no-store and only-if-cached count even with an argument;
//   - an invalid max-age counts as max-age=0, and duplicated max-age keeps
//     the smallest value;
//   - an invalid max-stale or min-fresh is ignored; duplicates keep the
//     smallest max-stale and the largest min-fresh.
//
// Without any Cache-Control line, Pragma: no-cache sets NoCache. h must
// have canonical keys, as parsed requests do.
func ParseRequestDirectives(h http.Header) RequestDirectives {
	var d RequestDirectives
	lines := h["Cache-Control"] // request keys are canonical; Values would canonicalize again
	if len(lines) == 0 {
		d.NoCache = reqPragmaNoCache(h)
		return d
	}
	for _, dir := range policySplitDirectives(lines) {
		one, err := cacheobject.ParseRequestCacheControl(dir.text())
		ok := err == nil && dir.valueOK()
		switch dir.name {
		case "no-cache":
			d.NoCache = true
		case "no-store":
			d.NoStore = true
		case "only-if-cached":
			d.OnlyIfCached = true
		case "max-age":
			v := time.Duration(0)
			if ok && one.MaxAge >= 0 {
				v = reqSeconds(one.MaxAge)
			}
			if !d.HasMaxAge || v < d.MaxAge {
				d.MaxAge, d.HasMaxAge = v, true
			}
		case "max-stale":
			var v time.Duration
			switch {
			case !dir.hasValue && ok:
				v = time.Duration(math.MaxInt64)
			case ok && one.MaxStale >= 0:
				v = reqSeconds(one.MaxStale)
			default:
				continue
			}
			if !d.HasMaxStale || v < d.MaxStale {
				d.MaxStale, d.HasMaxStale = v, true
			}
		case "min-fresh":
			if !ok || one.MinFresh < 0 {
				continue
			}
			if v := reqSeconds(one.MinFresh); !d.HasMinFresh || v > d.MinFresh {
				d.MinFresh, d.HasMinFresh = v, true
			}
		}
	}
	return d
}

// Allows reports whether a stored response with freshness lifetime lifetime
// and current age age may be served to this request without validation.
// noCache is the response's no-cache and always gives false, as does the
// request's own no-cache. The response must be fresh (lifetime > age), or
// stale by no more than max-stale; mustRevalidate forbids using max-stale.
// max-age and min-fresh apply in both cases. Negative arguments count as 0.
func (d RequestDirectives) Allows(lifetime, age time.Duration, mustRevalidate, noCache bool) bool {
	if noCache || d.NoCache {
		return false
	}
	lifetime, age = max(lifetime, 0), max(age, 0)
	if d.HasMaxAge && age > d.MaxAge {
		return false
	}
	if d.HasMinFresh && lifetime-age < d.MinFresh {
		return false
	}
	if lifetime > age {
		return true
	}
	return d.HasMaxStale && !mustRevalidate && age-lifetime <= d.MaxStale
}

// reqSeconds converts pquerna's delta-seconds to a Duration.
func reqSeconds(s cacheobject.DeltaSeconds) time.Duration {
	return time.Duration(s) * time.Second
}

// reqPragmaNoCache reports whether a Pragma line has the no-cache member.
func reqPragmaNoCache(h http.Header) bool {
	for _, line := range h["Pragma"] {
		for m := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(textproto.TrimString(m), "no-cache") {
				return true
			}
		}
	}
	return false
}
