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
// as "key:" with nothing after it, or "~"), take their defaults.
//
// Each key is declared once, as a struct field whose tags give its name,
// default and value checks (see schema.go); decoding, defaults, Validate,
// the generated default.yaml (DefaultYAML) and the tests that hold
// docs/configuration.md and docs/edged.example.yaml to the declarations
// all follow from them. Checks that relate keys to each other are code, in
// validate.go.
package config

import (
	_ "embed"
	"fmt"
	"net/url"
	"os"
)

//go:generate go test -run ^TestDefaultYAML$ -update .

// defaultYAML is generated from the declarations (see schema.go).
//
//go:embed default.yaml
var defaultYAML []byte

// Config is the whole configuration of one edged process. Build one with
// Parse, Load or Default; a Config changed in code afterwards (for example
// from command-line flags) should be checked again with Validate.
type Config struct {
	// Listen is the host:port of the edge (client-facing) HTTP listener.
	// The port is required; port 0 picks a free port.
	Listen string `yaml:"listen" default:"127.0.0.1:8080" kind:"address"`
	// Admin configures the admin listener (/metrics, /healthz).
	Admin Admin `yaml:"admin"`
	// UnknownHostStatus is the status code answered for a request whose Host
	// no site serves: 421 (Misdirected Request) or 404.
	UnknownHostStatus int `yaml:"unknown_host_status" default:"421" check:"oneof=421|404"`
	// Server holds the timeouts and limits of the edge HTTP server.
	Server Server `yaml:"server"`
	// Cache configures the cache shared by all sites.
	Cache Cache `yaml:"cache"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// TLS configures the TLS listener (off when Listen is empty).
	TLS TLS `yaml:"tls"`
	// Purge configures the purge API and its fleet propagation.
	Purge Purge `yaml:"purge"`
	// Cluster makes this node one of the caches of a PoP (off unless
	// cluster.listen is set).
	Cluster Cluster `yaml:"cluster"`
	// Tracing exports OpenTelemetry traces over OTLP/HTTP (off by
	// default).
	Tracing Tracing `yaml:"tracing"`
	// Sites lists the sites edged serves, matched by the request's Host.
	// Empty by default (the daemon then adds a built-in sample origin). A
	// host may appear in only one site.
	Sites []Site `yaml:"sites"`
}

// Admin configures the admin HTTP listener.
type Admin struct {
	// Listen is the host:port of the admin listener. It must differ from
	// Config.Listen.
	Listen string `yaml:"listen" default:"127.0.0.1:9090" kind:"address"`
	// Status serves the status page (GET /) and its data (GET
	// /status.json). Like pprof it answers only loopback clients unless
	// Tokens are set, then only clients presenting one.
	Status bool `yaml:"status" default:"true"`
	// Pprof serves Go's profiler under /debug/pprof/ (off by default),
	// guarded as Status is.
	Pprof bool `yaml:"pprof"`
	// Tokens are the bearer tokens (also accepted as a Basic password, for
	// browsers) that open the status page and pprof to any client. Empty:
	// loopback clients only. /metrics, /healthz and the purge API (with
	// its own purge.tokens) do not use them.
	Tokens []AdminToken `yaml:"tokens"`
}

// AdminToken is one bearer token of the admin listener's guarded pages.
type AdminToken struct {
	// Name identifies the token in logs (never the value). Required.
	Name string `yaml:"name"`
	// Token is the secret. Required, at least 16 characters.
	Token string `yaml:"token"`
}

// Server holds the timeouts and limits of the edge HTTP server.
type Server struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout" default:"10s" check:">0"`
	// FirstByteTimeout is how long a new client connection may send
	// nothing: a silent connection is closed sooner than one whose
	// request is arriving slowly (which ReadHeaderTimeout bounds). At or
	// above ReadHeaderTimeout it adds nothing.
	FirstByteTimeout Duration `yaml:"first_byte_timeout" default:"5s" check:">0"`
	// ReadTimeout bounds reading a whole request, body included; 0 means
	// no limit.
	ReadTimeout Duration `yaml:"read_timeout" default:"60s" check:">=0"`
	// WriteTimeout is the longest a single write to the client may block;
	// it is applied per write, not to the whole response, so long downloads
	// are not cut off. 0 means no limit.
	WriteTimeout Duration `yaml:"write_timeout" default:"60s" check:">=0"`
	// IdleTimeout is how long a keep-alive connection may sit idle between
	// requests.
	IdleTimeout Duration `yaml:"idle_timeout" default:"120s" check:">0"`
	// MaxHeaderBytes limits the size of request headers.
	MaxHeaderBytes ByteSize `yaml:"max_header_bytes" default:"64KiB" check:"range=[1KiB,16MiB]"`
	// ShutdownTimeout is how long a graceful shutdown waits for in-flight
	// requests before closing connections; 0 means close at once.
	ShutdownTimeout Duration `yaml:"shutdown_timeout" default:"30s" check:">=0"`
	// WebSocketIdleTimeout closes a WebSocket that carried nothing either
	// way for this long.
	WebSocketIdleTimeout Duration `yaml:"websocket_idle_timeout" default:"5m"`
	// H2C accepts HTTP/2 with prior knowledge on the cleartext listener
	// (gRPC without TLS).
	H2C bool `yaml:"h2c"`
	// HTTP1 chooses the HTTP/1 server of the edge listeners: "edged", its
	// own connection loop (edge/h1), or "net/http", Go's server behind the
	// strict reader. HTTP/2 is served by net/http either way.
	HTTP1 string `yaml:"http1" default:"edged" check:"oneof=edged|net/http"`
	// MaxConns is the most client connections open at once; more are
	// refused with 503 at accept. 0 means no limit.
	MaxConns int `yaml:"max_conns" default:"16384" check:">=0"`
	// MaxConnsPerIP is the most client connections open at once from one
	// address; 0 means no limit.
	MaxConnsPerIP int `yaml:"max_conns_per_ip" default:"512" check:">=0"`
	// TrustedProxies are the load balancers and proxies in front of edged
	// (CIDRs): from them the client address is taken from
	// ClientIPHeader, walked from the right past trusted hops, and they
	// may send PROXY protocol headers. Empty trusts no one.
	TrustedProxies []string `yaml:"trusted_proxies" kind:"cidr"`
	// ClientIPHeader is the field trusted proxies name the client in:
	// "X-Forwarded-For" or "Forwarded" (RFC 7239).
	ClientIPHeader string `yaml:"client_ip_header" default:"X-Forwarded-For" check:"oneof=X-Forwarded-For|Forwarded"`
	// ProxyProtocol reads a PROXY protocol header (v1 or v2) at the start
	// of each connection of the edge listeners: "off", "optional" (from
	// trusted proxies, when they send one; needs trusted_proxies) or
	// "required" (every connection, from trusted proxies only when
	// trusted_proxies is set).
	ProxyProtocol string `yaml:"proxy_protocol" default:"off" check:"oneof=off|optional|required"`
	// ProxyProtocolTimeout bounds the wait for the PROXY header.
	ProxyProtocolTimeout Duration `yaml:"proxy_protocol_timeout" default:"5s" check:">0"`
}

