package edge

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/cache/coding"
	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/edge/rules"
	"github.com/edged-proxy/edged/edge/strict"
)

// Pool is one of a site's further origin pools, which its rules route to
// (Site.Pools).
type Pool struct {
	// Origin reaches the pool's origin servers.
	Origin cache.Origin
	// OriginHost, when set, is the Host header sent to this pool's
	// origins; empty means the site's OriginHost rule.
	OriginHost string
}

// ruleState is what the rules decided for one request.
type ruleState struct {
	in  rules.Input
	res rules.Result
}

// evalRules evaluates the site's rules for the request of s. It reports
// false when the site has none, or none matched.
func (h *Handler) evalRules(s *Session) bool {
	set := s.Site.Rules
	if set == nil {
		return false
	}
	r := s.Req
	in := &s.rs.in
	*in = rules.Input{
		Method: r.Method,
		Scheme: s.Scheme,
		Host:   ruleHost(s.Scheme, r.Host),
		Path:   rfc.NormalizePath(r.URL.EscapedPath()),
		Query:  r.URL.RawQuery,
		Fields: rules.Header(r.Header),
	}
	if set.NeedsClient() {
		in.Client = clientAddr(s.ClientIP)
	}
	return set.Eval(in, &s.rs.res)
}

// ruleHost is the request host as rules match it: normalized as the key's
// host, without a port.
func ruleHost(scheme, host string) string {
	return stripPort(rfc.NormalizeHost(scheme, host))
}

// ruleInput completes the rules' input for templates: the client address
// (parsed for matching only when a rule matches on it) and the request ID.
func (s *Session) ruleInput() {
	in := &s.rs.in
	if !in.Client.IsValid() {
		in.Client = clientAddr(s.ClientIP)
	}
	if in.RequestID == nil {
		in.RequestID = s.RequestID
	}
}

// ruleDetail is the rule named in Cache-Status (detail=rule:NAME): the one
// that answered, else the last that set a caching action, else the one
// whose key actions apply; "" when no rule decided anything about it.
func (s *Session) ruleDetail() string {
	res := &s.rs.res
	if n := res.Terminal(); n != "" {
		return n
	}
	if res.Cache.Rule != "" {
		return res.Cache.Rule
	}
	return res.KeyRule()
}

// appendRuleDetail appends "; detail=rule:NAME" to a Cache-Status value
// that has no detail yet, when a rule decided.
func appendRuleDetail(b []byte, s *Session) []byte {
	name := s.ruleDetail()
	if name == "" || strings.Contains(unsafeString(b), "; detail=") {
		return b
	}
	b = append(b, "; detail=rule:"...)
	return append(b, name...)
}

// answerRule writes the edge answer of a rule that redirects or responds,
// and reports whether there was one.
func (h *Handler) answerRule(rw *responseWriter, s *Session) bool {
	s.ruleInput()
	a, ok := s.rs.res.Answer(&s.rs.in)
	if !ok {
		return false
	}
	s.CacheResult = OutcomeRule
	hd := rw.Header()
	cs := "edged; fwd=bypass; detail=rule:" + a.Rule
	body := a.Body
	if a.Location != "" {
		hd.Set("Location", a.Location)
		hd.Set("Content-Type", "text/plain; charset=utf-8")
		body = strconv.Itoa(a.Status) + " " + http.StatusText(a.Status) + ": " + a.Location + "\n"
	} else {
		hd.Set("Content-Type", a.ContentType)
	}
	hd.Set("Cache-Status", cs)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	rw.filterResponse(a.Status, hd, false)
	rw.WriteHeader(a.Status)
	if s.Req.Method != http.MethodHead {
		rw.Write([]byte(body))
	}
	return true
}

// ruleKey is the cache key when a rule's key actions apply: the key of
// the target as the origin gets it (the query kept, sorted, filtered or
// dropped), under the folded host, followed by the header and cookie
// values the rule adds.
func ruleKey(s *Session) string {
	r := s.Req
	res := &s.rs.res
	host := r.Host
	if kh := res.KeyHost(""); kh != "" {
		host = kh
	}
	key := rfc.NormalizeKey(s.Scheme, host, r.URL.EscapedPath(), res.Query(r.URL.RawQuery))
	if extra := res.AppendKeyExtra(nil, &s.rs.in); len(extra) > 0 {
		key += string(extra)
	}
	return key
}

