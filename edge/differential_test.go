package edge_test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/cache/coding"
	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/edge/rules"
	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb"
)

// diffOrigin serves the resources of the differential test: cacheable
// ones with and without validators, type and Vary, a large one, and ones
// that must not be served from the cache.
func diffOrigin(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "max-age=3600")
	switch r.URL.Path {
	case "/etag":
		hd.Set("Content-Type", "text/plain; charset=utf-8")
		hd.Set("Etag", `"v1"`)
		hd.Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		hd.Set("Surrogate-Key", "a b") // dropped by the edge
		hd.Add("X-Multi", "one")
		hd.Add("X-Multi", "two")
		io.WriteString(w, "0123456789abcdefghij")
	case "/big":
		hd.Set("Content-Type", "application/octet-stream")
		w.Write(bytes.Repeat([]byte("0123456789abcdef"), 8<<10))
	case "/notype":
		w.Write([]byte("<html><body>sniff me</body></html>"))
	case "/vary":
		hd.Set("Content-Type", "text/plain")
		hd.Set("Vary", "Accept-Language")
		io.WriteString(w, "lang="+r.Header.Get("Accept-Language"))
	case "/nocache":
		hd.Set("Cache-Control", "no-cache")
		hd.Set("Content-Type", "text/plain")
		io.WriteString(w, "revalidate me")
	case "/nocachefield":
		hd.Set("Cache-Control", `max-age=3600, no-cache="X-User"`)
		hd.Set("Content-Type", "text/plain")
		hd.Set("X-User", "alice") // withheld from every reuse
		hd.Set("Etag", `"u1"`)
		io.WriteString(w, "shared body")
	case "/dated":
		hd.Set("Content-Type", "text/plain")
		hd.Set("Date", "Sat, 05 Dec 2026 10:00:00 GMT")
		io.WriteString(w, "dated")
	case "/html": // compressed by the edge into br, zstd and gzip
		hd.Set("Content-Type", "text/html")
		hd.Set("Etag", `"h1"`)
		w.Write(page[:4096])
	case "/empty":
		hd.Set("Content-Type", "text/plain")
	case "/unknown-status": // stored: a status edged does not recognise, with max-age
		hd.Set("Content-Type", "text/plain")
		w.WriteHeader(599)
		io.WriteString(w, "599")
	default:
		hd.Set("Content-Type", "text/plain")
		io.WriteString(w, "path="+r.URL.RequestURI())
	}
}

// diffRules are the differential site's rules: one that matches every
// request and changes only what is stored (hits stay on the fast path),
// and some that the fast path must leave to the general path.
var diffRules = []rules.Spec{
	{Name: "cap", Cache: rules.Cache{MaxTTL: 30 * time.Minute}},
	{Name: "hdr", Match: rules.Match{Paths: []string{"/r/*"}}, ResponseHeaders: rules.HeaderOps{Set: []string{"X-R: {path}"}, Add: []string{"Vary: X-R"}}},
	{Name: "browser", Match: rules.Match{Paths: []string{"/b/*"}}, Cache: rules.Cache{BrowserTTL: time.Minute}},
	{Name: "sortq", Match: rules.Match{Paths: []string{"/k*"}}, Key: rules.Key{Query: "sort"}},
	{Name: "deny", Match: rules.Match{Paths: []string{"/deny"}}, Respond: rules.Respond{Status: 403, Body: "no {path}"}},
	{Name: "go", Match: rules.Match{Query: []string{"go"}}, Redirect: rules.Redirect{Status: 302, Location: "/{query.go}"}},
	{Name: "skip", Match: rules.Match{Headers: []string{"X-Skip"}}, Cache: rules.Cache{Bypass: true}},
	{Name: "client", Match: rules.Match{Clients: []string{"203.0.113.0/24"}}, Respond: rules.Respond{Status: 403, Body: "client {client_ip}"}},
	{Name: "few", Match: rules.Match{Paths: []string{"/few"}}, RateLimit: rules.RateLimit{Rate: 1.0 / 3600, Burst: 2}},
}