// Cache configures the cache shared by all sites.
type Cache struct {
	// FillTimeout is the longest one origin fill may take, however many
	// clients wait on it; a fill outlives the client that started it.
	FillTimeout Duration `yaml:"fill_timeout" default:"60s" check:">0"`
	// RangeForwardOffset: a Range request that misses and starts beyond
	// this offset is forwarded to the origin uncached instead of waiting
	// for a whole-object fill. 0 always fills.
	RangeForwardOffset ByteSize `yaml:"range_forward_offset" default:"16MiB"`
	// StatusKey adds the cache key to every Cache-Status header
	// (key="..."), for debugging. Off by default: it reveals how keys are
	// built.
	StatusKey bool `yaml:"status_key"`
	// Memory configures the in-memory tier.
	Memory Memory `yaml:"memory"`
	// Disk configures the disk tier.
	Disk Disk `yaml:"disk"`
}

// Memory configures the in-memory cache tier.
type Memory struct {
	// MaxBytes is the memory tier's budget; an entry costs its size in
	// bytes.
	MaxBytes ByteSize `yaml:"max_bytes" default:"256MiB" check:"min=1MiB"`
	// MaxObjectBytes is the largest body kept in memory; larger bodies are
	// streamed and never held in memory whole. At most MaxBytes.
	MaxObjectBytes ByteSize `yaml:"max_object_bytes" default:"8MiB" check:">0"`
}

// Disk configures the disk tier: a bbolt index plus blob files that survive
// restarts.
type Disk struct {
	// Enabled turns the disk tier on.
	Enabled bool `yaml:"enabled" default:"true"`
	// Path is the data directory; "" means the user's cache directory
	// plus "edged" ($XDG_CACHE_HOME/edged, usually ~/.cache/edged). The
	// -data flag overrides it.
	Path string `yaml:"path"`
	// MaxBytes is the budget for stored bodies.
	MaxBytes ByteSize `yaml:"max_bytes" default:"10GiB" check:"min=1MiB if=enabled"`
	// Fsync is "always" (fsync each blob and its directory before the
	// index commit: nothing recently stored is lost on power loss) or
	// "never" (survives process crashes; after a power loss, recently
	// stored bodies may be lost, and a torn one is caught by its checksum
	// and refetched). "never" is the default, as Varnish and nginx caches
	// do: a cache may lose objects, never serve wrong ones, and fsyncs on
	// every miss cost miss latency (measured in docs/operations.md).
	Fsync string `yaml:"fsync" default:"never" check:"oneof=always|never"`
	// WarmStart copies the most recently used disk objects that fit the
	// memory tier (up to half its budget) into memory in the background
	// after a start, so a restarted node does not start cold in memory.
	// Requests are served meanwhile.
	WarmStart bool `yaml:"warm_start" default:"true"`
	// WarmStartTimeout bounds the warm start; what it has not copied by
	// then is promoted by requests as usual.
	WarmStartTimeout Duration `yaml:"warm_start_timeout" default:"10s" check:">0"`
	// WarmStartRate bounds the warm start's disk reads, in bytes per
	// second; 0 means unlimited.
	WarmStartRate ByteSize `yaml:"warm_start_rate" default:"50MiB" check:">=0"`
	// Admission decides which fills go to disk: "always" (the default),
	// "second-hit" (an object's second request within the doorkeeper's
	// window) or "off" (nothing new is written). Measured in
	// docs/benchmarks.md (Disk admission): while the disk fills,
	// second-hit writes 70% less but loses 2.6-4.1 points of hit ratio;
	// once it is full it gains 0.5-0.7 points and saves 10-23% of writes.
	Admission string `yaml:"admission" default:"always" check:"oneof=always|second-hit|off"`
	// AdmitLargerThan: with second-hit, bodies larger than this (and
	// streamed bodies of unknown length) go to disk on their first request.
	AdmitLargerThan ByteSize `yaml:"admit_larger_than" default:"1MiB" check:">=0"`
	// AdmitWindow: with second-hit, how many counted requests the
	// doorkeeper remembers (a count-min sketch of 4 bytes per request of
	// window, halved each time it fills). A window that spans the whole
	// catalogue admits nearly every refill; a shorter one keeps one-hit
	// objects out at steady state too.
	AdmitWindow int `yaml:"admit_window" default:"1048576" check:"range=[1024,16777216]"`
	// PackBelow: bodies of at most this many bytes are packed into shared
	// segment files (one append, no file of their own); 0 turns packing
	// off. Capped at a quarter of segment_bytes; packing is off when
	// max_bytes holds fewer than 16 segments.
	PackBelow ByteSize `yaml:"pack_below" default:"256KiB" check:"range=[0,16MiB]"`
	// SegmentBytes is the size of one segment file.
	SegmentBytes ByteSize `yaml:"segment_bytes" default:"8MiB" check:"range=[1MiB,256MiB]"`
}

