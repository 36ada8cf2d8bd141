package rules

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/textproto"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"
)

// MaxRules is the most rules a Set holds.
const MaxRules = 64 * maskWords

const maskWords = 4

// Error is a problem with one rule, at a key path relative to the rule
// list and named as in the configuration file, e.g.
// "[2].match.path_regex".
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string { return e.Path + ": " + e.Msg }

// Options are what Compile checks rules against.
type Options struct {
	// Origins are the names of the site's origin pools a rule's Origin
	// may name.
	Origins []string
}

// Set is a site's compiled rules. It is immutable and safe for concurrent
// use. A nil *Set has no rules.
type Set struct {
	rules []*rule
	// respOps: some rule changes response fields or the browser TTL;
	// reqOps: some rule changes request fields.
	respOps, reqOps bool
	// client: some rule matches on the client address.
	client bool
	// limits are the rules' rate limits, in rule order.
	limits []RuleLimit
}

// RuleLimit is the rate limit of one rule.
type RuleLimit struct {
	// Index is the rule's place in the Specs (Result.Matched), Name its
	// name.
	Index int
	Name  string
	Limit RateLimit
}

// rule is one compiled Spec.
type rule struct {
	name     string
	index    int
	m        matcher
	cache    cacheAct
	key      *keyAct
	reqOps   *headerOps
	respOps  *headerOps
	redirect *redirectAct
	respond  *respondAct
	origin   string
}

// Compile checks and compiles specs, in order. It returns every problem
// found, each an *Error, joined with errors.Join; nil if none.
func Compile(specs []Spec, opt Options) (*Set, error) {
	c := compiler{opt: opt, names: map[string]int{}}
	if len(specs) > MaxRules {
		c.add("", "%d rules: at most %d per site", len(specs), MaxRules)
	}
	s := &Set{}
	for i := range specs {
		r := c.rule(i, &specs[i])
		if r == nil {
			continue
		}
		s.rules = append(s.rules, r)
		s.respOps = s.respOps || r.respOps != nil
		s.reqOps = s.reqOps || r.reqOps != nil
		s.client = s.client || r.m.clients != nil || r.m.notClients != nil
		if !specs[i].RateLimit.IsZero() {
			s.limits = append(s.limits, RuleLimit{Index: i, Name: r.name, Limit: specs[i].RateLimit})
		}
	}
	if len(c.errs) > 0 {
		errs := make([]error, len(c.errs))
		for i, e := range c.errs {
			errs[i] = e
		}
		return nil, errors.Join(errs...)
	}
	return s, nil
}

type compiler struct {
	opt   Options
	names map[string]int
	errs  []*Error
	path  string // the current rule's, "[i]"
}

func (c *compiler) add(key, format string, args ...any) {
	p := c.path
	if key != "" {
		p += "." + key
	}
	c.errs = append(c.errs, &Error{Path: p, Msg: fmt.Sprintf(format, args...)})
}

func (c *compiler) rule(i int, sp *Spec) *rule {
	c.path = "[" + strconv.Itoa(i) + "]"
	before := len(c.errs)
	r := &rule{name: sp.Name, index: i}
	switch {
	case sp.Name == "":
		c.add("name", "required: a name for Cache-Status and logs, e.g. %q", "static-assets")
	case !validName(sp.Name):
		c.add("name", "invalid name %q: use letters, digits, '_', '-' and '.'", sp.Name)
	default:
		if first, dup := c.names[sp.Name]; dup {
			c.add("name", "duplicate rule name %q (first at [%d])", sp.Name, first)
		}
		c.names[sp.Name] = i
	}
	groups := c.matcher(&r.m, &sp.Match)
	c.cacheAct(&r.cache, &sp.Cache)
	r.key = c.keyAct(&sp.Key)
	r.reqOps = c.headerOps("request_headers", &sp.RequestHeaders, groups)
	r.respOps = c.headerOps("response_headers", &sp.ResponseHeaders, groups)
	r.redirect = c.redirect(&sp.Redirect, groups)
	r.respond = c.respond(&sp.Respond, groups)
	if r.redirect != nil && r.respond != nil {
		c.add("respond", "a rule either redirects or responds, not both")
	}
	if msg := CheckRateLimit(sp.RateLimit); msg != "" {
		c.add("rate_limit", "%s", msg)
	}
	if sp.Origin != "" {
		found := false
		for _, o := range c.opt.Origins {
			found = found || o == sp.Origin
		}
		if !found {
			c.add("origin", "no origin pool %q in this site (pools: %s)", sp.Origin, strings.Join(c.opt.Origins, ", "))
		}
		r.origin = sp.Origin
	}
	if len(c.errs) > before {
		return nil
	}
	return r
}

