package rules

import "time"

// Spec is one rule as configured: a name, what it matches, and what it does.
// Every field's zero value means "not set": a rule sets only what it names,
// and leaves the rest to earlier rules and the site's defaults.
type Spec struct {
	// Name identifies the rule in Cache-Status (detail=rule:NAME), logs
	// and errors. Required: [A-Za-z0-9_.-]+, unique within a site.
	Name string

	// Match says which requests the rule applies to. The zero Match
	// matches every request.
	Match Match

	// Cache changes how matching requests are cached.
	Cache Cache

	// Key changes the cache key of matching requests.
	Key Key

	// RequestHeaders are changed on the request sent to the origin.
	RequestHeaders HeaderOps

	// ResponseHeaders are changed on the response sent to the client,
	// hits and misses alike; the stored response is left as it is.
	ResponseHeaders HeaderOps

	// Redirect answers matching requests with a redirect at the edge. It
	// ends evaluation: later rules are not looked at.
	Redirect Redirect

	// Respond answers matching requests with a fixed response at the
	// edge. It ends evaluation, as Redirect does; a rule has one or the
	// other.
	Respond Respond

	// Origin sends matching requests to the site's origin pool of this
	// name instead of its default pool.
	Origin string

	// RateLimit limits how often each client may make a matching request;
	// a request over the limit is answered 429 at the edge. Every
	// matching rule's limit applies (each its own buckets), besides the
	// site's.
	RateLimit RateLimit
}

// RateLimit is a token bucket per client address: Burst requests at
// once, then Rate requests every Per. The zero RateLimit limits nothing.
type RateLimit struct {
	// Rate is the sustained rate, in requests every Per; zero means no
	// limit.
	Rate float64
	// Per is Rate's period; zero means a second.
	Per time.Duration
	// Burst is the bucket's size: how many requests a client with a
	// full bucket may make at once. Zero means Rate rounded up (at least
	// one).
	Burst int
	// MaxClients bounds the buckets kept (the addresses tracked at
	// once); when full, the least recently limited address of a bucket's
	// neighbourhood is forgotten, and starts again with a full bucket.
	// Zero means 65536.
	MaxClients int
}

// IsZero reports whether l limits nothing.
func (l RateLimit) IsZero() bool { return l.Rate == 0 }

// PerSecond is the sustained rate in requests per second.
func (l RateLimit) PerSecond() float64 {
	if l.Per <= 0 {
		return l.Rate
	}
	return l.Rate / l.Per.Seconds()
}

// Match is a rule's conditions. Each field set must match (and), and a
// list matches when any of its entries does (or). Unset fields match
// everything.
type Match struct {
	// Hosts are request hosts, lowercase, without port: exact names or
	// "*.example.com" (any subdomain, not example.com itself).
	Hosts []string
	// Paths are wildcard patterns for the request path (normalized as the
	// cache key's: dot segments removed, unreserved characters decoded,
	// other escapes uppercased): '*' matches any run of characters,
	// '/' included, '?' one character; "/static/*" is a prefix,
	// "*.css" a suffix, "/" exactly the root.
	Paths []string
	// PathRegex is an RE2 regular expression (Go's regexp syntax) the
	// path must match somewhere (anchor it with ^ and $ for the whole);
	// its groups are {1}..{9} in templates.
	PathRegex string
	// Methods are request methods, case-sensitive.
	Methods []string
	// Query are query parameter conditions: "name" (present), "!name"
	// (absent), "name=pattern" (present with a value matching the
	// wildcard pattern). Names are case-sensitive, as in URLs.
	Query []string
	// Headers are request header conditions, in Query's forms; names are
	// case-insensitive, values matched against each field line.
	Headers []string
	// Cookies are cookie conditions, in Query's forms.
	Cookies []string
	// Clients are the client addresses matched, as CIDR prefixes
	// ("10.0.0.0/8", "2001:db8::/32") or single addresses.
	Clients []string
	// NotClients are client addresses that must not match (a deny list
	// inside a broader rule).
	NotClients []string
	// Scheme is "http" or "https".
	Scheme string
}

