package edge

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/edged-proxy/edged/edge/rules"
)

// clientAddr is the client address that address lists and rate limits
// see, from the Session's ClientIP (the fast path's FastWriter.ClientIP):
// the one place that turns it into an address, so that a change of what
// the client address is applies to both alike.
func clientAddr(ip string) netip.Addr {
	a, _ := netip.ParseAddr(ip)
	return a
}

// clientLists are a site's address lists.
type clientLists struct {
	allow, deny *rules.AddrSet // nil: none
}

// newClientLists builds the lists from their entries; an empty list is
// none.
func newClientLists(allow, deny []string) (clientLists, error) {
	var l clientLists
	var err error
	if len(allow) > 0 {
		if l.allow, err = rules.ParseAddrSet(allow); err != nil {
			return l, fmt.Errorf("AllowClients%w", err)
		}
	}
	if len(deny) > 0 {
		if l.deny, err = rules.ParseAddrSet(deny); err != nil {
			return l, fmt.Errorf("DenyClients%w", err)
		}
	}
	return l, nil
}

// admits reports whether the lists let the client in: not denied, and
// allowed when there is an allow list. An address that does not parse is
// in no list.
func (l *clientLists) admits(a netip.Addr) bool {
	if l.deny != nil && l.deny.Contains(a) {
		return false
	}
	return l.allow == nil || l.allow.Contains(a)
}

// admitsFast is admits for the fast path, which computes the client
// address (clientIP) only when there is a list.
func (l *clientLists) admitsFast(clientIP func() string) bool {
	return l.allow == nil && l.deny == nil || l.admits(clientAddr(clientIP()))
}

// underLimits charges a fast-path request to the limits, as overLimit
// does, and reports whether it is under them. The fast path calls it
// last, once nothing else can make it decline, so that a request is
// charged once whichever path answers it.
func underLimits(limits []rateLimit, clientIP func() string, res *rules.Result, now time.Time) bool {
	l, _ := overLimit(limits, clientAddr(clientIP()), res, now)
	return l == nil
}

// rateLimit is one rate limit of a site: its own (rule "", index -1) or a
// rule's.
type rateLimit struct {
	rule  string
	index int
	lim   *limiter
}

// limiterKey identifies a limit across reloads: a reloaded site keeps the
// buckets of each limit whose site, rule and settings are unchanged.
type limiterKey struct {
	site, rule string
	limit      rules.RateLimit
}

// rateLimits builds the limits of site s, reusing prev's buckets for the
// limits that did not change.
func rateLimits(s *Site, prev map[limiterKey]*limiter, built map[limiterKey]*limiter) []rateLimit {
	var out []rateLimit
	add := func(rule string, index int, l rules.RateLimit) {
		k := limiterKey{s.Name, rule, l}
		lim := prev[k]
		if lim == nil {
			lim = newLimiter(l)
		}
		built[k] = lim
		out = append(out, rateLimit{rule: rule, index: index, lim: lim})
	}
	if !s.RateLimit.IsZero() {
		add("", -1, s.RateLimit)
	}
	for _, rl := range s.Rules.RateLimits() {
		add(rl.Name, rl.Index, rl.Limit)
	}
	return out
}

// applies reports whether limit l counts a request for which the rules
// decided res.
func (l *rateLimit) applies(res *rules.Result) bool { return l.index < 0 || res.Matched(l.index) }

// overLimit charges the client a request to each limit that applies to
// it (the site's, and those of the rules res says matched) and returns
// nil; or, when one of them refuses, returns it and how long until it
// would admit, having charged none of them.
func overLimit(limits []rateLimit, a netip.Addr, res *rules.Result, now time.Time) (*rateLimit, time.Duration) {
	n := 0
	for i := range limits {
		if limits[i].applies(res) {
			n++
		}
	}
	if n == 0 {
		return nil, 0
	}
	if n > 1 { // look first, so that a refusal charges nothing
		for i := range limits {
			l := &limits[i]
			if !l.applies(res) {
				continue
			}
			if ok, wait := l.lim.allow(a, now, false); !ok {
				return l, wait
			}
		}
	}
	for i := range limits {
		l := &limits[i]
		if !l.applies(res) {
			continue
		}
		if ok, wait := l.lim.allow(a, now, true); !ok {
			return l, wait
		}
	}
	return nil, 0
}

// refuseClient answers 403 when the site's address lists refuse the
// client, and reports whether it did.
func (h *Handler) refuseClient(rw *responseWriter, s *Session) bool {
	l := &s.rules.lists
	if l.allow == nil && l.deny == nil || l.admits(clientAddr(s.ClientIP)) {
		return false
	}
	s.CacheResult = OutcomeReject
	if h.metrics != nil {
		h.metrics.denied.WithLabelValues(s.Site.Name).Inc()
	}
	rw.plainError(http.StatusForbidden, "edged; fwd=bypass; detail=denied", "this client address may not use this site")
	return true
}

// limitRate answers 429 when the client is over the site's rate limit or
// a matching rule's, and reports whether it did; otherwise it charges the
// client to each.
func (h *Handler) limitRate(rw *responseWriter, s *Session) bool {
	limits := s.rules.limits
	if limits == nil {
		return false
	}
	l, wait := overLimit(limits, clientAddr(s.ClientIP), &s.rs.res, h.now())
	if l == nil {
		return false
	}
	s.CacheResult = OutcomeReject
	if h.metrics != nil {
		h.metrics.limited.WithLabelValues(s.Site.Name, l.rule).Inc()
	}
	secs := retryAfter(wait)
	cs := "edged; fwd=bypass; detail=rate-limited"
	if l.rule != "" {
		cs = "edged; fwd=bypass; detail=rule:" + l.rule
	}
	rw.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	rw.plainError(http.StatusTooManyRequests, cs, "this client is over its rate limit; retry in "+strconv.FormatInt(secs, 10)+"s")
	return true
}
