// Package config decodes, defaults and validates edged's YAML configuration
// file.
//
// Decoding is strict: unknown keys, duplicate keys, values of the wrong YAML
// type, more than one YAML document and malformed durations or sizes are all
// errors. Every problem is reported as an *Error whose text has the form
//
//	FILE:LINE: KEY.PATH: message
//
// for example "edged.yaml:9: sites[0].origins[1].weight: must be at least 1,
// got 0". Keys omitted from the file, and keys whose value is null (written
// as "key:" with nothing after it, or "~"), take the defaults documented on
// each field. The defaults are also written out in the embedded default.yaml
// (see DefaultYAML).
package config

import (
	_ "embed"
	"fmt"
	"net/url"
	"os"
	"time"
)

//go:embed default.yaml
var defaultYAML []byte

// Config is the whole configuration of one edged process. Build one with
// Parse, Load or Default; a Config changed in code afterwards (for example
// from command-line flags) should be checked again with Validate.
type Config struct {
	// Listen is the host:port of the edge (client-facing) HTTP listener.
	// Default "127.0.0.1:8080". The port is required; port 0 picks a free
	// port.
	Listen string
	// Admin configures the admin listener (/metrics, /healthz).
	Admin Admin
	// TLS configures the TLS listener (off when Listen is empty).
	TLS TLS
	// UnknownHostStatus is the status code answered for a request whose Host
	// no site serves: 421 (Misdirected Request) or 404. Default 421.
	UnknownHostStatus int
	// Server holds the timeouts and limits of the edge HTTP server.
	Server Server
	// Cache configures the cache shared by all sites.
	Cache Cache
	// Log configures logging.
	Log Log
	// Purge configures the purge API and its fleet propagation.
	Purge Purge
	// Sites lists the sites edged serves, matched by the request's Host.
	// Default empty (the daemon then adds a built-in sample origin). A host
	// may appear in only one site.
	Sites []Site
}

// Admin configures the admin HTTP listener.
type Admin struct {
	// Listen is the host:port of the admin listener. Default
	// "127.0.0.1:9090". It must differ from Config.Listen.
	Listen string
}

// Server holds the timeouts and limits of the edge HTTP server.
type Server struct {
	// ReadHeaderTimeout bounds reading a request's headers. Default 10s;
	// must be greater than 0.
	ReadHeaderTimeout Duration
	// ReadTimeout bounds reading a whole request, body included. Default
	// 60s; 0 means no limit.
	ReadTimeout Duration
	// WriteTimeout is the longest a single write to the client may block;
	// it is applied per write, not to the whole response, so long downloads
	// are not cut off. Default 60s; 0 means no limit.
	WriteTimeout Duration
	// IdleTimeout is how long a keep-alive connection may sit idle between
	// requests. Default 120s; must be greater than 0.
	IdleTimeout Duration
	// MaxHeaderBytes limits the size of request headers. Default 64KiB;
	// allowed 1KiB to 16MiB.
	MaxHeaderBytes ByteSize
	// H2C accepts HTTP/2 with prior knowledge on the cleartext listener
	// (gRPC without TLS). Default false.
	H2C bool
	// WebSocketIdleTimeout closes a WebSocket that carried nothing either
	// way for this long. Default 5m.
	WebSocketIdleTimeout Duration
	// MaxConns is the most client connections open at once; more are
	// refused with 503 at accept. Default 16384; 0 = no limit.
	MaxConns int
	// MaxConnsPerIP is the most client connections open at once from one
	// address. Default 512; 0 = no limit.
	MaxConnsPerIP int
	// ShutdownTimeout is how long a graceful shutdown waits for in-flight
	// requests before closing connections. Default 30s; 0 means close at
	// once.
	ShutdownTimeout Duration
}

// Cache configures the cache shared by all sites.
type Cache struct {
	// FillTimeout is the longest one origin fill may take, however many
	// clients wait on it; a fill outlives the client that started it.
	// Default 60s; must be greater than 0.
	FillTimeout Duration
	// StatusKey adds the cache key to every Cache-Status header
	// (key="..."), for debugging. Default false: it reveals how keys are
	// built.
	StatusKey bool
	// RangeForwardOffset: a Range request that misses and starts beyond
	// this offset is forwarded to the origin uncached instead of waiting
	// for a whole-object fill. Default 16MiB; 0 always fills.
	RangeForwardOffset ByteSize
	// Memory configures the in-memory tier.
	Memory Memory
	// Disk configures the disk tier.
	Disk Disk
}

