// Package rfc is the stateless HTTP caching logic of edged: RFC 9111
// storability and freshness (Policy, Decision), request directives
// (RequestDirectives), targeted cache-control fields (RFC 9213, parsed as
// RFC 9651 dictionaries), HTTP-dates (ParseHTTPDate), age calculation
// (Timing) and the normalized primary cache key (KeyFor, NormalizeKey,
// KeyPrefix).
//
// Values in, decisions out: it holds no state, starts no goroutines and
// imports nothing of edged's; the cache package applies its decisions.
package rfc
