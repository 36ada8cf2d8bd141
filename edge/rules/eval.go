package rules

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// matcher is a compiled Match.
type matcher struct {
	scheme     string
	methods    []string
	hosts      []string
	paths      globs
	clients    *AddrSet
	notClients *AddrSet
	query      []cond
	headers    []cond
	cookies    []cond
	re         *regexp.Regexp
}

// cond is a compiled query, header or cookie condition.
type cond struct {
	name   string
	absent bool
	value  *glob // nil: presence only
}

// match reports whether in meets every condition, cheapest first.
func (m *matcher) match(in *Input) bool {
	if m.scheme != "" && m.scheme != in.Scheme {
		return false
	}
	if m.methods != nil && !slices.Contains(m.methods, in.Method) {
		return false
	}
	if m.hosts != nil && !matchHost(m.hosts, in.Host) {
		return false
	}
	if m.paths != nil && !m.paths.match(in.Path) {
		return false
	}
	if m.clients != nil && !m.clients.Contains(in.Client) {
		return false
	}
	if m.notClients != nil && m.notClients.Contains(in.Client) {
		return false
	}
	for i := range m.query {
		c := &m.query[i]
		v, ok := queryParam(in.Query, c.name)
		if !c.holds(v, ok) {
			return false
		}
	}
	for i := range m.headers {
		if !m.headers[i].holdsField(in.Fields) {
			return false
		}
	}
	for i := range m.cookies {
		c := &m.cookies[i]
		v, ok := in.cookie(c.name)
		if !c.holds(v, ok) {
			return false
		}
	}
	return m.re == nil || m.re.MatchString(in.Path)
}

func (c *cond) holds(v string, present bool) bool {
	if c.absent {
		return !present
	}
	return present && (c.value == nil || c.value.match(v))
}

// holdsField checks a header condition against each line of the field.
func (c *cond) holdsField(f Fields) bool {
	if f == nil {
		return c.absent
	}
	for i := 0; ; i++ {
		v, ok := f.Value(c.name, i)
		if !ok {
			return c.absent
		}
		if c.absent {
			return false
		}
		if c.value == nil || c.value.match(v) {
			return true
		}
	}
}

func matchHost(hosts []string, host string) bool {
	for _, h := range hosts {
		if h == host {
			return true
		}
		if len(h) > 1 && h[0] == '*' && len(host) > len(h)-1 && host[len(host)-(len(h)-1):] == h[1:] {
			return true
		}
	}
	return false
}

// cacheAct is a compiled Cache; zero durations are unset.
type cacheAct struct {
	set                             bool
	bypass, noCompress, noSlice     bool
	slice                           int64
	ttl, minTTL, maxTTL, defaultTTL time.Duration
	swr, sie, browserTTL            time.Duration
	byStatus                        []statusTTL
}

type statusTTL struct {
	status int // exact status, or 0 with class
	class  int // 1..5
	ttl    time.Duration
}

// keyAct is a compiled Key.
type keyAct struct {
	sort, ignore bool
	allow, deny  globs
	headers      []string
	cookies      []string
	host         string
}

type headerOps struct {
	remove   []string
	set, add []fieldTemplate
}

type fieldTemplate struct {
	name  string
	value template
}

type redirectAct struct {
	status   int
	location template
}

type respondAct struct {
	status      int
	body        template
	contentType string
}

// Result is what a Set decided for one request. Evaluate into a Result
// the caller owns (it is a value, so that evaluation allocates nothing);
// the zero Result decides nothing.
type Result struct {
	set  *Set
	mask [maskWords]uint64

	// Cache is the caching decision, each field from the last matching
	// rule that set it.
	Cache Decision
	// Origin is the origin pool the last matching rule with one named;
	// "" means the site's default pool.
	Origin string

	key      *keyAct // the last matching rule's key actions
	keyRule  string
	terminal *rule // the rule that redirects or responds
}

// Decision is the merged caching actions of the matching rules. Zero
// durations are unset; Rule names the last rule that set any of them.
type Decision struct {
	Bypass, NoCompress, NoSlice        bool
	Slice                              int64 // 0: unset
	TTL, MinTTL, MaxTTL, DefaultTTL    time.Duration
	StaleWhileRevalidate, StaleIfError time.Duration
	BrowserTTL                         time.Duration
	Rule                               string
	byStatus                           []statusTTL
}

// Eval evaluates the rules for in, into res, and reports whether any rule
// matched. Every matching rule applies, in order; a field a later rule
// sets overrides the earlier rules' value of it, and a rule that redirects
// or responds ends evaluation. It allocates nothing.
func (s *Set) Eval(in *Input, res *Result) bool {
	*res = Result{set: s}
	if s == nil {
		return false
	}
	any := false
	for _, r := range s.rules {
		if !r.m.match(in) {
			continue
		}
		any = true
		res.mask[r.index/64] |= 1 << (r.index % 64)
		if r.cache.set {
			res.Cache.merge(&r.cache, r.name)
		}
		if r.origin != "" {
			res.Origin = r.origin
		}
		if r.key != nil {
			res.key, res.keyRule = r.key, r.name
		}
		if r.redirect != nil || r.respond != nil {
			res.terminal = r
			break
		}
	}
	return any
}

