package lb_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/lb"
)

// resetOrigin listens on 127.0.0.1:0 and resets every connection it accepts
// (SO_LINGER 0, then close) once the request has started to arrive, so the
// request may have reached the origin. It returns its URL and the number of
// connections accepted so far.
func resetOrigin(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				c.Read(make([]byte, 1))
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}()
		}
	}()
	return "http://" + ln.Addr().String(), &n
}

// statusOrigin answers every request with code.
func statusOrigin(t *testing.T, code int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Idempotent requests owned by a shard that resets every connection are
// answered by the next shard, bodies replayed through GetBody; the failed
// try counts in edged_upstream_retries_total{reason="reset"}.
func TestRetryOnReset(t *testing.T) {
	bad, accepted := resetOrigin(t)
	reg := prometheus.NewRegistry()
	p := newPool(t, lb.Config{
		Name:    "site",
		Shards:  []lb.Shard{{Name: "bad", URL: bad}, {Name: "good", URL: testOrigin(t, "good").URL}},
		Outlier: lb.Outlier{Disabled: true}, // keep every try on bad
		Metrics: lb.NewMetrics(reg),
	})
	key := keyOwnedBy(t, p, "bad")
	tests := []struct {
		method, body string
	}{
		{"GET", ""}, {"HEAD", ""}, {"OPTIONS", ""}, {"DELETE", ""}, {"PUT", "replayed"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body) // NewRequest sets GetBody
			}
			before := accepted.Load()
			resp, got, route, err := send(t, p, newRequest(t, tt.method, "http://site.example/", body), key)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if o := resp.Header.Get(hdrOrigin); o != "good" || route.Shard != "good" || route.Attempts != 2 {
				t.Fatalf("answered by %q, Route %+v; want good after 2 tries", o, route)
			}
			if string(got) != tt.body {
				t.Errorf("body = %q, want %q", got, tt.body)
			}
			if accepted.Load() == before {
				t.Error("the resetting shard saw no connection")
			}
		})
	}
	labels := map[string]string{"pool": "site", "reason": "reset"}
	if got := metricValue(t, reg, "edged_upstream_retries_total", labels); got != float64(len(tests)) {
		t.Errorf("edged_upstream_retries_total{reset} = %v, want %d", got, len(tests))
	}
}

// oneShotReader is a body without GetBody: it can be sent once.
type oneShotReader struct{ io.Reader }

// A request whose body cannot be replayed, or whose method is not
// idempotent, is never sent again once it may have reached the origin.
func TestRetryNeverReplaysUnreplayable(t *testing.T) {
	bad, accepted := resetOrigin(t)
	p := newPool(t, lb.Config{
		Shards:  []lb.Shard{{Name: "bad", URL: bad}, {Name: "good", URL: testOrigin(t, "good").URL}},
		Outlier: lb.Outlier{Disabled: true},
	})
	key := keyOwnedBy(t, p, "bad")
	for _, tc := range []struct {
		name string
		req  func() *http.Request
	}{
		{"POST with GetBody", func() *http.Request {
			return newRequest(t, "POST", "http://site.example/", strings.NewReader("x"))
		}},
		{"POST without body", func() *http.Request { return newRequest(t, "POST", "http://site.example/", nil) }},
		{"PUT without GetBody", func() *http.Request {
			return newRequest(t, "PUT", "http://site.example/", oneShotReader{strings.NewReader("x")})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := accepted.Load()
			_, _, route, err := send(t, p, tc.req(), key)
			if err == nil {
				t.Fatal("Do succeeded, want the reset's error")
			}
			var de *lb.DialError
			if errors.As(err, &de) {
				t.Fatalf("err = %v is a DialError", err)
			}
			if route.Shard != "bad" || route.Attempts != 1 {
				t.Fatalf("Route = %+v, want bad after 1 try", route)
			}
			if n := accepted.Load() - before; n != 1 {
				t.Errorf("the shard accepted %d connections, want 1", n)
			}
		})
	}
}

// A 502, 503 or 504 answer is returned as is by default, and retried on the
// next shard with Retry.OnStatus.
func TestRetryOnStatus(t *testing.T) {
	for _, code := range []int{502, 503, 504} {
		for _, on := range []bool{false, true} {
			reg := prometheus.NewRegistry()
			p := newPool(t, lb.Config{
				Name:    "site",
				Shards:  []lb.Shard{{Name: "bad", URL: statusOrigin(t, code).URL}, {Name: "good", URL: testOrigin(t, "good").URL}},
				Retry:   lb.Retry{OnStatus: on},
				Metrics: lb.NewMetrics(reg),
			})
			key := keyOwnedBy(t, p, "bad")
			resp, _, route, err := send(t, p, newRequest(t, "GET", "http://site.example/", nil), key)
			if err != nil {
				t.Fatalf("%d, OnStatus %v: Do: %v", code, on, err)
			}
			want, wantShard, wantTries, wantRetries := code, "bad", 1, 0.0
			if on {
				want, wantShard, wantTries, wantRetries = 200, "good", 2, 1
			}
			if resp.StatusCode != want || route.Shard != wantShard || route.Attempts != wantTries {
				t.Errorf("%d, OnStatus %v: %d from %+v, want %d from %s after %d tries",
					code, on, resp.StatusCode, route, want, wantShard, wantTries)
			}
			labels := map[string]string{"pool": "site", "reason": "status_" + strconv.Itoa(code)}
			if got := metricValue(t, reg, "edged_upstream_retries_total", labels); got != wantRetries {
				t.Errorf("%d, OnStatus %v: edged_upstream_retries_total = %v, want %v", code, on, got, wantRetries)
			}
		}
	}
}