// cacheKey runs the CacheKey phase: the rules' key when a rule's key
// actions apply, else the hook's.
func (h *Handler) cacheKey(s *Session) string {
	if s.rs.res.KeyRule() != "" {
		return ruleKey(s)
	}
	return h.hooks.CacheKey(s)
}

// origin returns the origin the request goes to and the Host header the
// site sets for it ("" keeps the client's): a rule's pool, else the site's.
func (s *Session) origin() (cache.Origin, string) {
	if name := s.rs.res.Origin; name != "" && name != "default" {
		if p, ok := s.Site.Pools[name]; ok {
			host := p.OriginHost
			if host == "" {
				host = s.Site.OriginHost
			}
			return p.Origin, host
		}
	}
	return s.Site.Origin, s.Site.OriginHost
}

// compressor is what compresses the request's fill: the site's, unless a
// rule says no_compress.
func (s *Session) compressor() *coding.Compressor {
	if s.rs.res.Cache.NoCompress {
		return nil
	}
	return s.rules.compress
}

// slice is the slice size of the request (cache.Request.Slice): the
// site's, unless a rule says otherwise.
func (s *Session) slice() int64 {
	switch d := &s.rs.res.Cache; {
	case d.NoSlice:
		return 0
	case d.Slice > 0:
		return d.Slice
	}
	return s.Site.Slice
}

// policy is the caching policy of the request: the site's, with the
// rules' caching actions.
func (s *Session) policy() rfc.Policy {
	p := s.Site.Policy
	d := &s.rs.res.Cache
	if d.Rule == "" {
		return p
	}
	if d.TTL > 0 || d.MinTTL > 0 || d.MaxTTL > 0 || d.DefaultTTL > 0 || d.HasTTLByStatus() {
		p.Override = d
	}
	if d.StaleWhileRevalidate > 0 {
		p.StaleWhileRevalidate = d.StaleWhileRevalidate
	}
	if d.StaleIfError > 0 {
		p.StaleIfError = d.StaleIfError
	}
	return p
}

// filterResponse applies the rules' response actions and then the
// ResponseFilter hook to a response header about to be sent. stored says
// the response is served from, or was stored in, the cache: only those get
// the rules' browser TTL.
func (w *responseWriter) filterResponse(status int, hd http.Header, stored bool) {
	s := w.s
	if s.Site == nil || s.Peer != "" {
		return // a peer fetch's answer is filtered where it goes on to the client
	}
	// Only when a matched rule changes the response: completing the
	// rules' input for templates costs an allocation.
	if s.rs.res.ChangesResponse() {
		if stored && s.rs.res.Cache.BrowserTTL > 0 {
			if cc, ok := s.rs.res.BrowserCacheControl(strings.Join(hd["Cache-Control"], ", ")); ok {
				hd["Cache-Control"] = []string{cc}
				delete(hd, "Expires")
			}
		}
		s.ruleInput()
		s.rs.res.ApplyResponse(hd, &s.rs.in)
	}
	w.h.hooks.ResponseFilter(s, status, hd)
}

// headFields gives the rules the fields of a request on the fast path.
type headFields struct{ h *strict.Head }

// Value implements rules.Fields over the parsed head, without allocating.
func (f headFields) Value(name string, i int) (string, bool) {
	for j := range f.h.Fields {
		fl := &f.h.Fields[j]
		if !fl.Is(name) {
			continue
		}
		if i == 0 {
			return unsafeString(fl.Value), true
		}
		i--
	}
	return "", false
}

// fastRules evaluates the site's rules for a request on the fast path,
// into res, and reports whether the fast path may still answer it: no
// rule matched, or those that did change nothing a fresh hit's answer
// holds (they answer at the edge, bypass the cache, change the key or the
// response fields). Their rate limits are the caller's to apply.
func fastRules(site *Site, scheme string, fr *fastReq, hd *strict.Head, clientIP func() string, res *rules.Result) bool {
	set := site.Rules
	if set == nil {
		return true
	}
	in := rules.Input{Method: fr.method, Scheme: scheme, Host: ruleHost(scheme, fr.host),
		Path: rfc.NormalizePath(fr.path), Query: fr.query, Fields: headFields{hd}}
	if set.NeedsClient() {
		in.Client = clientAddr(clientIP())
	}
	if !set.Eval(&in, res) {
		return true
	}
	return res.Terminal() == "" && !res.Cache.Bypass && res.KeyRule() == "" && !res.ChangesResponse() &&
		(res.Origin == "" || res.Origin == "default")
}