// Log configures logging.
type Log struct {
	// Level is the minimum level logged.
	Level string `yaml:"level" default:"info" check:"oneof=debug|info|warn|error"`
	// Access turns on one access-log line per request.
	Access bool `yaml:"access" default:"true"`
	// AccessFormat is the access log's format: "json" (one object per
	// line) or "combined" (nginx's default combined format, byte for byte).
	AccessFormat string `yaml:"access_format" default:"json" check:"oneof=json|combined"`
	// AccessFields are the fields of a json line, in order (names as in
	// docs/metrics.md); none means every field, with slog's level and msg.
	AccessFields []string `yaml:"access_fields"`
	// AccessFile is the file the access log is appended to, reopened on
	// SIGUSR1 (logrotate); "" means standard output.
	AccessFile string `yaml:"access_file"`
	// AccessSample is the fraction of requests logged; answers with a
	// status of 500 or more, and failed requests, are always logged.
	AccessSample float64 `yaml:"access_sample" default:"1" check:"range=(0,1]"`
}

// TLS configures the TLS edge listener: certificates chosen by SNI,
// HTTP/2 and HTTP/1.1 offered by ALPN.
type TLS struct {
	// Listen is the host:port of the TLS listener; "" means none.
	Listen string `yaml:"listen" kind:"address"`
	// MinVersion is the lowest TLS version accepted.
	MinVersion string `yaml:"min_version" default:"1.2" check:"oneof=1.2|1.3"`
	// Certificates are the certificate/key pairs, chosen by SNI (exact
	// name, then one-label wildcard, then the default: the pair marked
	// default, else the first). Required when Listen is set.
	Certificates []Certificate `yaml:"certificates"`
}

// Certificate is one PEM certificate chain and its key.
type Certificate struct {
	// Cert is the PEM certificate chain file, leaf first. Required.
	Cert string `yaml:"cert"`
	// Key is the PEM private key file. Required.
	Key string `yaml:"key"`
	// Default marks the pair served to clients whose SNI matches no pair.
	Default bool `yaml:"default"`
}

// Purge configures purging (docs/purge.md).
type Purge struct {
	// Tokens are the bearer tokens accepted by the purge API and the PURGE
	// method. With none the API refuses every purge; -purge-token and
	// EDGED_PURGE_TOKEN add one valid for all sites.
	Tokens []PurgeToken `yaml:"tokens"`
	// AllowCIDRs are the client networks allowed to use the PURGE method
	// on the edge listener without a token.
	AllowCIDRs []string `yaml:"allow_cidrs" kind:"cidr"`
	// TagHeaders are the response fields purge tags are read from.
	TagHeaders []string `yaml:"tag_headers" default:"[Surrogate-Key, Cache-Tag]" kind:"field"`
	// StripTagHeaders removes those fields from responses to clients.
	StripTagHeaders bool `yaml:"strip_tag_headers" default:"true"`
	// Node is this node's name in the fleet; "" means the host name.
	Node string `yaml:"node"`
	// NATS enables fleet-wide propagation when URL is set.
	NATS PurgeNATS `yaml:"nats"`
}

// Cluster makes the edged nodes of a PoP one cache: each cache key has an
// owner among the live nodes, a node that misses a key another owns asks
// it over the peer listener, and keeps a copy only of what is hot at that
// node (docs/operations.md, "Running a PoP").
type Cluster struct {
	// Listen is the host:port of the peer listener, where the other nodes'
	// peer fetches arrive (cleartext HTTP/1.1: put it on the PoP's
	// private network). "" (the default) runs this node alone.
	Listen string `yaml:"listen" kind:"address"`
	// Advertise is the host:port the other nodes reach the peer listener
	// at; "" means listen, which must then name an address, not a
	// wildcard.
	Advertise string `yaml:"advertise" kind:"address"`
	// Node is this node's name in the PoP and in Cache-Status; "" means
	// purge.node, or else "edged-" and the host name. Names must be
	// unique in the PoP.
	Node string `yaml:"node"`
	// Peers is a static list of the PoP's nodes (this one included); set,
	// it replaces gossip: every listed node is taken as live unless it
	// cannot be reached.
	Peers []ClusterPeer `yaml:"peers"`
	// Gossip configures membership over hashicorp/memberlist (SWIM), used
	// when peers is empty.
	Gossip ClusterGossip `yaml:"gossip"`
	// SecretFile names a file holding a key of 16, 24 or 32 bytes,
	// base64-encoded: it encrypts gossip and authenticates peer fetches.
	// "" means neither (a private network is then the only protection).
	SecretFile string `yaml:"secret_file"`
	// HotThreshold: a node stores a copy of a key another node owns once
	// it has missed it this many times within the last hot_window misses
	// of such keys (a count-min sketch halved every hot_window misses).
	HotThreshold int `yaml:"hot_threshold" default:"4" check:"range=[1,255]"`
	// HotWindow is that window, in misses of keys other nodes own.
	HotWindow int `yaml:"hot_window" default:"10000" check:"range=[16,16777216]"`
	// BalanceFactor bounds each owner's in-flight peer fetches from this
	// node to this factor times the mean (consistent hashing with bounded
	// loads); the overflow goes to another node. 0 (the default) keeps
	// every key with its owner.
	BalanceFactor float64 `yaml:"balance_factor" check:">=0"`
	// ConnectTimeout bounds connecting to a peer; a peer that cannot be
	// reached is skipped (its keys go to the origin) for eject_for.
	ConnectTimeout Duration `yaml:"connect_timeout" default:"1s" check:">0"`
	// EjectFor is how long this node leaves out a peer it could not reach.
	EjectFor Duration `yaml:"eject_for" default:"2s" check:">0"`
}

