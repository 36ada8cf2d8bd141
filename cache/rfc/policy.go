package rfc

// This file decides whether an origin response may be stored by edged, a
// shared cache (RFC 9111 §3), and for how long it is fresh (§4.2.1, §4.2.2).
//
// The parser and policy base is github.com/pquerna/cachecontrol v0.2.0:
// cacheobject.ParseResponseCacheControl parses each directive, and
// cacheobject.CachableObject and ExpirationObject (the low-level form of
// cachecontrol.CachableResponse with PrivateCache=false) give the first
// verdict and the explicit expiration time. Policy.Evaluate wraps them and
// corrects the places where they disagree with RFC 9111 for a shared cache.
// Each correction has a TestPolicyCorrects_* test in policy_test.go:
//
//  1. MultipleFieldLines: pquerna reads only the first Cache-Control line
//     (Header.Get). We combine every line into one list (RFC 9110 §5.3).
//  2. MalformedDirective: one malformed directive makes pquerna fail the whole
//     evaluation with an error. We split the list ourselves (commas inside
//     quoted strings kept) and hand pquerna one directive at a time. An invalid
//     max-age or s-maxage value makes the response stale (Lifetime 0,
//     §4.2.1). A restrictive directive with an unexpected argument (no-store=x,
//     must-revalidate=x, proxy-revalidate=x) still applies. A permissive one
//     (public=x, must-understand=x) is ignored.
//  3. UnquotedFieldList: for an unquoted private=/no-cache= value pquerna reads
//     up to the next space, so "no-cache=a,max-age=600" loses max-age=600.
//     We end every directive at a comma outside quotes.
//  4. DuplicateDirective: pquerna keeps the last of duplicated max-age or
//     s-maxage directives. When duplicates disagree we take the conservative
//     choice §4.2.1 allows: the response is stale (Lifetime 0). Equal
//     duplicates are fine.
//  5. SpacesAroundEquals: "max-age = 60" is an error in pquerna; we accept
//     whitespace around '=' (the value is unambiguous). Quoted values such as
//     max-age="60" are accepted by both (§5.2).
//  6. InvalidExpires: pquerna drops an invalid Expires ("0", "-1", garbage) and
//     falls through to the Last-Modified heuristic. §5.3 says an invalid
//     Expires means already expired: we store the response with Lifetime 0.
//     An empty Expires line counts as present (pquerna ignores it), and
//     Expires lines that disagree also mean stale.
//  7. InvalidDate: an unparsable Date makes pquerna return an error. We ignore
//     it and use the evaluation time as "now". Every date is read by
//     ParseHTTPDate (httpdate.go), stricter than the http.ParseTime pquerna
//     uses: a one-digit hour or a double space is not a date.
//  8. InvalidLastModified: likewise an error in pquerna; we ignore the field,
//     so there is no Last-Modified heuristic.
//  9. HeuristicUsesDate: pquerna's heuristic is 0.1 × (time.Now − Last-Modified)
//     capped at 24 h. Ours is HeuristicFraction × (Date − Last-Modified) capped at
//     HeuristicMax, so it does not depend on when the evaluation runs.
//  10. HeuristicStatus: pquerna applies its heuristic to every status (a public
//     302, a 500 with public). We use the heuristic (and DefaultTTL) only for
//     the heuristically cacheable statuses of RFC 9110 §15.1 and only without
//     explicit freshness. §4.2.2 also allows it for responses marked public; we
//     don't, which is the conservative reading: a public response with another
//     status is stored with Lifetime 0.
//  11. Status308: pquerna's list of heuristically cacheable statuses lacks 308
//     (RFC 9110 §15.1 has it), so a 308 without freshness is not stored there.
//  12. StatusNotStored: pquerna stores any status with explicit freshness or
//     public: 1xx, 206, 304. A 1xx is not final, and §3 lets a cache store
//     206 or 304 only if it understands them, which edged, storing whole
//     objects, doesn't. We also never store 412, 416 (answers to conditional
//     or range requests) and 407, 408, 421, 426 (about a hop, not the
//     resource): policyNeverStoredStatus. Any other final status, even one
//     edged does not recognise (299, 599), is storable with explicit
//     freshness or public, as §3 says, and only the heuristically cacheable
//     ones get heuristic freshness (correction 10).
//  13. Method: pquerna stores POST responses that have explicit freshness. A
//     POST response can't answer a later POST, and edged keys only GET/HEAD,
//     so any other method is "method".
//  14. MustUnderstand: pquerna doesn't know must-understand (RFC 9111 §5.2.2.3).
//     With must-understand and a status we understand (policyUnderstoodStatus),
//     we ignore no-store as the RFC says we should. With a status we don't
//     understand, the response is not stored ("status").
//  15. EmptyAuthorization: pquerna checks Authorization with Header.Get != "".
//     §3.5 is about the field being present, so an empty Authorization counts.
//  16. VaryStar: pquerna stores Vary: *, which can never match (§4.1). We
//     don't store it ("vary-star").
//
// pquerna clamps a delta-seconds overflow to 2^31−1 instead of 2^31. §1.2.2
// allows "the greatest positive integer it can conveniently represent", so we
// keep it. pquerna reports nothing about s-maxage implying proxy-revalidate
// (§5.2.2.10), so we add it to Decision.MustRevalidate.
//
// Our own choices, each with a test:
//   - Qualified private ("private=Set-Cookie") is treated as unqualified: not
//     stored ("private"). §5.2.2.7 allows storing the rest, but that would mean
//     removing fields, and the RFC notes that caches commonly do this.
//   - Qualified no-cache ("no-cache=\"X-User, X-Token\"") stores the response
//     and names the fields (NoCacheFields) that must not be sent when it is
//     reused without validation (§5.2.2.4 SHOULD). A qualified no-cache whose
//     list is empty or holds something that is not a field name, and any
//     unqualified no-cache alongside, mean no-cache for the whole response:
//     the conservative reading.
//   - A response carrying Set-Cookie is never stored ("set-cookie"), whatever
//     its Cache-Control says (Varnish's builtin policy does the same). A cookie
//     meant for one user must not reach another.
//   - Duplicates: disagreeing max-age or s-maxage values mean stale (see 4).
//     Boolean directives may repeat. When directives conflict, the most
//     restrictive one wins (§4.2.1): private or no-store beats public, and
//     no-cache applies alongside max-age.
//   - If the highest-precedence freshness source present (s-maxage, then
//     max-age, then Expires) is invalid, the response is stale. We don't fall
//     back to a lower-precedence source.

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/cachecontrol/cacheobject"
)

