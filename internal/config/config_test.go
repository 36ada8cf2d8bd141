package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/config"
)

const minimalSite = `
sites:
  - name: a
    hosts: ["a.example"]
    origins:
      - url: "http://127.0.0.1:8081"
`

func TestDefaultParses(t *testing.T) {
	c := config.Default() // panics if the embedded file is broken
	if len(c.Sites) != 0 {
		t.Errorf("Default has %d sites, want 0", len(c.Sites))
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	// The embedded file and the defaults used for omitted keys must agree.
	empty, err := config.Parse("empty.yaml", nil)
	if err != nil {
		t.Fatalf("Parse(empty) = %v", err)
	}
	if !reflect.DeepEqual(c, empty) {
		t.Errorf("default.yaml and the built-in defaults differ:\n yaml: %+v\n code: %+v", c, empty)
	}
	if d := config.DefaultYAML(); len(d) == 0 {
		t.Error("DefaultYAML is empty")
	}
	// Each call returns a fresh value.
	c.Listen = "changed:1"
	if config.Default().Listen == "changed:1" {
		t.Error("Default returned shared state")
	}
}

func TestDefaultValues(t *testing.T) {
	c, err := config.Parse("edged.yaml", []byte(minimalSite))
	if err != nil {
		t.Fatal(err)
	}
	want := &config.Config{
		Listen:            "127.0.0.1:8080",
		Admin:             config.Admin{Listen: "127.0.0.1:9090", Status: true},
		UnknownHostStatus: 421,
		Server: config.Server{
			ReadHeaderTimeout:    config.Duration(10 * time.Second),
			FirstByteTimeout:     config.Duration(5 * time.Second),
			ReadTimeout:          config.Duration(60 * time.Second),
			WriteTimeout:         config.Duration(60 * time.Second),
			IdleTimeout:          config.Duration(120 * time.Second),
			MaxHeaderBytes:       64 << 10,
			ShutdownTimeout:      config.Duration(30 * time.Second),
			MaxConns:             16384,
			MaxConnsPerIP:        512,
			WebSocketIdleTimeout: config.Duration(5 * time.Minute),
			HTTP1:                "edged",
			ClientIPHeader:       "X-Forwarded-For",
			ProxyProtocol:        "off",
			ProxyProtocolTimeout: config.Duration(5 * time.Second),
		},
		Cache: config.Cache{
			FillTimeout:        config.Duration(60 * time.Second),
			RangeForwardOffset: 16 << 20,
			Memory:             config.Memory{MaxBytes: 256 << 20, MaxObjectBytes: 8 << 20},
			Disk: config.Disk{Enabled: true, MaxBytes: 10 << 30, Fsync: "never", Admission: "always", AdmitLargerThan: 1 << 20, AdmitWindow: 1 << 20,
				WarmStart: true, WarmStartTimeout: config.Duration(10 * time.Second), WarmStartRate: 50 << 20,
				PackBelow: 256 << 10, SegmentBytes: 8 << 20},
		},
		Log: config.Log{Level: "info", Access: true, AccessFormat: "json", AccessSample: 1},
		TLS: config.TLS{MinVersion: "1.2"},
		Purge: config.Purge{
			TagHeaders:      []string{"Surrogate-Key", "Cache-Tag"},
			StripTagHeaders: true,
			NATS: config.PurgeNATS{
				Stream: "EDGED_PURGES", Subject: "edged.purge", ReceiptBucket: "EDGED_PURGE_RECEIPTS",
				MaxAge: config.Duration(168 * time.Hour), Replicas: 1, MaxPending: 10000,
				ConnectTimeout: config.Duration(2 * time.Second), PublishTimeout: config.Duration(2 * time.Second), RetryInterval: config.Duration(time.Second),
			},
		},
		Sites: []config.Site{{
			WebSocket: true,
			Name:      "a",
			Hosts:     []string{"a.example"},
			Methods:   []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"},
			Origins:   []config.Origin{{URL: "http://127.0.0.1:8081", Weight: 1, Name: "127.0.0.1:8081"}},
			Upstream: config.Upstream{
				MaxIdleConnsPerShard:    0, // auto
				IdleConnTimeout:         config.Duration(90 * time.Second),
				DialTimeout:             config.Duration(5 * time.Second),
				ResponseHeaderTimeout:   config.Duration(15 * time.Second),
				DownFor:                 config.Duration(5 * time.Second),
				EjectAfter:              5,
				EjectFor:                config.Duration(30 * time.Second),
				EjectForMax:             config.Duration(300 * time.Second),
				MaxEjectedPercent:       50,
				SlowStart:               config.Duration(30 * time.Second),
				Retries:                 2,
				RetryBudgetPercent:      20,
				RetryBudgetWindow:       config.Duration(10 * time.Second),
				RetryBudgetMinPerSecond: 10,
				Protocol:                "http1",
				MaxResponseHeaderBytes:  64 << 10,
				Policy:                  "ketama",
				TLS:                     config.UpstreamTLS{MinVersion: "1.2"},
				MaxPendingPerShard:      1024,
				MaxInFlightPerShard:     1024,
				TLSHandshakeTimeout:     config.Duration(10 * time.Second),
				BodyIdleTimeout:         config.Duration(60 * time.Second),
				HealthCheck: config.UpstreamHealthCheck{Path: "/", Method: "GET", Interval: config.Duration(5 * time.Second),
					JitterPercent: 15, Timeout: config.Duration(2 * time.Second), ExpectedStatus: "200-399", Rise: 2, Fall: 3},
			},
			Cache: config.SiteCache{
				Enabled:            true,
				HeuristicFraction:  0.1,
				HeuristicMax:       config.Duration(24 * time.Hour),
				StaleIfError:       config.Duration(24 * time.Hour),
				NegativeTTL:        config.Duration(10 * time.Second),
				OwnTargetedHeaders: []string{"Edged-Cache-Control"},
				TargetedHeaders:    []string{"CDN-Cache-Control", "Surrogate-Control"},
			},
			Compression: config.Compression{
				Enabled: true,
				Types: []string{"text/html", "text/css", "text/plain", "text/javascript", "text/xml", "text/markdown", "text/csv",
					"application/javascript", "application/x-javascript", "application/json", "application/ld+json",
					"application/manifest+json", "application/xml", "application/rss+xml", "application/atom+xml",
					"application/wasm", "image/svg+xml", "image/x-icon", "font/ttf", "font/otf"},
				MinBytes: 1 << 10, Codings: []string{"br", "zstd", "gzip"}, BrotliLevel: 5, ZstdLevel: 3, GzipLevel: 6,
			},
			RateLimit: config.RateLimit{Per: config.Duration(time.Second), MaxClients: 65536},
		}},
		Cluster: config.Cluster{
			Gossip: config.ClusterGossip{Listen: "0.0.0.0:7946", ProbeInterval: config.Duration(400 * time.Millisecond),
				ProbeTimeout: config.Duration(200 * time.Millisecond), SuspicionMult: 2, GossipInterval: config.Duration(100 * time.Millisecond)},
			HotThreshold: 4, HotWindow: 10000, ConnectTimeout: config.Duration(time.Second), EjectFor: config.Duration(2 * time.Second),
		},
		Tracing: config.Tracing{Endpoint: "http://127.0.0.1:4318", SampleRatio: 0.01, ServiceName: "edged"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse(minimal) =\n%+v\nwant\n%+v", c, want)
	}
	if got := config.NewSite("a", []string{"a.example"}, "http://127.0.0.1:8081"); !reflect.DeepEqual(got, want.Sites[0]) {
		t.Errorf("NewSite =\n%+v\nwant\n%+v", got, want.Sites[0])
	}
}

func TestOverridesAndNormalization(t *testing.T) {
	c, err := config.Parse("edged.yaml", []byte(`
listen: ":8443"
unknown_host_status: 404
server:
  read_timeout: 0
  max_header_bytes: 1048576
log: {level: debug, access: false}
sites:
  - name: b
    hosts: [WWW.Example.COM, "*.Example.com"]
    origins:
      - {url: "https://o1.example:8443", weight: 3, name: one}
      - url: "https://o2.example"
    cache: {heuristic_fraction: 1, default_ttl: 1m30s}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sites[0]
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, ":8443"},
		{"status", c.UnknownHostStatus, 404},
		{"read_timeout", c.Server.ReadTimeout.Std(), time.Duration(0)},
		{"max_header_bytes", c.Server.MaxHeaderBytes.Int64(), int64(1 << 20)},
		{"level", c.Log.Level, "debug"},
		{"access", c.Log.Access, false},
		{"hosts", s.Hosts, []string{"www.example.com", "*.example.com"}},
		{"origin0", s.Origins[0], config.Origin{URL: "https://o1.example:8443", Weight: 3, Name: "one"}},
		{"origin1", s.Origins[1], config.Origin{URL: "https://o2.example", Weight: 1, Name: "o2.example"}},
		{"fraction", s.Cache.HeuristicFraction, 1.0},
		{"default_ttl", s.Cache.DefaultTTL.Std(), 90 * time.Second},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

func TestExampleParses(t *testing.T) {
	c, err := config.Load("../../docs/edged.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sites) != 2 {
		t.Fatalf("example has %d sites, want 2", len(c.Sites))
	}
	if n := len(c.Sites[0].Origins); n != 2 {
		t.Errorf("first site has %d origins, want 2", n)
	}
	if got := c.Sites[1].Hosts; !reflect.DeepEqual(got, []string{"*"}) {
		t.Errorf("second site hosts = %q, want [*]", got)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := config.Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v, want an error naming %s", err, missing)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(bad)
	if want := bad + ":1: listen: invalid address"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load(bad) = %v, want prefix %q", err, want)
	}
}

// Checks run last, on a configuration that passed every other rule, and
// their problems are placed like any other: file, line of the key named.
func TestChecks(t *testing.T) {
	const file = `tls:
  listen: "127.0.0.1:8443"
  certificates:
    - cert: a.pem
      key: a.key
    - cert: b.pem
      key: b.key
`
	keyOfSecond := func(c *config.Config) []*config.Error {
		return []*config.Error{{Path: "tls.certificates[1].key", Msg: "does not match " + c.TLS.Certificates[1].Cert}}
	}
	ran := false
	mustNotRun := func(*config.Config) []*config.Error { ran = true; return nil }
	for _, tc := range []struct {
		name, yaml string
		checks     []config.Check
		want       string // "" for no error
	}{
		{"no problem", file, []config.Check{func(*config.Config) []*config.Error { return nil }}, ""},
		{"problem at a key", file, []config.Check{keyOfSecond}, "edged.yaml:7: tls.certificates[1].key: does not match b.pem"},
		{"not run on an invalid file", file + "listen: x\n", []config.Check{mustNotRun}, "edged.yaml:8: listen: invalid address"},
		{"not run after an earlier check's problem", file, []config.Check{keyOfSecond, mustNotRun}, "edged.yaml:7: tls.certificates[1].key:"},
	} {
		_, err := config.Parse("edged.yaml", []byte(tc.yaml), tc.checks...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
	if ran {
		t.Error("a check ran on a configuration with problems")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		// want is the first error line, or its prefix when it ends in "…".
		want string
		line int
		path string
		// also lists further substrings the whole error must contain.
		also []string
	}{
		{
			name: "unknown top-level key",
			yaml: "listen: \"127.0.0.1:8080\"\nlisen: x\n",
			want: "edged.yaml:2: lisen: unknown key (known: listen, …",
			line: 2, path: "lisen",
		},
		{
			name: "unknown nested key",
			yaml: "cache:\n  fill_timeout: 1s\n  memroy: {}\n",
			want: "edged.yaml:3: cache.memroy: unknown key (known: memory, disk, status_key, fill_timeout, range_forward_offset)",
			line: 3, path: "cache.memroy",
		},
		{
			name: "unknown key in a site",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origns: []\n",
			want: "edged.yaml:4: sites[0].origns: unknown key (known: origins, …",
			line: 4, path: "sites[0].origns",
		},
		{
			name: "unknown key in an origin",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: http://o:1\n        wieght: 2\n",
			want: "edged.yaml:6: sites[0].origins[0].wieght: unknown key (known: weight, …",
			line: 6, path: "sites[0].origins[0].wieght",
		},
		{
			name: "odd key is quoted",
			yaml: "\"a\\nb\": 1\n",
			want: `edged.yaml:1: "a\nb": unknown key (known: …`,
			line: 1, path: `"a\nb"`,
		},
		{
			name: "upstream tls: client_cert without client_key",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: https://o:1\n    upstream:\n      tls:\n        client_cert: c.pem\n",
			want: "edged.yaml:8: sites[0].upstream.tls.client_cert: set client_key too (the certificate's private key file)",
			line: 8, path: "sites[0].upstream.tls.client_cert",
		},
		{
			name: "upstream tls: client_key without client_cert",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: https://o:1\n    upstream:\n      tls:\n        client_key: k.pem\n",
			want: "edged.yaml:8: sites[0].upstream.tls.client_key: set client_cert too (the certificate chain of this key)",
			line: 8, path: "sites[0].upstream.tls.client_key",
		},
		{
			name: "upstream tls: ca with insecure_skip_verify",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: https://o:1\n    upstream:\n      tls:\n        ca: ca.pem\n        insecure_skip_verify: true\n",
			want: "edged.yaml:8: sites[0].upstream.tls.ca: has no effect with insecure_skip_verify…",
			line: 8, path: "sites[0].upstream.tls.ca",
		},
		{
			name: "upstream: unknown policy",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: http://o:1\n    upstream:\n      policy: random\n",
			want: "edged.yaml:7: sites[0].upstream.policy: must be one of ketama, round_robin, least_conn, p2c_ewma; got \"random\"",
			line: 7, path: "sites[0].upstream.policy",
		},
		{
			name: "tracing: endpoint without scheme",
			yaml: "tracing:\n  enabled: true\n  endpoint: collector:4318\n",
			want: "edged.yaml:3: tracing.endpoint: want an http or https URL…",
			line: 3, path: "tracing.endpoint",
		},
		{
			name: "tracing: sample_ratio above 1",
			yaml: "tracing:\n  sample_ratio: 1.5\n",
			want: "edged.yaml:2: tracing.sample_ratio: …",
			line: 2, path: "tracing.sample_ratio",
		},
		{
			name: "tracing: header without a colon",
			yaml: "tracing:\n  enabled: true\n  headers: [\"Authorization Bearer x\"]\n",
			want: "edged.yaml:3: tracing.headers[0]: want \"Name: value\"…",
			line: 3, path: "tracing.headers[0]",
		},
		{
			name: "upstream: hash_balance_factor below 1",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: http://o:1\n    upstream:\n      hash_balance_factor: 0.8\n",
			want: "edged.yaml:7: sites[0].upstream.hash_balance_factor: must be 0 (off) or at least 1…",
			line: 7, path: "sites[0].upstream.hash_balance_factor",
		},
		{
			name: "upstream: hash_balance_factor negative",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: http://o:1\n    upstream:\n      hash_balance_factor: -1\n",
			want: "edged.yaml:7: sites[0].upstream.hash_balance_factor: must not be negative, got -1",
			line: 7, path: "sites[0].upstream.hash_balance_factor",
		},
		{
			name: "upstream: hash_balance_factor without ketama",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: http://o:1\n    upstream:\n      policy: least_conn\n      hash_balance_factor: 1.25\n",
			want: "edged.yaml:8: sites[0].upstream.hash_balance_factor: bounds the ketama policy only, not least_conn…",
			line: 8, path: "sites[0].upstream.hash_balance_factor",
		},
		{
			name: "upstream tls: server name with a port",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: https://o:1\n    upstream:\n      tls:\n        server_name: origin.example:443\n",
			want: "edged.yaml:8: sites[0].upstream.tls.server_name: invalid server name \"origin.example:443\"…",
			line: 8, path: "sites[0].upstream.tls.server_name",
		},
		{
			name: "upstream tls: min_version 1.1",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: https://o:1\n    upstream:\n      tls:\n        min_version: \"1.1\"\n",
			want: "edged.yaml:8: sites[0].upstream.tls.min_version: must be 1.2 or 1.3, got \"1.1\"",
			line: 8, path: "sites[0].upstream.tls.min_version",
		},
		{
			name: "wrong type: sequence for string",
			yaml: "# edged\nlisten: [a, b]\n",
			want: "edged.yaml:2: listen: expected a string, got a sequence",
			line: 2, path: "listen",
		},
		{
			name: "wrong type: scalar for mapping",
			yaml: "server: 5\n",
			want: "edged.yaml:1: server: expected a mapping, got an integer",
			line: 1, path: "server",
		},
		{
			name: "wrong type: string for integer",
			yaml: "unknown_host_status: \"404\"\n",
			want: "edged.yaml:1: unknown_host_status: expected an integer, got a string",
			line: 1, path: "unknown_host_status",
		},
		{
			name: "wrong type: string for bool",
			yaml: "log:\n  access: yes\n",
			want: "edged.yaml:2: log.access: expected a boolean (true or false), got a string",
			line: 2, path: "log.access",
		},
		{
			name: "top level not a mapping",
			yaml: "- a\n- b\n",
			want: "edged.yaml:1: expected a mapping, got a sequence",
			line: 1, path: "",
		},
		{
			name: "bad duration",
			yaml: "server:\n  read_timeout: 1s\n\n  idle_timeout: 5 parsecs\n",
			want: `edged.yaml:4: server.idle_timeout: invalid duration "5 parsecs"`,
			line: 4, path: "server.idle_timeout",
		},
		{
			name: "duration without unit",
			yaml: "cache:\n  fill_timeout: 30\n",
			want: `edged.yaml:2: cache.fill_timeout: invalid duration 30: missing unit (like "30s")`,
			line: 2, path: "cache.fill_timeout",
		},
		{
			name: "negative duration",
			yaml: "server:\n  shutdown_timeout: -5s\n",
			want: `edged.yaml:2: server.shutdown_timeout: invalid duration "-5s": must not be negative`,
			line: 2, path: "server.shutdown_timeout",
		},
		{
			name: "bad size",
			yaml: "cache:\n  memory:\n    max_bytes: 12XB\n",
			want: `edged.yaml:3: cache.memory.max_bytes: invalid size "12XB" (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)`,
			line: 3, path: "cache.memory.max_bytes",
		},
		{
			name: "negative size",
			yaml: "server:\n  max_header_bytes: -1\n",
			want: `edged.yaml:2: server.max_header_bytes: invalid size -1: must not be negative`,
			line: 2, path: "server.max_header_bytes",
		},
		{
			name: "weight 0",
			yaml: `sites:
  - name: a
    hosts: [a.example]
    origins:
      - url: http://10.0.0.1:80
        weight: 1
      - url: http://10.0.0.2:80
        name: two
        weight: 0
`,
			want: "edged.yaml:9: sites[0].origins[1].weight: must be at least 1, got 0",
			line: 9, path: "sites[0].origins[1].weight",
		},
		{
			name: "duplicate host across sites",
			yaml: `sites:
  - name: a
    hosts: [x.example, shared.example]
    origins: [{url: "http://o:1"}]
  - name: b
    hosts:
      - Shared.Example
    origins: [{url: "http://o:1"}]
`,
			want: `edged.yaml:7: sites[1].hosts[0]: host "shared.example" is also served by site "a" (sites[0].hosts[1]); a host may appear in only one site`,
			line: 7, path: "sites[1].hosts[0]",
		},
		{
			name: "method not a token",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins: [{url: \"http://o:1\"}]\n    methods: [GET, HEAD, \"BAD METHOD\"]\n",
			want: `edged.yaml:5: sites[0].methods[2]: invalid method "BAD METHOD": want a token such as GET (case-sensitive)`,
			line: 5, path: "sites[0].methods[2]",
		},
		{
			name: "methods without HEAD",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins: [{url: \"http://o:1\"}]\n    methods: [GET, head, POST]\n",
			want: `edged.yaml:5: sites[0].methods: must include HEAD (methods are case-sensitive)`,
			line: 5, path: "sites[0].methods",
		},
		{
			name: "CONNECT method",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins: [{url: \"http://o:1\"}]\n    methods:\n      - GET\n      - HEAD\n      - CONNECT\n",
			want: `edged.yaml:8: sites[0].methods[2]: CONNECT is never forwarded (edged opens no tunnels)`,
			line: 8, path: "sites[0].methods[2]",
		},
		{
			name: "PURGE method",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins: [{url: \"http://o:1\"}]\n    methods: [GET, HEAD, PURGE]\n",
			want: `edged.yaml:5: sites[0].methods[2]: PURGE is answered by edged (purge.tokens, purge.allow_cidrs), never forwarded`,
			line: 5, path: "sites[0].methods[2]",
		},
		{
			name: "optional PROXY protocol without trusted proxies",
			yaml: "server:\n  proxy_protocol: optional\nsites:\n  - name: a\n    hosts: [a]\n    origins: [{url: \"http://o:1\"}]\n",
			want: `edged.yaml:2: server.proxy_protocol: optional needs server.trusted_proxies: any client could send a header naming its address`,
			line: 2, path: "server.proxy_protocol",
		},
		{
			name: "cluster on a wildcard without advertise",
			yaml: "cluster:\n  listen: 0.0.0.0:7080\n  gossip:\n    listen: 10.0.0.1:7946\nsites:\n  - name: a\n    hosts: [a]\n    origins: [{url: \"http://o:1\"}]\n",
			want: `edged.yaml:2: cluster.listen: "0.0.0.0:7080" is a wildcard address: set cluster.advertise to the address the other nodes reach this one at`,
			line: 2, path: "cluster.listen",
		},
		{
			name: "cluster gossip on a wildcard without advertise",
			yaml: "cluster:\n  listen: 10.0.0.1:7080\nsites:\n  - name: a\n    hosts: [a]\n    origins: [{url: \"http://o:1\"}]\n",
			want: `edged.yaml:1: cluster.gossip.listen: "0.0.0.0:7946" is a wildcard address: set cluster.gossip.advertise to the address the other nodes gossip with`,
			line: 1, path: "cluster.gossip.listen",
		},
		{
			name: "cluster duplicate peer",
			yaml: "cluster:\n  listen: 10.0.0.1:7080\n  peers:\n    - {name: a, address: 10.0.0.1:7080}\n    - {name: a, address: 10.0.0.2:7080}\nsites:\n  - name: a\n    hosts: [a]\n    origins: [{url: \"http://o:1\"}]\n",
			want: `edged.yaml:5: cluster.peers[1].name: duplicate node name "a"`,
			line: 5, path: "cluster.peers[1].name",
		},
		{
			name: "trusted proxy not a CIDR",
			yaml: "server:\n  trusted_proxies: [10.0.0.0/8, 10.0.0.1]\nsites:\n  - name: a\n    hosts: [a]\n    origins: [{url: \"http://o:1\"}]\n",
			want: `edged.yaml:2: server.trusted_proxies[1]: invalid CIDR "10.0.0.1"`,
			line: 2, path: "server.trusted_proxies[1]",
		},
		{
			name: "bad wildcard",
			yaml: "sites:\n  - name: a\n    hosts: [\"a*.b\"]\n    origins: [{url: \"http://o:1\"}]\n",
			want: `edged.yaml:3: sites[0].hosts[0]: invalid wildcard "a*.b": use "*.suffix" (any subdomain of suffix) or "*" (every host)`,
			line: 3, path: "sites[0].hosts[0]",
		},
		{
			name: "host with port",
			yaml: "sites:\n  - name: a\n    hosts:\n      - ok.example\n      - a.example:8080\n    origins: [{url: \"http://o:1\"}]\n",
			want: `edged.yaml:5: sites[0].hosts[1]: invalid host "a.example:8080": must not include a port`,
			line: 5, path: "sites[0].hosts[1]",
		},
		{
			name: "unknown_host_status 500",
			yaml: "listen: \":8080\"\nunknown_host_status: 500\n",
			want: "edged.yaml:2: unknown_host_status: must be 421 or 404, got 500",
			line: 2, path: "unknown_host_status",
		},
		{
			name: "a targeted field both edged's own and forwarded (a config from before own_targeted_headers)",
			yaml: "sites:\n  - name: a\n    hosts: [a.example]\n    origins: [{url: \"http://o:1\"}]\n    cache:\n      targeted_headers: [edged-cache-control, CDN-Cache-Control]\n",
			want: "edged.yaml:6: sites[0].cache.targeted_headers[0]: Edged-Cache-Control is also in own_targeted_headers: list edged's own fields (obeyed first, removed from responses) only there, and in targeted_headers the fields to obey after them and forward",
			line: 6, path: "sites[0].cache.targeted_headers[0]",
		},
		{
			name: "an unknown compression coding",
			yaml: "sites:\n  - name: a\n    hosts: [a.example]\n    origins: [{url: \"http://o:1\"}]\n    compression:\n      codings: [br, deflate]\n",
			want: `edged.yaml:6: sites[0].compression.codings[1]: unknown coding "deflate": want br, zstd or gzip`,
			line: 6, path: "sites[0].compression.codings[1]",
		},
		{
			name: "a compression type with parameters",
			yaml: "sites:\n  - name: a\n    hosts: [a.example]\n    origins: [{url: \"http://o:1\"}]\n    compression:\n      types: [\"text/html; charset=utf-8\"]\n",
			want: `edged.yaml:6: sites[0].compression.types[0]: "text/html; charset=utf-8" is not a media type: want type/subtype or type/*, without parameters`,
			line: 6, path: "sites[0].compression.types[0]",
		},
		{
			name: "brotli level out of range",
			yaml: "sites:\n  - name: a\n    hosts: [a.example]\n    origins: [{url: \"http://o:1\"}]\n    compression:\n      brotli_level: 12\n",
			want: "edged.yaml:6: sites[0].compression.brotli_level: …",
			line: 6, path: "sites[0].compression.brotli_level",
		},
		{
			name: "max_object_bytes above max_bytes",
			yaml: "cache:\n  memory:\n    max_bytes: 2MiB\n    max_object_bytes: 4MiB\n",
			want: "edged.yaml:4: cache.memory.max_object_bytes: must not exceed cache.memory.max_bytes (2MiB), got 4MiB",
			line: 4, path: "cache.memory.max_object_bytes",
		},
		{
			name: "max_object_bytes above default max_bytes",
			yaml: "cache:\n  memory:\n    max_object_bytes: 1GiB\n",
			want: "edged.yaml:3: cache.memory.max_object_bytes: must not exceed cache.memory.max_bytes (256MiB), got 1GiB",
			line: 3, path: "cache.memory.max_object_bytes",
		},
		{
			name: "duplicate key",
			yaml: "cache:\n  fill_timeout: 1s\n  fill_timeout: 2s\n",
			want: "edged.yaml:3: cache.fill_timeout: duplicate key (first at line 2)",
			line: 3, path: "cache.fill_timeout",
		},
		{
			name: "duplicate top-level key",
			yaml: "log: {}\nlisten: \":1\"\nlog: {}\n",
			want: "edged.yaml:3: log: duplicate key (first at line 1)",
			line: 3, path: "log",
		},
		{
			name: "empty site entry",
			yaml: "listen: \":8080\"\nsites:\n  - name: \"\"\n",
			want: "edged.yaml:3: sites[0].name: required",
			line: 3, path: "sites[0].name",
			also: []string{
				"edged.yaml:3: sites[0].hosts: required",
				"edged.yaml:3: sites[0].origins: required",
			},
		},
		{
			name: "null site entry",
			yaml: "sites:\n  -\n",
			want: "edged.yaml:2: sites[0].name: required",
			line: 2, path: "sites[0].name",
		},
		{
			name: "empty origin url",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - weight: 2\n",
			want: `edged.yaml:5: sites[0].origins[0].url: required (e.g. "http://127.0.0.1:8081")`,
			line: 5, path: "sites[0].origins[0].url",
		},
		{
			name: "origin URL with path",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: http://o.example:8080/base\n",
			want: `edged.yaml:5: sites[0].origins[0].url: invalid URL "http://o.example:8080/base": must not have a path, got "/base"`,
			line: 5, path: "sites[0].origins[0].url",
		},
		{
			name: "origin URL scheme",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: ftp://o.example\n",
			want: `edged.yaml:5: sites[0].origins[0].url: invalid URL "ftp://o.example": scheme must be http or https`,
			line: 5, path: "sites[0].origins[0].url",
		},
		{
			name: "origin URL userinfo",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: http://u:p@o.example\n",
			want: `edged.yaml:5: sites[0].origins[0].url: invalid URL "http://u:p@o.example": must not contain userinfo`,
			line: 5, path: "sites[0].origins[0].url",
		},
		{
			name: "duplicate origin name",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins:\n      - url: http://o:1\n      - url: https://o:1\n",
			want: `edged.yaml:6: sites[0].origins[1].name: duplicate origin name "o:1" (also sites[0].origins[0].name); set name to tell them apart`,
			line: 6, path: "sites[0].origins[1].name",
		},
		{
			name: "duplicate site name",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins: [{url: \"http://o:1\"}]\n  - name: a\n    hosts: [b]\n    origins: [{url: \"http://o:1\"}]\n",
			want: `edged.yaml:5: sites[1].name: duplicate site name "a" (also sites[0].name)`,
			line: 5, path: "sites[1].name",
		},
		{
			name: "bad site name",
			yaml: "sites:\n  - name: My Site\n    hosts: [a]\n    origins: [{url: \"http://o:1\"}]\n",
			want: `edged.yaml:2: sites[0].name: must match [a-z0-9_-]+, got "My Site"`,
			line: 2, path: "sites[0].name",
		},
		{
			name: "heuristic fraction",
			yaml: "sites:\n  - name: a\n    hosts: [a]\n    origins: [{url: \"http://o:1\"}]\n    cache:\n      heuristic_fraction: 0\n",
			want: `edged.yaml:6: sites[0].cache.heuristic_fraction: must be greater than 0 and at most 1, got 0`,
			line: 6, path: "sites[0].cache.heuristic_fraction",
		},
		{
			name: "listen without port",
			yaml: "listen: 127.0.0.1\n",
			want: `edged.yaml:1: listen: invalid address "127.0.0.1": want host:port, e.g. "127.0.0.1:8080"`,
			line: 1, path: "listen",
		},
		{
			name: "bad log level",
			yaml: "log:\n  level: verbose\n",
			want: `edged.yaml:2: log.level: must be one of debug, info, warn, error; got "verbose"`,
			line: 2, path: "log.level",
		},
		{
			name: "max_header_bytes out of range",
			yaml: "server:\n  max_header_bytes: 512B\n",
			want: `edged.yaml:2: server.max_header_bytes: must be between 1KiB and 16MiB, got 512B`,
			line: 2, path: "server.max_header_bytes",
		},
		{
			name: "admit_window too small",
			yaml: "cache:\n  disk:\n    admit_window: 10\n",
			want: `edged.yaml:3: cache.disk.admit_window: must be between 1024 and 16777216, got 10`,
			line: 3, path: "cache.disk.admit_window",
		},
		{
			name: "zero idle timeout",
			yaml: "server:\n  idle_timeout: 0s\n",
			want: `edged.yaml:2: server.idle_timeout: must be greater than 0, got 0s`,
			line: 2, path: "server.idle_timeout",
		},
		{
			name: "merge key",
			yaml: "base: &b {fill_timeout: 1s}\n",
			want: "edged.yaml:1: base: unknown key (known: …",
			line: 1, path: "base",
		},
		{
			name: "merge key in mapping",
			yaml: "cache:\n  <<: {fill_timeout: 1s}\n",
			want: "edged.yaml:2: cache.<<: merge keys are not supported",
			line: 2, path: "cache.<<",
		},
		{
			name: "multiple documents",
			yaml: "listen: \":8080\"\n---\nlisten: \":8081\"\n",
			want: "edged.yaml:2: multiple YAML documents; the configuration must be a single document",
			line: 2, path: "",
		},
		{
			name: "syntax error",
			// The YAML parser reports the line of the enclosing block mapping.
			yaml: "cache:\n  fill_timeout: 1s\n memory: {}\n",
			want: "edged.yaml:2: invalid YAML: did not find expected key",
			line: 2, path: "",
		},
		{
			name: "several errors are all reported, in line order",
			yaml: "log:\n  level: loud\nunknown_host_status: 200\n",
			want: `edged.yaml:2: log.level: must be one of debug, info, warn, error; got "loud"`,
			line: 2, path: "log.level",
			also: []string{"\nedged.yaml:3: unknown_host_status: must be 421 or 404, got 200"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse("edged.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a Config with an error")
			}
			msg := err.Error()
			first, _, _ := strings.Cut(msg, "\n")
			if prefix, ok := strings.CutSuffix(tc.want, "…"); ok {
				if !strings.HasPrefix(first, prefix) {
					t.Errorf("error:\n got %q\nwant prefix %q", first, prefix)
				}
			} else if first != tc.want {
				t.Errorf("error:\n got %q\nwant %q", first, tc.want)
			}
			for _, s := range tc.also {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *config.Error", err)
			}
			if ce.File != "edged.yaml" || ce.Line != tc.line || ce.Path != tc.path {
				t.Errorf("Error{File: %q, Line: %d, Path: %q}, want {edged.yaml, %d, %q}",
					ce.File, ce.Line, ce.Path, tc.line, tc.path)
			}
		})
	}
}

func TestAliases(t *testing.T) {
	c, err := config.Parse("edged.yaml", []byte(`
sites:
  - name: a
    hosts: [a.example]
    origins: [{url: "http://o:1"}]
    upstream: &up {dial_timeout: 2s}
  - name: b
    hosts: [b.example]
    origins: [{url: "http://o:2"}]
    upstream: *up
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sites[1].Upstream.DialTimeout.Std(); got != 2*time.Second {
		t.Errorf("aliased dial_timeout = %v, want 2s", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *config.Config)
		want   string // "" = valid
	}{
		{"default", func(*config.Config) {}, ""},
		{"flag listen", func(c *config.Config) { c.Listen = "0.0.0.0:80" }, ""},
		{"bad listen", func(c *config.Config) { c.Listen = "nope" },
			`listen: invalid address "nope": want host:port, e.g. "127.0.0.1:8080"`},
		{"bad admin port", func(c *config.Config) { c.Admin.Listen = "localhost:http" },
			`admin.listen: invalid port "http" in address "localhost:http": want a number from 0 to 65535`},
		{"same listeners", func(c *config.Config) { c.Admin.Listen = c.Listen },
			`admin.listen: must differ from listen (both are "127.0.0.1:8080")`},
		{"short admin token", func(c *config.Config) { c.Admin.Tokens = []config.AdminToken{{Name: "a", Token: "short"}} },
			`admin.tokens[0].token: must be at least 16 characters`},
		{"duplicate admin token name", func(c *config.Config) {
			c.Admin.Tokens = []config.AdminToken{{Name: "a", Token: "0123456789abcdef"}, {Name: "a", Token: "fedcba9876543210"}}
		}, `admin.tokens[1].name: duplicate token name "a"`},
		{"origin flag", func(c *config.Config) {
			c.Sites = []config.Site{config.NewSite("default", []string{"*"}, "http://127.0.0.1:8081")}
		}, ""},
		{"origin flag with bad URL", func(c *config.Config) {
			c.Sites = []config.Site{config.NewSite("default", []string{"*"}, "127.0.0.1:8081")}
		}, `sites[0].origins[0].url: invalid URL "127.0.0.1:8081": …`},
		{"uppercase host set in code", func(c *config.Config) {
			c.Sites = []config.Site{config.NewSite("x", []string{"A.example"}, "http://o:1")}
		}, `sites[0].hosts[0]: host "A.example" must be lowercase`},
		{"negative duration set in code", func(c *config.Config) { c.Server.ReadTimeout = -1 },
			"server.read_timeout: must not be negative, got -1ns"},
		{"methods without GET set in code", func(c *config.Config) {
			s := config.NewSite("x", []string{"x"}, "http://o:1")
			s.Methods = []string{"HEAD", "POST"}
			c.Sites = []config.Site{s}
		}, "sites[0].methods: must include GET (methods are case-sensitive)"},
		{"TRACE and a WebDAV method", func(c *config.Config) {
			s := config.NewSite("x", []string{"x"}, "http://o:1")
			s.Methods = []string{"GET", "HEAD", "TRACE", "PROPFIND"}
			c.Sites = []config.Site{s}
		}, ""},
		{"origin without name", func(c *config.Config) {
			s := config.NewSite("x", []string{"x"})
			s.Origins = []config.Origin{{URL: "http://o:1", Weight: 1}}
			c.Sites = []config.Site{s}
		}, "sites[0].origins[0].name: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			tc.change(c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want == "":
			case err == nil:
				t.Errorf("Validate() = nil, want %q", tc.want)
			default:
				got, _, _ := strings.Cut(err.Error(), "\n")
				if prefix, ok := strings.CutSuffix(tc.want, "…"); ok {
					if !strings.HasPrefix(got, prefix) {
						t.Errorf("Validate():\n got %q\nwant prefix %q", got, prefix)
					}
				} else if got != tc.want {
					t.Errorf("Validate():\n got %q\nwant %q", got, tc.want)
				}
			}
		})
	}
}