func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '-' || b == '.') {
			return false
		}
	}
	return s != ""
}

// matcher compiles m into dst and returns the number of groups of its
// path regex, -1 without one.
func (c *compiler) matcher(dst *matcher, m *Match) int {
	for j, h := range m.Hosts {
		if h == "" || strings.ToLower(h) != h || strings.ContainsAny(h, ":/ ") || strings.Count(h, "*") > 1 ||
			strings.Contains(h, "*") && !strings.HasPrefix(h, "*.") {
			c.add(fmt.Sprintf("match.hosts[%d]", j), "invalid host %q: want a lowercase name without port, or *.example.com", h)
		}
	}
	dst.hosts = m.Hosts
	for j, p := range m.Paths {
		if p == "" || p[0] != '/' && p[0] != '*' {
			c.add(fmt.Sprintf("match.paths[%d]", j), "invalid path pattern %q: want one starting with / or *, e.g. \"/static/*\"", p)
		}
	}
	dst.paths = compileGlobs(m.Paths)
	groups := -1
	if m.PathRegex != "" {
		re, err := regexp.Compile(m.PathRegex)
		if err != nil {
			c.add("match.path_regex", "%s", regexError(m.PathRegex, err))
		} else {
			dst.re = re
			groups = re.NumSubexp()
		}
	}
	for j, meth := range m.Methods {
		if !validToken(meth) {
			c.add(fmt.Sprintf("match.methods[%d]", j), "invalid method %q", meth)
		}
	}
	dst.methods = m.Methods
	dst.query = c.conds("match.query", m.Query, false)
	dst.headers = c.conds("match.headers", m.Headers, true)
	dst.cookies = c.conds("match.cookies", m.Cookies, false)
	dst.clients = c.prefixes("match.clients", m.Clients)
	dst.notClients = c.prefixes("match.not_clients", m.NotClients)
	switch m.Scheme {
	case "", "http", "https":
		dst.scheme = m.Scheme
	default:
		c.add("match.scheme", "invalid scheme %q: want http or https", m.Scheme)
	}
	return groups
}

// regexError says where a regular expression went wrong: Go's messages
// name the offending fragment; this adds its offset.
func regexError(expr string, err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		if at := strings.Index(expr, se.Expr); se.Expr != "" && at >= 0 {
			return fmt.Sprintf("invalid regular expression at offset %d (%q): %s", at, se.Expr, se.Code)
		}
		return fmt.Sprintf("invalid regular expression: %s", se.Code)
	}
	return "invalid regular expression: " + err.Error()
}

// conds compiles query, header or cookie conditions.
func (c *compiler) conds(key string, in []string, header bool) []cond {
	if len(in) == 0 {
		return nil
	}
	out := make([]cond, 0, len(in))
	for j, s := range in {
		var cd cond
		name, pattern, hasValue := strings.Cut(s, "=")
		if strings.HasPrefix(name, "!") {
			if hasValue {
				c.add(fmt.Sprintf("%s[%d]", key, j), "%q: a negated condition (!name) takes no value", s)
				continue
			}
			cd.absent, name = true, name[1:]
		}
		switch {
		case name == "":
			c.add(fmt.Sprintf("%s[%d]", key, j), "%q: want name, !name or name=pattern", s)
			continue
		case header && !validToken(name):
			c.add(fmt.Sprintf("%s[%d]", key, j), "invalid header field name %q", name)
			continue
		case header:
			name = textproto.CanonicalMIMEHeaderKey(name)
		}
		cd.name = name
		if hasValue {
			g := compileGlob(pattern)
			cd.value = &g
		}
		out = append(out, cd)
	}
	return out
}

func (c *compiler) prefixes(key string, in []string) *AddrSet {
	if len(in) == 0 {
		return nil
	}
	out := make([]netip.Prefix, 0, len(in))
	for j, s := range in {
		p, err := parsePrefix(s)
		if err != nil {
			c.add(fmt.Sprintf("%s[%d]", key, j), "%v", err)
			continue
		}
		out = append(out, p)
	}
	return NewAddrSet(out)
}

// MinSlice and MaxSlice bound a slice size (Cache.Slice), as they bound a
// site's cache.slice.
const (
	MinSlice = 256 << 10
	MaxSlice = 64 << 20
)

