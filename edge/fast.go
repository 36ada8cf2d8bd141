package edge

import (
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/edge/h1"
	"github.com/edged-proxy/edged/edge/rules"
	"github.com/edged-proxy/edged/edge/strict"
)

// FastHooks is the optional interface of Hooks whose sites' cache hits may
// take the fast path of edged's HTTP/1 loop (server.http1: edged): a fresh
// stored response answered from the request head alone, with a response
// head encoded once per stored response, and no http.Request, header map
// or lifecycle phase. Hooks that do not implement it (DefaultHooks aside)
// send every request through the general path, where all phases run.
//
// On the fast path the key is DefaultHooks' (rfc.KeyFor), so a FastHooks
// whose CacheKey differs must decline in FastHit; RequestFilter, CacheKey,
// UpstreamSelect, ResponseFilter and Logging are not called. The access
// log and the metrics record the request as any other.
type FastHooks interface {
	Hooks
	// FastHit is called before a fast-path answer is written: r is the
	// request (read-only, valid during the call) and status the status
	// the answer has (200, 206, 304 or 416). It appends the response
	// fields it wants added to extra, in wire form ("Name: value\r\n"
	// lines), and returns false to send the request down the general path
	// instead, having appended nothing.
	FastHit(r *FastRequest, status int, extra []byte) ([]byte, bool)
}

// FastRequest is a request on the fast path: its request line and fields
// as received. Its strings and byte slices alias the connection's buffer
// and are valid only during FastHit.
type FastRequest struct {
	Method, Host, Target string
	// Site is the site serving Host; ClientIP the client's address.
	Site     *Site
	ClientIP string
	head     *strict.Head
}

// Field returns the value of the first request field named name (ASCII
// case-insensitive), or nil.
func (r *FastRequest) Field(name string) []byte { return r.head.Get(name) }

var _ h1.Fast = (*Handler)(nil)

// ServeFast answers a fresh cache hit from the parsed request head, for
// edged's HTTP/1 loop (h1.Fast). It declines, having written nothing,
// whatever it does not answer exactly as ServeHTTP would: methods other
// than GET and HEAD, request directives (Cache-Control, Pragma),
// Authorization, upgrades, targets or fields it does not take apart, sites
// with custom hooks that are not FastHooks, and anything but a fresh hit
// on a stored response without Vary or qualified no-cache fields
// (cache.Cache.Hit declines those).
func (h *Handler) ServeFast(w *h1.FastWriter) bool {
	if !h.fastOK {
		return false
	}
	var fr fastReq
	if !fr.parse(w.Head()) {
		return false
	}
	var arrived time.Time
	if h.tracer != nil {
		if fastTraced(w) {
			return false // the general path continues the caller's trace
		}
		arrived = h.now()
	}
	rt := h.sites.Load()
	site := rt.match(fr.host)
	if site == nil || site.CacheDisabled {
		return false
	}
	scheme := "http"
	if w.TLS() {
		scheme = "https"
	}
	sr := rt.rules[site]
	var rres rules.Result
	client, ok := h.fastAdmit(w, site, sr, scheme, &fr, &rres)
	if !ok {
		return false
	}
	clientIP := func() string { return client }
	res, ok := h.cache.Hit(rfc.NormalizeKey(scheme, fr.host, fr.path, fr.query), fr.ae)
	if !ok {
		return false
	}
	defer res.Body.Close()
	e := res.Entry
	enc := h.encoded(e, site, sr.drop)
	if enc == nil {
		return false // no Content-Type stored: the general path sniffs one
	}
	start := h.now()
	size := res.Body.Size()
	d := decideHit(fr.method, fr.inm, fr.ims, fr.rng, fr.ifRange, e, size)
	if _, isMem := res.Body.(bytesBody); !isMem && d.n > sendChunk && d.body && fr.method != http.MethodHead {
		return false // copyFrom re-arms the write timeout per chunk; one deadline would cut a slow, moving download
	}
	b := appendStatusLine(w.Buffer(), w.Head().Minor, d.status)
	b = append(b, enc.fields...)
	if d.status != http.StatusNotModified {
		b = append(b, enc.ctype...)
	}
	if h.fastHooks != nil {
		r := FastRequest{Method: fr.method, Host: fr.host, Target: fr.target, Site: site, ClientIP: client, head: w.Head()}
		if b, ok = h.fastHooks.FastHit(&r, d.status, b); !ok {
			return false
		}
	}
	if sr.limits != nil && !underLimits(sr.limits, clientIP, &rres, start) {
		return false // uncharged: the general path refuses it with the same 429
	}
	b = append(b, "Age: "...)
	b = rfc.AppendAgeValue(b, res.Age)
	b = append(b, "\r\nCache-Status: "...)
	b = appendCacheStatus(b, h.csName, &res, h.statusKeyFor(e))
	b = append(b, "\r\n"...)
	if !enc.hasDate {
		b = appendDate(b, start)
	}
	b = d.appendFraming(b, size)
	if h.draining.Load() {
		w.CloseAfter()
	}

	s := Session{Site: site, Start: start, Scheme: scheme, ClientIP: client, Status: d.status, CacheResult: OutcomeHit, tier: uint8(res.Tier) + 1,
		fast: fastLine{method: fr.method, host: fr.host, target: fr.target, rule: rres.Cache.Rule, head: w.Head(), minor: uint8(w.Head().Minor)}}
	h.armFast(w)
	var err error
	switch {
	case fr.method == http.MethodHead || !d.body:
		_, err = w.Write(b, nil)
	default:
		if m, isMem := res.Body.(bytesBody); isMem {
			var n int64
			n, err = w.Write(b, m.Bytes()[d.off:d.off+d.n])
			s.Bytes = n
		} else {
			s.Bytes, err = w.SendFile(b, res.Body.NewReader(d.off, d.n))
		}
	}
	s.Err = err
	h.finishFast(&s, w)
	if h.tracer != nil {
		h.fastSpan(w, &fr, &s, arrived, start)
	}
	return true
}

