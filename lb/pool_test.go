package lb_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/lb"
)

func threeShards(t *testing.T) []lb.Shard {
	t.Helper()
	var shards []lb.Shard
	for _, name := range []string{"a", "b", "c"} {
		shards = append(shards, lb.Shard{Name: name, URL: testOrigin(t, name).URL})
	}
	return shards
}

func TestRoutingIsStableAndSpreads(t *testing.T) {
	p := newPool(t, lb.Config{Name: "site", Shards: threeShards(t)})

	t.Run("route key", func(t *testing.T) {
		seen := make(map[string]int)
		for i := range 60 {
			key := fmt.Sprintf("http://site.example/obj/%d", i)
			want := p.Pick(key)
			for range 2 {
				resp, _, route, err := send(t, p, newRequest(t, "GET", "http://site.example/ignored", nil), key)
				if err != nil {
					t.Fatalf("key %q: %v", key, err)
				}
				if got := resp.Header.Get(hdrOrigin); got != want {
					t.Fatalf("key %q answered by %q, Pick says %q", key, got, want)
				}
				if route.Shard != want || route.Attempts != 1 {
					t.Fatalf("key %q: Route = %+v, want Shard %q, Attempts 1", key, route, want)
				}
			}
			seen[want]++
		}
		if len(seen) != 3 {
			t.Errorf("60 keys used shards %v, want all 3", seen)
		}
	})

	t.Run("default key", func(t *testing.T) {
		for i := range 30 {
			u := fmt.Sprintf("http://site.example/obj/%d?v=1", i)
			resp, err := p.RoundTrip(newRequest(t, "GET", u, nil))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got, want := resp.Header.Get(hdrOrigin), p.Pick(u); got != want {
				t.Fatalf("%s answered by %q, Pick(%q) = %q", u, got, u, want)
			}
		}
	})
}

func TestRequestRewrite(t *testing.T) {
	srv := testOrigin(t, "a")
	shardHost := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name     string
		shardURL string
		url      string
		host     string // request Host override; "" keeps the URL's
		wantHost string
		wantURI  string
	}{
		{"host from URL", srv.URL, "http://site.example/a/b?x=1&y=2", "", "site.example", "/a/b?x=1&y=2"},
		{"host override", srv.URL, "http://site.example/p", "other.example:8443", "other.example:8443", "/p"},
		{"escaped path", srv.URL + "/", "http://site.example/a%2Fb/c%20d?q=%26", "", "site.example", "/a%2Fb/c%20d?q=%26"},
		{"root", srv.URL, "http://site.example", "", "site.example", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, lb.Config{Shards: []lb.Shard{{URL: tt.shardURL}}})
			req := newRequest(t, "GET", tt.url, nil)
			if tt.host != "" {
				req.Host = tt.host
			}
			origURL := req.URL.String()
			resp, _, route, err := send(t, p, req, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Header.Get(hdrHost); got != tt.wantHost {
				t.Errorf("origin saw Host %q, want %q", got, tt.wantHost)
			}
			if got := resp.Header.Get(hdrURI); got != tt.wantURI {
				t.Errorf("origin saw request URI %q, want %q", got, tt.wantURI)
			}
			if req.URL.String() != origURL {
				t.Errorf("caller's request URL changed to %q", req.URL)
			}
			if route.Shard != shardHost {
				t.Errorf("Route.Shard = %q, want the default name %q", route.Shard, shardHost)
			}
		})
	}
}

