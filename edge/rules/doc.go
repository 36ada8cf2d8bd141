// Package rules is edged's per-site policy without Go code: an ordered
// list of rules, each a set of conditions on the request (Match) and the
// actions taken when they hold: caching (TTL override or clamp, TTL by
// status, bypass, stale windows, browser TTL), the cache key (query kept,
// sorted, filtered or ignored; header and cookie values; host folding),
// request and response header fields, edge redirects and fixed responses,
// and the origin pool.
//
// # Evaluation
//
// Every matching rule applies, in order, and a field a later rule sets
// overrides what an earlier one set (Cloudflare's rule phases work this
// way): a broad rule sets security headers for the whole site, a narrower
// one after it sets the TTL of /static/, and neither repeats the other.
// Header operations accumulate in rule order. A rule that redirects or
// responds ends evaluation: it answers, and later rules are not looked
// at. Whatever no rule sets keeps the site's value.
//
// # Cost
//
// Compile checks and compiles every rule once (at start and at each
// reload): wildcard patterns are classified (exact, prefix, suffix or
// general), regular expressions compiled, templates parsed, CIDRs parsed.
// Set.Eval then allocates nothing: the conditions compare strings, and the
// result records the matching rules in a bit mask. A site without rules
// has a nil *Set, and evaluating it costs a nil check.
//
// # Templates
//
// Field values, redirect locations and response bodies are templates:
// {host}, {path}, {query}, {uri} (path and query), {scheme}, {method},
// {client_ip}, {request_id}, {1}..{9} (the groups of the rule's
// match.path_regex), {header.NAME}, {cookie.NAME} and {query.NAME}; "{{"
// and "}}" are literal braces.
package rules