// The retry budget stops retries once they reach their share of requests (or
// the floor) over the window; the failed try's error is returned, and the
// window sliding past them allows retries again.
func TestRetryBudget(t *testing.T) {
	tests := []struct {
		name        string
		retry       lb.Retry
		requests    int
		wantRetried int
	}{
		// Floor only: 1/s over 10s is 10 retries, whatever the traffic.
		{"floor", lb.Retry{Max: 5, BudgetPercent: -1, MinPerSecond: 1, BudgetWindow: 10 * time.Second}, 15, 10},
		// Share only: 50% of requests; the 2nd, 4th, ... may retry.
		{"share", lb.Retry{BudgetPercent: 50, MinPerSecond: -1, BudgetWindow: 10 * time.Second}, 10, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad, _ := resetOrigin(t)
			clock := newFakeClock()
			reg := prometheus.NewRegistry()
			p := newPool(t, lb.Config{
				Name:    "site",
				Shards:  []lb.Shard{{Name: "bad", URL: bad}, {Name: "good", URL: testOrigin(t, "good").URL}},
				Outlier: lb.Outlier{Disabled: true},
				Retry:   tt.retry,
				Now:     clock.Now,
				Metrics: lb.NewMetrics(reg),
			})
			key := keyOwnedBy(t, p, "bad")
			retried := 0
			for range tt.requests {
				_, _, route, err := send(t, p, newRequest(t, "GET", "http://site.example/", nil), key)
				switch {
				case err == nil && route.Shard == "good" && route.Attempts == 2:
					retried++
				case err != nil && route.Shard == "bad" && route.Attempts == 1:
					if !strings.Contains(err.Error(), "shard bad") {
						t.Errorf("err = %v, want the first try's error", err)
					}
				default:
					t.Fatalf("err %v, Route %+v: neither a retry nor the first error", err, route)
				}
			}
			if retried != tt.wantRetried {
				t.Errorf("%d of %d requests retried, want %d", retried, tt.requests, tt.wantRetried)
			}
			exhausted := metricValue(t, reg, "edged_upstream_retry_budget_exhausted_total", map[string]string{"pool": "site"})
			if want := float64(tt.requests - tt.wantRetried); exhausted != want {
				t.Errorf("edged_upstream_retry_budget_exhausted_total = %v, want %v", exhausted, want)
			}

			// Once the window has slid past those requests, the budget
			// allows retries again (the floor, or the share of new
			// requests: the second of two).
			clock.Advance(10 * time.Second)
			for i := range 2 {
				_, _, route, err := send(t, p, newRequest(t, "GET", "http://site.example/", nil), key)
				if err == nil && route.Attempts == 2 {
					return
				}
				if i == 1 {
					t.Fatalf("after the window: err %v, Route %+v; want a retry", err, route)
				}
			}
		})
	}
}

// Retry.Max bounds retries after tries that may have reached an origin:
// with every shard resetting, a request makes Max+1 tries.
func TestRetryMax(t *testing.T) {
	var shards []lb.Shard
	for _, n := range []string{"a", "b", "c", "d"} {
		u, _ := resetOrigin(t)
		shards = append(shards, lb.Shard{Name: n, URL: u})
	}
	for _, tt := range []struct{ max, wantTries int }{{-1, 1}, {0, 3}, {1, 2}, {3, 4}} {
		p := newPool(t, lb.Config{Shards: shards, Outlier: lb.Outlier{Disabled: true}, Retry: lb.Retry{Max: tt.max}})
		_, _, route, err := send(t, p, newRequest(t, "GET", "http://site.example/", bytes.NewReader(nil)), "k")
		if err == nil {
			t.Fatal("Do succeeded against resetting shards")
		}
		if route.Attempts != tt.wantTries {
			t.Errorf("Max %d: %d tries, want %d", tt.max, route.Attempts, tt.wantTries)
		}
	}
}

// A shard that accepts requests and never answers costs a GET one
// ResponseHeaderTimeout (the per-try first-byte timeout), then the next
// shard answers; a caller whose own deadline passed gets no retry.
func TestRetryOnTryTimeout(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	reg := prometheus.NewRegistry()
	p := newPool(t, lb.Config{
		Name:                  "site",
		Shards:                []lb.Shard{{Name: "hang", URL: hang.URL}, {Name: "good", URL: testOrigin(t, "good").URL}},
		ResponseHeaderTimeout: 50 * time.Millisecond,
		Outlier:               lb.Outlier{Disabled: true},
		Metrics:               lb.NewMetrics(reg),
	})
	key := keyOwnedBy(t, p, "hang")
	resp, _, route, err := send(t, p, newRequest(t, "GET", "http://site.example/", nil), key)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if o := resp.Header.Get(hdrOrigin); o != "good" || route.Attempts != 2 {
		t.Fatalf("answered by %q after %d tries, want good after 2", o, route.Attempts)
	}
	if got := metricValue(t, reg, "edged_upstream_retries_total", map[string]string{"pool": "site", "reason": "timeout"}); got != 1 {
		t.Errorf("edged_upstream_retries_total{timeout} = %v, want 1", got)
	}

	// The caller's deadline, shorter than the try's: no retry.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, _, route, err = send(t, p, newRequest(t, "GET", "http://site.example/", nil).WithContext(ctx), key)
	if err == nil || route.Shard != "hang" || route.Attempts != 1 {
		t.Fatalf("caller deadline: err %v, Route %+v; want an error from hang after 1 try", err, route)
	}
}