// ClusterPeer is one node of a static peer list.
type ClusterPeer struct {
	// Name is the node's cluster.node.
	Name string `yaml:"name"`
	// Address is the node's peer listener (its cluster.advertise).
	Address string `yaml:"address" kind:"address"`
}

// ClusterGossip configures gossip membership (hashicorp/memberlist).
type ClusterGossip struct {
	// Listen is the host:port gossip binds, UDP and TCP.
	Listen string `yaml:"listen" default:"0.0.0.0:7946" kind:"address"`
	// Advertise is the host:port the other nodes gossip with; "" means
	// listen, which must then name an address, not a wildcard.
	Advertise string `yaml:"advertise" kind:"address"`
	// Join lists gossip addresses of other nodes (any one that answers is
	// enough); joining is retried every second until one does.
	Join []string `yaml:"join"`
	// ProbeInterval, ProbeTimeout and SuspicionMult set failure
	// detection: a node that stops answering is declared dead after
	// within about a probe round plus suspicion_mult × probe_interval:
	// 1.5 to 1.9 s with the defaults (measured on loopback).
	ProbeInterval Duration `yaml:"probe_interval" default:"400ms" check:">0"`
	ProbeTimeout  Duration `yaml:"probe_timeout" default:"200ms" check:">0"`
	SuspicionMult int      `yaml:"suspicion_mult" default:"2" check:"range=[1,10]"`
	// GossipInterval is how often membership news is sent to a few nodes.
	GossipInterval Duration `yaml:"gossip_interval" default:"100ms" check:">0"`
}

// PurgeToken is one purge bearer token.
type PurgeToken struct {
	// Name identifies the token in logs (never the value). Required.
	Name string `yaml:"name"`
	// Token is the secret. Required, at least 16 characters.
	Token string `yaml:"token"`
	// Sites limits the token to these sites; empty means all sites.
	Sites []string `yaml:"sites"`
}

// PurgeNATS configures propagation over NATS JetStream. Its checks apply
// only when URL is set.
type PurgeNATS struct {
	// URL is the NATS server URL(s), comma separated; "" means no fleet.
	URL string `yaml:"url"`
	// Stream is the JetStream stream of purges.
	Stream string `yaml:"stream" default:"EDGED_PURGES"`
	// Subject is the subject prefix.
	Subject string `yaml:"subject" default:"edged.purge"`
	// ReceiptBucket is the key-value bucket of receipts.
	ReceiptBucket string `yaml:"receipt_bucket" default:"EDGED_PURGE_RECEIPTS"`
	// MaxAge is how long purges and receipts are kept.
	MaxAge Duration `yaml:"max_age" default:"168h"`
	// Replicas of the stream and bucket.
	Replicas int `yaml:"replicas" default:"1" check:"range=[1,5] if=url"`
	// MaxPending bounds the purges queued while NATS is unreachable.
	MaxPending int `yaml:"max_pending" default:"10000" check:"min=1 if=url"`
	// ConnectTimeout bounds one connection attempt.
	ConnectTimeout Duration `yaml:"connect_timeout" default:"2s"`
	// PublishTimeout bounds one publish; after it the purge is pending.
	PublishTimeout Duration `yaml:"publish_timeout" default:"2s"`
	// RetryInterval is how often reconnects, setup and pending publishes
	// are retried.
	RetryInterval Duration `yaml:"retry_interval" default:"1s"`
	// CredsFile is a NATS credentials file (a user JWT and its nkey seed,
	// as nsc writes them); "" means none.
	CredsFile string `yaml:"creds_file"`
	// NkeyFile is a file holding a user nkey seed (SU...); "" means none.
	// Not with CredsFile.
	NkeyFile string `yaml:"nkey_file"`
	// TLS configures TLS to the NATS servers.
	TLS PurgeNATSTLS `yaml:"tls"`
}

// PurgeNATSTLS is the client side of TLS to NATS. Setting any file makes
// the connection use TLS; with none, TLS is used when the URL is tls:// or
// the server requires it, verified against the system roots.
type PurgeNATSTLS struct {
	// CA is a PEM file of the CAs that sign the servers' certificates,
	// instead of the system roots; "" means the system roots.
	CA string `yaml:"ca"`
	// Cert is a PEM client certificate chain for servers that verify
	// clients; "" means none. Requires Key.
	Cert string `yaml:"cert"`
	// Key is Cert's PEM private key file.
	Key string `yaml:"key"`
}

