package purge

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// MaxTagLen is the longest tag a selector may name, in bytes.
const MaxTagLen = 1024

// RequestError is an invalid purge request: the HTTP handlers answer it with
// 400 and its message.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &RequestError{Msg: fmt.Sprintf(format, args...)}
}

// Len is the number of items (URLs, prefixes, tags and hosts) in s.
func (s Selector) Len() int { return len(s.URLs) + len(s.Prefixes) + len(s.Tags) + len(s.Hosts) }

// Kind is the metrics label of s: url, prefix, tag, host, or mixed when it
// names more than one kind (none for an empty selector).
func (s Selector) Kind() string {
	kind, n := "none", 0
	for _, k := range []struct {
		name string
		n    int
	}{{"url", len(s.URLs)}, {"prefix", len(s.Prefixes)}, {"tag", len(s.Tags)}, {"host", len(s.Hosts)}} {
		if k.n > 0 {
			kind = k.name
			n++
		}
	}
	if n > 1 {
		return "mixed"
	}
	return kind
}

// Validate checks s with the default item limit (DefaultMaxItems). Its error
// is a *RequestError naming the offending item.
func (s Selector) Validate() error { return s.validate(DefaultMaxItems) }

func (s Selector) validate(maxItems int) error {
	n := s.Len()
	if n == 0 {
		return badRequest(`empty selector: name at least one of "urls", "prefixes", "tags" or "hosts"`)
	}
	if n > maxItems {
		return badRequest("too many items: %d URLs, prefixes, tags and hosts in one purge; the limit is %d", n, maxItems)
	}
	for i, u := range s.URLs {
		if err := checkURL(u); err != nil {
			return badRequest("urls[%d] %q: %v", i, u, err)
		}
	}
	for i, p := range s.Prefixes {
		if _, err := ParsePrefix(p); err != nil {
			return badRequest("prefixes[%d] %q: %v", i, p, err)
		}
	}
	for i, t := range s.Tags {
		if err := checkTag(t); err != nil {
			return badRequest("tags[%d] %q: %v", i, t, err)
		}
	}
	for i, h := range s.Hosts {
		if err := checkHostPort(h); err != nil {
			return badRequest("hosts[%d] %q: %v", i, h, err)
		}
	}
	return nil
}

// hostsNamed returns every host a selector's URLs, prefixes and hosts name,
// as written (with port if any). Call only on a valid selector.
func (s Selector) hostsNamed() []string {
	var hs []string
	for _, u := range s.URLs {
		if pu, err := url.Parse(u); err == nil {
			hs = append(hs, pu.Host)
		}
	}
	for _, p := range s.Prefixes {
		if pp, err := ParsePrefix(p); err == nil {
			hs = append(hs, pp.Host)
		}
	}
	return append(hs, s.Hosts...)
}

func hasCtlOrSpace(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0
}

func checkURL(s string) error {
	if hasCtlOrSpace(s) {
		return fmt.Errorf("contains whitespace or control characters")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("not an absolute http or https URL")
	}
	if u.Opaque != "" || u.Host == "" {
		return fmt.Errorf("URL has no host")
	}
	if u.User != nil {
		return fmt.Errorf("URL must not carry user info")
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("URL must not have a fragment")
	}
	return checkHostPort(u.Host)
}

func checkTag(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("empty tag")
	case len(t) > MaxTagLen:
		return fmt.Errorf("tag longer than %d bytes", MaxTagLen)
	case hasCtlOrSpace(t):
		return fmt.Errorf("tag contains whitespace or control characters")
	}
	return nil
}

// Prefix is a parsed Selector prefix.
type Prefix struct {
	// Scheme is "http" or "https" for an absolute prefix, "" for a
	// scheme-less one, which covers both.
	Scheme string
	// Host is the host as written, with its port if any.
	Host string
	// Path is the prefix of the request target (path, possibly with a query)
	// after the host; "" or "/" covers the whole host.
	Path string
}