func TestFailover(t *testing.T) {
	reg := prometheus.NewRegistry()
	clock := newFakeClock()
	var logs bytes.Buffer // written synchronously inside RoundTrip
	const downFor = 10 * time.Second
	p := newPool(t, lb.Config{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Name:   "site",
		Shards: []lb.Shard{
			{Name: "dead", URL: deadURL(t)},
			{Name: "b", URL: testOrigin(t, "b").URL},
			{Name: "c", URL: testOrigin(t, "c").URL},
		},
		DownFor: downFor,
		Metrics: lb.NewMetrics(reg),
		Now:     clock.Now,
	})
	key := keyOwnedBy(t, p, "dead")
	labels := func(shard string) map[string]string { return map[string]string{"pool": "site", "shard": shard} }

	get := func(wantAttempts int) lb.Route {
		t.Helper()
		resp, _, route, err := send(t, p, newRequest(t, "GET", "http://site.example/x", nil), key)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		if route.Shard == "dead" || resp.Header.Get(hdrOrigin) != route.Shard {
			t.Fatalf("answered by %q, Route.Shard = %q", resp.Header.Get(hdrOrigin), route.Shard)
		}
		if route.Attempts != wantAttempts {
			t.Fatalf("Attempts = %d, want %d", route.Attempts, wantAttempts)
		}
		return route
	}

	first := get(2)
	if got := metricValue(t, reg, "edged_upstream_failovers_total", labels("dead")); got != 1 {
		t.Errorf("failovers{shard=dead} = %v, want 1", got)
	}
	if got := metricValue(t, reg, "edged_upstream_shard_up", labels("dead")); got != 0 {
		t.Errorf("shard_up{shard=dead} = %v, want 0", got)
	}
	if got := metricValue(t, reg, "edged_upstream_shard_up", labels(first.Shard)); got != 1 {
		t.Errorf("shard_up{shard=%s} = %v, want 1", first.Shard, got)
	}
	errLabels := labels("dead")
	errLabels["code"] = "error"
	if got := metricValue(t, reg, "edged_upstream_requests_total", errLabels); got != 1 {
		t.Errorf("requests_total{shard=dead,code=error} = %v, want 1", got)
	}

	// Within DownFor the dead shard is skipped.
	clock.Advance(downFor - time.Nanosecond)
	if again := get(1); again.Shard != first.Shard {
		t.Errorf("while down, answered by %q, first failover went to %q", again.Shard, first.Shard)
	}
	if got := metricValue(t, reg, "edged_upstream_failovers_total", labels("dead")); got != 1 {
		t.Errorf("failovers{shard=dead} = %v after a skip, want still 1", got)
	}

	// After DownFor it is tried again.
	clock.Advance(time.Nanosecond)
	if got := metricValue(t, reg, "edged_upstream_shard_up", labels("dead")); got != 1 {
		t.Errorf("shard_up{shard=dead} = %v after DownFor, want 1", got)
	}
	get(2)
	if got := metricValue(t, reg, "edged_upstream_failovers_total", labels("dead")); got != 2 {
		t.Errorf("failovers{shard=dead} = %v, want 2", got)
	}
	if n := strings.Count(logs.String(), "upstream shard marked down"); n != 2 {
		t.Errorf("logged %d shard-down lines, want 2 (one per transition):\n%s", n, logs.String())
	}
}

// opaqueReader hides its type from http.NewRequest, which then sets no GetBody.
type opaqueReader struct{ io.Reader }

