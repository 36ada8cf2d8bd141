package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Validate checks every value of c against the rules declared in its
// fields' tags and the rules between keys, and returns all problems found
// (nil if none), each an *Error with a key path but no file or line, e.g.
// "sites[1].hosts[0]: host \"example.com\" is also served by site \"a\"
// (sites[0].hosts[0])"; more than one are joined with errors.Join. Validate
// does not modify c and does not fill defaults: hosts must already be
// lowercase and every origin must have a name (NewSite and Parse take care
// of both).
func (c *Config) Validate() error {
	return join(c.validate())
}

// validator collects problems.
type validator struct{ errs []*Error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// addr checks a listen address and reports whether it is valid.
func (v *validator) addr(path, addr string) bool {
	if msg := addrProblem(addr); msg != "" {
		v.add(path, "%s", msg)
		return false
	}
	return true
}

// addrProblem says what is wrong with a listen address; "" if nothing.
func addrProblem(addr string) string {
	if addr == "" {
		return `required (host:port, e.g. "127.0.0.1:8080")`
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf(`invalid address %q: want host:port, e.g. "127.0.0.1:8080"`, addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("invalid port %q in address %q: want a number from 0 to 65535", port, addr)
	}
	return ""
}

// walk checks the declared rules (check tags) and kinds of every key of
// the struct rv, at path, and of the structs it contains.
func (v *validator) walk(path string, rv reflect.Value) {
	for _, k := range keysOf(rv.Type()) {
		f := rv.Field(k.index)
		p := joinPath(path, k.name)
		if k.guard < 0 || !rv.Field(k.guard).IsZero() {
			for _, r := range k.rules {
				if !r.ok(f) {
					v.add(p, "%s", r.message(f))
					break
				}
			}
		}
		switch {
		case k.kind == "address" && (f.String() != "" || k.def != ""):
			v.addr(p, f.String())
		case k.kind == "cidr":
			for i, c := range f.Interface().([]string) {
				if _, err := netip.ParsePrefix(c); err != nil {
					v.add(p+"["+strconv.Itoa(i)+"]", "invalid CIDR %q", c)
				}
			}
		case f.Kind() == reflect.Struct:
			v.walk(p, f)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			for i := range f.Len() {
				v.walk(p+"["+strconv.Itoa(i)+"]", f.Index(i))
			}
		}
	}
}

// validate checks the declared rules of every key, then the rules that
// relate keys to each other.
func (c *Config) validate() []*Error {
	v := &validator{}
	v.walk("", reflect.ValueOf(c).Elem())
	if c.Admin.Listen == c.Listen && addrProblem(c.Listen) == "" && !strings.HasSuffix(c.Listen, ":0") {
		v.add("admin.listen", "must differ from listen (both are %q)", c.Listen)
	}
	if m := &c.Cache.Memory; m.MaxObjectBytes > 0 && m.MaxObjectBytes > m.MaxBytes {
		v.add("cache.memory.max_object_bytes", "must not exceed cache.memory.max_bytes (%s), got %s", m.MaxBytes, m.MaxObjectBytes)
	}
	if c.Server.ProxyProtocol == "optional" && len(c.Server.TrustedProxies) == 0 {
		v.add("server.proxy_protocol", "optional needs server.trusted_proxies: any client could send a header naming its address")
	}
	v.purge(&c.Purge, c.Sites)
	v.adminTokens(c.Admin.Tokens)
	v.cluster(&c.Cluster, c)
	v.tracing(&c.Tracing)
	if t := &c.TLS; t.Listen != "" {
		if len(t.Certificates) == 0 {
			v.add("tls.certificates", "required when tls.listen is set: list at least one cert/key pair")
		}
		for i, cert := range t.Certificates {
			p := "tls.certificates[" + strconv.Itoa(i) + "]"
			if cert.Cert == "" {
				v.add(p+".cert", "required")
			}
			if cert.Key == "" {
				v.add(p+".key", "required")
			}
		}
	}
	v.sites(c.Sites)
	return v.errs
}

// hostOwner records where a host was first listed.
type hostOwner struct {
	site int
	path string
}

func (v *validator) sites(sites []Site) {
	names := make(map[string]string) // site name → path of its first use
	hosts := make(map[string]hostOwner)
	for i := range sites {
		s := &sites[i]
		p := "sites[" + strconv.Itoa(i) + "]"

		switch {
		case s.Name == "":
			v.add(p+".name", "required")
		case !validSiteName(s.Name):
			v.add(p+".name", "must match [a-z0-9_-]+, got %q", s.Name)
		default:
			if first, dup := names[s.Name]; dup {
				v.add(p+".name", "duplicate site name %q (also %s)", s.Name, first)
			} else {
				names[s.Name] = p + ".name"
			}
		}

		if len(s.Hosts) == 0 {
			v.add(p+".hosts", `required: list at least one host (an exact name, "*.suffix" or "*")`)
		}
		for j, h := range s.Hosts {
			hp := p + ".hosts[" + strconv.Itoa(j) + "]"
			if err := checkHost(h); err != nil {
				v.add(hp, "%v", err)
				continue
			}
			switch first, dup := hosts[h]; {
			case !dup:
				hosts[h] = hostOwner{site: i, path: hp}
			case first.site == i:
				v.add(hp, "duplicate host %q (also %s)", h, first.path)
			default:
				v.add(hp, "host %q is also served by site %q (%s); a host may appear in only one site",
					h, sites[first.site].Name, first.path)
			}
		}

		v.methods(p+".methods", s.Methods)

		if s.OriginHost != "" && !validOriginHost(s.OriginHost) {
			v.add(p+".origin_host", `invalid host %q: want a host name with an optional port, or "" to keep the client's Host`, s.OriginHost)
		}

		v.origins(p+".origins", s.Origins)
		v.upstreamTLS(p+".upstream.tls", &s.Upstream.TLS)
		v.balance(p+".upstream", &s.Upstream)
		v.targeted(p+".cache", &s.Cache)
		v.compression(p+".compression", &s.Compression)
		v.pools(p+".pools", s.Pools)
	}
}

// compression checks a site's compression codings (known, each once) and
// media types (type/subtype or type/*, without parameters).
func (v *validator) compression(p string, c *Compression) {
	seen := map[string]bool{}
	for i, name := range c.Codings {
		switch {
		case name != "br" && name != "zstd" && name != "gzip":
			v.add(p+".codings["+strconv.Itoa(i)+"]", "unknown coding %q: want br, zstd or gzip", name)
		case seen[name]:
			v.add(p+".codings["+strconv.Itoa(i)+"]", "%s is listed twice", name)
		}
		seen[name] = true
	}
	for i, t := range c.Types {
		major, minor, ok := strings.Cut(t, "/")
		if !ok || major == "" || minor == "" || strings.ContainsAny(t, " ;,\t") || major == "*" {
			v.add(p+".types["+strconv.Itoa(i)+"]", "%q is not a media type: want type/subtype or type/*, without parameters", t)
		}
	}
}

// pools checks a site's further origin pools: names that rules can use,
// and each pool's origins and TLS keys as a site's. Rules themselves are
// compiled, and checked, by the daemon (package edge/rules).
func (v *validator) pools(p string, pools []Pool) {
	names := map[string]string{}
	for i, pl := range pools {
		pp := p + "[" + strconv.Itoa(i) + "]"
		switch {
		case pl.Name == "":
			v.add(pp+".name", "required: the name rules[].origin uses")
		case pl.Name == "default":
			v.add(pp+".name", `"default" is the site's own origins; choose another name`)
		case !validSiteName(pl.Name):
			v.add(pp+".name", "invalid name %q: use lowercase letters, digits, '_' and '-'", pl.Name)
		default:
			if first, dup := names[pl.Name]; dup {
				v.add(pp+".name", "duplicate pool name %q (also %s)", pl.Name, first)
			}
			names[pl.Name] = pp + ".name"
		}
		if pl.OriginHost != "" && !validOriginHost(pl.OriginHost) {
			v.add(pp+".origin_host", `invalid host %q: want a host name with an optional port, or ""`, pl.OriginHost)
		}
		v.origins(pp+".origins", pl.Origins)
		v.upstreamTLS(pp+".upstream.tls", &pl.Upstream.TLS)
		v.balance(pp+".upstream", &pl.Upstream)
	}
}

// targeted checks that no field is both edged's own targeted field and one
// it forwards: the two lists mean opposite things (removed, forwarded), and
// a name in both is most likely a configuration from before
// own_targeted_headers, when targeted_headers listed every field obeyed and
// all were removed.
func (v *validator) targeted(p string, c *SiteCache) {
	for i, name := range c.TargetedHeaders {
		for _, own := range c.OwnTargetedHeaders {
			if strings.EqualFold(name, own) {
				v.add(p+".targeted_headers["+strconv.Itoa(i)+"]",
					"%s is also in own_targeted_headers: list edged's own fields (obeyed first, removed from responses) only there, and in targeted_headers the fields to obey after them and forward", name)
			}
		}
	}
}

// methods checks a site's methods: tokens, GET and HEAD among them (RFC
// 9110 §9.1: every general-purpose server supports both, and the cache
// serves them), neither CONNECT nor PURGE.
func (v *validator) methods(p string, methods []string) {
	for i, m := range methods {
		mp := p + "[" + strconv.Itoa(i) + "]"
		switch {
		case m == "" || !validFieldName(m):
			v.add(mp, "invalid method %q: want a token such as GET (case-sensitive)", m)
		case m == "CONNECT":
			v.add(mp, "CONNECT is never forwarded (edged opens no tunnels)")
		case m == "PURGE":
			v.add(mp, "PURGE is answered by edged (purge.tokens, purge.allow_cidrs), never forwarded")
		}
	}
	for _, m := range [...]string{"GET", "HEAD"} {
		if !slices.Contains(methods, m) {
			v.add(p, "must include %s (methods are case-sensitive)", m)
		}
	}
}

func (v *validator) origins(p string, origins []Origin) {
	if len(origins) == 0 {
		v.add(p, "required: list at least one origin")
		return
	}
	names := make(map[string]string)
	for i, o := range origins {
		op := p + "[" + strconv.Itoa(i) + "]"
		urlOK := true
		if err := checkOriginURL(o.URL); err != nil {
			v.add(op+".url", "%v", err)
			urlOK = false
		}
		switch {
		case !urlOK:
			// The name is usually derived from the URL; one error is enough.
		case o.Name == "":
			v.add(op+".name", "required")
		default:
			if first, dup := names[o.Name]; dup {
				v.add(op+".name", "duplicate origin name %q (also %s); set name to tell them apart", o.Name, first)
			} else {
				names[o.Name] = op + ".name"
			}
		}
	}
}

// balance checks hash_balance_factor: off, or a bound of at least the
// mean, and only where there is a ring to bound.
func (v *validator) balance(p string, u *Upstream) {
	switch f := u.HashBalanceFactor; {
	case f <= 0: // off; a negative one breaks the check tag already
	case !(f >= 1): // NaN too
		v.add(p+".hash_balance_factor", "must be 0 (off) or at least 1 (no bound can be below the mean), got %v", f)
	case u.Policy != "ketama":
		v.add(p+".hash_balance_factor", "bounds the ketama policy only, not %s: remove it or set policy: ketama", u.Policy)
	}
}

// upstreamTLS checks the keys of upstream.tls that go together; the
// files themselves are read by the daemon's checks.
func (v *validator) upstreamTLS(p string, t *UpstreamTLS) {
	if t.ServerName != "" && !validServerName(t.ServerName) {
		v.add(p+".server_name", "invalid server name %q: want a host name like origin.example.com or an IP address, without a port", t.ServerName)
	}
	switch {
	case t.ClientCert != "" && t.ClientKey == "":
		v.add(p+".client_cert", "set client_key too (the certificate's private key file)")
	case t.ClientKey != "" && t.ClientCert == "":
		v.add(p+".client_key", "set client_cert too (the certificate chain of this key)")
	}
	if t.InsecureSkipVerify && t.CA != "" {
		v.add(p+".ca", "has no effect with insecure_skip_verify, which trusts every certificate: remove one of them")
	}
}

// validServerName reports whether s can be verified against an origin's
// certificate: a host name (any case) or an IP address.
func validServerName(s string) bool {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return true
	}
	return validHostName(strings.ToLower(s))
}

func validSiteName(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

// checkHost checks one entry of Site.Hosts.
func checkHost(h string) error {
	switch {
	case h == "":
		return errors.New("host must not be empty")
	case h == "*":
		return nil
	case h != strings.ToLower(h):
		return fmt.Errorf("host %q must be lowercase", h)
	case strings.Contains(h, "*"):
		if !strings.HasPrefix(h, "*.") || strings.Contains(h[2:], "*") {
			return fmt.Errorf(`invalid wildcard %q: use "*.suffix" (any subdomain of suffix) or "*" (every host)`, h)
		}
		if !validHostName(h[2:]) {
			return fmt.Errorf("invalid wildcard %q: %q is not a valid host name", h, h[2:])
		}
		return nil
	case strings.HasPrefix(h, "["):
		return fmt.Errorf("invalid host %q: write IPv6 addresses without brackets and without a port", h)
	}
	if a, err := netip.ParseAddr(h); err == nil && a.Zone() == "" {
		return nil
	}
	if strings.Contains(h, ":") {
		return fmt.Errorf("invalid host %q: must not include a port", h)
	}
	if !validHostName(h) {
		return fmt.Errorf("invalid host %q: want a host name like example.com", h)
	}
	return nil
}

// validHostName reports whether h is a lowercase DNS name: dot-separated
// labels of 1 to 63 letters, digits, '-' or '_', not starting or ending with
// '-'.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// validOriginHost reports whether h can be sent as a Host header: a host
// name or IP address, optionally with a port.
func validOriginHost(h string) bool {
	host := h
	if hh, port, err := net.SplitHostPort(h); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return false
		}
		host = hh
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return validHostName(strings.ToLower(host))
}

// checkOriginURL checks an Origin.URL: http or https, a host and optional
// port, nothing else.
func checkOriginURL(raw string) error {
	if raw == "" {
		return errors.New(`required (e.g. "http://127.0.0.1:8081")`)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("invalid URL %q: %v", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("invalid URL %q: scheme must be http or https", raw)
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("invalid URL %q: want http://host[:port] or https://host[:port]", raw)
	case u.User != nil:
		return fmt.Errorf("invalid URL %q: must not contain userinfo", raw)
	case u.Path != "" || u.RawPath != "":
		return fmt.Errorf("invalid URL %q: must not have a path, got %q", raw, u.Path)
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Errorf("invalid URL %q: must not have a query", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("invalid URL %q: must not have a fragment", raw)
	}
	if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("invalid URL %q: empty port", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("invalid URL %q: port must be a number from 1 to 65535", raw)
		}
	}
	return nil
}

func (v *validator) purge(pc *Purge, sites []Site) {
	siteNames := make(map[string]bool)
	for _, s := range sites {
		siteNames[s.Name] = true
	}
	seen := make(map[string]bool)
	for i, t := range pc.Tokens {
		p := "purge.tokens[" + strconv.Itoa(i) + "]"
		v.token(p, t.Name, t.Token, seen)
		for j, s := range t.Sites {
			if len(sites) > 0 && !siteNames[s] {
				v.add(p+".sites["+strconv.Itoa(j)+"]", "no site is named %q", s)
			}
		}
	}
	n := &pc.NATS
	if n.URL != "" {
		if n.Stream == "" || strings.ContainsAny(n.Stream, " .*>") {
			v.add("purge.nats.stream", "must be a stream name without spaces, dots or wildcards, got %q", n.Stream)
		}
		if n.Subject == "" || strings.ContainsAny(n.Subject, " *>") {
			v.add("purge.nats.subject", "must be a subject prefix without spaces or wildcards, got %q", n.Subject)
		}
	}
}

// cluster checks the PoP settings, when cluster.listen is set.
func (v *validator) cluster(cl *Cluster, c *Config) {
	if cl.Listen == "" {
		return
	}
	if cl.Advertise == "" && wildcardHost(cl.Listen) {
		v.add("cluster.listen", "%q is a wildcard address: set cluster.advertise to the address the other nodes reach this one at", cl.Listen)
	}
	for _, other := range []struct{ key, addr string }{{"listen", c.Listen}, {"admin.listen", c.Admin.Listen}} {
		if other.addr == cl.Listen && !strings.HasSuffix(cl.Listen, ":0") {
			v.add("cluster.listen", "must differ from %s (both are %q)", other.key, cl.Listen)
		}
	}
	names := map[string]bool{}
	for i, p := range cl.Peers {
		path := "cluster.peers[" + strconv.Itoa(i) + "]"
		switch {
		case p.Name == "":
			v.add(path+".name", "required")
		case names[p.Name]:
			v.add(path+".name", "duplicate node name %q", p.Name)
		}
		names[p.Name] = true
		if p.Address == "" {
			v.add(path+".address", "required")
		}
	}
	if len(cl.Peers) == 0 && cl.Gossip.Advertise == "" && wildcardHost(cl.Gossip.Listen) {
		v.add("cluster.gossip.listen", "%q is a wildcard address: set cluster.gossip.advertise to the address the other nodes gossip with", cl.Gossip.Listen)
	}
	if cl.Gossip.ProbeTimeout > cl.Gossip.ProbeInterval {
		v.add("cluster.gossip.probe_timeout", "must not exceed cluster.gossip.probe_interval (%s), got %s", cl.Gossip.ProbeInterval, cl.Gossip.ProbeTimeout)
	}
}

// wildcardHost reports whether the host of addr is empty or unspecified
// (0.0.0.0, ::).
func wildcardHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}
