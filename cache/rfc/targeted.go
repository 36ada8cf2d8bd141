package rfc

// This file applies the targeted cache-control fields (RFC 9213):
// CDN-Cache-Control and the like, which address a class of caches and, when
// present and valid, replace Cache-Control and Expires for them. edged's
// target list is its own fields (Policy.OwnTargetedHeaders, by default
// Edged-Cache-Control, which the edge strips from responses) and then the
// fields of the classes it belongs to (Policy.TargetedHeaders, by default
// CDN-Cache-Control then Surrogate-Control, which it forwards).
//
// Choices, each with a test in targeted_test.go:
//   - A targeted field is a Structured Field Dictionary (RFC 9213 §2.1,
//     parsed by sfParseDictionary). One that fails to parse, or is empty, is
//     ignored as a whole, as if absent: the next field of the target list is
//     tried, then Cache-Control and Expires (§2.1, §2.2). Keys are lower case
//     by the SF grammar, so "Max-Age=60" fails the field.
//   - Members take the SF types their Cache-Control arguments map to:
//     delta-seconds directives (max-age, s-maxage, stale-while-revalidate,
//     stale-if-error) an Integer ≥ 0, others the Boolean true. A member of
//     another type is not used (§2.1: "SHOULD NOT consume values that
//     violate these inferred constraints"): max-age="60" or max-age=60.5 is
//     no max-age at all, and no-store=?0 is no no-store. A field whose
//     members are all unused still replaces Cache-Control (§3.1's
//     "CDN-Cache-Control: none" example).
//   - no-cache and private with a String, Token or Inner List value are the
//     qualified forms (§2.1 leaves their mapping open); edged treats them as
//     unqualified, as it does in Cache-Control.
//   - An Integer above 2^31−1 is clamped to it, as in Cache-Control (RFC
//     9111 §1.2.2). A repeated key keeps its last value (RFC 9651 §4.2.2).
//   - Parameters on members are ignored (§2.1).

import (
	"math"
	"net/http"
	"slices"

	"github.com/pquerna/cachecontrol/cacheobject"
)

// The targeted fields of a Policy whose lists are nil.
var (
	defaultOwnTargeted = []string{"Edged-Cache-Control"}
	defaultTargeted    = []string{"Cdn-Cache-Control", "Surrogate-Control"}
)

// OwnTargeted returns the targeted fields aimed at this edged alone
// (Policy.OwnTargetedHeaders, or its default), in precedence order. The
// slice must not be modified.
func (p Policy) OwnTargeted() []string {
	if p.OwnTargetedHeaders == nil {
		return defaultOwnTargeted
	}
	return p.OwnTargetedHeaders
}

// TargetList returns the target list (RFC 9213 §2.2): the fields of
// OwnTargeted, then those of TargetedHeaders (or its default), in
// precedence order. The caller owns the slice.
func (p Policy) TargetList() []string {
	others := p.TargetedHeaders
	if others == nil {
		others = defaultTargeted
	}
	return append(slices.Clone(p.OwnTargeted()), others...)
}

// controlDirectives returns the cache directives that govern h for edged:
// those of the first targeted field of the target list that is present,
// parses and is not empty (RFC 9213 §2.2), else Cache-Control's. targeted
// reports the former, in which case Expires does not apply either.
func (p Policy) controlDirectives(h http.Header) (cc policyResponseCC, targeted bool) {
	// TargetList without building it: own fields, then the others.
	for _, list := range [2][]string{p.OwnTargeted(), p.TargetedHeaders} {
		if list == nil { // only TargetedHeaders can be nil here
			list = defaultTargeted
		}
		for _, name := range list {
			lines := h.Values(name)
			if len(lines) == 0 {
				continue
			}
			if d, ok := sfParseDictionary(lines); ok && len(d) > 0 {
				return targetedDirectives(d), true
			}
		}
	}
	return policyParseResponseCC(h.Values("Cache-Control")), false
}

// targetedDirectives maps a targeted field's dictionary to the directives
// Evaluate uses, keeping only members of the expected types.
func targetedDirectives(d sfDictionary) policyResponseCC {
	cc := policyResponseCC{dirs: cacheobject.ResponseCacheDirectives{
		MaxAge: -1, SMaxAge: -1, StaleIfError: -1, StaleWhileRevalidate: -1,
	}}
	for key, m := range d {
		switch key {
		case "max-age":
			cc.dirs.MaxAge = targetedDelta(m)
		case "s-maxage":
			cc.dirs.SMaxAge = targetedDelta(m)
		case "stale-while-revalidate":
			cc.dirs.StaleWhileRevalidate = targetedDelta(m)
		case "stale-if-error":
			cc.dirs.StaleIfError = targetedDelta(m)
		case "no-store":
			cc.dirs.NoStore = m.isTrue()
		case "no-cache":
			cc.dirs.NoCachePresent = m.isTrue() || targetedFieldList(m)
		case "private":
			cc.dirs.PrivatePresent = m.isTrue() || targetedFieldList(m)
		case "must-revalidate":
			cc.dirs.MustRevalidate = m.isTrue()
		case "proxy-revalidate":
			cc.dirs.ProxyRevalidate = m.isTrue()
		case "public":
			cc.dirs.Public = m.isTrue()
		case "must-understand":
			cc.mustUnderstand = m.isTrue()
		}
	}
	return cc
}

// targetedDelta is m as delta-seconds if it is a non-negative Integer
// (clamped to 2^31−1), else -1 (absent).
func targetedDelta(m sfMember) cacheobject.DeltaSeconds {
	if m.kind != sfInteger || m.num < 0 {
		return -1
	}
	return cacheobject.DeltaSeconds(min(m.num, math.MaxInt32))
}

// targetedFieldList reports whether m is a qualified no-cache or private
// value: a String or Token naming fields, or an Inner List of them.
func targetedFieldList(m sfMember) bool {
	switch m.kind {
	case sfString, sfToken:
		return true
	case sfInnerList:
		for _, it := range m.list {
			if it.kind != sfString && it.kind != sfToken {
				return false
			}
		}
		return true
	}
	return false
}