// ParsePrefix splits a prefix of a Selector: "host/path-prefix" (both
// schemes) or "http(s)://host/path-prefix".
func ParsePrefix(s string) (Prefix, error) {
	var p Prefix
	if s == "" {
		return p, fmt.Errorf("empty prefix")
	}
	if hasCtlOrSpace(s) {
		return p, fmt.Errorf("contains whitespace or control characters")
	}
	if strings.Contains(s, "#") {
		return p, fmt.Errorf("prefix must not have a fragment")
	}
	rest := s
	if i := strings.Index(s, "://"); i >= 0 {
		p.Scheme = strings.ToLower(s[:i])
		if p.Scheme != "http" && p.Scheme != "https" {
			return Prefix{}, fmt.Errorf("scheme must be http or https, or none for both")
		}
		rest = s[i+3:]
	}
	host := rest
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		host, p.Path = rest[:i], rest[i:]
		if p.Path[0] == '?' {
			return Prefix{}, fmt.Errorf("path must start with '/'")
		}
	}
	if host == "" {
		return Prefix{}, fmt.Errorf(`prefix needs a host part: "host/path-prefix" or "https://host/path-prefix"`)
	}
	if err := checkHostPort(host); err != nil {
		return Prefix{}, err
	}
	p.Host = host
	return p, nil
}

// checkHostPort accepts "host" or "host:port" where host is a DNS name, an
// IPv4 address or a bracketed IPv6 address.
func checkHostPort(hp string) error {
	if hp == "" {
		return fmt.Errorf("empty host")
	}
	host := hp
	if strings.HasPrefix(hp, "[") || strings.Contains(hp, ":") {
		if strings.HasPrefix(hp, "[") && strings.HasSuffix(hp, "]") {
			host = hp[1 : len(hp)-1]
			if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
				return fmt.Errorf("invalid IPv6 address in brackets")
			}
			return nil
		}
		h, port, err := net.SplitHostPort(hp)
		if err != nil {
			return fmt.Errorf("invalid host:port (an IPv6 address needs brackets)")
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return fmt.Errorf("invalid port %q", port)
		}
		if strings.HasPrefix(hp, "[") {
			if a, err := netip.ParseAddr(h); err != nil || !a.Is6() {
				return fmt.Errorf("invalid IPv6 address in brackets")
			}
			return nil
		}
		host = h
	}
	return checkHostname(host)
}

func checkHostname(h string) error {
	if _, err := netip.ParseAddr(h); err == nil {
		if strings.Contains(h, ":") {
			return fmt.Errorf("an IPv6 address needs brackets")
		}
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("host name longer than 253 bytes")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("invalid host name: empty label or label longer than 63 bytes")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("invalid host name: label %q starts or ends with '-'", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("invalid host name: character %q not allowed", c)
			}
		}
	}
	return nil
}

// defaultSiteOf is Config.SiteOf's default: the host lower-cased, without port.
func defaultSiteOf(hp string) string {
	if h, _, err := net.SplitHostPort(hp); err == nil {
		hp = h
	}
	return strings.ToLower(strings.Trim(hp, "[]"))
}

// LogValue logs a selector as a group of its non-empty fields.
func (s Selector) LogValue() slog.Value {
	var as []slog.Attr
	for _, f := range []struct {
		k string
		v []string
	}{{"urls", s.URLs}, {"prefixes", s.Prefixes}, {"tags", s.Tags}, {"hosts", s.Hosts}} {
		if len(f.v) > 0 {
			as = append(as, slog.Any(f.k, f.v))
		}
	}
	if s.Soft {
		as = append(as, slog.Bool("soft", true))
	}
	return slog.GroupValue(as...)
}

// LogValue logs the counts by kind.
func (m Matched) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("urls", m.URLs), slog.Int("prefixes", m.Prefixes), slog.Int("tags", m.Tags), slog.Int("hosts", m.Hosts))
}
