package edge

import (
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/edged-proxy/edged/cache/rfc"
)

// Session is the state of one request as it moves through the lifecycle
// phases. Hooks may read every field and set the ones documented as theirs.
// A Session lives for one request and must not be retained after Logging.
type Session struct {
	// Req is the client's request. RequestFilter may modify its headers.
	Req *http.Request
	// Site is the site serving the request (nil in Logging when no site
	// matched the Host).
	Site *Site
	// Scheme is "https" for requests that arrived over TLS, else "http".
	Scheme string
	// ClientIP is the client's address: the connection's peer (as PROXY
	// protocol gives it, on a listener that reads it), or, when the peer
	// is a trusted proxy (Config.RealIP), the address its forwarded field
	// gives. The access log, the rules' client matchers and {client_ip}
	// use it.
	ClientIP string
	// Start is when the request arrived.
	Start time.Time
	// Key is the primary cache key, set by the CacheKey phase.
	Key string
	// RouteKey is the consistent-hash key choosing the origin shard, set by
	// the UpstreamSelect phase.
	RouteKey string

	// The fields below are filled in as the response is produced.

	// Status is the status code sent to the client.
	Status int
	// Bytes counts body bytes sent to the client.
	Bytes int64
	// CacheResult is how the request was answered (the cache_result label
	// of the request metrics and the access log's field).
	CacheResult Outcome
	// Shard names the origin shard that answered, when one did for this
	// request (not for hits or collapsed waiters).
	Shard string
	// Err is the error that ended the request, if any.
	Err error
	// Peer names the node of the PoP that asked, when the request is a
	// peer fetch (it arrived on a peer listener); empty for clients.
	Peer string

	rs    ruleState  // what the site's rules decided
	drop  []string   // response fields never sent to this request's client
	rules *siteRules // the router's rules for Site
	fast  fastLine   // the request line of a fast-path answer (Req is nil then)
	span  trace.Span // the server span (general path, tracing on); nil otherwise
	id    requestID  // see RequestID
	up    upstreamTiming
	tier  uint8 // for a hit, 1 + the cache tier that held it (cache.Result.Tier); 0 otherwise
}

// Hooks are the programmable phases of a request, in the spirit of
// Pingora's ProxyHttp. Embed DefaultHooks in your type and override only
// the phases you need.
type Hooks interface {
	// RequestFilter runs first, once the site is known and forwards the
	// request's method (Site.Methods). It may rewrite s.Req, or answer the
	// request itself through w and return true to end it there.
	RequestFilter(s *Session, w http.ResponseWriter) (handled bool)
	// CacheKey returns the primary cache key for s.Req.
	CacheKey(s *Session) string
	// UpstreamSelect returns the consistent-hash key that picks the origin
	// shard; objects with one key always go to one shard.
	UpstreamSelect(s *Session) string
	// UpstreamRequestFilter may modify the request about to be sent to the
	// origin: it runs last, on the finished request (for a cache fill, after
	// the client's conditional fields were removed and a revalidation's
	// validators set). An error ends the request with 500.
	UpstreamRequestFilter(s *Session, out *http.Request) error
	// ResponseFilter may modify the response header before it is sent,
	// for hits and misses alike. Replace values with Set or Del; do not
	// write into the existing value slices, which may be shared with the
	// stored entry.
	ResponseFilter(s *Session, status int, h http.Header)
	// Logging runs after the response has been sent. s.RequestID() is
	// the ID the access log and the origin got.
	Logging(s *Session)
}

// DefaultHooks gives the standard CDN behaviour: no request filtering, the
// normalized URL as cache key (rfc.KeyFor), the cache key as ring key, and
// no upstream-request, response or logging changes.
type DefaultHooks struct{}

var _ Hooks = DefaultHooks{}

// RequestFilter lets every request through.
func (DefaultHooks) RequestFilter(*Session, http.ResponseWriter) bool { return false }

// CacheKey returns rfc.KeyFor(s.Req, s.Scheme).
func (DefaultHooks) CacheKey(s *Session) string { return rfc.KeyFor(s.Req, s.Scheme) }

// UpstreamSelect returns s.Key, so each object sticks to one shard.
func (DefaultHooks) UpstreamSelect(s *Session) string { return s.Key }

// UpstreamRequestFilter changes nothing.
func (DefaultHooks) UpstreamRequestFilter(*Session, *http.Request) error { return nil }

// ResponseFilter changes nothing.
func (DefaultHooks) ResponseFilter(*Session, int, http.Header) {}

// Logging does nothing; the edge writes its own access log line.
func (DefaultHooks) Logging(*Session) {}

// Outcome is how the edge answered a request.
type Outcome string

// The outcomes of Session.CacheResult.
const (
	OutcomeHit    Outcome = "hit"    // from the cache, the origin not contacted
	OutcomeMiss   Outcome = "miss"   // filled from the origin (stored or joined)
	OutcomeStale  Outcome = "stale"  // a stale entry revalidated or served
	OutcomePass   Outcome = "pass"   // cacheable method, response not storable
	OutcomeBypass Outcome = "bypass" // not through the cache (method, hook, WebSocket)
	OutcomeError  Outcome = "error"  // the edge answered with an error
	OutcomeReject Outcome = "reject" // no site serves the host, or it does not forward the method
	OutcomePurge  Outcome = "purge"  // a PURGE request
	OutcomeRule   Outcome = "rule"   // answered at the edge by a rule (redirect or fixed response)
)