func TestFailoverOnlyForReplayableRequests(t *testing.T) {
	const payload = "payload"
	tests := []struct {
		name   string
		method string
		body   func() io.Reader
		retry  bool
	}{
		{"GET", "GET", nil, true},
		{"HEAD", "HEAD", nil, true},
		{"DELETE", "DELETE", nil, true},
		{"PUT with GetBody", "PUT", func() io.Reader { return strings.NewReader(payload) }, true},
		{"PUT without GetBody", "PUT", func() io.Reader { return opaqueReader{strings.NewReader(payload)} }, false},
		{"POST with GetBody", "POST", func() io.Reader { return strings.NewReader(payload) }, false},
		{"POST without body", "POST", nil, false},
		{"PATCH", "PATCH", func() io.Reader { return strings.NewReader(payload) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			p := newPool(t, lb.Config{
				Name: "site",
				Shards: []lb.Shard{
					{Name: "dead", URL: deadURL(t)},
					{Name: "live", URL: testOrigin(t, "live").URL},
				},
				Metrics: lb.NewMetrics(reg),
			})
			key := keyOwnedBy(t, p, "dead")
			var body io.Reader
			if tt.body != nil {
				body = tt.body()
			}
			resp, got, route, err := send(t, p, newRequest(t, tt.method, "http://site.example/x", body), key)
			failovers := metricValue(t, reg, "edged_upstream_failovers_total", map[string]string{"pool": "site", "shard": "dead"})

			if !tt.retry {
				var de *lb.DialError
				if !errors.As(err, &de) || de.Shard != "dead" {
					t.Fatalf("err = %v, want a *DialError for shard dead", err)
				}
				var op *net.OpError
				if !errors.As(err, &op) || op.Op != "dial" {
					t.Errorf("err = %v does not unwrap to a dial *net.OpError", err)
				}
				if route.Shard != "dead" || route.Attempts != 1 {
					t.Errorf("Route = %+v, want Shard dead, Attempts 1", route)
				}
				if failovers > 0 {
					t.Errorf("failovers = %v, want none", failovers)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want failover to succeed", err)
			}
			if route.Shard != "live" || route.Attempts != 2 {
				t.Errorf("Route = %+v, want Shard live, Attempts 2", route)
			}
			if m := resp.Header.Get(hdrMethod); m != tt.method {
				t.Errorf("origin saw method %q, want %q", m, tt.method)
			}
			if tt.body != nil && string(got) != payload {
				t.Errorf("origin received body %q, want %q", got, payload)
			}
			if failovers != 1 {
				t.Errorf("failovers = %v, want 1", failovers)
			}
		})
	}
}

func TestAllShardsDown(t *testing.T) {
	clock := newFakeClock()
	p := newPool(t, lb.Config{
		Shards: []lb.Shard{{Name: "x", URL: deadURL(t)}, {Name: "y", URL: deadURL(t)}},
		Now:    clock.Now,
	})
	key := "k"
	order := []string{p.Pick(key)}
	if order[0] == "x" {
		order = append(order, "y")
	} else {
		order = append(order, "x")
	}
	// The second round runs with both shards marked down: they are still
	// tried, in ring order.
	for round := range 2 {
		_, _, route, err := send(t, p, newRequest(t, "GET", "http://site.example/", nil), key)
		var de *lb.DialError
		if !errors.As(err, &de) {
			t.Fatalf("round %d: err = %v, want *DialError", round, err)
		}
		if de.Shard != order[1] || route.Shard != order[1] || route.Attempts != 2 {
			t.Fatalf("round %d: DialError.Shard %q, Route %+v; want last shard %q after 2 attempts", round, de.Shard, route, order[1])
		}
	}
}

// Errors other than dial failures are not retried when retries are off
// (Retry.Max < 0).
func TestOtherErrorsAreNotRetried(t *testing.T) {
	// An origin that accepts the connection and drops it without answering.
	hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	}))
	t.Cleanup(hangup.Close)
	// An origin that never sends headers until the test ends.
	release := make(chan struct{})
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(stall.Close)
	t.Cleanup(func() { close(release) })

	tests := []struct {
		name   string
		url    string
		config func(*lb.Config)
	}{
		{"connection dropped, retries off", hangup.URL, func(c *lb.Config) { c.Retry.Max = -1 }},
		{"response header timeout, retries off", stall.URL, func(c *lb.Config) {
			c.ResponseHeaderTimeout = 50 * time.Millisecond
			c.Retry.Max = -1
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := lb.Config{Shards: []lb.Shard{
				{Name: "bad", URL: tt.url},
				{Name: "good", URL: testOrigin(t, "good").URL},
			}}
			tt.config(&cfg)
			p := newPool(t, cfg)
			key := keyOwnedBy(t, p, "bad")
			for range 2 { // the shard is not marked down either
				_, _, route, err := send(t, p, newRequest(t, "GET", "http://site.example/", nil), key)
				if err == nil {
					t.Fatal("RoundTrip succeeded, want an error")
				}
				var de *lb.DialError
				if errors.As(err, &de) {
					t.Fatalf("err = %v is a DialError", err)
				}
				if !strings.Contains(err.Error(), "bad") {
					t.Errorf("err = %v does not name the shard", err)
				}
				if route.Shard != "bad" || route.Attempts != 1 {
					t.Fatalf("Route = %+v, want Shard bad, Attempts 1", route)
				}
			}
		})
	}
}