// Site is one set of host names served from one set of origins.
type Site struct {
	// Name identifies the site in logs and metrics. Required; must match
	// [a-z0-9_-]+ and be unique among sites.
	Name string `yaml:"name"`
	// Hosts are the request hosts this site serves: exact names
	// ("example.com"), wildcards that match any subdomain ("*.example.com";
	// it does not match example.com itself), or "*" for every host no other
	// site serves. Required and non-empty; lowercase, without ports. Parse
	// lowercases them.
	Hosts []string `yaml:"hosts" kind:"host"`
	// WebSocket forwards WebSocket upgrades to the origin.
	WebSocket bool `yaml:"websocket" default:"true"`
	// MaxBodyBytes limits request bodies passed through to the origin; a
	// larger one gets 413. 0 means no limit.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
	// UnkeyedHeaders are request fields removed before the origin (they
	// could change its answer without being part of the cache key); an
	// entry ending in "*" is a family of fields. Nil means edge's default
	// list; [] removes none.
	UnkeyedHeaders []string `yaml:"unkeyed_headers" kind:"field"`
	// Methods are the request methods forwarded to the origins,
	// case-sensitive; any other is answered 405 (with Allow) when edged
	// knows the method, else 501. Must include GET and HEAD; CONNECT
	// (never forwarded) and PURGE (answered by edged) are not allowed.
	Methods []string `yaml:"methods" default:"[GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH]" kind:"method"`
	// OriginHost is the Host header sent to the origins; "" sends the
	// normalized client Host (lowercase, no trailing dot or default port).
	OriginHost string `yaml:"origin_host"`
	// Origins are the origin shards the site's requests are spread over.
	// Required and non-empty.
	Origins []Origin `yaml:"origins"`
	// Upstream configures the connections to the origins.
	Upstream Upstream `yaml:"upstream"`
	// Cache configures caching for this site.
	Cache SiteCache `yaml:"cache"`
	// Compression compresses the site's storable responses once, when
	// they are filled, for clients that accept br, zstd or gzip.
	Compression Compression `yaml:"compression"`
	// Clients are the site's address lists, checked before anything else.
	Clients SiteClients `yaml:"clients"`
	// RateLimit limits each client address's requests to the site.
	RateLimit RateLimit `yaml:"rate_limit"`
	// Pools are further origin pools of the site, each with its own
	// origins and upstream settings, that rules send requests to
	// (rules[].origin); the site's own origins are the pool "default".
	Pools []Pool `yaml:"pools"`
	// Rules are the site's rules: conditions on the request and what to
	// do when they hold. Every matching rule applies, in order, a later
	// one overriding what an earlier one set; a redirect or respond ends
	// evaluation (docs/rules.md).
	Rules []Rule `yaml:"rules"`
}

// SiteClients are a site's address lists: a client the deny list holds
// gets 403, and so does one a non-empty allow list does not hold.
type SiteClients struct {
	// Allow, when not empty, admits only these networks.
	Allow []string `yaml:"allow" kind:"cidr"`
	// Deny refuses these networks, even inside Allow.
	Deny []string `yaml:"deny" kind:"cidr"`
}

// RateLimit is a token bucket per client address (IPv6: per /64): burst
// requests at once, then rate per per; a request over it gets 429.
type RateLimit struct {
	// Rate is the requests allowed per Per, sustained; 0 means no limit.
	Rate float64 `yaml:"rate" check:">=0"`
	// Per is the period of Rate.
	Per Duration `yaml:"per" default:"1s" check:">0"`
	// Burst is how many requests a client may make at once; 0 means Rate
	// rounded up.
	Burst int `yaml:"burst" check:">=0"`
	// MaxClients bounds the addresses tracked at once; beyond it the
	// fullest bucket nearby is forgotten (that client starts again full).
	MaxClients int `yaml:"max_clients" default:"65536" check:"min=1"`
}

// Pool is a named origin pool of a site, besides its default one.
type Pool struct {
	// Name is what rules[].origin calls the pool: [a-z0-9_-]+, unique
	// within the site, not "default".
	Name string `yaml:"name"`
	// OriginHost is the Host header sent to this pool's origins; "" sends
	// the site's origin_host, or the client's Host.
	OriginHost string `yaml:"origin_host"`
	// Origins are the pool's shards. Required and non-empty.
	Origins []Origin `yaml:"origins"`
	// Upstream configures the connections to the pool's origins, with
	// the same keys and defaults as the site's upstream.
	Upstream Upstream `yaml:"upstream"`
}

func (p *Pool) normalize() { fillNames(p.Origins) }

// Rule is one of a site's rules (package edge/rules).
type Rule struct {
	// Name identifies the rule in Cache-Status (detail=rule:NAME) and
	// logs. Required, unique within the site.
	Name string `yaml:"name"`
	// Match are the conditions; none matches every request.
	Match RuleMatch `yaml:"match"`
	// Cache changes how matching requests are cached.
	Cache RuleCache `yaml:"cache"`
	// Key changes the cache key of matching requests.
	Key RuleKey `yaml:"key"`
	// RequestHeaders change the request sent to the origin.
	RequestHeaders RuleHeaders `yaml:"request_headers"`
	// ResponseHeaders change the response sent to the client.
	ResponseHeaders RuleHeaders `yaml:"response_headers"`
	// Redirect answers matching requests with a redirect.
	Redirect RuleRedirect `yaml:"redirect"`
	// Respond answers matching requests with a fixed response.
	Respond RuleRespond `yaml:"respond"`
	// Origin sends matching requests to the site's pool of this name
	// ("default": the site's own origins).
	Origin string `yaml:"origin"`
	// RateLimit limits how often each client address may make matching
	// requests, in buckets of the rule's own.
	RateLimit RateLimit `yaml:"rate_limit"`
}

// RuleMatch is a rule's conditions: every key set must hold, and a list
// holds when any entry does.
type RuleMatch struct {
	Hosts      []string `yaml:"hosts" kind:"host"`
	Paths      []string `yaml:"paths"`
	PathRegex  string   `yaml:"path_regex"`
	Methods    []string `yaml:"methods" kind:"method"`
	Query      []string `yaml:"query"`
	Headers    []string `yaml:"headers"`
	Cookies    []string `yaml:"cookies"`
	Clients    []string `yaml:"clients"`
	NotClients []string `yaml:"not_clients"`
	Scheme     string   `yaml:"scheme" check:"oneof=|http|https"`
}