func (d *Decision) merge(a *cacheAct, name string) {
	d.Rule = name
	d.Bypass = d.Bypass || a.bypass
	d.NoCompress = d.NoCompress || a.noCompress
	d.NoSlice = d.NoSlice || a.noSlice
	if a.slice > 0 {
		d.Slice = a.slice
	}
	setDur(&d.TTL, a.ttl)
	setDur(&d.MinTTL, a.minTTL)
	setDur(&d.MaxTTL, a.maxTTL)
	setDur(&d.DefaultTTL, a.defaultTTL)
	setDur(&d.StaleWhileRevalidate, a.swr)
	setDur(&d.StaleIfError, a.sie)
	setDur(&d.BrowserTTL, a.browserTTL)
	if a.byStatus != nil {
		d.byStatus = a.byStatus
	}
}

func setDur(dst *time.Duration, v time.Duration) {
	if v != 0 {
		*dst = v
	}
}

// Lifetime returns the freshness lifetime for a response of status whose
// lifetime from the origin (or the site's defaults) is origin, and
// whether the origin gave one explicitly: TTLByStatus for the status if
// set (an exact status over its class), else TTL, else origin (or
// DefaultTTL when it was not explicit), clamped to MinTTL and MaxTTL.
// A zero ttl with set true means: do not store.
func (d *Decision) Lifetime(status int, origin time.Duration, explicit bool) (ttl time.Duration, set bool) {
	ttl = origin
	switch {
	case d.statusTTL(status, &ttl):
		return ttl, true
	case d.TTL > 0:
		ttl, set = d.TTL, true
	case !explicit && d.DefaultTTL > 0:
		ttl, set = d.DefaultTTL, true
	}
	if d.MinTTL > 0 && ttl < d.MinTTL {
		ttl, set = d.MinTTL, true
	}
	if d.MaxTTL > 0 && ttl > d.MaxTTL {
		ttl, set = d.MaxTTL, true
	}
	return ttl, set
}

func (d *Decision) statusTTL(status int, ttl *time.Duration) bool {
	found := false
	for _, e := range d.byStatus {
		if e.status == status {
			*ttl = e.ttl
			return true
		}
		if !found && e.status == 0 && e.class == status/100 {
			*ttl, found = e.ttl, true
		}
	}
	return found
}

// HasTTLByStatus reports whether a rule set TTLs by status.
func (d *Decision) HasTTLByStatus() bool { return d.byStatus != nil }

// Matched reports whether the rule at index i (its place in the Specs)
// matched.
func (res *Result) Matched(i int) bool {
	return i >= 0 && i < MaxRules && res.mask[i/64]&(1<<(i%64)) != 0
}

// Any reports whether any rule matched.
func (res *Result) Any() bool { return res.mask != [maskWords]uint64{} }

// Terminal returns the name of the rule that answers the request at the
// edge (a redirect or a fixed response), or "".
func (res *Result) Terminal() string {
	if res.terminal == nil {
		return ""
	}
	return res.terminal.name
}

// KeyRule returns the name of the rule whose key actions apply, or "".
func (res *Result) KeyRule() string { return res.keyRule }

// ChangesResponse reports whether the matching rules change the response
// header sent to the client (response_headers or browser_ttl).
func (res *Result) ChangesResponse() bool {
	if res.Cache.BrowserTTL > 0 {
		return true
	}
	if res.set == nil || !res.set.respOps {
		return false
	}
	for _, r := range res.set.rules {
		if r.respOps != nil && res.Matched(r.index) {
			return true
		}
	}
	return false
}

// ChangesRequest reports whether the matching rules change the origin
// request's header (request_headers).
func (res *Result) ChangesRequest() bool {
	if res.set == nil || !res.set.reqOps {
		return false
	}
	for _, r := range res.set.rules {
		if r.reqOps != nil && res.Matched(r.index) {
			return true
		}
	}
	return false
}

// each calls f for the matching rules in order.
func (res *Result) each(f func(r *rule)) {
	if res.set == nil {
		return
	}
	for _, r := range res.set.rules {
		if res.Matched(r.index) {
			f(r)
		}
	}
}

// ApplyRequest changes the origin request's header h as the matching
// rules' request_headers say, in rule order.
func (res *Result) ApplyRequest(h http.Header, in *Input) {
	if res.set == nil || !res.set.reqOps {
		return
	}
	res.each(func(r *rule) { r.apply(r.reqOps, h, in) })
}

// ApplyResponse changes the client response's header h as the matching
// rules' response_headers say, in rule order. Values are replaced, never
// written into, so slices shared with a stored entry stay intact.
func (res *Result) ApplyResponse(h http.Header, in *Input) {
	if res.set == nil || !res.set.respOps {
		return
	}
	res.each(func(r *rule) { r.apply(r.respOps, h, in) })
}

