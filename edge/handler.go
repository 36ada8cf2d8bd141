// Package edge is edged's HTTP front end: it routes a request to its site,
// runs the lifecycle hooks, asks the cache, forwards what bypasses it, and
// writes every response with its Cache-Status and Age. It is the only
// package that writes to clients.
//
// # Two paths for HTTP/1
//
// Server serves HTTP/1 on edged's own connection loop (package edge/h1)
// unless ServerConfig.HTTP1 asks for net/http; HTTP/2 is always net/http's.
// On the loop a request takes one of two paths:
//
//   - The fast path (Handler.ServeFast): a GET or HEAD without a body,
//     request Cache-Control, Pragma, Authorization or Upgrade, in
//     origin-form, whose key has a fresh stored response without Vary or
//     qualified no-cache fields and with a Content-Type. It is answered
//     from the parsed request head: no http.Request, no header map. The
//     stored fields are encoded once per entry and site, the answer
//     appends Age, Cache-Status, Date when none is stored and its
//     framing, and head and body leave in one writev (memory) or a
//     corked write and sendfile (disk). 304 and single-range 206/416
//     answers take it too. The access log and the metrics record it as
//     any request (edged_fast_path_responses_total counts them).
//   - The general path (Handler.ServeHTTP) for everything else, through
//     the loop's own http.ResponseWriter: misses, pass-through, purges,
//     WebSockets, stale answers, every lifecycle phase.
//
// The fast path declines before writing anything whenever it would answer
// differently from the general path; a differential test holds the two
// servers (and so the two paths) to the same bytes.
//
// # Hooks and the fast path
//
// With DefaultHooks cache hits take the fast path. Custom Hooks send
// every request of the edge down the general path, since their phases
// work on an http.Request and a header map, unless they also implement
// FastHooks: then FastHit runs for each fast-path answer (it may add
// fields or decline), and the other phases do not run for it. See
// ExampleFastHooks.
package edge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/edge/realip"
	"github.com/edged-proxy/edged/edge/rules"
	"github.com/edged-proxy/edged/internal/httpx"
)

// Config configures a Handler.
type Config struct {
	// Sites are the sites served. A host may belong to one site only.
	Sites []*Site
	// UnknownHostStatus answers requests for a host no site serves: 421
	// (Misdirected Request) or 404. Zero means 421.
	UnknownHostStatus int
	// Cache stores and coalesces cacheable requests. Required.
	Cache *cache.Cache
	// Hooks are the lifecycle phases; nil means DefaultHooks.
	Hooks Hooks
	// Metrics receives request series; nil records none.
	Metrics *Metrics
	// AccessLog receives one line per request (one Write each; give it a
	// buffered writer); nil writes none. The fields are listed in
	// docs/metrics.md.
	AccessLog io.Writer
	// AccessFormat is the access log's format: AccessJSON ("" too) or
	// AccessCombined.
	AccessFormat string
	// AccessFields are the fields of a JSON line, by JSON key
	// (AccessFieldNames), in order; none means every field, with slog's
	// "level" and "msg" (the default line).
	AccessFields []string
	// AccessSample is the fraction of requests logged, in (0, 1]; 0 means
	// 1 (every request). Requests answered with a status of 500 or more,
	// or ended by an error, are always logged.
	AccessSample float64
	// Logger receives operational errors; nil discards them.
	Logger *slog.Logger
	// WriteTimeout bounds each write to a client (it is re-armed per
	// write, so a slow but moving download is not cut off); zero means none.
	WriteTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CacheStatusKey adds the cache key to Cache-Status (key="..."), for
	// debugging; it reveals how keys are built, so it is off by default.
	CacheStatusKey bool
	// WebSocketIdleTimeout closes a WebSocket connection that carried no
	// data either way for this long. Zero means 5 minutes.
	WebSocketIdleTimeout time.Duration
	// PurgeHandler answers requests with the PURGE method (the
	// conventional single-URL purge); nil answers them 405.
	PurgeHandler http.Handler
	// StripResponseHeaders are removed from every response before it
	// leaves the edge (the daemon puts the purge tag fields here:
	// Surrogate-Key, Cache-Tag). They stay stored.
	StripResponseHeaders []string
	// TrustedProxies are the proxies (CIDR prefixes or addresses) whose
	// forwarded field names the client (Session.ClientIP), walked from
	// the right as package realip says; none (the default) trusts no
	// one: the client is the connection's peer.
	TrustedProxies []string
	// ClientIPHeader is the field trusted proxies name the client in:
	// "X-Forwarded-For" (the default, also for "") or "Forwarded"
	// (RFC 7239, its for= parameters).
	ClientIPHeader string
	// Cluster, when set, makes this node one of a PoP's caches: a miss
	// for a key another peer owns asks that peer (peer.go), and this
	// node's Cache-Status name is Cluster.Self(). Requests arriving on a
	// peer listener (ServerConfig.Peer) are the other peers' fetches.
	Cluster Cluster
	// PeerToken, when set, is sent with every peer fetch and required of
	// every request on a peer listener.
	PeerToken string
	// Tracer, when set, records a server span for every request and sends
	// the trace to origins and peers (trace.go); give the Cache the same
	// provider's tracer. Nil (the default) traces nothing, and a client's
	// traceparent then reaches the origin unchanged.
	Tracer trace.Tracer
}