// appendStatusLine appends the status line of an HTTP/1.minor answer.
func appendStatusLine(b []byte, minor, status int) []byte {
	b = append(b, "HTTP/1."...)
	b = append(b, byte('0'+minor))
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if text := http.StatusText(status); text != "" {
		b = append(b, text...)
	} else { // a status edged does not recognise, stored with explicit freshness
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(status), 10)
	}
	return append(b, "\r\n"...)
}

// fastClientIP is the client address of a fast-path request, found as
// Handler.clientIP finds it, from the head's field lines; false (decline)
// for a head with more lines of the field than it takes apart.
func (h *Handler) fastClientIP(w *h1.FastWriter) (string, bool) {
	peer := w.ClientIP()
	if !h.realIP.Enabled() {
		return peer, true
	}
	a, err := netip.ParseAddr(peer)
	if err != nil || !h.realIP.Trusts(a) {
		return peer, true
	}
	var arr [8]string
	lines := arr[:0]
	name := h.realIP.Field()
	hd := w.Head()
	for i := range hd.Fields {
		if f := &hd.Fields[i]; f.Is(name) {
			if len(lines) == len(arr) {
				return "", false
			}
			lines = append(lines, unsafeString(f.Value))
		}
	}
	if c := h.realIP.Client(a, lines); c != a.Unmap() {
		return c.String(), true
	}
	return peer, true
}

// statusKeyFor is the key parameter of Cache-Status, when enabled.
func (h *Handler) statusKeyFor(e *cache.Entry) string {
	if h.statusKey {
		return e.Primary
	}
	return ""
}

// armFast bounds the fast path's write by the write timeout, moving the
// connection's deadline as armWriteDeadline does on HTTP/1.
func (h *Handler) armFast(w *h1.FastWriter) {
	d := h.writeTimeout
	if d <= 0 {
		return
	}
	now := time.Now() // the wall clock, not h.now: deadlines are the kernel's
	ci, _ := w.Context().Value(connInfoKey{}).(*connInfo)
	if ci != nil {
		if ci.writeDeadline.Load()-now.UnixNano() > int64(d/2) {
			return
		}
		ci.writeDeadline.Store(now.Add(d).UnixNano())
	}
	w.SetWriteDeadline(now.Add(d))
}

// finishFast records a fast-path answer as finish records any other
// (without the Logging phase, which needs an http.Request).
func (h *Handler) finishFast(s *Session, w *h1.FastWriter) {
	now := h.now()
	d := now.Sub(s.Start)
	if h.metrics != nil {
		h.metrics.observe(s, d.Seconds())
		h.metrics.fast.Inc()
	}
	if h.access != nil && h.sampled(s) {
		s.id.set(unsafeString(w.Head().Get(RequestIDField)), h.ids)
		if s.Scheme == "https" {
			if ci, _ := w.Context().Value(connInfoKey{}).(*connInfo); ci != nil && ci.tls != nil {
				s.fast.tls = ci.tls.Version
			}
		}
		h.accessFmt.write(h.access, s, now, d)
	}
}

// fastLine is what the access log needs of a fast-path request; its
// strings alias the connection's buffer.
type fastLine struct {
	method, host, target string
	rule                 string       // the rule that set the hit's caching
	head                 *strict.Head // the request's fields (User-Agent, Referer)
	minor                uint8        // HTTP/1.minor
	tls                  uint16       // the TLS version; 0 for none
}