func (r *rule) apply(ops *headerOps, h http.Header, in *Input) {
	if ops == nil {
		return
	}
	for _, n := range ops.remove {
		delete(h, n)
	}
	var groups []int
	if r.m.re != nil {
		groups = r.m.re.FindStringSubmatchIndex(in.Path)
	}
	for _, f := range ops.set {
		h[f.name] = []string{string(f.value.render(nil, in, groups))}
	}
	for _, f := range ops.add {
		v := string(f.value.render(nil, in, groups))
		h[f.name] = append(h[f.name][:len(h[f.name]):len(h[f.name])], v)
	}
}

// BrowserCacheControl returns the Cache-Control to send to clients in
// place of cc, the stored one, when a rule sets browser_ttl: "max-age=N",
// after "public" or "private" when cc has it. ok is false when no rule
// sets one.
func (res *Result) BrowserCacheControl(cc string) (out string, ok bool) {
	ttl := res.Cache.BrowserTTL
	if ttl <= 0 {
		return cc, false
	}
	b := make([]byte, 0, 32)
	for _, d := range strings.Split(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "public" || d == "private" {
			b = append(b, d...)
			b = append(b, ", "...)
			break
		}
	}
	b = append(b, "max-age="...)
	b = strconv.AppendInt(b, int64(ttl/time.Second), 10)
	return string(b), true
}

// Answer is an edge answer decided by a rule.
type Answer struct {
	Rule        string
	Status      int
	Location    string // a redirect's
	ContentType string // a fixed response's
	Body        string
}

// Answer returns the edge answer of the terminal rule, if any.
func (res *Result) Answer(in *Input) (Answer, bool) {
	r := res.terminal
	if r == nil {
		return Answer{}, false
	}
	var groups []int
	if r.m.re != nil {
		groups = r.m.re.FindStringSubmatchIndex(in.Path)
	}
	if r.redirect != nil {
		return Answer{Rule: r.name, Status: r.redirect.status, Location: string(r.redirect.location.render(nil, in, groups))}, true
	}
	return Answer{Rule: r.name, Status: r.respond.status, ContentType: r.respond.contentType,
		Body: string(r.respond.body.render(nil, in, groups))}, true
}

// KeyHost returns the host the cache key holds: the rule's folded host, or
// host.
func (res *Result) KeyHost(host string) string {
	if res.key != nil && res.key.host != "" {
		return res.key.host
	}
	return host
}

// Query returns the query string as the key and the origin request hold
// it, from the raw query: kept, sorted, filtered or dropped. It allocates
// only when it changes the query.
func (res *Result) Query(raw string) string {
	k := res.key
	if k == nil || raw == "" {
		return raw
	}
	if k.ignore {
		return ""
	}
	if !k.sort && k.allow == nil && k.deny == nil {
		return raw
	}
	keep := func(pair string) bool {
		name, _, _ := strings.Cut(pair, "=")
		if k.allow != nil && !k.allow.match(name) {
			return false
		}
		return k.deny == nil || !k.deny.match(name)
	}
	if !k.sort {
		// Unchanged when every parameter stays: no allocation.
		all := true
		for q := raw; q != "" && all; {
			var pair string
			pair, q, _ = strings.Cut(q, "&")
			all = keep(pair)
		}
		if all {
			return raw
		}
	}
	pairs := strings.Split(raw, "&")
	out := pairs[:0]
	for _, p := range pairs {
		if p != "" && keep(p) {
			out = append(out, p)
		}
	}
	if k.sort {
		slices.SortStableFunc(out, func(a, b string) int {
			an, _, _ := strings.Cut(a, "=")
			bn, _, _ := strings.Cut(b, "=")
			return strings.Compare(an, bn)
		})
	}
	return strings.Join(out, "&")
}

// AppendKeyExtra appends to dst what the matching key actions add to the
// cache key: each configured header's and cookie's value, named, so that
// requests differing in them are different objects. It appends nothing
// when the rules add nothing.
func (res *Result) AppendKeyExtra(dst []byte, in *Input) []byte {
	k := res.key
	if k == nil || k.headers == nil && k.cookies == nil {
		return dst
	}
	for _, h := range k.headers {
		v, ok := get(in.Fields, h)
		dst = appendKeyPart(dst, 'h', h, v, ok)
	}
	for _, c := range k.cookies {
		v, ok := in.cookie(c)
		dst = appendKeyPart(dst, 'c', c, v, ok)
	}
	return dst
}

// appendKeyPart appends "\x01" kind name "=" value, or "\x01" kind name
// "\x02" when absent (so an absent field and an empty one differ). Neither
// control byte can occur in a URL, a field value or a cookie (the HTTP/1
// readers refuse them), so parts never run together; the cache takes
// "\x01" as the start of the part of a key after its URL (purges by URL
// match every such key).
func appendKeyPart(dst []byte, kind byte, name, v string, ok bool) []byte {
	dst = append(dst, 1, kind)
	dst = append(dst, name...)
	if !ok {
		return append(dst, 2)
	}
	dst = append(dst, '=')
	return append(dst, v...)
}

// NeedsClient reports whether some rule matches on the client address,
// so that callers parse it only then.
func (s *Set) NeedsClient() bool { return s != nil && s.client }

// Rules returns the number of rules in the set.
func (s *Set) Rules() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}