// Handler is the edge's http.Handler.
type Handler struct {
	sites        atomic.Pointer[router] // swapped whole by SetSites
	draining     atomic.Bool            // answer with Connection: close
	unknownHost  int
	cache        *cache.Cache
	hooks        Hooks
	metrics      *Metrics
	access       io.Writer
	accessFmt    *accessFormat
	sampleBelow  uint64 // log a request when a random uint64 is below it; 0: log all
	ids          *idGen
	log          *slog.Logger
	writeTimeout time.Duration
	statusKey    bool
	strip        []string
	purge        http.Handler
	wsIdle       time.Duration
	now          func() time.Time
	realIP       realip.Resolver
	// fastOK: the hooks let cache hits take the HTTP/1 loop's fast path
	// (DefaultHooks, or FastHooks, then in fastHooks).
	fastOK    bool
	fastHooks FastHooks
	cluster   Cluster
	peerToken string
	csName    string       // this cache's name in Cache-Status
	tracer    trace.Tracer // nil: tracing off
}

// New returns a Handler built from cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Cache == nil {
		return nil, errors.New("edge: Config.Cache is required")
	}
	switch cfg.UnknownHostStatus {
	case 0:
		cfg.UnknownHostStatus = http.StatusMisdirectedRequest
	case http.StatusMisdirectedRequest, http.StatusNotFound:
	default:
		return nil, fmt.Errorf("edge: UnknownHostStatus must be 421 or 404, got %d", cfg.UnknownHostStatus)
	}
	realIP, err := newResolver(cfg.TrustedProxies, cfg.ClientIPHeader)
	if err != nil {
		return nil, err
	}
	strip := canonical(cfg.StripResponseHeaders)
	rt, err := newRouter(cfg.Sites, strip, nil)
	if err != nil {
		return nil, err
	}
	if cfg.Hooks == nil {
		cfg.Hooks = DefaultHooks{}
	}
	afmt, err := newAccessFormat(cfg.AccessFormat, cfg.AccessFields)
	if err != nil {
		return nil, err
	}
	var sampleBelow uint64
	switch p := cfg.AccessSample; {
	case p == 0 || p == 1:
	case p > 0 && p < 1:
		sampleBelow = uint64(p*(1<<63)) << 1
	default:
		return nil, fmt.Errorf("edge: AccessSample must be in (0, 1], got %v", p)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{
		unknownHost:  cfg.UnknownHostStatus,
		cache:        cfg.Cache,
		hooks:        cfg.Hooks,
		metrics:      cfg.Metrics,
		access:       cfg.AccessLog,
		accessFmt:    afmt,
		sampleBelow:  sampleBelow,
		ids:          newIDGen(),
		log:          cfg.Logger,
		writeTimeout: cfg.WriteTimeout,
		statusKey:    cfg.CacheStatusKey,
		strip:        strip,
		purge:        cfg.PurgeHandler,
		wsIdle:       cmp.Or(cfg.WebSocketIdleTimeout, 5*time.Minute),
		now:          cfg.Now,
		realIP:       realIP,
		cluster:      cfg.Cluster,
		peerToken:    cfg.PeerToken,
		csName:       "edged",
		tracer:       cfg.Tracer,
	}
	if cfg.Cluster != nil {
		h.csName = cfg.Cluster.Self()
	}
	h.fastHooks, h.fastOK = cfg.Hooks.(FastHooks)
	if _, ok := cfg.Hooks.(DefaultHooks); ok {
		h.fastOK = true
	}
	h.sites.Store(rt)
	return h, nil
}

