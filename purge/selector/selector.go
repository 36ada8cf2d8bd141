// Package selector is the grammar of a purge selector: what one purge names
// (URLs, prefixes, tags, hosts), how each item is checked, and the parsed
// form a consumer works from, so that nobody splits the strings again.
//
// It imports nothing of edged's. purge validates selectors with it before
// anything is applied; the cache turns the parsed parts into cache keys.
package selector

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

// Selector names what one purge removes. Its JSON form is the body of
// POST /purge. Items are kept as written: URLs, prefixes and hosts are not
// rewritten (hosts keep their case and port); Parse splits them.
type Selector struct {
	// URLs are absolute http or https URLs; every Vary variant of each is purged.
	URLs []string `json:"urls,omitempty"`
	// Prefixes are "host/path-prefix" (scheme-less: both schemes) or absolute
	// URL prefixes ("https://host/path-prefix": that scheme only).
	Prefixes []string `json:"prefixes,omitempty"`
	// Tags are surrogate keys as stored from the tag header (Surrogate-Key).
	Tags []string `json:"tags,omitempty"`
	// Hosts purge everything stored for a host ("host" or "host:port").
	Hosts []string `json:"hosts,omitempty"`
	// Soft marks matched objects stale instead of deleting them.
	Soft bool `json:"soft,omitempty"`
}

// MaxTagLen is the longest tag a selector may name, in bytes.
const MaxTagLen = 1024

// DefaultMaxItems is the item limit Validate applies when given 0 or less.
const DefaultMaxItems = 1000

// Error is an invalid selector. Its message names the offending item, as in
// `urls[0] "x": not an absolute http or https URL`; the purge API answers it
// with 400.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
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

// Validate checks s as one purge request: at least one item, at most
// maxItems of them (DefaultMaxItems when maxItems is 0 or less), and every
// item well formed (see Parse). Its error is an *Error.
func (s Selector) Validate(maxItems int) error {
	if maxItems <= 0 {
		maxItems = DefaultMaxItems
	}
	n := s.Len()
	if n == 0 {
		return invalid(`empty selector: name at least one of "urls", "prefixes", "tags" or "hosts"`)
	}
	if n > maxItems {
		return invalid("too many items: %d URLs, prefixes, tags and hosts in one purge; the limit is %d", n, maxItems)
	}
	_, err := s.Parse()
	return err
}

// Parsed is a Selector split into its parts. Tags and Hosts are as written
// (hosts are "host" or "host:port", with their case and port); Soft is the
// Selector's.
type Parsed struct {
	URLs     []URL
	Prefixes []Prefix
	Tags     []string
	Hosts    []string
	Soft     bool
}

// URL is a parsed Selector URL.
type URL struct {
	// Scheme is "http" or "https", lower-cased. A URL purge covers both
	// schemes; Scheme is only what was written.
	Scheme string
	// Host is the host as written, with its port if any.
	Host string
	// Path is the escaped path (url.URL.EscapedPath): "" or starting with '/'.
	Path string
	// RawQuery is the query without '?', as written.
	RawQuery string
}

// Prefix is a parsed Selector prefix.
type Prefix struct {
	// Schemes are the schemes the prefix covers: ["http", "https"] for a
	// scheme-less prefix, else the one it names, lower-cased.
	Schemes []string
	// Host is the host as written, with its port if any.
	Host string
	// Path is the prefix of the request target (path, possibly with a query)
	// after the host: "" or starting with '/'; "" or "/" covers the whole host.
	Path string
}

// Parse checks every item of s and splits it. It does not check the number
// of items (Validate does); an empty selector parses to an empty Parsed. Its
// error is an *Error naming the first offending item.
func (s Selector) Parse() (Parsed, error) {
	p := Parsed{Tags: s.Tags, Hosts: s.Hosts, Soft: s.Soft}
	for i, raw := range s.URLs {
		u, err := parseURL(raw)
		if err != nil {
			return Parsed{}, invalid("urls[%d] %q: %v", i, raw, err)
		}
		p.URLs = append(p.URLs, u)
	}
	for i, raw := range s.Prefixes {
		pp, err := ParsePrefix(raw)
		if err != nil {
			return Parsed{}, invalid("prefixes[%d] %q: %v", i, raw, err)
		}
		p.Prefixes = append(p.Prefixes, pp)
	}
	for i, t := range s.Tags {
		if err := checkTag(t); err != nil {
			return Parsed{}, invalid("tags[%d] %q: %v", i, t, err)
		}
	}
	for i, h := range s.Hosts {
		if err := checkHostPort(h); err != nil {
			return Parsed{}, invalid("hosts[%d] %q: %v", i, h, err)
		}
	}
	return p, nil
}

// HostsNamed returns every host p's URLs, prefixes and hosts name, as
// written (with port if any), in that order.
func (p Parsed) HostsNamed() []string {
	var hs []string
	for _, u := range p.URLs {
		hs = append(hs, u.Host)
	}
	for _, pp := range p.Prefixes {
		hs = append(hs, pp.Host)
	}
	return append(hs, p.Hosts...)
}

func hasCtlOrSpace(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0
}

func parseURL(s string) (URL, error) {
	if hasCtlOrSpace(s) {
		return URL{}, fmt.Errorf("contains whitespace or control characters")
	}
	u, err := url.Parse(s)
	if err != nil {
		return URL{}, fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return URL{}, fmt.Errorf("not an absolute http or https URL")
	}
	if u.Opaque != "" || u.Host == "" {
		return URL{}, fmt.Errorf("URL has no host")
	}
	if u.User != nil {
		return URL{}, fmt.Errorf("URL must not carry user info")
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return URL{}, fmt.Errorf("URL must not have a fragment")
	}
	if err := checkHostPort(u.Host); err != nil {
		return URL{}, err
	}
	return URL{Scheme: u.Scheme, Host: u.Host, Path: u.EscapedPath(), RawQuery: u.RawQuery}, nil
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

// ParsePrefix splits one prefix of a Selector: "host/path-prefix" (both
// schemes) or "http(s)://host/path-prefix".
func ParsePrefix(s string) (Prefix, error) {
	if s == "" {
		return Prefix{}, fmt.Errorf("empty prefix")
	}
	if hasCtlOrSpace(s) {
		return Prefix{}, fmt.Errorf("contains whitespace or control characters")
	}
	if strings.Contains(s, "#") {
		return Prefix{}, fmt.Errorf("prefix must not have a fragment")
	}
	p := Prefix{Schemes: []string{"http", "https"}}
	rest := s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme := strings.ToLower(s[:i])
		if scheme != "http" && scheme != "https" {
			return Prefix{}, fmt.Errorf("scheme must be http or https, or none for both")
		}
		p.Schemes, rest = []string{scheme}, s[i+3:]
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