// RuleCache is a rule's caching actions; zero durations are unset.
type RuleCache struct {
	Bypass               bool     `yaml:"bypass"`
	NoCompress           bool     `yaml:"no_compress"`
	Slice                ByteSize `yaml:"slice" check:"range=[256KiB,64MiB] if=slice"`
	NoSlice              bool     `yaml:"no_slice"`
	TTL                  Duration `yaml:"ttl"`
	MinTTL               Duration `yaml:"min_ttl"`
	MaxTTL               Duration `yaml:"max_ttl"`
	DefaultTTL           Duration `yaml:"default_ttl"`
	TTLByStatus          []string `yaml:"ttl_by_status"`
	StaleWhileRevalidate Duration `yaml:"stale_while_revalidate"`
	StaleIfError         Duration `yaml:"stale_if_error"`
	BrowserTTL           Duration `yaml:"browser_ttl"`
}

// RuleKey is a rule's cache key actions.
type RuleKey struct {
	Query      string   `yaml:"query" check:"oneof=|keep|sort|ignore"`
	QueryAllow []string `yaml:"query_allow"`
	QueryDeny  []string `yaml:"query_deny"`
	Headers    []string `yaml:"headers" kind:"field"`
	Cookies    []string `yaml:"cookies"`
	Host       string   `yaml:"host"`
}

// RuleHeaders change header fields: Set and Add hold "Name: value"
// entries (the value a template), Remove field names.
type RuleHeaders struct {
	Set    []string `yaml:"set"`
	Add    []string `yaml:"add"`
	Remove []string `yaml:"remove" kind:"field"`
}

// RuleRedirect is an edge redirect.
type RuleRedirect struct {
	Status   int    `yaml:"status"`
	Location string `yaml:"location"`
}

// RuleRespond is a fixed edge response.
type RuleRespond struct {
	Status      int    `yaml:"status"`
	Body        string `yaml:"body"`
	ContentType string `yaml:"content_type"`
}

// Origin is one origin shard of a site.
type Origin struct {
	// URL is the origin's base URL: "http" or "https", a host and an
	// optional port, and nothing else (no path, query, fragment or
	// userinfo), e.g. "http://127.0.0.1:8081". Required.
	URL string `yaml:"url"`
	// Weight is the origin's share of keys relative to the site's other
	// origins.
	Weight int `yaml:"weight" default:"1" check:"min=1 max=1000"`
	// Name identifies the origin in logs and metrics; "" means the URL's
	// host (with port, if any). Must be unique within the site.
	Name string `yaml:"name"`
}

// Upstream configures the connections from one site to its origins. "Shard"
// means one origin.
type Upstream struct {
	// MaxIdleConnsPerShard caps the idle keep-alive connections kept per
	// shard; 0 (the default) means automatic: each shard's idle pool keeps
	// the last minute's peak of connections in use plus a quarter, up to
	// max_conns_per_shard (when set) and 1024.
	MaxIdleConnsPerShard int `yaml:"max_idle_conns_per_shard" check:">=0"`
	// MaxConnsPerShard caps all connections (dialing, active, idle) per
	// origin; 0 means unlimited.
	MaxConnsPerShard int `yaml:"max_conns_per_shard" check:">=0"`
	// IdleConnTimeout closes keep-alive connections idle this long; 0 also
	// means the default.
	IdleConnTimeout Duration `yaml:"idle_conn_timeout" default:"90s" check:">=0"`
	// DialTimeout bounds establishing a TCP connection to an origin.
	DialTimeout Duration `yaml:"dial_timeout" default:"5s" check:">0"`
	// ResponseHeaderTimeout bounds the wait for an origin's response headers
	// after the request is written, per try (see Retries); 0 also means the
	// default.
	ResponseHeaderTimeout Duration `yaml:"response_header_timeout" default:"15s" check:">=0"`
	// DownFor is how long an origin that refused a dial is skipped before it
	// is tried again; 0 also means the default.
	DownFor Duration `yaml:"down_for" default:"5s" check:">=0"`
	// EjectAfter is the number of consecutive gateway failures (connect
	// error, reset or timeout before a response, 502/503/504) that ejects
	// an origin from picks; 0 turns passive outlier detection off.
	EjectAfter int `yaml:"eject_after" default:"5" check:">=0"`
	// EjectFor is how long a first ejection lasts; each repeat ejection
	// lasts twice the previous one, up to EjectForMax.
	EjectFor Duration `yaml:"eject_for" default:"30s" check:">0"`
	// EjectForMax caps an ejection's length; an origin not ejected again
	// within this long after an ejection ended starts over at EjectFor.
	EjectForMax Duration `yaml:"eject_for_max" default:"300s" check:">0"`
	// MaxEjectedPercent caps the share of the site's origins ejected at
	// once (at least one of two or more); with none left, all are used.
	MaxEjectedPercent int `yaml:"max_ejected_percent" default:"50" check:"min=1 max=100"`
	// SlowStart is how long an origin back from an ejection (or from
	// failed health checks) takes to get its full share of keys again; 0
	// means at once.
	SlowStart Duration `yaml:"slow_start" default:"30s" check:">=0"`
	// Retries is how many times an idempotent request (or cache fill) is
	// retried on the next shard after a reset or a response header timeout
	// (or a 502/503/504 with RetryOnStatus); 0 means never. Dial failures always
	// move on to the next shard.
	Retries int `yaml:"retries" default:"2" check:">=0"`
	// RetryOnStatus also retries a 502, 503 or 504 answer.
	RetryOnStatus bool `yaml:"retry_on_status"`
	// RetryBudgetPercent caps retries at this share of the site's origin
	// requests over RetryBudgetWindow, above the per-second floor.
	RetryBudgetPercent int `yaml:"retry_budget_percent" default:"20" check:"min=0 max=100"`
	// RetryBudgetWindow is the retry budget's sliding window.
	RetryBudgetWindow Duration `yaml:"retry_budget_window" default:"10s" check:">0"`
	// RetryBudgetMinPerSecond is the retry budget's floor: retries a
	// second (averaged over the window) allowed however quiet the site.
	RetryBudgetMinPerSecond int `yaml:"retry_budget_min_per_second" default:"10" check:">=0"`
	// MaxResponseHeaderBytes limits an origin response's header (502 when
	// exceeded).
	MaxResponseHeaderBytes ByteSize `yaml:"max_response_header_bytes" default:"64KiB"`
	// Policy is how requests are spread over the origins: "ketama"
	// (consistent hashing of the cache key: one origin per key, for
	// caching sites), "round_robin" (smooth weighted), "least_conn"
	// (fewest in flight for the weight) or "p2c_ewma" (the faster of two
	// random origins by latency and in-flight requests, for pass-through
	// and API sites).
	Policy string `yaml:"policy" default:"ketama" check:"oneof=ketama|round_robin|least_conn|p2c_ewma"`
	// HashBalanceFactor bounds ketama's load per origin (consistent
	// hashing with bounded loads): no origin takes a request above
	// ceil(factor × the mean in-flight requests); 0 means no bound,
	// otherwise at least 1 (e.g. 1.25). Only with policy ketama.
	HashBalanceFactor float64 `yaml:"hash_balance_factor" check:">=0"`
	// Protocol is how edged talks to the origins: "http1", "h2" (HTTP/2
	// over TLS when offered) or "h2c" (HTTP/2 prior knowledge over
	// cleartext, e.g. gRPC origins).
	Protocol string `yaml:"protocol" default:"http1" check:"oneof=http1|h2|h2c"`
	// TLS configures TLS to the site's https origins.
	TLS UpstreamTLS `yaml:"tls"`
	// MaxPendingPerShard caps the requests waiting for a connection to
	// one origin (dialing, TLS handshake, or queued at
	// max_conns_per_shard); over it a request goes to the next origin, or
	// gets a 503 when every origin is over a limit. 0 means unlimited.
	MaxPendingPerShard int `yaml:"max_pending_per_shard" default:"1024" check:">=0"`
	// MaxInFlightPerShard caps the requests one origin serves at once;
	// over it a request goes to the next origin, or gets a 503 when every
	// origin is over a limit. 0 means unlimited.
	MaxInFlightPerShard int `yaml:"max_in_flight_per_shard" default:"1024" check:">=0"`
	// TLSHandshakeTimeout bounds the TLS handshake with an https origin,
	// after the TCP connection.
	TLSHandshakeTimeout Duration `yaml:"tls_handshake_timeout" default:"10s" check:">0"`
	// BodyIdleTimeout fails an origin response whose body sends no bytes
	// for this long (the response is cut off and not stored); 0 means
	// none.
	BodyIdleTimeout Duration `yaml:"body_idle_timeout" default:"60s" check:">=0"`
	// HealthCheck configures active health checks of the origins.
	HealthCheck UpstreamHealthCheck `yaml:"health_check"`
}