// Drain makes every later response close its connection (Connection:
// close), so that keep-alive clients move to a successor process cleanly
// before this one shuts down.
func (h *Handler) Drain() { h.draining.Store(true) }

// SetSites replaces the sites served, atomically: a request uses the set
// it started with. It is how the daemon reloads its configuration. A rate
// limit whose site, rule and settings are unchanged keeps its clients'
// buckets; the others start empty (every client with a full bucket).
func (h *Handler) SetSites(sites []*Site) error {
	rt, err := newRouter(sites, h.strip, h.sites.Load())
	if err != nil {
		return err
	}
	h.sites.Store(rt)
	return nil
}

// ServeHTTP runs one request through the lifecycle.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// One allocation for the request's state, its writer and its cache
	// request.
	st := &requestState{}
	s, rw := &st.s, &st.rw
	var span trace.Span
	if h.tracer != nil {
		r, span = h.startSpan(r)
	}
	ci := connOf(r)
	restoreTLS(r, ci)
	if h.draining.Load() && r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	scheme, from := "http", ""
	if r.TLS != nil {
		scheme = "https"
	}
	if ci != nil && ci.peer {
		from = r.Header.Get(PeerField)
		var ok bool
		if scheme, ok = h.peerIn(w, r); !ok {
			return
		}
	}
	*s = Session{Req: r, Start: h.now(), Scheme: scheme, ClientIP: h.clientIP(r), Peer: from, span: span}
	var clientID string
	if v := r.Header[RequestIDField]; len(v) > 0 {
		clientID = v[0]
	}
	s.id.set(clientID, h.ids)
	*rw = responseWriter{ResponseWriter: w, s: s, h: h, conn: ci}
	defer h.finish(s)
	defer rw.endInterim() // no 1xx once the handler has returned

	rt := h.sites.Load()
	if r.Method == "PURGE" {
		s.Site, s.CacheResult = rt.match(r.Host), OutcomePurge
		s.rules = rt.rules[s.Site]
		s.drop = s.rules.drop
		if s.Site != nil && h.refuseClient(rw, s) {
			return
		}
		if h.purge == nil {
			rw.plainError(http.StatusMethodNotAllowed, "edged; fwd=bypass; detail=purge-disabled", "purging is not enabled on this listener")
			return
		}
		h.purge.ServeHTTP(rw, r)
		return
	}
	s.Site = rt.match(r.Host)
	s.rules = rt.rules[s.Site]
	s.drop = s.rules.drop
	if s.Site == nil {
		s.CacheResult = OutcomeReject
		rw.plainError(h.unknownHost, "edged; fwd=bypass; detail=unknown-host", fmt.Sprintf("no site is configured for host %q", r.Host))
		return
	}
	if s.Peer != "" {
		// The asking node refused clients and charged rate limits, and
		// it sends the answer on: its fields and rules apply there.
		s.drop = nil
	} else if h.refuseClient(rw, s) {
		return
	}
	if !s.rules.methods.allows(r.Method) {
		rw.rejectMethod(&s.rules.methods)
		return
	}
	matched := h.evalRules(s)
	if s.Peer == "" && h.limitRate(rw, s) || matched && h.answerRule(rw, s) {
		return
	}
	if h.hooks.RequestFilter(s, rw) {
		if s.CacheResult == "" {
			s.CacheResult = OutcomeBypass
		}
		return
	}
	if isWebSocket(r) && !s.Site.NoWebSocket {
		h.serveWebSocket(rw, s)
		return
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !s.Site.CacheDisabled && !s.rs.res.Cache.Bypass {
		h.serveCached(st)
		return
	}
	h.servePass(rw, s)
}

