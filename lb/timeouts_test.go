package lb_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/lb"
)

// stallingOrigin sends the head and the first half of a 10-byte body, then
// stalls until the test ends; h2c makes it take HTTP/2 with prior
// knowledge too.
func stallingOrigin(t *testing.T, h2c bool) *httptest.Server {
	t.Helper()
	stop := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
		w.(http.Flusher).Flush()
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	if h2c {
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetHTTP1(true)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	srv.Start()
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv
}

// A body that stops arriving fails its read after BodyIdleTimeout with a
// *BodyIdleError, a timeout, over HTTP/1 and HTTP/2 alike; a body that
// keeps coming is not cut, however slowly the caller reads it.
func TestBodyIdleTimeout(t *testing.T) {
	const idle = 500 * time.Millisecond
	for _, tc := range []struct {
		name  string
		proto string
		h2c   bool
	}{
		{"http1", "", false},
		{"h2c", "h2c", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := stallingOrigin(t, tc.h2c)
			p := newPool(t, lb.Config{BodyIdleTimeout: idle, Protocol: tc.proto, Shards: []lb.Shard{{URL: srv.URL}}})
			resp, _, err := p.Do(newRequest(t, "GET", srv.URL+"/stall", nil), "")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if tc.h2c && resp.ProtoMajor != 2 {
				t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
			}
			start := time.Now()
			b, err := io.ReadAll(resp.Body)
			d := time.Since(start)
			var ie *lb.BodyIdleError
			if !errors.As(err, &ie) || ie.Idle != idle {
				t.Fatalf("read %q, error %v; want a *BodyIdleError of %v", b, err, idle)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("%v is not a net.Error timeout", err)
			}
			if string(b) != "12345" {
				t.Errorf("read %q before the stall, want 12345", b)
			}
			if d < idle || d > idle+5*time.Second {
				t.Errorf("the read failed after %v, want about %v", d, idle)
			}
		})
	}

	t.Run("slow reader", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.Repeat("x", 100))
		}))
		t.Cleanup(srv.Close)
		p := newPool(t, lb.Config{BodyIdleTimeout: idle, Shards: []lb.Shard{{URL: srv.URL}}})
		resp, _, err := p.Do(newRequest(t, "GET", srv.URL+"/", nil), "")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		time.Sleep(3 * idle) // the caller, not the origin, is slow
		if b, err := io.ReadAll(resp.Body); err != nil || len(b) != 100 {
			t.Errorf("read %d bytes, error %v; want 100 and none", len(b), err)
		}
	})
}

// A failed TLS handshake counts toward ejection as "tls_error" rather
// than "reset". One with a listener that accepts and never speaks fails
// after TLSHandshakeTimeout, not the 10s default, and is retried on the
// next shard (the request was never sent); a certificate that fails
// verification is not retried (the next shard would most likely fail
// alike).
func TestTLSHandshakeFailures(t *testing.T) {
	const hs = 200 * time.Millisecond
	silent := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() }) // silent until the test ends
			}
		}()
		return "https://" + ln.Addr().String()
	}
	untrusted := func(t *testing.T) string {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	for _, tc := range []struct {
		name     string
		shard    func(*testing.T) string
		timeout  time.Duration // TLSHandshakeTimeout
		attempts int
		minTime  time.Duration
	}{
		{"handshake timeout", silent, hs, 2, 2 * hs},
		// The default timeout: a loaded machine may take more than hs
		// for a real handshake.
		{"unknown authority", untrusted, 0, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			p := newPool(t, lb.Config{Name: "site", TLSHandshakeTimeout: tc.timeout, Metrics: lb.NewMetrics(reg),
				Outlier: lb.Outlier{ConsecutiveFailures: 1},
				Shards:  []lb.Shard{{Name: "a", URL: tc.shard(t)}, {Name: "b", URL: tc.shard(t)}}})
			key := keyOwnedBy(t, p, "a")
			start := time.Now()
			_, rt, err := p.Do(newRequest(t, "GET", "https://site.test/", nil), key)
			d := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
				t.Fatalf("Do error %v, want a TLS handshake error", err)
			}
			if rt.Attempts != tc.attempts || d < tc.minTime || d > tc.minTime+5*time.Second {
				t.Errorf("failed after %d attempts in %v, want %d in about %v", rt.Attempts, d, tc.attempts, tc.minTime)
			}
			for reason, want := range map[string]float64{"tls_error": 1, "reset": 0, "timeout": 0} {
				got := metricValue(t, reg, "edged_upstream_ejections_total", map[string]string{"pool": "site", "shard": "a", "reason": reason})
				if max(got, 0) != want {
					t.Errorf("ejections of a for %s = %v, want %v", reason, got, want)
				}
			}
		})
	}
}