// Disk configures the disk tier: a bbolt index plus blob files that survive
// restarts.
type Disk struct {
	// Enabled turns the disk tier on. Default true.
	Enabled bool
	// Path is the data directory. Default "": the user's cache directory
	// plus "edged" ($XDG_CACHE_HOME/edged, usually ~/.cache/edged).
	// The -data flag overrides it.
	Path string
	// MaxBytes is the budget for stored bodies. Default 10GiB; must be at
	// least 1MiB.
	MaxBytes ByteSize
	// Fsync is "always" (fsync each blob and its directory before the
	// index commit: nothing recently stored is lost on power loss) or
	// "never" (survives process crashes; after a power loss, recently
	// stored bodies may be lost, and a torn one is caught by its checksum
	// and refetched). Default "never", as Varnish and nginx caches do: a
	// cache may lose objects, never serve wrong ones, and fsyncs on every
	// miss cost miss latency (measured in docs/operations.md).
	Fsync string
}

// Memory configures the in-memory cache tier.
type Memory struct {
	// MaxBytes is the memory tier's budget; an entry costs its size in
	// bytes. Default 256MiB; must be at least 1MiB.
	MaxBytes ByteSize
	// MaxObjectBytes is the largest body kept in memory; larger bodies are
	// streamed and never held in memory whole. Default 8MiB; must be greater
	// than 0 and at most MaxBytes.
	MaxObjectBytes ByteSize
}

// TLS configures the TLS edge listener: certificates chosen by SNI,
// HTTP/2 and HTTP/1.1 offered by ALPN.
type TLS struct {
	// Listen is the host:port of the TLS listener. Default "": none.
	Listen string
	// MinVersion is "1.2" or "1.3". Default "1.2".
	MinVersion string
	// Certificates are the certificate/key pairs, chosen by SNI (exact
	// name, then one-label wildcard, then the default: the pair marked
	// default, else the first). Required when Listen is set.
	Certificates []Certificate
}

// Certificate is one PEM certificate chain and its key.
type Certificate struct {
	Cert, Key string
	Default   bool
}

// Purge configures purging (docs/purge.md).
type Purge struct {
	// Tokens are the bearer tokens accepted by the purge API and the PURGE
	// method. Default none (the API then refuses every purge); -purge-token
	// and EDGED_PURGE_TOKEN add one valid for all sites.
	Tokens []PurgeToken
	// AllowCIDRs are the client networks allowed to use the PURGE method
	// on the edge listener without a token. Default none.
	AllowCIDRs []string
	// TagHeaders are the response fields purge tags are read from.
	// Default ["Surrogate-Key", "Cache-Tag"].
	TagHeaders []string
	// StripTagHeaders removes those fields from responses to clients.
	// Default true.
	StripTagHeaders bool
	// Node is this node's name in the fleet. Default: the host name.
	Node string
	// NATS enables fleet-wide propagation when URL is set.
	NATS PurgeNATS
}

// PurgeToken is one purge bearer token.
type PurgeToken struct {
	// Name identifies the token in logs (never the value). Required.
	Name string
	// Token is the secret. Required, at least 16 characters.
	Token string
	// Sites limits the token to these sites. Default: all sites.
	Sites []string
}

// PurgeNATS configures propagation over NATS JetStream.
type PurgeNATS struct {
	// URL is the NATS server URL(s), comma separated. Default "": no fleet.
	URL string
	// Stream is the JetStream stream of purges. Default EDGED_PURGES.
	Stream string
	// Subject is the subject prefix. Default edged.purge.
	Subject string
	// ReceiptBucket is the key-value bucket of receipts. Default
	// EDGED_PURGE_RECEIPTS.
	ReceiptBucket string
	// MaxAge is how long purges and receipts are kept. Default 168h.
	MaxAge Duration
	// Replicas of the stream and bucket. Default 1.
	Replicas int
	// ConnectTimeout bounds one connection attempt. Default 2s.
	ConnectTimeout Duration
	// PublishTimeout bounds one publish; after it the purge is pending.
	// Default 2s.
	PublishTimeout Duration
	// RetryInterval is how often reconnects, setup and pending publishes
	// are retried. Default 1s.
	RetryInterval Duration
	// MaxPending bounds the purges queued while NATS is unreachable.
	// Default 10000.
	MaxPending int
}

// Log configures logging.
type Log struct {
	// Level is the minimum level logged: "debug", "info", "warn" or
	// "error". Default "info".
	Level string
	// Access turns on one JSON access-log line per request on stdout.
	// Default true.
	Access bool
}