// Policy holds the per-site knobs of the storability and freshness rules.
// The zero value applies the RFC 9111 defaults.
type Policy struct {
	// DefaultTTL is the freshness lifetime of a storable response that has
	// no explicit freshness (no max-age, s-maxage or Expires) and a
	// heuristically cacheable status (RFC 9110 §15.1). When it is set, it
	// replaces the Last-Modified heuristic. Zero or negative means use the
	// heuristic.
	DefaultTTL time.Duration
	// HeuristicFraction is the fraction of (Date − Last-Modified) used as
	// the heuristic lifetime (RFC 9111 §4.2.2). Zero, negative or NaN means
	// 0.1.
	HeuristicFraction float64
	// HeuristicMax caps the heuristic lifetime. Zero or negative means 24h.
	HeuristicMax time.Duration
	// StaleWhileRevalidate is the site's default stale-while-revalidate
	// window (RFC 5861 §3) for responses that name none. Zero: none.
	StaleWhileRevalidate time.Duration
	// StaleIfError is the site's default stale-if-error window (RFC 5861
	// §4) for responses that name none: how long after expiry a stored
	// response may stand in for an origin that fails. Zero means
	// DefaultStaleIfError; negative means none (a response's own
	// stale-if-error still applies).
	StaleIfError time.Duration
	// NegativeTTL is the freshness lifetime of a 404 or 410 response with
	// no explicit freshness (negative caching); origin headers override it.
	// Zero: such responses follow the heuristic rules.
	NegativeTTL time.Duration
	// OwnTargetedHeaders are the targeted cache-control fields (RFC 9213)
	// aimed at this edged alone, such as Edged-Cache-Control: first in the
	// target list, so they take precedence over TargetedHeaders, and
	// removed from responses by the edge (edge.Site). Nil means
	// Edged-Cache-Control; an empty non-nil slice names none.
	OwnTargetedHeaders []string
	// TargetedHeaders are the targeted fields aimed at a class of caches
	// edged belongs to, such as CDN-Cache-Control: obeyed after
	// OwnTargetedHeaders, in order, and forwarded downstream for the next
	// cache. Nil means CDN-Cache-Control, then Surrogate-Control; an empty
	// non-nil slice obeys none. The first field of the target list
	// (TargetList) that is present and valid replaces Cache-Control and
	// Expires.
	TargetedHeaders []string
	// Override, when set, has the last word on the freshness lifetime of
	// a response that may be stored (edged's rules: a TTL override, a
	// clamp, a TTL by status; package edge/rules). It is given the
	// status, the lifetime found above and whether it was explicit, and
	// returns the lifetime to use and whether it decided one. It may also
	// make storable a response that lacks freshness only (reason
	// "no-freshness"), by deciding a positive lifetime for it; and a
	// decided lifetime of 0 means the response is not stored (reason
	// "rule").
	Override LifetimeOverride
}