// requestState is everything one request needs, allocated once.
type requestState struct {
	s     Session
	rw    responseWriter
	creq  cache.Request
	h     *Handler
	fetch cache.Fetch // the fill's, as NewOut was asked (a peer fetch repeats it)
	pf    peerFill    // the fill's origin when a peer owns the key
	to    timedOrigin // the fill's origin, timed into s.up
}

var _ cache.OutBuilder = (*requestState)(nil)

// NewOut builds the origin request of a miss (cache.OutBuilder): a GET,
// or a HEAD when the cache revalidates for a HEAD. The origin's 1xx
// responses to it go to this request's client, the one that started the
// fill; requests that join the fill get none.
func (st *requestState) NewOut(ctx context.Context, f cache.Fetch) (*http.Request, error) {
	method := http.MethodGet
	if f.Head {
		method = http.MethodHead
	}
	st.fetch = f
	return st.h.originRequest(st.rw.armInterim(ctx), &st.s, method, &f, nil)
}

// SiteFor returns the name of the site serving host, or "".
func (h *Handler) SiteFor(host string) string {
	if s := h.sites.Load().match(host); s != nil {
		return s.Name
	}
	return ""
}

// serveCached answers GET and HEAD through the cache. The origin request
// is built only on a miss.
func (h *Handler) serveCached(st *requestState) {
	s, rw := &st.s, &st.rw
	s.Key = h.cacheKey(s)
	s.RouteKey = h.hooks.UpstreamSelect(s)
	st.h = h
	origin, _ := s.origin()
	st.creq = cache.Request{
		Key:        s.Key,
		In:         s.Req,
		Out:        st,
		Origin:     origin,
		RouteKey:   s.RouteKey,
		Policy:     s.policy(),
		RangeStart: rangeStart(s.Req),
		Compress:   s.compressor(),
		Slice:      s.slice(),
		Site:       s.Site.Name,
	}
	if h.cluster != nil && s.Peer == "" {
		owner, ok := h.cluster.Owner(s.Key)
		if sliced := st.creq.Slice > 0; ok || sliced {
			if !ok {
				owner = ""
			}
			st.pf = peerFill{st: st, owner: owner, sliced: sliced, origin: origin}
			st.creq.Origin, st.creq.Replicas = &st.pf, h.cluster
		}
	}
	st.to = timedOrigin{o: st.creq.Origin, t: &s.up}
	st.creq.Origin = &st.to
	res, err := h.cache.Get(s.Req.Context(), &st.creq)
	rw.endInterim()
	s.Shard = res.Upstream
	if err != nil {
		// fwd=stale when a stored response existed but could not stand in.
		h.fail(rw, s, err, "edged; fwd="+cmp.Or(res.Fwd, cache.FwdURIMiss).String())
		return
	}
	switch {
	case res.Hit:
		s.CacheResult = OutcomeHit
	case res.NotStored != "":
		s.CacheResult = OutcomePass
	case res.Fwd == cache.FwdStale:
		s.CacheResult = OutcomeStale
	default:
		s.CacheResult = OutcomeMiss
	}
	if res.Entry != nil {
		rw.writeEntry(&res)
		return
	}
	rw.stored = res.Stored
	var buf [128]byte
	rw.writeLive(res.Response, res.Body, string(appendRuleDetail(appendCacheStatus(buf[:0], h.csName, &res, rw.statusKey()), s)))
}

// forward sends the request around the cache to the site's origin (as
// method, under ctx; prepare, if set, adjusts the outgoing request before
// the UpstreamRequestFilter hook) and records the server that answered. A
// failing hook is reported as *hookError (500).
func (h *Handler) forward(ctx context.Context, s *Session, method string, prepare func(*http.Request)) (*http.Response, error) {
	out, err := h.originRequest(ctx, s, method, nil, prepare)
	if err != nil {
		return nil, err
	}
	origin, _ := s.origin()
	resp, upstream, err := s.up.send(origin, out, s.RouteKey)
	s.Shard = upstream
	return resp, err
}