// Site is one set of host names served from one set of origins.
type Site struct {
	// Name identifies the site in logs and metrics. Required; must match
	// [a-z0-9_-]+ and be unique among sites.
	Name string
	// Hosts are the request hosts this site serves: exact names
	// ("example.com"), wildcards that match any subdomain ("*.example.com";
	// it does not match example.com itself), or "*" for every host no other
	// site serves. Required and non-empty; lowercase, without ports. Parse
	// lowercases them.
	Hosts []string
	// WebSocket forwards WebSocket upgrades to the origin. Default true.
	WebSocket bool
	// MaxBodyBytes limits request bodies passed through to the origin; a
	// larger one gets 413. Default 0: no limit.
	MaxBodyBytes ByteSize
	// UnkeyedHeaders are request fields removed before the origin (they
	// could change its answer without being part of the cache key). Default
	// nil: edge.DefaultUnkeyedHeaders; [] removes none.
	UnkeyedHeaders []string
	// OriginHost is the Host header sent to the origins. Default "", which
	// sends the client's Host unchanged.
	OriginHost string
	// Origins are the origin shards the site's requests are spread over.
	// Required and non-empty.
	Origins []Origin
	// Upstream configures the connections to the origins.
	Upstream Upstream
	// Cache configures caching for this site.
	Cache SiteCache
}

// Origin is one origin shard of a site.
type Origin struct {
	// URL is the origin's base URL: "http" or "https", a host and an
	// optional port, and nothing else (no path, query, fragment or
	// userinfo), e.g. "http://127.0.0.1:8081". Required.
	URL string
	// Weight is the origin's share of keys relative to the site's other
	// origins. Default 1; allowed 1 to 1000.
	Weight int
	// Name identifies the origin in logs and metrics. Default: the URL's
	// host (with port, if any). Must be unique within the site.
	Name string
}

// Upstream configures the connections from one site to its origins. "Shard"
// means one origin.
type Upstream struct {
	// MaxIdleConnsPerShard caps the idle keep-alive connections kept per
	// origin. Default 64; 0 also means the default. Must not be negative.
	MaxIdleConnsPerShard int
	// MaxConnsPerShard caps all connections (dialing, active, idle) per
	// origin. Default 0, meaning unlimited. Must not be negative.
	MaxConnsPerShard int
	// IdleConnTimeout closes keep-alive connections idle this long. Default
	// 90s; 0 means never.
	IdleConnTimeout Duration
	// DialTimeout bounds establishing a TCP connection (and TLS handshake)
	// to an origin. Default 5s; must be greater than 0.
	DialTimeout Duration
	// ResponseHeaderTimeout bounds the wait for an origin's response headers
	// after the request is written. Default 30s; 0 means no limit.
	ResponseHeaderTimeout Duration
	// DownFor is how long an origin that refused a dial is skipped before it
	// is tried again. Default 5s; 0 means it is never skipped.
	DownFor Duration
	// Protocol is how edged talks to the origins: "http1" (default), "h2"
	// (HTTP/2 over TLS when offered) or "h2c" (HTTP/2 prior knowledge over
	// cleartext, e.g. gRPC origins).
	Protocol string
	// MaxResponseHeaderBytes limits an origin response's header (502 when
	// exceeded). Default 64KiB.
	MaxResponseHeaderBytes ByteSize
}

// SiteCache configures caching for one site.
type SiteCache struct {
	// Enabled turns caching on; false makes every request bypass the cache.
	// Default true.
	Enabled bool
	// DefaultTTL is the freshness lifetime given to storable responses that
	// carry no explicit freshness (no max-age, s-maxage or Expires). Default
	// 0, meaning heuristic freshness is used instead.
	DefaultTTL Duration
	// HeuristicFraction is the fraction of (Date - Last-Modified) used as a
	// heuristic freshness lifetime. Default 0.1; must satisfy 0 < x <= 1.
	HeuristicFraction float64
	// HeuristicMax caps a heuristic freshness lifetime. Default 24h; 0
	// also means the default.
	HeuristicMax Duration
	// StaleWhileRevalidate is the default stale-while-revalidate window
	// (RFC 5861) for responses that name none. Default 0: none.
	StaleWhileRevalidate Duration
	// StaleIfError is the default stale-if-error window (RFC 5861) for
	// responses that name none. Default 0: none.
	StaleIfError Duration
	// NegativeTTL is the freshness lifetime of 404 and 410 responses that
	// carry no explicit freshness. Default 10s; 0 leaves them to the
	// heuristic rules.
	NegativeTTL Duration
	// TargetedHeaders are the targeted cache-control fields (RFC 9213)
	// edged obeys, first present wins over Cache-Control and Expires.
	// Default ["CDN-Cache-Control", "Surrogate-Control"]; [] obeys none.
	TargetedHeaders []string
	// KeepTargetedHeaders forwards those fields to clients. Default false:
	// they are removed, being meant for edged alone.
	KeepTargetedHeaders bool
}