// Cache is a rule's caching actions. Durations of zero are unset; to turn
// storing off, use Bypass.
type Cache struct {
	// Bypass sends matching requests around the cache: nothing is served
	// from it and nothing stored.
	Bypass bool
	// NoCompress stores matching responses only as the origin sent them:
	// the site's compression makes no compressed copies of them.
	NoCompress bool
	// Slice, when positive, serves matching requests from slices of this
	// many bytes (the site's cache.slice for them); NoSlice serves them
	// whole, and wins over Slice. A later rule's Slice overrides an
	// earlier one's.
	Slice   int64
	NoSlice bool
	// TTL replaces the freshness lifetime of responses the cache may store,
	// whatever the origin said (its Cache-Control max-age, s-maxage and
	// Expires; no-store, private and Authorization still prevent storing).
	TTL time.Duration
	// MinTTL and MaxTTL clamp the origin's freshness lifetime (or TTL's):
	// a shorter one is raised to MinTTL, a longer one cut to MaxTTL.
	MinTTL, MaxTTL time.Duration
	// DefaultTTL is the lifetime of storable responses with no explicit
	// freshness, instead of the site's default_ttl or the heuristic.
	DefaultTTL time.Duration
	// TTLByStatus gives a lifetime by response status, replacing TTL for
	// those statuses: entries "404: 10s", "4xx: 1m", "5xx: 0s" (0s: not
	// stored). An exact status wins over its class.
	TTLByStatus []string
	// StaleWhileRevalidate and StaleIfError are the windows (RFC 5861)
	// for responses that name none, instead of the site's.
	StaleWhileRevalidate, StaleIfError time.Duration
	// BrowserTTL rewrites the Cache-Control sent to clients for responses
	// the edge stores: "max-age=N" (keeping public or private if the
	// origin said it), so browsers keep the object for this long while
	// the edge keeps it for its own TTL.
	BrowserTTL time.Duration
}

// Key is a rule's cache key actions. The origin request is built from the
// same target the key holds (what the key ignores is not sent to the
// origin either), so one key never holds responses to different requests.
type Key struct {
	// Query is what happens to the query string: "" or "keep" (as sent),
	// "sort" (parameters sorted by name, stable for equal names),
	// "ignore" (dropped from key and origin request).
	Query string
	// QueryAllow keeps only the parameters whose names match one of
	// these wildcard patterns; QueryDeny drops those that match (e.g.
	// "utm_*", "fbclid"). Both apply after Query's sort.
	QueryAllow, QueryDeny []string
	// Headers and Cookies add the named request header or cookie values
	// to the key (device class, A/B bucket): requests differing in them
	// are different objects. The fields stay on the origin request.
	Headers, Cookies []string
	// Host replaces the host in the key, so several hosts share one
	// cache (host folding); the origin request keeps the client's host.
	Host string
}

// HeaderOps change header fields. Entries of Set and Add are "Name: value"
// with a template value (see the package doc); Remove holds field names.
// They run in the order Remove, Set, Add.
type HeaderOps struct {
	Set, Add, Remove []string
}

// Redirect is an edge redirect: Status 301, 302, 303, 307 or 308 (zero:
// 301) and a Location template, e.g. "https://{host}{uri}".
type Redirect struct {
	Status   int
	Location string
}

// Respond is a fixed edge response: Status (zero: 200), a Body and its
// ContentType (zero: "text/plain; charset=utf-8"). Body is a template.
type Respond struct {
	Status      int
	Body        string
	ContentType string
}

func (r *Redirect) set() bool { return r.Location != "" || r.Status != 0 }

func (r *Respond) set() bool { return r.Status != 0 || r.Body != "" || r.ContentType != "" }