// LifetimeOverride decides freshness lifetimes in place of the origin's
// (Policy.Override).
type LifetimeOverride interface {
	Lifetime(status int, lifetime time.Duration, explicit bool) (time.Duration, bool)
}

// DefaultStaleIfError is the stale-if-error window of a Policy that sets
// none: a day, so that an origin outage does not take a site down with it
// while stored copies exist (RFC 9111 §4.2.4 lets configuration allow
// stale responses; must-revalidate, proxy-revalidate, s-maxage and
// no-cache still forbid them).
const DefaultStaleIfError = 24 * time.Hour

// staleIfError is the site's default stale-if-error window.
func (p Policy) staleIfError() time.Duration {
	switch {
	case p.StaleIfError == 0:
		return DefaultStaleIfError
	case p.StaleIfError < 0:
		return 0
	}
	return p.StaleIfError
}

// Decision is what the policy says about one origin response.
type Decision struct {
	// Storable reports that the response may be stored.
	Storable bool
	// Reason, when Storable is false, is a short token for the RFC 9211
	// Cache-Status detail. It is one of:
	//
	//	"method"           request method other than GET or HEAD (or no request)
	//	"request-no-store" the request carried Cache-Control: no-store
	//	"status"           a status edged never stores: not final, 206,
	//	                   304, 407, 408, 412, 416, 421, 426, or one it
	//	                   doesn't understand under must-understand
	//	"no-store"         response Cache-Control: no-store
	//	"private"          response Cache-Control: private (any form)
	//	"authorization"    request had Authorization and the response lacks
	//	                   public, s-maxage and must-revalidate (§3.5)
	//	"vary-star"        response Vary contains "*"
	//	"set-cookie"       response has Set-Cookie
	//	"no-freshness"     no explicit freshness, not public, and the status
	//	                   is not heuristically cacheable
	//	"rule"             Policy.Override decided a lifetime of 0
	//
	// Reason is empty when Storable is true. When several apply, the first
	// in this list is reported.
	Reason string
	// Lifetime is the freshness lifetime (RFC 9111 §4.2.1). It is never
	// negative, and 0 means the response is stale on arrival (it may be
	// stored and revalidated). It is 0 when Storable is false.
	Lifetime time.Duration
	// Heuristic reports that Lifetime came from the Last-Modified heuristic
	// or from Policy.DefaultTTL, because the response has no explicit
	// freshness. It can be true with Lifetime 0 (no Last-Modified).
	Heuristic bool
	// NoCache reports that the response may be stored but must be validated
	// before each reuse (response no-cache without a field list).
	NoCache bool
	// NoCacheFields are the canonical names of the fields a qualified
	// no-cache="..." lists (RFC 9111 §5.2.2.4): the response may be reused
	// without validation, but without these fields. Nil when NoCache is
	// set or there are none.
	NoCacheFields []string
	// MustRevalidate reports must-revalidate, proxy-revalidate or s-maxage:
	// the response must never be served stale.
	MustRevalidate bool
	// StaleWhileRevalidate and StaleIfError are the RFC 5861 windows after
	// expiry (the response's directive, else the Policy default).
	StaleWhileRevalidate, StaleIfError time.Duration
}