// DefaultYAML returns the embedded default configuration file, which spells
// out every default and has no sites. The caller owns the returned slice.
func DefaultYAML() []byte {
	return append([]byte(nil), defaultYAML...)
}

// Default returns a new Config holding the defaults, parsed from the
// embedded default configuration (DefaultYAML). It panics only if that
// embedded file is broken, which the package's tests rule out.
func Default() *Config {
	c, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic("config: embedded default.yaml is invalid: " + err.Error())
	}
	return c
}

// Load reads the file at path and parses it with Parse, using path as the
// file name in errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// NewSite returns a Site with the given name and hosts, one origin of weight
// 1 per URL, and every other field at its default, as Parse would build it
// from a file. It does not validate; call Config.Validate afterwards. The
// daemon's -origin flag uses it to build its catch-all site.
func NewSite(name string, hosts []string, originURLs ...string) Site {
	s := defaultSite()
	s.Name = name
	s.Hosts = append([]string(nil), hosts...)
	for _, u := range originURLs {
		s.Origins = append(s.Origins, Origin{URL: u, Weight: 1})
	}
	fillOriginNames(&s)
	return s
}

// defaults returns the configuration used for omitted keys. default.yaml
// must agree with it; a test checks that.
func defaults() Config {
	return Config{
		Listen:            "127.0.0.1:8080",
		Admin:             Admin{Listen: "127.0.0.1:9090"},
		UnknownHostStatus: 421,
		Server: Server{
			ReadHeaderTimeout:    Duration(10 * time.Second),
			ReadTimeout:          Duration(60 * time.Second),
			WriteTimeout:         Duration(60 * time.Second),
			IdleTimeout:          Duration(120 * time.Second),
			MaxHeaderBytes:       64 * KiB,
			ShutdownTimeout:      Duration(30 * time.Second),
			MaxConns:             16384,
			MaxConnsPerIP:        512,
			WebSocketIdleTimeout: Duration(5 * time.Minute),
		},
		Cache: Cache{
			FillTimeout:        Duration(60 * time.Second),
			RangeForwardOffset: 16 * MiB,
			Memory:             Memory{MaxBytes: 256 * MiB, MaxObjectBytes: 8 * MiB},
			Disk:               Disk{Enabled: true, MaxBytes: 10 * GiB, Fsync: "never"},
		},
		Log: Log{Level: "info", Access: true},
		TLS: TLS{MinVersion: "1.2"},
		Purge: Purge{
			TagHeaders:      []string{"Surrogate-Key", "Cache-Tag"},
			StripTagHeaders: true,
			NATS: PurgeNATS{
				Stream: "EDGED_PURGES", Subject: "edged.purge", ReceiptBucket: "EDGED_PURGE_RECEIPTS",
				MaxAge: Duration(168 * time.Hour), Replicas: 1, MaxPending: 10000,
				ConnectTimeout: Duration(2 * time.Second), PublishTimeout: Duration(2 * time.Second), RetryInterval: Duration(time.Second),
			},
		},
	}
}

// defaultSite returns a Site with every defaulted field set.
func defaultSite() Site {
	return Site{
		WebSocket: true,
		Upstream: Upstream{
			MaxIdleConnsPerShard:   64,
			MaxConnsPerShard:       0,
			IdleConnTimeout:        Duration(90 * time.Second),
			DialTimeout:            Duration(5 * time.Second),
			ResponseHeaderTimeout:  Duration(30 * time.Second),
			DownFor:                Duration(5 * time.Second),
			Protocol:               "http1",
			MaxResponseHeaderBytes: 64 * KiB,
		},
		Cache: SiteCache{
			Enabled:           true,
			DefaultTTL:        0,
			HeuristicFraction: 0.1,
			HeuristicMax:      Duration(24 * time.Hour),
			NegativeTTL:       Duration(10 * time.Second),
			TargetedHeaders:   []string{"CDN-Cache-Control", "Surrogate-Control"},
		},
	}
}

// fillOriginNames gives each unnamed origin of s its URL's host as name, if
// the URL parses.
func fillOriginNames(s *Site) {
	for i := range s.Origins {
		o := &s.Origins[i]
		if o.Name != "" {
			continue
		}
		if u, err := url.Parse(o.URL); err == nil {
			o.Name = u.Host
		}
	}
}