// UpstreamHealthCheck configures active health checks of a site's
// origins: a request to each origin every Interval; Fall failures in a
// row take it out of picks, Rise passes in a row bring it back. Path,
// Host and ExpectedStatus are checked by the daemon's checks (lb owns
// their grammar).
type UpstreamHealthCheck struct {
	// Enabled turns the checks on.
	Enabled bool `yaml:"enabled"`
	// Path is the request target checked: a path with an optional query.
	Path string `yaml:"path" default:"/"`
	// Method is the checks' method.
	Method string `yaml:"method" default:"GET" check:"oneof=GET|HEAD"`
	// Host is the checks' Host header; "" means each origin's host[:port]
	// from its URL.
	Host string `yaml:"host"`
	// Interval is the time between the end of one check of an origin and
	// the start of the next, before jitter.
	Interval Duration `yaml:"interval" default:"5s" check:">0"`
	// JitterPercent spreads checks: each wait is Interval plus or minus
	// up to this share of it; 0 means none.
	JitterPercent int `yaml:"jitter_percent" default:"15" check:"min=0 max=50"`
	// Timeout bounds one check (connect, TLS handshake, response headers).
	Timeout Duration `yaml:"timeout" default:"2s" check:">0"`
	// ExpectedStatus is the status codes of a passing check: codes and
	// ranges separated by commas, e.g. "200-399" or "200,204".
	ExpectedStatus string `yaml:"expected_status" default:"200-399"`
	// Rise is the number of passing checks in a row that bring an origin
	// back.
	Rise int `yaml:"rise" default:"2" check:"min=1"`
	// Fall is the number of failing checks in a row that take an origin
	// out.
	Fall int `yaml:"fall" default:"3" check:"min=1"`
}