// Reason tokens of Decision, in the order Evaluate reports them.
const (
	policyReasonMethod         = "method"
	policyReasonRequestNoStore = "request-no-store"
	policyReasonStatus         = "status"
	policyReasonNoStore        = "no-store"
	policyReasonPrivate        = "private"
	policyReasonAuthorization  = "authorization"
	policyReasonVaryStar       = "vary-star"
	policyReasonSetCookie      = "set-cookie"
	policyReasonNoFreshness    = "no-freshness"
	policyReasonRule           = "rule"
)

// policyReasonOrder is the reporting order when several reasons apply.
var policyReasonOrder = [...]string{
	policyReasonMethod,
	policyReasonRequestNoStore,
	policyReasonStatus,
	policyReasonNoStore,
	policyReasonPrivate,
	policyReasonAuthorization,
	policyReasonVaryStar,
	policyReasonSetCookie,
	policyReasonNoFreshness,
}

// Evaluate decides whether resp, the origin's answer to req, may be stored,
// and computes its freshness lifetime. Only GET and HEAD responses are
// storable. A nil req falls back to resp.Request; with neither the answer is
// "method", and a nil resp gives "status". Expires is measured from the
// response's Date (Expires − Date), or from the time of the call when Date is
// missing or invalid. Evaluate doesn't modify req or resp.
func (p Policy) Evaluate(req *http.Request, resp *http.Response) Decision {
	return p.evaluate(req, resp, time.Now())
}

// evaluate is Evaluate with the clock reading passed in.
func (p Policy) evaluate(req *http.Request, resp *http.Response, now time.Time) Decision {
	if resp == nil {
		return Decision{Reason: policyReasonStatus}
	}
	if req == nil {
		req = resp.Request
	}
	if req == nil {
		return Decision{Reason: policyReasonMethod}
	}
	ev := p.newEvaluation(req, resp, now)
	r := ev.reason(req, resp)
	if r != "" && (p.Override == nil || r != policyReasonNoFreshness) {
		return Decision{Reason: r}
	}
	d := p.freshness(ev, resp)
	if p.Override == nil {
		return d
	}
	ttl, set := p.Override.Lifetime(resp.StatusCode, d.Lifetime, !d.Heuristic && ev.explicit())
	switch {
	case !set && r != "":
		return Decision{Reason: r}
	case !set:
		return d
	case ttl <= 0:
		return Decision{Reason: policyReasonRule}
	}
	d.Lifetime, d.Heuristic = ttl, false
	return d
}

// evaluation is what one Evaluate call has parsed: the effective
// cache-control directives, the reference time, Expires, and pquerna's
// object and verdict.
type evaluation struct {
	cc       policyResponseCC
	ref      time.Time // Date, else the time of the call: "now" for Expires and the heuristic
	expLines []string
	expOK    bool
	obj      cacheobject.Object
	rv       cacheobject.ObjectResults
}

// newEvaluation parses resp's caching fields (the targeted field replacing
// Cache-Control and Expires when one is valid, RFC 9213 §2.2, see
// targeted.go) and asks pquerna for its verdict, fed our corrected parse
// (corrections 1-5).
func (p Policy) newEvaluation(req *http.Request, resp *http.Response, now time.Time) *evaluation {
	cc, targeted := p.controlDirectives(resp.Header)
	ev := &evaluation{cc: cc}
	rd := ParseRequestDirectives(req.Header)
	date, _ := policyHTTPDate(resp.Header, "Date", now)
	ev.ref = date
	if ev.ref.IsZero() {
		ev.ref = now
	}
	ev.expLines = resp.Header.Values("Expires")
	var expires time.Time
	expires, ev.expOK = policyHTTPDate(resp.Header, "Expires", ev.ref)
	if targeted {
		ev.expLines, expires, ev.expOK = nil, time.Time{}, false
	}
	ev.obj = cacheobject.Object{
		CacheIsPrivate:    false,
		RespDirectives:    &ev.cc.dirs,
		RespHeaders:       resp.Header,
		RespStatusCode:    resp.StatusCode,
		RespExpiresHeader: expires,
		RespDateHeader:    date,
		ReqDirectives: &cacheobject.RequestCacheDirectives{
			MaxAge: -1, MaxStale: -1, MinFresh: -1, StaleIfError: -1,
			NoStore: rd.NoStore,
		},
		ReqHeaders: req.Header,
		ReqMethod:  req.Method,
		NowUTC:     ev.ref,
	}
	if targeted {
		ev.obj.RespHeaders = policyWithoutExpires(resp.Header)
	}
	cacheobject.CachableObject(&ev.obj, &ev.rv)
	return ev
}