func TestConcurrentRequestsWithFailover(t *testing.T) {
	p := newPool(t, lb.Config{
		Name: "site",
		Shards: []lb.Shard{
			{Name: "dead", URL: deadURL(t)},
			{Name: "b", URL: testOrigin(t, "b").URL},
			{Name: "c", URL: testOrigin(t, "c").URL, Weight: 2},
		},
		Metrics: lb.NewMetrics(nil),
	})
	var wg sync.WaitGroup
	errs := make(chan error, 16*25)
	for g := range 16 {
		wg.Go(func() {
			for i := range 25 {
				req := newRequest(t, "GET", fmt.Sprintf("http://site.example/%d/%d", g, i), nil)
				resp, route, err := p.Do(req, "")
				if err != nil {
					errs <- err
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if route.Shard == "dead" || resp.Header.Get(hdrOrigin) != route.Shard {
					errs <- fmt.Errorf("answered by %q, Route.Shard %q", resp.Header.Get(hdrOrigin), route.Shard)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNewPoolValidation(t *testing.T) {
	ok := lb.Shard{Name: "ok", URL: "http://127.0.0.1:8081"}
	tests := []struct {
		name string
		cfg  lb.Config
	}{
		{"no shards", lb.Config{}},
		{"unparsable URL", lb.Config{Shards: []lb.Shard{{URL: "http://[::1"}}}},
		{"no scheme", lb.Config{Shards: []lb.Shard{{URL: "127.0.0.1:8081"}}}},
		{"ftp scheme", lb.Config{Shards: []lb.Shard{{URL: "ftp://127.0.0.1:8081"}}}},
		{"no host", lb.Config{Shards: []lb.Shard{{URL: "http:///"}}}},
		{"path", lb.Config{Shards: []lb.Shard{{URL: "http://127.0.0.1:8081/base"}}}},
		{"query", lb.Config{Shards: []lb.Shard{{URL: "http://127.0.0.1:8081/?a=1"}}}},
		{"fragment", lb.Config{Shards: []lb.Shard{{URL: "http://127.0.0.1:8081/#f"}}}},
		{"user info", lb.Config{Shards: []lb.Shard{{URL: "http://u:p@127.0.0.1:8081"}}}},
		{"duplicate names", lb.Config{Shards: []lb.Shard{ok, {Name: "ok", URL: "http://127.0.0.1:8082"}}}},
		{"duplicate default names", lb.Config{Shards: []lb.Shard{{URL: "http://127.0.0.1:8081"}, {URL: "https://127.0.0.1:8081/"}}}},
		{"weight too large", lb.Config{Shards: []lb.Shard{{URL: "http://127.0.0.1:8081", Weight: 1 << 20}}}},
		{"negative MaxIdleConnsPerShard", lb.Config{Shards: []lb.Shard{ok}, MaxIdleConnsPerShard: -1}},
		{"negative MaxConnsPerShard", lb.Config{Shards: []lb.Shard{ok}, MaxConnsPerShard: -1}},
		{"negative IdleConnTimeout", lb.Config{Shards: []lb.Shard{ok}, IdleConnTimeout: -1}},
		{"negative DialTimeout", lb.Config{Shards: []lb.Shard{ok}, DialTimeout: -1}},
		{"negative ResponseHeaderTimeout", lb.Config{Shards: []lb.Shard{ok}, ResponseHeaderTimeout: -1}},
		{"negative DownFor", lb.Config{Shards: []lb.Shard{ok}, DownFor: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := lb.NewPool(tt.cfg); err == nil {
				t.Fatalf("NewPool(%+v) = %v, nil; want an error", tt.cfg, p)
			}
		})
	}

	valid := []lb.Shard{
		{URL: "http://127.0.0.1:8081"},
		{URL: "https://origin.example/"},
		{Name: "v6", URL: "http://[::1]:8081", Weight: -3},
	}
	p, err := lb.NewPool(lb.Config{Shards: valid})
	if err != nil {
		t.Fatalf("NewPool(valid) = %v", err)
	}
	names := map[string]bool{}
	for i := range 200 {
		names[p.Pick(fmt.Sprint(i))] = true
	}
	for _, want := range []string{"127.0.0.1:8081", "origin.example", "v6"} {
		if !names[want] {
			t.Errorf("Pick never returned %q (got %v)", want, names)
		}
	}
}

func TestSendReportsShard(t *testing.T) {
	p := newPool(t, lb.Config{Name: "site", Shards: []lb.Shard{{Name: "only", URL: testOrigin(t, "only").URL}}})
	resp, shard, err := p.Send(newRequest(t, "GET", "http://site.example/", nil), "k")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if shard != "only" || resp.Header.Get(hdrOrigin) != "only" {
		t.Errorf("Send reported shard %q, answered by %q; want only", shard, resp.Header.Get(hdrOrigin))
	}
}

// TestHTTPSShardURL checks that an https shard is reached with TLS; the test
// server's certificate is not trusted by the pool's transport, so the
// handshake fails, which also shows a TLS error is not treated as a dial error.
func TestHTTPSShardURL(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p := newPool(t, lb.Config{Shards: []lb.Shard{{Name: "tls", URL: srv.URL}, {Name: "plain", URL: testOrigin(t, "plain").URL}}})
	key := keyOwnedBy(t, p, "tls")
	_, _, route, err := send(t, p, newRequest(t, "GET", "http://site.example/", nil), key)
	var de *lb.DialError
	if err == nil || errors.As(err, &de) {
		t.Fatalf("err = %v, want a non-dial TLS error", err)
	}
	if route.Shard != "tls" || route.Attempts != 1 {
		t.Fatalf("Route = %+v, want Shard tls, Attempts 1", route)
	}
	if !strings.Contains(err.Error(), "tls") {
		t.Errorf("err = %v, want a TLS error", err)
	}
}

func TestOriginHeaderLimit(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Huge", strings.Repeat("h", 100<<10))
	}))
	defer o.Close()
	p, err := lb.NewPool(lb.Config{Name: "t", Shards: []lb.Shard{{URL: o.URL}}, MaxResponseHeaderBytes: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://example.com/", nil)
	if resp, err := p.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("a 100 KiB response header was accepted with a 32 KiB limit")
	}
}