// UpstreamTLS configures TLS to a site's https origins; http origins do
// not use it, but its files are checked all the same. The files are read
// at start and at each reload.
type UpstreamTLS struct {
	// ServerName is sent as SNI and is the name the origins'
	// certificates must be valid for; "" means each origin's host (from
	// its URL).
	ServerName string `yaml:"server_name"`
	// CA is a PEM file of the CA certificates trusted to sign the
	// origins' certificates, instead of the system roots (not in
	// addition: concatenate the system bundle to trust both); "" means
	// the system roots.
	CA string `yaml:"ca"`
	// ClientCert is a PEM client certificate chain presented to origins
	// that ask for one (mutual TLS); "" means none. Requires ClientKey.
	ClientCert string `yaml:"client_cert"`
	// ClientKey is ClientCert's PEM private key file.
	ClientKey string `yaml:"client_key"`
	// MinVersion is the lowest TLS version offered to the origins.
	MinVersion string `yaml:"min_version" default:"1.2" check:"oneof=1.2|1.3"`
	// InsecureSkipVerify accepts any certificate from the origins, for
	// any name. Logged as a warning at every start and reload.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// SiteCache configures caching for one site.
type SiteCache struct {
	// Enabled turns caching on; false makes every request bypass the cache.
	Enabled bool `yaml:"enabled" default:"true"`
	// DefaultTTL is the freshness lifetime given to storable responses that
	// carry no explicit freshness (no max-age, s-maxage or Expires); 0
	// means heuristic freshness is used instead.
	DefaultTTL Duration `yaml:"default_ttl" check:">=0"`
	// HeuristicFraction is the fraction of (Date - Last-Modified) used as a
	// heuristic freshness lifetime.
	HeuristicFraction float64 `yaml:"heuristic_fraction" default:"0.1" check:"range=(0,1]"`
	// HeuristicMax caps a heuristic freshness lifetime; 0 also means the
	// default.
	HeuristicMax Duration `yaml:"heuristic_max" default:"24h" check:">=0"`
	// StaleWhileRevalidate is the default stale-while-revalidate window
	// (RFC 5861) for responses that name none; 0 means none.
	StaleWhileRevalidate Duration `yaml:"stale_while_revalidate"`
	// StaleIfError is the default stale-if-error window (RFC 5861) for
	// responses that name none: how long after expiry a stored response
	// is served when the origin fails (refused, reset, timeout, 500, 502,
	// 503, 504); 0 means none.
	StaleIfError Duration `yaml:"stale_if_error" default:"24h" check:">=0"`
	// NegativeTTL is the freshness lifetime of 404 and 410 responses that
	// carry no explicit freshness; 0 leaves them to the heuristic rules.
	NegativeTTL Duration `yaml:"negative_ttl" default:"10s"`
	// OwnTargetedHeaders are the targeted cache-control fields (RFC 9213)
	// aimed at this edged alone: first in the target list, and removed
	// from responses to clients; [] names none.
	OwnTargetedHeaders []string `yaml:"own_targeted_headers" default:"[Edged-Cache-Control]" kind:"field"`
	// TargetedHeaders are the targeted fields of the cache classes edged
	// belongs to, obeyed after OwnTargetedHeaders and forwarded to clients
	// for the caches downstream; the first valid one present wins over
	// Cache-Control and Expires; [] obeys none.
	TargetedHeaders []string `yaml:"targeted_headers" default:"[CDN-Cache-Control, Surrogate-Control]" kind:"field"`
	// KeepTargetedHeaders forwards the OwnTargetedHeaders fields to clients
	// too. Off by default: they are removed, being meant for edged alone.
	KeepTargetedHeaders bool `yaml:"keep_targeted_headers"`
	// Slice, when not 0, serves the site's cacheable GET and HEAD requests
	// from slices of this size, each fetched with a Range request and
	// stored on its own (docs/caching.md, "Slices"); 0 serves whole
	// objects.
	Slice ByteSize `yaml:"slice" check:"range=[256KiB,64MiB] if=slice"`
}

// Compression configures a site's compression (docs/caching.md,
// "Compression"): a storable 200 response of a listed type, not encoded by
// the origin and without Cache-Control: no-transform, is compressed into
// each of the codings when it is filled and stored beside the identity
// body; each client gets the coding its Accept-Encoding prefers.
type Compression struct {
	// Enabled turns compression on.
	Enabled bool `yaml:"enabled" default:"true"`
	// Types are the media types compressed ("text/*" names every text
	// type); parameters such as charset do not count.
	Types []string `yaml:"types" default:"[text/html, text/css, text/plain, text/javascript, text/xml, text/markdown, text/csv, application/javascript, application/x-javascript, application/json, application/ld+json, application/manifest+json, application/xml, application/rss+xml, application/atom+xml, application/wasm, image/svg+xml, image/x-icon, font/ttf, font/otf]"`
	// MinBytes is the smallest body compressed; 0 compresses any size.
	MinBytes ByteSize `yaml:"min_bytes" default:"1KiB" check:">=0"`
	// Codings are the codings produced and stored: br, zstd, gzip.
	Codings []string `yaml:"codings" default:"[br, zstd, gzip]"`
	// BrotliLevel is brotli's quality, 0 (fastest) to 11.
	BrotliLevel int `yaml:"brotli_level" default:"5" check:"range=[0,11]"`
	// ZstdLevel is zstd's level, 1 to 22, mapped to the encoder's four
	// speeds (1: fastest, 2-5: default, 6-9: better, 10-22: best).
	ZstdLevel int `yaml:"zstd_level" default:"3" check:"range=[1,22]"`
	// GzipLevel is gzip's level, 1 (fastest) to 9.
	GzipLevel int `yaml:"gzip_level" default:"6" check:"range=[1,9]"`
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
// file name in errors, and runs checks as Parse does.
func Load(path string, checks ...Check) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, checks...)
}

// A Check finds problems in a configuration that its values alone do not
// show, for instance in the files it names, which only the packages that
// read them can judge. It returns each problem as an *Error with the key
// path at fault and no file or line (Parse adds them), or nil. The daemon's
// -check-config passes the checks that starting would make.
type Check func(*Config) []*Error

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
	fillNames(s.Origins)
	return s
}

// normalize names the site's unnamed origins after their URL's host.
func (s *Site) normalize() { fillNames(s.Origins) }

// fillNames gives each unnamed origin its URL's host as name, if the URL
// parses.
func fillNames(origins []Origin) {
	for i := range origins {
		o := &origins[i]
		if o.Name != "" {
			continue
		}
		if u, err := url.Parse(o.URL); err == nil {
			o.Name = u.Host
		}
	}
}