// explicit reports explicit freshness: s-maxage, max-age or Expires.
func (ev *evaluation) explicit() bool {
	return ev.cc.dirs.SMaxAge >= 0 || ev.cc.dirs.MaxAge >= 0 || len(ev.expLines) > 0
}

// reason returns why the response may not be stored, "" when it may:
// pquerna's reasons with our corrections applied, the first of
// policyReasonOrder that holds.
func (ev *evaluation) reason(req *http.Request, resp *http.Response) string {
	why := make(map[string]bool, 4)
	for _, r := range ev.rv.OutReasons {
		switch r {
		case cacheobject.ReasonRequestNoStore:
			why[policyReasonRequestNoStore] = true
		case cacheobject.ReasonRequestAuthorizationHeader:
			why[policyReasonAuthorization] = true
		case cacheobject.ReasonResponseNoStore:
			why[policyReasonNoStore] = true
		case cacheobject.ReasonResponsePrivate:
			why[policyReasonPrivate] = true
		case cacheobject.ReasonResponseUncachableByDefault:
			why[policyReasonNoFreshness] = true
		default: // the ReasonRequestMethod* family
			why[policyReasonMethod] = true
		}
	}
	dirs := &ev.cc.dirs
	// Correction 13: only GET and HEAD.
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		why[policyReasonMethod] = true
	}
	// Corrections 12 and 14: statuses edged does not store.
	statusOK := policyStorableStatus(resp.StatusCode, ev.cc.mustUnderstand)
	if !statusOK {
		why[policyReasonStatus] = true
	}
	// Correction 14: must-understand overrides no-store for understood codes.
	if ev.cc.mustUnderstand && statusOK {
		delete(why, policyReasonNoStore)
	}
	// Correction 15: Authorization present, even if empty.
	if len(req.Header.Values("Authorization")) > 0 && !dirs.Public && !dirs.MustRevalidate && dirs.SMaxAge < 0 {
		why[policyReasonAuthorization] = true
	}
	// Correction 16 and the Set-Cookie choice.
	if policyVaryStar(resp.Header) {
		why[policyReasonVaryStar] = true
	}
	if len(resp.Header.Values("Set-Cookie")) > 0 {
		why[policyReasonSetCookie] = true
	}
	// Corrections 6 and 11: recompute "storable by default" (RFC 9111 §3).
	if ev.explicit() || dirs.Public || policyHeuristicStatus(resp.StatusCode) {
		delete(why, policyReasonNoFreshness)
	} else {
		why[policyReasonNoFreshness] = true
	}
	for _, r := range policyReasonOrder {
		if why[r] {
			return r
		}
	}
	return ""
}

// freshness is the Decision for a storable response: its lifetime, its
// revalidation flags and its RFC 5861 windows.
func (p Policy) freshness(ev *evaluation, resp *http.Response) Decision {
	dirs := &ev.cc.dirs
	d := Decision{
		Storable:             true,
		NoCache:              dirs.NoCachePresent,
		NoCacheFields:        ev.cc.noCacheFields,
		MustRevalidate:       dirs.MustRevalidate || dirs.ProxyRevalidate || dirs.SMaxAge >= 0,
		StaleWhileRevalidate: p.StaleWhileRevalidate,
		StaleIfError:         p.staleIfError(),
	}
	if dirs.StaleWhileRevalidate >= 0 {
		d.StaleWhileRevalidate = time.Duration(dirs.StaleWhileRevalidate) * time.Second
	}
	if dirs.StaleIfError >= 0 {
		d.StaleIfError = time.Duration(dirs.StaleIfError) * time.Second
	}
	status := resp.StatusCode
	switch {
	case ev.explicit():
		// s-maxage, then max-age, then Expires − Date (RFC 9111 §4.2.1).
		// pquerna computes the expiration time. With an invalid or
		// conflicting Expires (corrections 6 and 4) and no max-age or
		// s-maxage, the response is already expired.
		if dirs.SMaxAge < 0 && dirs.MaxAge < 0 && (!ev.expOK || policyConflicting(ev.expLines)) {
			break
		}
		ev.obj.RespLastModifiedHeader = time.Time{} // no heuristic here (correction 10)
		cacheobject.ExpirationObject(&ev.obj, &ev.rv)
		d.Lifetime = max(ev.rv.OutExpirationTime.Sub(ev.ref), 0)
	case p.NegativeTTL > 0 && (status == http.StatusNotFound || status == http.StatusGone):
		// Negative caching: a site default for 404 and 410 that name no
		// freshness of their own.
		d.Heuristic = true
		d.Lifetime = p.NegativeTTL
	case policyHeuristicStatus(status):
		// Corrections 9 and 10.
		d.Heuristic = true
		d.Lifetime = p.heuristic(resp.Header, ev.ref)
	}
	return d
}