// hookError marks a failure of a lifecycle hook: a 500, not an origin error.
type hookError struct{ err error }

func (e *hookError) Error() string { return "edge: hook failed: " + e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

// servePass forwards a request that bypasses the cache, and invalidates the
// target URI when an unsafe method succeeds (RFC 9111 §4.4).
func (h *Handler) servePass(rw *responseWriter, s *Session) {
	r := s.Req
	s.CacheResult = OutcomeBypass
	if max := s.Site.MaxBodyBytes; max > 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > max {
			rw.plainError(http.StatusRequestEntityTooLarge, "edged; fwd=bypass; detail=body-too-large",
				fmt.Sprintf("the request body exceeds this site's limit of %d bytes", max))
			return
		}
		r.Body = http.MaxBytesReader(rw, r.Body, max) // a chunked body over the limit fails mid-way
	}
	s.Key = h.cacheKey(s)
	s.RouteKey = h.hooks.UpstreamSelect(s)
	resp, err := h.forward(rw.armInterim(r.Context()), s, r.Method, nil)
	rw.endInterim()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.CacheResult, s.Err = OutcomeError, err
			rw.plainError(http.StatusRequestEntityTooLarge, "edged; fwd=bypass; detail=body-too-large",
				fmt.Sprintf("the request body exceeds this site's limit of %d bytes", mbe.Limit))
			return
		}
		h.fail(rw, s, err, "edged; fwd=bypass")
		return
	}
	if !safeMethod(r.Method) && resp.StatusCode < 400 {
		h.invalidate(s, resp.Header)
	}
	fwd := "edged; fwd=bypass; fwd-status="
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		fwd = "edged; fwd=method; fwd-status="
	}
	var buf [96]byte
	cs := strconv.AppendInt(append(buf[:0], fwd...), int64(resp.StatusCode), 10)
	rw.writeLive(resp, cache.LiveBody(resp), string(appendRuleDetail(cs, s)))
}

func canonical(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = http.CanonicalHeaderKey(n)
	}
	return out
}

func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// invalidate drops the target URI and the same-host Location and
// Content-Location URIs of a successful unsafe request.
func (h *Handler) invalidate(s *Session, respHeader http.Header) {
	keys := []string{s.Key}
	for _, f := range [...]string{"Location", "Content-Location"} {
		v := respHeader.Get(f)
		if v == "" {
			continue
		}
		u, err := s.Req.URL.Parse(v)
		if err != nil {
			continue
		}
		if u.Host != "" && (!strings.EqualFold(u.Host, s.Req.Host) || !strings.EqualFold(u.Scheme, s.Scheme)) {
			continue // RFC 9111 §4.4: only same-origin URIs (scheme and authority)
		}
		keys = append(keys, rfc.NormalizeKey(s.Scheme, s.Req.Host, u.EscapedPath(), u.RawQuery))
	}
	for _, k := range keys {
		h.cache.Invalidate(k)
	}
	if h.metrics != nil {
		h.metrics.invalidations.WithLabelValues(s.Site.Name).Add(float64(len(keys)))
	}
}

// conditionalFields are removed from fill requests: a fill needs the whole
// representation, not the client's 304 or 206.
var conditionalFields = [...]string{
	"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Range",
}