// fastAdmit decides, before the cache is asked, whether the fast path may
// answer a request for site: it finds the client's address (behind trusted
// proxies, the forwarded one), which the site's address lists must admit,
// and evaluates the site's rules into rres, which must leave a hit alone.
// A refusal is the general path's to answer.
func (h *Handler) fastAdmit(w *h1.FastWriter, site *Site, sr *siteRules, scheme string, fr *fastReq, rres *rules.Result) (string, bool) {
	client, ok := h.fastClientIP(w)
	if !ok {
		return "", false
	}
	clientIP := func() string { return client }
	if !sr.lists.admitsFast(clientIP) {
		return "", false // the general path answers 403
	}
	if site.Rules != nil && !fastRules(site, scheme, fr, w.Head(), clientIP, rres) {
		return "", false
	}
	return client, true
}

// fastReq is what the fast path takes from a request head. Its strings
// alias the connection buffer.
type fastReq struct {
	method, host, target, path, query string
	inm, ims, rng, ifRange            string
	ae                                string // Accept-Encoding: picks a compressed variant
}

// parse takes the head apart, reporting false for anything the fast path
// leaves to the general one.
func (fr *fastReq) parse(hd *strict.Head) bool {
	fr.method = unsafeString(hd.Method)
	if fr.method != http.MethodGet && fr.method != http.MethodHead {
		return false
	}
	fr.target = unsafeString(hd.Target)
	if len(fr.target) == 0 || fr.target[0] != '/' {
		return false // absolute-form, asterisk-form
	}
	fr.path, fr.query, _ = strings.Cut(fr.target, "?")
	if !plainPath(fr.path) {
		return false
	}
	hosts := 0
	for i := range hd.Fields {
		f := &hd.Fields[i]
		var into *string
		switch {
		case f.Is("Host"):
			into = &fr.host
			hosts++
		case f.Is("If-None-Match"):
			into = &fr.inm
		case f.Is("If-Modified-Since"):
			into = &fr.ims
		case f.Is("Range"):
			into = &fr.rng
		case f.Is("If-Range"):
			into = &fr.ifRange
		case f.Is("Accept-Encoding"):
			into = &fr.ae
		case f.Is("Cache-Control"), f.Is("Pragma"), f.Is("Authorization"), f.Is("Upgrade"):
			return false
		default:
			continue
		}
		if *into != "" {
			return false // a field given twice: the general path joins them
		}
		*into = unsafeString(f.Value)
	}
	return hosts == 1 && fr.host != ""
}

// plainPath reports whether net/url's EscapedPath gives p back unchanged
// (every byte is one url.PathEscape leaves or a valid escape may hold),
// so that the key built from p is the key rfc.KeyFor builds.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~/!$&'()*+,;=:@[]", c) >= 0:
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unsafeString views b as a string without copying; b must not change
// while the string is in use (the fast path's request bytes do not).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// encodedHead is a stored response's header in wire form, for one site.
type encodedHead struct {
	fields  []byte // every field but those the site drops, Content-Length, Content-Type and Age
	ctype   []byte // the Content-Type line
	hasDate bool
}

// encoded returns e's header encoded for site (whose responses drop the
// fields drop names), encoding it on first use; nil when e has no
// Content-Type.
func (h *Handler) encoded(e *cache.Entry, site *Site, drop []string) *encodedHead {
	if v, ok := e.Memo.Load(site).(*encodedHead); ok {
		return v
	}
	ct := e.Header["Content-Type"]
	if len(ct) == 0 {
		return nil
	}
	enc := &encodedHead{}
	names := make([]string, 0, len(e.Header))
	for k := range e.Header {
		switch {
		case k == "Content-Length", k == "Content-Type", k == "Age", slices.Contains(drop, k):
		default:
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		if k == "Date" {
			enc.hasDate = true
		}
		for _, v := range e.Header[k] {
			enc.fields = appendField(enc.fields, k, v)
		}
	}
	for _, v := range ct {
		enc.ctype = appendField(enc.ctype, "Content-Type", v)
	}
	e.Memo.Store(site, enc)
	return enc
}

// appendField appends one field line, with CR and LF in the value turned
// into spaces as net/http's Header.Write does.
func appendField(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, "\r\n"...)
}

// dateLine caches the Date field line of the current second.
var dateLine atomic.Pointer[struct {
	sec  int64
	line []byte
}]

// appendDate appends a Date field line for now.
func appendDate(b []byte, now time.Time) []byte {
	sec := now.Unix()
	if d := dateLine.Load(); d != nil && d.sec == sec {
		return append(b, d.line...)
	}
	line := append([]byte("Date: "), now.UTC().AppendFormat(nil, http.TimeFormat)...)
	line = append(line, "\r\n"...)
	dateLine.Store(&struct {
		sec  int64
		line []byte
	}{sec, line})
	return append(b, line...)
}
