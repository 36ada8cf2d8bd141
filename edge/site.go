package edge

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/cache/coding"
	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/edge/rules"
)

// Site is one set of host names served from one origin group with one cache
// policy.
type Site struct {
	// Name labels the site in metrics and logs.
	Name string
	// Hosts are the host names the site serves: exact names, "*.suffix"
	// wildcards (matching any name ending in ".suffix", not "suffix" itself),
	// or "*" for every host.
	Hosts []string
	// OriginHost, when set, replaces the client's Host header on requests to
	// the origin; empty sends the client's Host as the cache key holds it
	// (rfc.NormalizeHost).
	OriginHost string
	// Origin reaches the site's origin servers (an *lb.Pool in the daemon).
	Origin cache.Origin
	// CacheDisabled makes every request bypass the cache.
	CacheDisabled bool
	// Policy holds the site's freshness defaults.
	Policy rfc.Policy
	// UnkeyedHeaders are request fields removed before the origin: they can
	// change what an origin answers without being part of the cache key,
	// which is how caches get poisoned. An entry ending in "*" is a family
	// ("X-Forwarded-*": every field starting with "X-Forwarded-"; families
	// never match X-Forwarded-For, which edged extends). Names match
	// ignoring case, with '_' taken for '-'. Nil means
	// DefaultUnkeyedHeaders(); an empty non-nil slice removes none.
	UnkeyedHeaders []string
	// NoWebSocket refuses WebSocket upgrades (they are then treated as
	// plain GETs, their Upgrade removed); by default they are forwarded.
	NoWebSocket bool
	// MaxBodyBytes limits request bodies sent through to the origin; a
	// larger one is answered 413. Zero means no limit.
	MaxBodyBytes int64
	// Methods are the request methods forwarded to the origin (GET and
	// HEAD through the cache). Methods are case-sensitive (RFC 9110 §9.1).
	// Any other gets 405 with an Allow field when edged knows the method,
	// else 501, before the RequestFilter hook runs. The list must hold GET
	// and HEAD, and neither CONNECT (never forwarded) nor PURGE (answered
	// by Config.PurgeHandler). Nil means DefaultMethods().
	Methods []string
	// KeepTargetedHeaders forwards to clients the targeted cache-control
	// fields aimed at edged itself (Policy.OwnTargeted, by default
	// Edged-Cache-Control), which are otherwise removed from every
	// response. The other targeted fields (Policy.TargetedHeaders, such as
	// CDN-Cache-Control) are always forwarded, for the caches downstream
	// (RFC 9213 §2.2).
	KeepTargetedHeaders bool
	// Rules are the site's rules (package edge/rules), evaluated for each
	// request once its method is known to be forwarded, before the
	// RequestFilter hook. Nil means none.
	Rules *rules.Set
	// Pools are the site's further origin pools by name, which rules send
	// requests to (rules.Spec.Origin); "default" is Origin.
	Pools map[string]Pool
	// Compression compresses storable responses once, when they are
	// filled, into variants served by Accept-Encoding (package
	// cache/coding). The zero value compresses nothing.
	Compression coding.Config
	// AllowClients, when not empty, admits only the clients whose
	// address (Session.ClientIP) it holds; DenyClients refuses those it
	// holds, and wins over AllowClients. Entries are CIDR prefixes
	// ("10.0.0.0/8", "2001:db8::/32") or single addresses, kept as a
	// rules.AddrSet (a binary search, whatever their number). A refused
	// request gets 403 before anything else is looked at (method, rules,
	// hooks, the cache).
	AllowClients, DenyClients []string
	// Slice, when positive, serves the site's cacheable GET and HEAD
	// requests from slices of this many bytes, each fetched from the
	// origin with a Range request and stored on its own (cache.Request.Slice,
	// docs/caching.md "Slices"). Zero (the default) serves whole objects.
	Slice int64
	// RateLimit limits each client address's requests to the site (a
	// token bucket per address); a request over it gets 429 with
	// Retry-After. It is checked after the method and the rules, with
	// the limits of the matching rules. The zero value limits nothing.
	RateLimit rules.RateLimit
}

// router finds the site serving a host: exact names first, then the longest
// matching wildcard suffix, then the catch-all.
type router struct {
	exact    map[string]*Site
	suffixes []suffixSite // longest suffix first
	any      *Site
	// rules are what each site's requests need of it, derived once (the
	// nil key: no site matched).
	rules map[*Site]*siteRules
	// limiters are the rate limits' buckets, for the next router.
	limiters map[limiterKey]*limiter
}