// diffEdge is one edge stack of the differential test: its own cache,
// handler and server, on a fixed clock so Age and Cache-Status agree.
func diffEdge(t *testing.T, origin, mode string, now func() time.Time) (addr string, reg *prometheus.Registry) {
	t.Helper()
	return diffEdgeTB(t, origin, mode, now)
}

func diffEdgeTB(t testing.TB, origin, mode string, now func() time.Time) (addr string, reg *prometheus.Registry) {
	t.Helper()
	pool, err := lb.NewPool(lb.Config{Name: "d", Shards: []lb.Shard{{Name: "o", URL: origin, Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.CloseIdleConnections)
	c, err := cache.New(cache.Config{MaxBytes: 64 << 20, FillTimeout: time.Minute, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reg = prometheus.NewRegistry()
	m, err := edge.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	site := &edge.Site{Name: "d", Hosts: []string{"example.com", "*.example.com"}, Origin: pool, Compression: coding.Config{Enabled: true}}
	withRules(t, diffRules...)(site)
	// Sites that refuse the test's client: by its rate limit after two
	// requests, and by their address list.
	limited := &edge.Site{Name: "l", Hosts: []string{"limited.test"}, Origin: pool, RateLimit: rules.RateLimit{Rate: 1.0 / 3600, Burst: 2}}
	denied := &edge.Site{Name: "n", Hosts: []string{"denied.test"}, Origin: pool, DenyClients: []string{"127.0.0.0/8"}}
	h, err := edge.New(edge.Config{Sites: []*edge.Site{site, limited, denied}, Cache: c, Metrics: m, Now: now,
		StripResponseHeaders: []string{"Surrogate-Key"}, WriteTimeout: time.Minute,
		TrustedProxies: []string{"127.0.0.0/8"}}) // the test's clients are trusted proxies
	if err != nil {
		t.Fatal(err)
	}
	srv, err := edge.NewServer(h, edge.ServerConfig{HTTP1: mode, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), reg
}

// The edge answers one corpus of requests identically (every field but
// Date, every body byte) whether edged's own HTTP/1 loop serves it, cache
// hits on its fast path, or net/http does; and the fast path answers the
// hits it should (the test fails if it never does).
func TestEdgeSameAnswersBothServers(t *testing.T) {
	origin := testkit.NewOrigin(t, http.HandlerFunc(diffOrigin))
	clock := time.Date(2026, 12, 5, 10, 0, 5, 0, time.UTC)
	now := func() time.Time { return clock }
	ours, reg := diffEdge(t, origin.URL, edge.HTTP1Edged, now)
	ref, _ := diffEdge(t, origin.URL, edge.HTTP1NetHTTP, now)

	get := func(path string, fields ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: www.example.com\r\n" + strings.Join(fields, "") + "\r\n"
	}
	head := func(path string) string { return "HEAD " + path + " HTTP/1.1\r\nHost: www.example.com\r\n\r\n" }
	on := func(host, raw string) string { return strings.ReplaceAll(raw, "Host: www.example.com", "Host: "+host) }
	one, two := []string{"GET"}, []string{"GET", "GET"}
	cases := []struct {
		name    string
		raw     string
		methods []string
	}{
		{"miss then hit", get("/etag") + get("/etag"), two},
		{"hit HEAD", head("/etag"), []string{"HEAD"}},
		{"hit big", get("/big") + get("/big"), two},
		{"hit HEAD big", head("/big"), []string{"HEAD"}},
		{"no Content-Type stored", get("/notype") + get("/notype"), two},
		{"Vary", get("/vary", "Accept-Language: de\r\n") + get("/vary", "Accept-Language: de\r\n") + get("/vary", "Accept-Language: fr\r\n"), []string{"GET", "GET", "GET"}},
		{"no-cache stored", get("/nocache") + get("/nocache"), two},
		{"Date stored", get("/dated") + get("/dated"), two},
		{"If-Modified-Since against Date", get("/dated", "If-Modified-Since: Sat, 05 Dec 2026 10:00:00 GMT\r\n"), one},
		{"qualified no-cache stored", get("/nocachefield") + get("/nocachefield") + head("/nocachefield"), []string{"GET", "GET", "HEAD"}},
		{"qualified no-cache 304", get("/nocachefield", "If-None-Match: \"u1\"\r\n"), one},
		{"empty body", get("/empty") + get("/empty") + head("/empty"), []string{"GET", "GET", "HEAD"}},
		{"unknown status stored", get("/unknown-status") + get("/unknown-status") + head("/unknown-status"), []string{"GET", "GET", "HEAD"}},
		{"If-None-Match match", get("/etag", "If-None-Match: \"v1\"\r\n"), one},
		{"If-None-Match weak", get("/etag", "If-None-Match: W/\"v1\", \"x\"\r\n"), one},
		{"If-None-Match other", get("/etag", "If-None-Match: \"v0\"\r\n"), one},
		{"If-None-Match star", get("/etag", "If-None-Match: *\r\n"), one},
		{"If-None-Match twice", get("/etag", "If-None-Match: \"v0\"\r\nIf-None-Match: \"v1\"\r\n"), one},
		{"If-Modified-Since later", get("/etag", "If-Modified-Since: Tue, 03 Jan 2006 15:04:05 GMT\r\n"), one},
		{"If-Modified-Since earlier", get("/etag", "If-Modified-Since: Sun, 01 Jan 2006 15:04:05 GMT\r\n"), one},
		{"If-Modified-Since garbage", get("/etag", "If-Modified-Since: yesterday\r\n"), one},
		{"Range", get("/etag", "Range: bytes=2-5\r\n"), one},
		{"Range suffix", get("/etag", "Range: bytes=-3\r\n"), one},
		{"Range open", get("/big", "Range: bytes=100000-\r\n"), one},
		{"Range unsatisfiable", get("/etag", "Range: bytes=50-\r\n"), one},
		{"Range several", get("/etag", "Range: bytes=0-1,4-5\r\n"), one},
		{"Range invalid", get("/etag", "Range: lines=1-2\r\n"), one},
		{"If-Range match", get("/etag", "Range: bytes=0-3\r\nIf-Range: \"v1\"\r\n"), one},
		{"If-Range other", get("/etag", "Range: bytes=0-3\r\nIf-Range: \"v0\"\r\n"), one},
		{"Range on HEAD", "HEAD /etag HTTP/1.1\r\nHost: www.example.com\r\nRange: bytes=0-3\r\n\r\n", []string{"HEAD"}},
		{"304 and Range", get("/etag", "If-None-Match: \"v1\"\r\nRange: bytes=0-3\r\n"), one},
		{"HTTP/1.0", "GET /etag HTTP/1.0\r\nHost: www.example.com\r\n\r\n", one},
		{"HTTP/1.0 keep-alive", "GET /etag HTTP/1.0\r\nHost: www.example.com\r\nConnection: keep-alive\r\n\r\nGET /big HTTP/1.0\r\nHost: www.example.com\r\nConnection: Keep-Alive\r\n\r\n", two},
		{"Connection close", get("/etag", "Connection: close\r\n") + get("/etag"), two},
		{"pipelined", get("/etag") + head("/big") + get("/etag", "Range: bytes=1-1\r\n") + get("/zzz") + get("/etag"), []string{"GET", "HEAD", "GET", "GET", "GET"}},
		{"request Cache-Control", get("/etag", "Cache-Control: max-age=0\r\n"), one},
		{"request Pragma", get("/etag", "Pragma: no-cache\r\n"), one},
		{"Authorization", get("/etag", "Authorization: Basic eDp5\r\n"), one},
		{"Host case and port", "GET /etag HTTP/1.1\r\nHost: WWW.Example.COM:80\r\n\r\n", one},
		{"Host twice", "GET /etag HTTP/1.1\r\nHost: www.example.com\r\nHost: www.example.com\r\n\r\n", one},
		{"no Host", "GET /etag HTTP/1.1\r\n\r\n", one},
		{"unknown host", "GET /etag HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n", one},
		{"absolute form", "GET http://www.example.com/etag HTTP/1.1\r\nHost: www.example.com\r\n\r\n", one},
		{"escaped path", get("/%65tag") + get("/./etag") + get("/a/../etag"), []string{"GET", "GET", "GET"}},
		{"query", get("/q?b=2&a=1") + get("/q?b=2&a=1") + get("/q?a=1&b=2"), []string{"GET", "GET", "GET"}},
		{"query kept as sent", get("/q?a=%7e&&b=1") + get("/q?a=%7e&&b=1") + get("/q?a=~&b=1") + get("/q?"), []string{"GET", "GET", "GET", "GET"}},
		{"Host trailing dot", "GET /etag HTTP/1.1\r\nHost: www.example.com.\r\n\r\n", one},
		{"odd path bytes", get("/x%zz") + get("/x'y(z)*!") + get("/x'y(z)*!"), []string{"GET", "GET", "GET"}},
		{"websocket upgrade", get("/etag", "Upgrade: websocket\r\nConnection: Upgrade\r\n"), one},
		{"POST", "POST /etag HTTP/1.1\r\nHost: www.example.com\r\nContent-Length: 2\r\n\r\nhi" + get("/etag"), []string{"POST", "GET"}},
		{"PURGE", "PURGE /etag HTTP/1.1\r\nHost: www.example.com\r\n\r\n", one},
		{"bad request", "GET /etag HTTP/1.1\r\nHost: www.example.com\r\nBad Field: x\r\n\r\n", one},
		{"rule response fields", get("/r/a") + get("/r/a") + head("/r/a"), []string{"GET", "GET", "HEAD"}},
		{"rule browser TTL", get("/b/a") + get("/b/a"), two},
		{"rule key", get("/k?b=1&a=2") + get("/k?a=2&b=1"), two},
		{"rule respond", get("/deny") + head("/deny"), []string{"GET", "HEAD"}},
		{"rule redirect", get("/etag?go=big"), one},
		{"rule bypass", get("/etag", "X-Skip: 1\r\n"), one},
		{"forwarded client matched", get("/etag", "X-Forwarded-For: 203.0.113.9\r\n"), one},
		{"forwarded client past trusted hops", get("/etag", "X-Forwarded-For: 198.51.100.1, 203.0.113.9, 127.0.0.9\r\n"), one},
		{"forwarded client not matched", get("/etag", "X-Forwarded-For: 203.0.113.9, 198.51.100.1\r\n"), one},
		{"forwarded client over lines", get("/etag", "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 127.0.0.5\r\n"), one},
		{"forwarded client malformed", get("/etag", "X-Forwarded-For: 203.0.113.9, junk\r\n"), one},
		{"forwarded client bracketed with port", get("/etag", "X-Forwarded-For: [2001:db8::1]:80, 203.0.113.7:8080\r\n"), one},
		{"forwarded client over nine lines", get("/etag", "X-Forwarded-For: 203.0.113.9\r\n"+strings.Repeat("X-Forwarded-For: 127.0.0.5\r\n", 8)), one},
		{"compressed fill and hits", get("/html", "Accept-Encoding: br\r\n") + get("/html", "Accept-Encoding: gzip\r\n") + get("/html", "Accept-Encoding: zstd\r\n") + get("/html"),
			[]string{"GET", "GET", "GET", "GET"}},
		{"compressed q-values", get("/html", "Accept-Encoding: br;q=0.1, gzip;q=0.9\r\n") + get("/html", "Accept-Encoding: *;q=0\r\n") + get("/html", "Accept-Encoding: identity\r\n"), []string{"GET", "GET", "GET"}},
		{"compressed Accept-Encoding twice", get("/html", "Accept-Encoding: gzip;q=0.5\r\nAccept-Encoding: zstd\r\n"), one},
		{"compressed HEAD", "HEAD /html HTTP/1.1\r\nHost: www.example.com\r\nAccept-Encoding: gzip\r\n\r\n", []string{"HEAD"}},
		{"compressed Range", get("/html", "Accept-Encoding: zstd\r\nRange: bytes=5-20\r\n"), one},
		{"compressed If-Range identity tag", get("/html", "Accept-Encoding: zstd\r\nRange: bytes=5-20\r\nIf-Range: \"h1\"\r\n"), one},
		{"compressed If-None-Match identity tag", get("/html", "Accept-Encoding: br\r\nIf-None-Match: \"h1\"\r\n"), one},
		{"compressed If-None-Match own tag", get("/html", "Accept-Encoding: br\r\nIf-None-Match: \"h1-br\"\r\n"), one},
		{"rule rate limit", get("/few") + get("/few") + get("/few") + head("/few"), []string{"GET", "GET", "GET", "HEAD"}},
		{"site rate limit", on("limited.test", get("/etag")+get("/etag")+get("/etag")+head("/etag")), []string{"GET", "GET", "GET", "HEAD"}},
		{"site deny list", on("denied.test", get("/etag")+head("/etag")), []string{"GET", "HEAD"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := testkit.Exchange(t, ref, tc.raw, tc.methods)
			got := testkit.Exchange(t, ours, tc.raw, tc.methods)
			if !slices.Equal(got, want) {
				t.Errorf("edged's loop answered\n%s\n\nnet/http answered\n%s", strings.Join(got, "\n--\n"), strings.Join(want, "\n--\n"))
			}
		})
	}
	n, _ := testkit.Metric(t, reg, "edged_fast_path_responses_total")
	if n < 20 {
		t.Errorf("the fast path answered %v requests of the corpus, want at least 20", n)
	}
	t.Logf("the fast path answered %v requests", n)
}

// FuzzEdgeBothServers is the differential test with random request
// targets and fields: two pipelined GETs, then a HEAD, with what the
// fuzzer chose, must get the same answers (every field but Date, every
// body byte) from the edge on edged's loop and on net/http, and never a
// badly framed one.
func FuzzEdgeBothServers(f *testing.F) {
	for _, seed := range [][2]string{
		{"/etag", ""},
		{"/etag", "If-None-Match: \"v1\"\r\n"},
		{"/etag", "Range: bytes=2-5\r\nIf-Range: \"v1\"\r\n"},
		{"/big", "Range: bytes=-3\r\n"},
		{"/notype", ""},
		{"/vary", "Accept-Language: de\r\n"},
		{"/q?b=2&a=1", "Connection: close\r\n"},
		{"/%65tag", "If-Modified-Since: Tue, 03 Jan 2006 15:04:05 GMT\r\n"},
		{"/etag", "Cache-Control: max-age=0\r\n"},
		{"http://www.example.com/etag", ""},
		{"/r/x", ""},
		{"/k?z=1&a=2", ""},
		{"/etag?go=etag", "X-Skip: 1\r\n"},
		{"/etag", "X-Forwarded-For: 1.2.3.4, 203.0.113.9, 127.0.0.2\r\n"},
		{"/etag", "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: junk, 198.51.100.1\r\n"},
		{"/html", "Accept-Encoding: gzip, br;q=0.5\r\n"},
		{"/html", "Accept-Encoding: zstd\r\nRange: bytes=1-9\r\n"},
	} {
		f.Add(seed[0], seed[1])
	}
	origin := testkit.NewOrigin(f, http.HandlerFunc(diffOrigin))
	clock := time.Date(2026, 12, 5, 10, 0, 5, 0, time.UTC)
	now := func() time.Time { return clock }
	ours, _ := diffEdgeTB(f, origin.URL, edge.HTTP1Edged, now)
	ref, _ := diffEdgeTB(f, origin.URL, edge.HTTP1NetHTTP, now)
	f.Fuzz(func(t *testing.T, target, fields string) {
		if strings.ContainsAny(target, " \r\n") || fields != "" && !strings.HasSuffix(fields, "\r\n") ||
			strings.Contains(fields, "\n\r\n") || strings.Contains(fields, "\n\n") || strings.HasPrefix(fields, "\r\n") {
			t.Skip("not one request head per request: both servers would wait for the rest")
		}
		req := func(method string) string {
			return method + " " + target + " HTTP/1.1\r\nHost: www.example.com\r\n" + fields + "\r\n"
		}
		raw := req("GET") + req("GET") + req("HEAD")
		methods := []string{"GET", "GET", "HEAD"}
		want := testkit.Exchange(t, ref, raw, methods)
		got := testkit.Exchange(t, ours, raw, methods)
		if !slices.Equal(got, want) {
			t.Errorf("for %q: edged's loop answered\n%s\n\nnet/http answered\n%s", raw, strings.Join(got, "\n--\n"), strings.Join(want, "\n--\n"))
		}
		for _, r := range got {
			if r == "error: timeout" || r == "error: other" {
				t.Errorf("for %q: %s", raw, r)
			}
		}
	})
}