// policyWithoutExpires returns h without Expires (a shallow copy).
func policyWithoutExpires(h http.Header) http.Header {
	c := make(http.Header, len(h))
	for k, v := range h {
		if k != "Expires" {
			c[k] = v
		}
	}
	return c
}

// heuristic is the lifetime of a response without explicit freshness:
// DefaultTTL when set, else HeuristicFraction × (ref − Last-Modified) capped
// at HeuristicMax, else 0.
func (p Policy) heuristic(h http.Header, ref time.Time) time.Duration {
	if p.DefaultTTL > 0 {
		return p.DefaultTTL
	}
	lm, ok := policyHTTPDate(h, "Last-Modified", ref)
	if !ok || !ref.After(lm) {
		return 0
	}
	frac := p.HeuristicFraction
	if !(frac > 0) { // also NaN
		frac = 0.1
	}
	limit := p.HeuristicMax
	if limit <= 0 {
		limit = 24 * time.Hour
	}
	f := float64(ref.Sub(lm)) * frac
	if f >= float64(limit) { // also +Inf
		return limit
	}
	return time.Duration(f)
}

// policyHeuristicStatus reports whether status is heuristically cacheable
// (RFC 9110 §15.1).
func policyHeuristicStatus(status int) bool {
	switch status {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// policyStorableStatus reports whether a response with status may be
// stored as far as its status goes (RFC 9111 §3): a final status of one of
// the five classes of RFC 9110 §15, not one edged never stores
// (policyNeverStoredStatus), and, when the response has must-understand, one
// edged understands (policyUnderstoodStatus, §5.2.2.3). A status edged does
// not recognise is otherwise storable: §3 asks a cache to understand only
// 206 and 304; such a response still needs explicit freshness or public,
// since only the statuses of RFC 9110 §15.1 are heuristically cacheable.
func policyStorableStatus(status int, mustUnderstand bool) bool {
	switch {
	case status < 200 || status > 599, policyNeverStoredStatus(status):
		return false
	case mustUnderstand:
		return policyUnderstoodStatus(status)
	}
	return true
}

// policyNeverStoredStatus reports the statuses edged never stores, whatever
// the response says:
//   - 206 and 304, which §3 allows a cache to store only if it understands
//     them: edged stores whole objects (a 206 is never one), and a 304 to a
//     revalidation updates the stored response rather than being stored;
//   - 412 and 416, which answer conditional or range requests (fills send
//     neither, so such an answer is about the request, not the resource);
//   - 407, 408, 421 and 426, which describe a connection or a proxy hop, not
//     the resource.
func policyNeverStoredStatus(status int) bool {
	switch status {
	case 206, 304, 407, 408, 412, 416, 421, 426:
		return true
	}
	return false
}

// policyUnderstoodStatus reports whether edged understands status well
// enough to store it under must-understand (RFC 9111 §5.2.2.3). These are
// the final status codes of RFC 9110 §15, plus 451 (RFC 7725), without those
// of policyNeverStoredStatus and without 305, 306 and 418, which are unused.
func policyUnderstoodStatus(status int) bool {
	switch status {
	case 200, 201, 202, 203, 204, 205,
		300, 301, 302, 303, 307, 308,
		400, 401, 402, 403, 404, 405, 406, 409, 410, 411, 413, 414, 415, 417, 422, 451,
		500, 501, 502, 503, 504, 505:
		return true
	}
	return false
}

// policyHTTPDate parses the singleton date field name of h (first line,
// its surrounding whitespace removed) with ParseHTTPDate, now being the
// reference for a two-digit year. ok is false when the field is absent or
// not a valid HTTP-date.
func policyHTTPDate(h http.Header, name string, now time.Time) (t time.Time, ok bool) {
	vv := h.Values(name)
	if len(vv) == 0 {
		return time.Time{}, false
	}
	return ParseHTTPDate(textproto.TrimString(vv[0]), now)
}

// policyConflicting reports whether field lines hold different values.
func policyConflicting(lines []string) bool {
	for _, v := range lines[min(1, len(lines)):] {
		if textproto.TrimString(v) != textproto.TrimString(lines[0]) {
			return true
		}
	}
	return false
}

// policyVaryStar reports whether a Vary field has the member "*".
func policyVaryStar(h http.Header) bool {
	for _, line := range h.Values("Vary") {
		for m := range strings.SplitSeq(line, ",") {
			if textproto.TrimString(m) == "*" {
				return true
			}
		}
	}
	return false
}

// policyResponseCC is a response Cache-Control list after our corrections.
type policyResponseCC struct {
	// dirs uses pquerna's conventions (-1 for an absent delta). A max-age or
	// s-maxage that is invalid or duplicated with different values is 0.
	dirs           cacheobject.ResponseCacheDirectives
	mustUnderstand bool
	// noCacheFields are the fields of qualified no-cache directives; nil
	// when an unqualified (or unreadable) no-cache sets dirs.NoCachePresent.
	noCacheFields []string
}

// policyParseResponseCC combines Cache-Control field lines and parses them
// one directive at a time with pquerna (corrections 1-5).
func policyParseResponseCC(lines []string) policyResponseCC {
	cc := policyResponseCC{dirs: cacheobject.ResponseCacheDirectives{
		MaxAge: -1, SMaxAge: -1, StaleIfError: -1, StaleWhileRevalidate: -1,
	}}
	var maxAge, sMaxAge policyDelta
	for _, d := range policySplitDirectives(lines) {
		one, err := cacheobject.ParseResponseCacheControl(d.text())
		switch d.name {
		case "max-age":
			ok := err == nil && one.MaxAge >= 0 && d.valueOK()
			maxAge.add(ok, one)
		case "s-maxage":
			ok := err == nil && one.SMaxAge >= 0 && d.valueOK()
			sMaxAge.add(ok, one)
		case "no-store":
			cc.dirs.NoStore = true
		case "no-cache":
			if names, ok := d.fieldNames(); ok {
				for _, n := range names {
					if !slices.Contains(cc.noCacheFields, n) {
						cc.noCacheFields = append(cc.noCacheFields, n)
					}
				}
			} else {
				cc.dirs.NoCachePresent = true
			}
		case "private":
			cc.dirs.PrivatePresent = true
		case "must-revalidate":
			cc.dirs.MustRevalidate = true
		case "proxy-revalidate":
			cc.dirs.ProxyRevalidate = true
		case "public":
			if err == nil && one.Public {
				cc.dirs.Public = true
			}
		case "must-understand":
			cc.mustUnderstand = cc.mustUnderstand || !d.hasValue
		case "stale-while-revalidate":
			if err == nil && one.StaleWhileRevalidate >= 0 && d.valueOK() {
				cc.dirs.StaleWhileRevalidate = max(cc.dirs.StaleWhileRevalidate, one.StaleWhileRevalidate)
			}
		case "stale-if-error":
			if err == nil && one.StaleIfError >= 0 && d.valueOK() {
				cc.dirs.StaleIfError = max(cc.dirs.StaleIfError, one.StaleIfError)
			}
		}
	}
	cc.dirs.MaxAge = maxAge.resolve()
	cc.dirs.SMaxAge = sMaxAge.resolve()
	if cc.dirs.NoCachePresent {
		cc.noCacheFields = nil // the whole response is validated anyway
	}
	return cc
}

// fieldNames reads the field-name list of a qualified directive
// (no-cache="a, b", or unquoted no-cache=a), canonicalized. ok is false
// for a directive without a value, an empty list, an unterminated quote
// or a member that is not a token.
func (d policyDirective) fieldNames() (names []string, ok bool) {
	if !d.hasValue {
		return nil, false
	}
	v := d.value
	if strings.HasPrefix(v, `"`) {
		if len(v) < 2 || !strings.HasSuffix(v, `"`) || strings.ContainsRune(v[1:len(v)-1], '\\') {
			return nil, false
		}
		v = v[1 : len(v)-1]
	}
	for m := range strings.SplitSeq(v, ",") {
		m = textproto.TrimString(m)
		if m == "" {
			continue
		}
		for i := 0; i < len(m); i++ {
			if !policyTokenChar(m[i]) {
				return nil, false
			}
		}
		names = append(names, textproto.CanonicalMIMEHeaderKey(m))
	}
	return names, len(names) > 0
}

// policyDelta collects the occurrences of one delta-seconds response
// directive.
type policyDelta struct {
	seen, bad bool
	val       cacheobject.DeltaSeconds
}

// add records one occurrence; one is pquerna's parse of it alone.
func (d *policyDelta) add(ok bool, one *cacheobject.ResponseCacheDirectives) {
	var v cacheobject.DeltaSeconds = -1
	if ok {
		v = one.MaxAge
		if one.SMaxAge >= 0 {
			v = one.SMaxAge
		}
	}
	if !ok || (d.seen && d.val != v) {
		d.bad = true
	}
	d.seen, d.val = true, v
}

// resolve returns -1 when absent, 0 when invalid or conflicting, else the
// value.
func (d policyDelta) resolve() cacheobject.DeltaSeconds {
	switch {
	case !d.seen:
		return -1
	case d.bad:
		return 0
	}
	return d.val
}

// policyDirective is one member of a Cache-Control list.
type policyDirective struct {
	name     string // lower case
	value    string // raw: quotes and escapes kept, surrounding spaces removed
	hasValue bool   // an '=' was present
}

// text is the directive alone, as pquerna's parser expects it.
func (d policyDirective) text() string {
	if !d.hasValue {
		return d.name
	}
	return d.name + "=" + d.value
}

// valueOK reports whether the value is a single token or quoted string,
// rejecting things like "60 30" that pquerna would read as 60.
func (d policyDirective) valueOK() bool {
	if strings.HasPrefix(d.value, `"`) {
		return len(d.value) >= 2 && strings.HasSuffix(d.value, `"`)
	}
	return !strings.ContainsAny(d.value, " \t")
}

// policySplitDirectives splits Cache-Control field lines into directives.
// Commas inside quoted strings don't split; an unterminated quote runs to the
// end of its line. Empty members and members whose name isn't a token are
// dropped, like any unknown extension (RFC 9111 §5.2.3).
func policySplitDirectives(lines []string) []policyDirective {
	var out []policyDirective
	for _, line := range lines {
		start, quoted := 0, false
		for i := 0; i <= len(line); i++ {
			if i < len(line) {
				switch c := line[i]; {
				case quoted && c == '\\':
					if i+1 < len(line) {
						i++ // skip the escaped byte
					}
					continue
				case c == '"':
					quoted = !quoted
					continue
				case quoted || c != ',':
					continue
				}
			}
			if d, ok := policyMakeDirective(line[start:i]); ok {
				out = append(out, d)
			}
			start = i + 1
		}
	}
	return out
}

// policyMakeDirective parses one list member "name[ = value]".
func policyMakeDirective(member string) (policyDirective, bool) {
	name, value, hasValue := strings.Cut(member, "=")
	name = textproto.TrimString(name)
	if name == "" {
		return policyDirective{}, false
	}
	for i := 0; i < len(name); i++ {
		if !policyTokenChar(name[i]) {
			return policyDirective{}, false
		}
	}
	return policyDirective{
		name:     strings.ToLower(name),
		value:    textproto.TrimString(value),
		hasValue: hasValue,
	}, true
}

// policyTokenChar reports whether c is a tchar (RFC 9110 §5.6.2).
func policyTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