// siteRules is what the router derives from a site for every request it
// serves.
type siteRules struct {
	// drop are the canonical names of the response fields never sent to
	// clients: the handler's strip list and, unless the site keeps them,
	// the targeted cache-control fields aimed at edged itself.
	drop []string
	// unkeyed are the request fields removed before the origin.
	unkeyed *fieldSet
	// methods are the methods forwarded.
	methods methodSet
	// compress compresses the site's fills; nil: none.
	compress *coding.Compressor
	// lists are the site's address lists.
	lists clientLists
	// limits are the site's rate limits and its rules'; nil if none.
	limits []rateLimit
}

type suffixSite struct {
	suffix string // ".example.com"
	site   *Site
}

// newRouter builds the router of sites; the rate limits it shares with
// prev (nil at start) keep their buckets.
func newRouter(sites []*Site, strip []string, prev *router) (*router, error) {
	r := &router{exact: make(map[string]*Site), rules: map[*Site]*siteRules{nil: {drop: strip}}, limiters: map[limiterKey]*limiter{}}
	var prevLimiters map[limiterKey]*limiter
	if prev != nil {
		prevLimiters = prev.limiters
	}
	defaultUnkeyed := newFieldSet(defaultUnkeyedHeaders[:])
	seen := make(map[string]string)
	for _, s := range sites {
		if s.Origin == nil {
			return nil, fmt.Errorf("edge: site %q has no Origin", s.Name)
		}
		if err := checkMethods(s.Methods); err != nil {
			return nil, fmt.Errorf("edge: site %q: %w", s.Name, err)
		}
		var err error
		drop := slices.Clone(strip)
		if !s.KeepTargetedHeaders {
			for _, name := range s.Policy.OwnTargeted() {
				if name = http.CanonicalHeaderKey(name); !slices.Contains(drop, name) {
					drop = append(drop, name)
				}
			}
		}
		unkeyed := defaultUnkeyed
		if s.UnkeyedHeaders != nil {
			unkeyed = newFieldSet(s.UnkeyedHeaders)
		}
		compress, err := coding.New(s.Compression)
		if err != nil {
			return nil, fmt.Errorf("edge: site %q: compression: %w", s.Name, err)
		}
		if s.Slice != 0 && (s.Slice < rules.MinSlice || s.Slice > rules.MaxSlice) {
			return nil, fmt.Errorf("edge: site %q: slice %d bytes: want 256KiB to 64MiB", s.Name, s.Slice)
		}
		if msg := rules.CheckRateLimit(s.RateLimit); msg != "" {
			return nil, fmt.Errorf("edge: site %q: rate limit: %s", s.Name, msg)
		}
		sr := &siteRules{drop: drop, unkeyed: unkeyed, methods: newMethodSet(slices.Clone(s.Methods)), compress: compress,
			limits: rateLimits(s, prevLimiters, r.limiters)}
		if sr.lists, err = newClientLists(s.AllowClients, s.DenyClients); err != nil {
			return nil, fmt.Errorf("edge: site %q: %w", s.Name, err)
		}
		r.rules[s] = sr
		for _, h := range s.Hosts {
			h = strings.ToLower(h)
			if prev, dup := seen[h]; dup {
				return nil, fmt.Errorf("edge: host %q is served by both site %q and site %q", h, prev, s.Name)
			}
			seen[h] = s.Name
			switch {
			case h == "*":
				r.any = s
			case strings.HasPrefix(h, "*."):
				r.suffixes = append(r.suffixes, suffixSite{suffix: h[1:], site: s})
			default:
				r.exact[h] = s
			}
		}
	}
	sort.SliceStable(r.suffixes, func(i, j int) bool { return len(r.suffixes[i].suffix) > len(r.suffixes[j].suffix) })
	return r, nil
}

// match returns the site for a Host header value (port and trailing dot
// ignored, case-insensitive), or nil.
func (r *router) match(hostport string) *Site {
	host := stripPort(hostport)
	host = strings.TrimSuffix(host, ".")
	if s, ok := r.exact[host]; ok {
		return s
	}
	lower := strings.ToLower(host)
	if lower != host {
		if s, ok := r.exact[lower]; ok {
			return s
		}
	}
	for _, ss := range r.suffixes {
		if strings.HasSuffix(lower, ss.suffix) {
			return ss.site
		}
	}
	return r.any
}

// stripPort removes a ":port" suffix and IPv6 brackets without allocating.
func stripPort(hostport string) string {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 {
		return hostport
	}
	if strings.IndexByte(hostport, ']') > i { // bare IPv6 literal, no port
		return hostport
	}
	host := hostport[:i]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return host
}