// originRequest is the one place a client request becomes an origin
// request: hop-by-hop and unkeyed fields removed, Via, X-Forwarded-For and
// X-Forwarded-Proto added. The target is the one the cache key is built
// from (rfc.KeyFor): the host normalized as the key's (unless the site sets
// OriginHost), the path normalized as the key's, the query as the client
// sent it; so a response is stored only under the key of the target it
// was generated for. A cache fill (fetch set) asks for
// the whole representation, with the stored response's validators when it
// revalidates; a pass-through (fetch nil) keeps the client's method, body
// and conditional fields. prepare, if set, adjusts the request, and the
// UpstreamRequestFilter hook runs last; a failing hook is a *hookError.
func (h *Handler) originRequest(ctx context.Context, s *Session, method string, fetch *cache.Fetch, prepare func(*http.Request)) (*http.Request, error) {
	in := s.Req
	out := in.Clone(ctx)
	out.Method = method
	out.RequestURI = ""
	out.Close = false
	if method != in.Method || method == http.MethodGet || method == http.MethodHead {
		out.Body, out.ContentLength, out.GetBody = nil, 0, nil
	} else if in.ContentLength == 0 {
		out.Body = nil // lets the pool retry idempotent requests on dial errors
	}
	// The origin gets the target the cache key was built from (dot
	// segments removed, unreserved characters decoded, the host's case,
	// trailing dot and default port dropped), never a different resource.
	out.Host = rfc.NormalizeHost(s.Scheme, in.Host)
	out.URL = &url.URL{Scheme: "http", Host: out.Host, Path: in.URL.Path, RawPath: in.URL.RawPath, RawQuery: in.URL.RawQuery}
	if s.rs.res.KeyRule() != "" {
		out.URL.RawQuery = s.rs.res.Query(in.URL.RawQuery) // the query the key holds
	}
	if p := rfc.NormalizePath(in.URL.EscapedPath()); p != in.URL.EscapedPath() {
		if dec, err := url.PathUnescape(p); err == nil {
			out.URL.Path, out.URL.RawPath = dec, p
		}
	}
	if _, host := s.origin(); host != "" {
		out.Host = host
	}
	h.originFields(out.Header, in, s)
	if s.rs.res.ChangesRequest() {
		s.ruleInput()
		s.rs.res.ApplyRequest(out.Header, &s.rs.in)
	}
	if fetch != nil {
		setFetchFields(out.Header, fetch)
	}
	if h.tracer != nil {
		injectTrace(ctx, out.Header)
	}
	if prepare != nil {
		prepare(out)
	}
	if err := h.hooks.UpstreamRequestFilter(s, out); err != nil {
		return nil, &hookError{err}
	}
	return out, nil
}

// originFields rewrites the cloned client header hd for the origin.
func (h *Handler) originFields(hd http.Header, in *http.Request, s *Session) {
	httpx.RemoveHopByHop(hd)
	deletePeerFields(hd) // a client's never reach an origin
	if headerHasToken(in.Header, "Te", "trailers") {
		hd.Set("Te", "trailers") // the one TE value a proxy forwards (gRPC needs it)
	}
	s.rules.unkeyed.strip(hd)
	if s.Scheme == "https" {
		hd.Set("X-Forwarded-Proto", "https")
	} else {
		hd.Set("X-Forwarded-Proto", "http")
	}
	if _, ok := hd["User-Agent"]; !ok {
		hd.Set("User-Agent", "") // keep Go's default User-Agent off
	}
	httpx.AppendValue(hd, "Via", httpx.Via(in.ProtoMajor, in.ProtoMinor))
	hd[RequestIDField] = []string{s.RequestID()} // the client's, when sane; else replaced
	// The chain as received, and the peer that connected (as a proxy
	// appends its hop), not the client found in it: the origin can walk
	// it as edged did, trusting edged.
	if peer := peerIP(in); peer != "" {
		httpx.AppendValue(hd, "X-Forwarded-For", peer)
	}
}

// setFetchFields makes hd ask for what a cache fill needs: the whole
// representation (no client Range or conditional fields, unless the cache
// forwards the Range), and the stored validators of a revalidation.
func setFetchFields(hd http.Header, f *cache.Fetch) {
	if f.PassConditionals {
		return
	}
	for _, name := range conditionalFields {
		hd.Del(name)
	}
	if f.Range != "" { // a slice (cache.Request.Slice)
		hd.Set("Range", f.Range)
		hd.Set("Accept-Encoding", "identity")
	}
	if f.ETag != "" {
		hd.Set("If-None-Match", f.ETag)
	}
	if f.LastModified != "" {
		hd.Set("If-Modified-Since", f.LastModified)
	}
}