func (c *compiler) cacheAct(dst *cacheAct, sp *Cache) {
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"ttl", sp.TTL}, {"min_ttl", sp.MinTTL}, {"max_ttl", sp.MaxTTL}, {"default_ttl", sp.DefaultTTL},
		{"stale_while_revalidate", sp.StaleWhileRevalidate}, {"stale_if_error", sp.StaleIfError}, {"browser_ttl", sp.BrowserTTL},
	} {
		if d.v < 0 {
			c.add("cache."+d.key, "must not be negative")
		}
	}
	if sp.MinTTL > 0 && sp.MaxTTL > 0 && sp.MinTTL > sp.MaxTTL {
		c.add("cache.min_ttl", "%s is above max_ttl %s", sp.MinTTL, sp.MaxTTL)
	}
	if sp.Slice != 0 && (sp.Slice < MinSlice || sp.Slice > MaxSlice) {
		c.add("cache.slice", "%d bytes: want 256KiB to 64MiB", sp.Slice)
	}
	*dst = cacheAct{bypass: sp.Bypass, noCompress: sp.NoCompress, noSlice: sp.NoSlice, slice: sp.Slice, ttl: sp.TTL, minTTL: sp.MinTTL, maxTTL: sp.MaxTTL, defaultTTL: sp.DefaultTTL,
		swr: sp.StaleWhileRevalidate, sie: sp.StaleIfError, browserTTL: sp.BrowserTTL}
	for j, e := range sp.TTLByStatus {
		st, d, ok := strings.Cut(e, ":")
		st, d = strings.TrimSpace(st), strings.TrimSpace(d)
		key := fmt.Sprintf("cache.ttl_by_status[%d]", j)
		dur, err := time.ParseDuration(d)
		switch {
		case !ok:
			c.add(key, "%q: want \"STATUS: DURATION\", e.g. \"404: 10s\" or \"5xx: 0s\"", e)
			continue
		case err != nil || dur < 0:
			c.add(key, "%q: invalid duration %q", e, d)
			continue
		}
		var ent statusTTL
		switch {
		case len(st) == 3 && st[0] >= '1' && st[0] <= '5' && st[1:] == "xx":
			ent.class = int(st[0] - '0')
		default:
			n, err := strconv.Atoi(st)
			if err != nil || n < 100 || n > 599 {
				c.add(key, "%q: invalid status %q: want 100 to 599, or a class such as 4xx", e, st)
				continue
			}
			ent.status = n
		}
		ent.ttl = dur
		dst.byStatus = append(dst.byStatus, ent)
	}
	dst.set = sp.Bypass || sp.NoCompress || sp.NoSlice || sp.Slice != 0 || sp.TTL != 0 || sp.MinTTL != 0 || sp.MaxTTL != 0 || sp.DefaultTTL != 0 ||
		sp.StaleWhileRevalidate != 0 || sp.StaleIfError != 0 || sp.BrowserTTL != 0 || len(dst.byStatus) > 0
}

func (c *compiler) keyAct(sp *Key) *keyAct {
	k := &keyAct{host: sp.Host, allow: compileGlobs(sp.QueryAllow), deny: compileGlobs(sp.QueryDeny)}
	switch sp.Query {
	case "", "keep":
	case "sort":
		k.sort = true
	case "ignore":
		k.ignore = true
		if len(sp.QueryAllow)+len(sp.QueryDeny) > 0 {
			c.add("key.query", "ignore drops the whole query: query_allow and query_deny have nothing to filter")
		}
	default:
		c.add("key.query", "invalid value %q: want keep, sort or ignore", sp.Query)
	}
	if sp.Host != "" && (strings.ToLower(sp.Host) != sp.Host || strings.ContainsAny(sp.Host, "/* ")) {
		c.add("key.host", "invalid host %q: want a lowercase host name", sp.Host)
	}
	for j, h := range sp.Headers {
		if !validToken(h) {
			c.add(fmt.Sprintf("key.headers[%d]", j), "invalid header field name %q", h)
			continue
		}
		k.headers = append(k.headers, textproto.CanonicalMIMEHeaderKey(h))
	}
	for j, ck := range sp.Cookies {
		if ck == "" || strings.ContainsAny(ck, "=; ") {
			c.add(fmt.Sprintf("key.cookies[%d]", j), "invalid cookie name %q", ck)
			continue
		}
		k.cookies = append(k.cookies, ck)
	}
	if !k.sort && !k.ignore && k.allow == nil && k.deny == nil && k.host == "" && k.headers == nil && k.cookies == nil {
		return nil
	}
	return k
}

