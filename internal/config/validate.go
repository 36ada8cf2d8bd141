package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Validate checks every value of c against the rules documented on its
// fields and returns all problems found (nil if none), each an *Error with
// a key path but no file or line, e.g. "sites[1].hosts[0]: host
// \"example.com\" is also served by site \"a\" (sites[0].hosts[0])"; more
// than one are joined with errors.Join. Validate does not modify c and
// does not fill defaults: hosts must already be lowercase and every origin
// must have a name (NewSite and Parse take care of both).
func (c *Config) Validate() error {
	return join(c.validate())
}

// validator collects problems.
type validator struct{ errs []*Error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) positive(path string, d Duration) {
	if d <= 0 {
		v.add(path, "must be greater than 0, got %s", d)
	}
}

func (v *validator) nonNegative(path string, d Duration) {
	if d < 0 {
		v.add(path, "must not be negative, got %s", d)
	}
}

// addr checks a listen address and reports whether it is valid.
func (v *validator) addr(path, addr string) bool {
	if addr == "" {
		v.add(path, `required (host:port, e.g. "127.0.0.1:8080")`)
		return false
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(path, `invalid address %q: want host:port, e.g. "127.0.0.1:8080"`, addr)
		return false
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.add(path, "invalid port %q in address %q: want a number from 0 to 65535", port, addr)
		return false
	}
	return true
}

var logLevels = []string{"debug", "info", "warn", "error"}

func (c *Config) validate() []*Error {
	v := &validator{}
	okListen := v.addr("listen", c.Listen)
	okAdmin := v.addr("admin.listen", c.Admin.Listen)
	if okListen && okAdmin && c.Admin.Listen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		v.add("admin.listen", "must differ from listen (both are %q)", c.Listen)
	}
	if s := c.UnknownHostStatus; s != 421 && s != 404 {
		v.add("unknown_host_status", "must be 421 or 404, got %d", s)
	}

	sv := &c.Server
	v.positive("server.read_header_timeout", sv.ReadHeaderTimeout)
	v.nonNegative("server.read_timeout", sv.ReadTimeout)
	v.nonNegative("server.write_timeout", sv.WriteTimeout)
	v.positive("server.idle_timeout", sv.IdleTimeout)
	if b := sv.MaxHeaderBytes; b < KiB || b > 16*MiB {
		v.add("server.max_header_bytes", "must be between 1KiB and 16MiB, got %s", b)
	}
	v.nonNegative("server.shutdown_timeout", sv.ShutdownTimeout)
	if sv.MaxConns < 0 {
		v.add("server.max_conns", "must not be negative, got %d", sv.MaxConns)
	}
	if sv.MaxConnsPerIP < 0 {
		v.add("server.max_conns_per_ip", "must not be negative, got %d", sv.MaxConnsPerIP)
	}

	v.positive("cache.fill_timeout", c.Cache.FillTimeout)
	m := &c.Cache.Memory
	if m.MaxBytes < MiB {
		v.add("cache.memory.max_bytes", "must be at least 1MiB, got %s", m.MaxBytes)
	}
	switch {
	case m.MaxObjectBytes <= 0:
		v.add("cache.memory.max_object_bytes", "must be greater than 0, got %s", m.MaxObjectBytes)
	case m.MaxObjectBytes > m.MaxBytes:
		v.add("cache.memory.max_object_bytes", "must not exceed cache.memory.max_bytes (%s), got %s", m.MaxBytes, m.MaxObjectBytes)
	}

	if d := &c.Cache.Disk; d.Enabled {
		if d.MaxBytes < MiB {
			v.add("cache.disk.max_bytes", "must be at least 1MiB, got %s", d.MaxBytes)
		}
	}
	if f := c.Cache.Disk.Fsync; f != "always" && f != "never" {
		v.add("cache.disk.fsync", "must be always or never; got %q", f)
	}

	v.purge(&c.Purge, c.Sites)
	if t := &c.TLS; t.Listen != "" {
		v.addr("tls.listen", t.Listen)
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
	if mv := c.TLS.MinVersion; mv != "1.2" && mv != "1.3" {
		v.add("tls.min_version", "must be 1.2 or 1.3, got %q", mv)
	}

	if !slices.Contains(logLevels, c.Log.Level) {
		v.add("log.level", "must be one of %s; got %q", strings.Join(logLevels, ", "), c.Log.Level)
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

		if s.OriginHost != "" && !validOriginHost(s.OriginHost) {
			v.add(p+".origin_host", `invalid host %q: want a host name with an optional port, or "" to keep the client's Host`, s.OriginHost)
		}

		v.origins(p+".origins", s.Origins)

		u := &s.Upstream
		up := p + ".upstream"
		if u.MaxIdleConnsPerShard < 0 {
			v.add(up+".max_idle_conns_per_shard", "must not be negative, got %d", u.MaxIdleConnsPerShard)
		}
		if u.MaxConnsPerShard < 0 {
			v.add(up+".max_conns_per_shard", "must not be negative, got %d", u.MaxConnsPerShard)
		}
		v.nonNegative(up+".idle_conn_timeout", u.IdleConnTimeout)
		v.positive(up+".dial_timeout", u.DialTimeout)
		v.nonNegative(up+".response_header_timeout", u.ResponseHeaderTimeout)
		v.nonNegative(up+".down_for", u.DownFor)

		sc := &s.Cache
		cp := p + ".cache"
		v.nonNegative(cp+".default_ttl", sc.DefaultTTL)
		if f := sc.HeuristicFraction; !(f > 0 && f <= 1) {
			v.add(cp+".heuristic_fraction", "must be greater than 0 and at most 1, got %g", f)
		}
		v.nonNegative(cp+".heuristic_max", sc.HeuristicMax)
		if pr := s.Upstream.Protocol; pr != "http1" && pr != "h2" && pr != "h2c" {
			v.add(p+".upstream.protocol", "must be http1, h2 or h2c, got %q", pr)
		}
	}
}

const maxWeight = 1000

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
		case o.Weight < 1:
			v.add(op+".weight", "must be at least 1, got %d", o.Weight)
		case o.Weight > maxWeight:
			v.add(op+".weight", "must be at most %d, got %d", maxWeight, o.Weight)
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
		if t.Name == "" {
			v.add(p+".name", "required")
		} else if seen[t.Name] {
			v.add(p+".name", "duplicate token name %q", t.Name)
		}
		seen[t.Name] = true
		if len(t.Token) < 16 {
			v.add(p+".token", "must be at least 16 characters")
		}
		for j, s := range t.Sites {
			if len(sites) > 0 && !siteNames[s] {
				v.add(p+".sites["+strconv.Itoa(j)+"]", "no site is named %q", s)
			}
		}
	}
	for i, c := range pc.AllowCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			v.add("purge.allow_cidrs["+strconv.Itoa(i)+"]", "invalid CIDR %q", c)
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
		if n.Replicas < 1 || n.Replicas > 5 {
			v.add("purge.nats.replicas", "must be between 1 and 5, got %d", n.Replicas)
		}
		if n.MaxPending < 1 {
			v.add("purge.nats.max_pending", "must be at least 1, got %d", n.MaxPending)
		}
	}
}