// peerIP is the address of the peer that connected (what PROXY protocol
// said it was, on a listener that reads it), without the port.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// newResolver is the realip.Resolver of Config.TrustedProxies and
// Config.ClientIPHeader.
func newResolver(trusted []string, field string) (realip.Resolver, error) {
	var r realip.Resolver
	switch {
	case field == "" || strings.EqualFold(field, realip.XForwardedFor):
	case strings.EqualFold(field, realip.Forwarded):
		r.Forwarded = true
	default:
		return r, fmt.Errorf("edge: ClientIPHeader must be %s or %s, got %q", realip.XForwardedFor, realip.Forwarded, field)
	}
	if len(trusted) > 0 {
		set, err := rules.ParseAddrSet(trusted)
		if err != nil {
			return r, fmt.Errorf("edge: TrustedProxies%w", err)
		}
		r.Trusted = set
	}
	return r, nil
}

// clientIP is r's client address: the peer, or, when the peer is a
// trusted proxy, the address the forwarded field gives (realip).
func (h *Handler) clientIP(r *http.Request) string {
	peer := peerIP(r)
	if !h.realIP.Enabled() {
		return peer
	}
	a, err := netip.ParseAddr(peer)
	if err != nil || !h.realIP.Trusts(a) {
		return peer
	}
	if c := h.realIP.Client(a, r.Header.Values(h.realIP.Field())); c != a.Unmap() {
		return c.String()
	}
	return peer
}

// fail answers a request whose origin exchange failed: 504 for timeouts and
// only-if-cached misses, 503 when every shard was over its circuit-breaking
// limits, 502 otherwise; a client that went away gets nothing
// (logged as 499).
func (h *Handler) fail(rw *responseWriter, s *Session, err error, cs string) {
	s.CacheResult, s.Err = OutcomeError, err
	code := StatusForError(err)
	if code == StatusClientClosed {
		s.Status = code
		return
	}
	var he *hookError
	switch {
	case errors.Is(err, cache.ErrOnlyIfCached):
		cs += "; detail=only-if-cached"
	case isOverloaded(err):
		cs += "; detail=origin-overloaded"
		h.log.Warn("origin request not sent: every shard over its limits", "site", s.Site.Name, "key", s.Key, "shard", s.Shard, "err", err)
	case errors.As(err, &he):
		cs += "; detail=hook-error"
		h.log.Warn("upstream request filter failed", "site", s.Site.Name, "key", s.Key, "err", he.err)
	default:
		h.log.Warn("origin request failed", "site", s.Site.Name, "key", s.Key, "shard", s.Shard, "err", err)
	}
	rw.plainError(code, cs, http.StatusText(code))
}

// StatusClientClosed is logged (never sent) for requests whose client went
// away before the answer, as nginx's 499.
const StatusClientClosed = 499

// StatusForError maps an error from the cache or the origin to the status
// sent to the client.
func StatusForError(err error) int {
	var ne net.Error
	var he *hookError
	switch {
	case errors.As(err, &he):
		return http.StatusInternalServerError
	case errors.Is(err, cache.ErrOnlyIfCached), errors.Is(err, cache.ErrStaleForbidden):
		return http.StatusGatewayTimeout
	case isOverloaded(err):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled):
		return StatusClientClosed
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// isOverloaded reports whether err says the origin request was not sent
// because every shard was over its circuit-breaking limits (lb.ErrOverloaded,
// which edge does not import, has an Overloaded method).
func isOverloaded(err error) bool {
	var o interface{ Overloaded() bool }
	return errors.As(err, &o) && o.Overloaded()
}

// finish records metrics, runs the Logging phase and writes the access log.
func (h *Handler) finish(s *Session) {
	now := h.now()
	d := now.Sub(s.Start)
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	switch {
	case h.metrics == nil:
	case s.Peer != "":
		h.metrics.observePeer(s)
	default:
		h.metrics.observe(s, d.Seconds())
	}
	h.hooks.Logging(s)
	if h.access != nil && h.sampled(s) {
		h.accessFmt.write(h.access, s, now, d)
	}
	if s.span != nil {
		endSpan(s.span, s)
	}
}

// sampled reports whether s is logged under Config.AccessSample: every
// request when it is 1, else a random share of them and every error.
func (h *Handler) sampled(s *Session) bool {
	return h.sampleBelow == 0 || s.Status >= 500 || s.Err != nil || rand.Uint64() < h.sampleBelow
}

func itoa(n int) string { return strconv.Itoa(n) }