func (c *compiler) headerOps(key string, sp *HeaderOps, groups int) *headerOps {
	ops := &headerOps{}
	for j, n := range sp.Remove {
		if !validToken(n) {
			c.add(fmt.Sprintf("%s.remove[%d]", key, j), "invalid header field name %q", n)
			continue
		}
		ops.remove = append(ops.remove, textproto.CanonicalMIMEHeaderKey(n))
	}
	ops.set = c.fieldTemplates(key+".set", sp.Set, groups)
	ops.add = c.fieldTemplates(key+".add", sp.Add, groups)
	if ops.remove == nil && ops.set == nil && ops.add == nil {
		return nil
	}
	return ops
}

func (c *compiler) fieldTemplates(key string, in []string, groups int) []fieldTemplate {
	var out []fieldTemplate
	for j, e := range in {
		name, value, ok := strings.Cut(e, ":")
		k := fmt.Sprintf("%s[%d]", key, j)
		if !ok || !validToken(name) {
			c.add(k, "%q: want \"Name: value\", e.g. \"X-Frame-Options: DENY\"", e)
			continue
		}
		value = strings.TrimSpace(value)
		if strings.ContainsAny(value, "\r\n\x00") {
			c.add(k, "%q: a field value cannot hold CR, LF or NUL", e)
			continue
		}
		t, err := compileTemplate(value, groups)
		if err != nil {
			c.add(k, "%s", err)
			continue
		}
		out = append(out, fieldTemplate{name: textproto.CanonicalMIMEHeaderKey(name), value: t})
	}
	return out
}

func (c *compiler) redirect(sp *Redirect, groups int) *redirectAct {
	if !sp.set() {
		return nil
	}
	r := &redirectAct{status: sp.Status}
	switch sp.Status {
	case 0:
		r.status = 301
	case 301, 302, 303, 307, 308:
	default:
		c.add("redirect.status", "invalid status %d: want 301, 302, 303, 307 or 308", sp.Status)
	}
	if sp.Location == "" {
		c.add("redirect.location", "required: the target, e.g. \"https://{host}{uri}\"")
		return r
	}
	if strings.ContainsAny(sp.Location, "\r\n\x00 ") {
		c.add("redirect.location", "%q: a location cannot hold spaces, CR, LF or NUL", sp.Location)
		return r
	}
	t, err := compileTemplate(sp.Location, groups)
	if err != nil {
		c.add("redirect.location", "%s", err)
	}
	r.location = t
	return r
}

func (c *compiler) respond(sp *Respond, groups int) *respondAct {
	if !sp.set() {
		return nil
	}
	r := &respondAct{status: sp.Status, contentType: sp.ContentType}
	if r.status == 0 {
		r.status = 200
	}
	if r.status < 200 || r.status > 599 || r.status == 204 || r.status == 304 {
		c.add("respond.status", "invalid status %d: want 200 to 599, not 204 or 304 (they carry no body)", sp.Status)
	}
	if r.contentType == "" {
		r.contentType = "text/plain; charset=utf-8"
	}
	if strings.ContainsAny(r.contentType, "\r\n\x00") {
		c.add("respond.content_type", "a field value cannot hold CR, LF or NUL")
	}
	t, err := compileTemplate(sp.Body, groups)
	if err != nil {
		c.add("respond.body", "%s", err)
	}
	r.body = t
	return r
}

// CheckRateLimit returns what is wrong with l, or "".
func CheckRateLimit(l RateLimit) string {
	switch {
	case l.Rate < 0 || l.Rate != l.Rate || math.IsInf(l.Rate, 0):
		return fmt.Sprintf("invalid rate %v: want a number of requests, at least 0", l.Rate)
	case l.Per < 0:
		return fmt.Sprintf("invalid per %v: want a positive duration", l.Per)
	case l.Burst < 0:
		return fmt.Sprintf("invalid burst %d: want at least 0", l.Burst)
	case l.MaxClients < 0:
		return fmt.Sprintf("invalid max_clients %d: want at least 0", l.MaxClients)
	}
	return ""
}

// RateLimits returns the rules' rate limits, in rule order; the caller
// must not change the slice.
func (s *Set) RateLimits() []RuleLimit {
	if s == nil {
		return nil
	}
	return s.limits
}
