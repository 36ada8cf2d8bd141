package conformance_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/internal/testkit"
)

// policyStale is a site policy with default stale windows.
func policyStale(swr, sie time.Duration) rfc.Policy {
	return rfc.Policy{StaleWhileRevalidate: swr, StaleIfError: sie}
}

// TestStaleWhileRevalidate checks RFC 5861 §3: within the window a stale
// entry is served at once, and one background revalidation refreshes it.
func TestStaleWhileRevalidate(t *testing.T) {
	cases := []struct {
		name    string
		cc      string
		policy  rfc.Policy
		advance time.Duration
		swr     bool // served stale at once
	}{
		{name: "RFC 5861 §3 inside the window: served stale", cc: "max-age=10, stale-while-revalidate=30", advance: 20 * time.Second, swr: true},
		{name: "RFC 5861 §3 at the end of the window: served stale", cc: "max-age=10, stale-while-revalidate=30", advance: 40 * time.Second, swr: true},
		{name: "RFC 5861 §3 beyond the window: synchronous fetch", cc: "max-age=10, stale-while-revalidate=30", advance: 41 * time.Second},
		{name: "RFC 5861 §3 site default applies when the response names none", cc: "max-age=10", policy: policyStale(30*time.Second, 0), advance: 20 * time.Second, swr: true},
		{name: "RFC 5861 §3 the response's window overrides the site default", cc: "max-age=10, stale-while-revalidate=5", policy: policyStale(time.Hour, 0), advance: 20 * time.Second},
		{name: "RFC 5861 §3 stale-while-revalidate=0 gives no window", cc: "max-age=10, stale-while-revalidate=0", policy: policyStale(time.Hour, 0), advance: 11 * time.Second},
		{name: "RFC 9111 §5.2.2.4 no-cache is never served without validation, even with swr", cc: "max-age=10, no-cache, stale-while-revalidate=30", advance: 20 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var g *testkit.Gate
			e := newEnv(t, opts{policy: tc.policy}, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Cache-Control", tc.cc)
				w.Header().Set("ETag", `"e`+strconv.Itoa(n)+`"`)
				if n > 1 && tc.swr {
					g.Wait(r.Context()) // a background revalidation may take its time
				}
				io.WriteString(w, "v"+strconv.Itoa(n))
			})
			g = testkit.NewGate(t)
			e.get("/s")
			e.advance(tc.advance)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			r, err := e.try(ctx, http.MethodGet, "/s")
			if !tc.swr {
				if err != nil {
					t.Fatal(err)
				}
				wantFwd(t, r, "stale")
				wantBody(t, r, "v2")
				return
			}
			if err != nil {
				e.quiesce(g, "/s")
				t.Fatalf("stale-while-revalidate response waited for the origin: %v", err)
			}
			wantStatus(t, r, 200)
			wantBody(t, r, "v1")
			wantHit(t, r)
			wantAge(t, r, int(tc.advance/time.Second))
			if ttl, ok := r.CS.ttl(); !ok || ttl != 10-int(tc.advance/time.Second) {
				t.Errorf("ttl = %d (%v), want %d", ttl, ok, 10-int(tc.advance/time.Second))
			}
			if r.CS.get("detail") != "stale-while-revalidate" {
				t.Errorf("detail = %q, want stale-while-revalidate (%v)", r.CS.get("detail"), r)
			}
			// The background revalidation reaches the origin, conditional.
			e.origin.Await(t, "/s", 2) // the background revalidation
			if got := e.origin.last(t, "/s").Header.Get("If-None-Match"); got != `"e1"` {
				t.Errorf("background revalidation If-None-Match = %q, want \"e1\"", got)
			}
			g.Open()
			// Afterwards the entry is fresh with the new response.
			testkit.Eventually(t, 5*time.Second, func() bool {
				r, err := e.try(context.Background(), http.MethodGet, "/s")
				ttl, _ := r.CS.ttl()
				return err == nil && r.CS.hit() && ttl > 0 && r.Body == "v2"
			}, "the refreshed entry")
			e.wantHits("/s", 2)
		})
	}
}

// TestStaleWhileRevalidateCoalesced checks that concurrent stale requests
// cause exactly one background revalidation (RFC 5861 §3).
func TestStaleWhileRevalidateCoalesced(t *testing.T) {
	g := testkit.NewGate(t)
	e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		if n > 1 {
			g.Wait(r.Context())
		}
		io.WriteString(w, "v"+strconv.Itoa(n))
	})
	t.Cleanup(g.Open) // runs before the servers close
	e.get("/s")
	e.advance(20 * time.Second)
	const n = 32
	var wg sync.WaitGroup
	results := make([]result, n)
	errs := make([]error, n)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for i := range n {
		wg.Go(func() { results[i], errs[i] = e.try(ctx, http.MethodGet, "/s") })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			e.quiesce(g, "/s")
			t.Fatalf("request %d waited for the origin: %v", i, errs[i])
		}
		if results[i].Body != "v1" || !results[i].CS.hit() {
			t.Errorf("request %d: %v", i, results[i])
		}
	}
	e.origin.Await(t, "/s", 2) // the background revalidation
	g.Open()
	testkit.Eventually(t, 5*time.Second, func() bool {
		r, err := e.try(context.Background(), http.MethodGet, "/s")
		return err == nil && r.Body == "v2"
	}, "the refreshed entry")
	e.wantHits("/s", 2)
}

// TestStaleIfError checks RFC 5861 §4 and edged's default window: when a
// revalidation fails (refused, reset, timeout, a truncated body, or 500,
// 502, 503, 504), a stale entry that may be served stale (RFC 9111
// §4.2.4) is served within its window (the response's stale-if-error,
// else the site's, a day by default), with Cache-Status "hit;
// fwd=stale; fwd-status=...; detail=origin-..." and a count by reason;
// otherwise the failure reaches the client, with fwd=stale.
func TestStaleIfError(t *testing.T) {
	type failure struct {
		name     string
		status   int  // origin status on revalidation
		down     bool // origin unreachable
		reset    bool // connection closed without an answer
		truncate bool // a storable 200 whose body stops short
		hang     bool // origin never answers (timeout)
		want     int  // status when no stale response may stand in
		detail   string
	}
	failures := []failure{
		{name: "500", status: 500, want: 500, detail: "origin-error"},
		{name: "502", status: 502, want: 502, detail: "origin-error"},
		{name: "503", status: 503, want: 503, detail: "origin-error"},
		{name: "504", status: 504, want: 504, detail: "origin-error"},
		{name: "connection refused", down: true, want: 502, detail: "origin-unreachable"},
		{name: "connection reset", reset: true, want: 502, detail: "origin-unreachable"},
		{name: "truncated body", truncate: true, want: 502, detail: "origin-unreachable"},
		{name: "timeout", hang: true, want: 504, detail: "origin-timeout"},
	}
	cases := []struct {
		name    string
		cc      string
		policy  rfc.Policy
		advance time.Duration
		stale   bool
		gw504   bool // no answer from the origin means 504 (must-revalidate, RFC 9111 §5.2.2.2)
	}{
		{name: "RFC 5861 §4 inside the response's window: stale served", cc: "max-age=10, stale-if-error=60", advance: 30 * time.Second, stale: true},
		{name: "RFC 5861 §4 beyond the response's window: error", cc: "max-age=10, stale-if-error=60", advance: 71 * time.Second},
		{name: "RFC 5861 §4 the response's window beats the site's", cc: "max-age=10, stale-if-error=60", policy: policyStale(0, time.Hour), advance: 71 * time.Second},
		{name: "RFC 5861 §4 stale-if-error=0 gives no window", cc: "max-age=10, stale-if-error=0", advance: 11 * time.Second},
		{name: "site window", cc: "max-age=10", policy: policyStale(0, time.Minute), advance: 30 * time.Second, stale: true},
		{name: "beyond the site window: error", cc: "max-age=10", policy: policyStale(0, time.Minute), advance: 71 * time.Second},
		{name: "default window of a day", cc: "max-age=10", advance: 23 * time.Hour, stale: true},
		{name: "beyond the default day: error", cc: "max-age=10", advance: 25 * time.Hour},
		{name: "site without a default window: error", cc: "max-age=10", policy: policyStale(0, -1), advance: 30 * time.Second},
		{name: "site without a default window keeps the response's", cc: "max-age=10, stale-if-error=60", policy: policyStale(0, -1), advance: 30 * time.Second, stale: true},
		{name: "RFC 9111 §5.2.2.2 must-revalidate: never", cc: "max-age=10, must-revalidate, stale-if-error=600", advance: 30 * time.Second, gw504: true},
		{name: "RFC 9111 §5.2.2.8 proxy-revalidate: never", cc: "max-age=10, proxy-revalidate", advance: 30 * time.Second, gw504: true},
		{name: "RFC 9111 §5.2.2.10 s-maxage: never", cc: "s-maxage=10, stale-if-error=600", advance: 30 * time.Second, gw504: true},
		{name: "RFC 9111 §5.2.2.4 no-cache: never, whatever the response's window", cc: "max-age=10, no-cache, stale-if-error=600", advance: 30 * time.Second},
		{name: "RFC 9111 §5.2.2.4 no-cache: never, whatever the site's window", cc: "max-age=10, no-cache", policy: policyStale(0, time.Hour), advance: 30 * time.Second},
		{name: "RFC 9111 §5.2.2.4 no-cache while fresh: never", cc: "max-age=600, no-cache, stale-if-error=600", advance: 30 * time.Second},
	}
	for _, f := range failures {
		for _, tc := range cases {
			t.Run(f.name+" "+tc.name, func(t *testing.T) {
				o := opts{policy: tc.policy}
				if f.hang {
					o.fillTimeout = 300 * time.Millisecond
				}
				var g *testkit.Gate
				e := newEnv(t, o, func(w http.ResponseWriter, r *http.Request, n int) {
					if n == 1 {
						w.Header().Set("Cache-Control", tc.cc)
						w.Header().Set("ETag", `"e"`)
						io.WriteString(w, long("payload"))
						return
					}
					switch {
					case f.reset:
						resetConn(w)
					case f.truncate:
						w.Header().Set("Cache-Control", "max-age=60")
						w.Header().Set("Content-Length", "1000")
						io.WriteString(w, "short")
						panic(http.ErrAbortHandler) // the connection closes mid-body
					case f.hang:
						g.Wait(r.Context())
					default:
						w.WriteHeader(f.status)
						io.WriteString(w, "origin error")
					}
				})
				g = testkit.NewGate(t)
				e.get("/e")
				e.advance(tc.advance)
				if f.down {
					e.closeOrigin()
				}
				r := e.get("/e")
				served, _ := testkit.Metric(t, e.reg, "edged_cache_stale_on_error_total", "reason", strings.ReplaceAll(f.detail, "-", "_"))
				if tc.stale {
					wantStatus(t, r, 200)
					wantBody(t, r, long("payload"))
					wantStaleOnError(t, r, f.detail, f.status)
					wantAge(t, r, int(tc.advance/time.Second))
					if served != 1 {
						t.Errorf("edged_cache_stale_on_error_total{reason=%q} = %v, want 1", f.detail, served)
					}
					return
				}
				want := f.want
				if tc.gw504 && f.status == 0 {
					want = http.StatusGatewayTimeout
				}
				wantStatus(t, r, want)
				if r.Body == long("payload") {
					t.Errorf("stale body served: %v", r)
				}
				// RFC 9211 §2.2: a stored response existed but was stale
				// (or had to be validated), not a uri-miss.
				wantFwd(t, r, "stale")
				if served != 0 {
					t.Errorf("edged_cache_stale_on_error_total{reason=%q} = %v, want 0", f.detail, served)
				}
			})
		}
	}
}

// wantStaleOnError fails unless r is a stale response served because the
// origin failed: "hit; fwd=stale", fwd-status when the origin answered,
// and detail naming why.
func wantStaleOnError(t *testing.T, r result, detail string, fwdStatus int) {
	t.Helper()
	if !r.CS.hit() || r.CS.fwd() != "stale" || r.CS.get("detail") != detail {
		t.Errorf("want hit; fwd=stale; detail=%s, got %v", detail, r)
	}
	switch {
	case fwdStatus != 0 && r.CS.get("fwd-status") != strconv.Itoa(fwdStatus):
		t.Errorf("fwd-status = %q, want %d (%v)", r.CS.get("fwd-status"), fwdStatus, r)
	case fwdStatus == 0 && r.CS.has("fwd-status"):
		t.Errorf("fwd-status without an origin answer (%v)", r)
	}
	if ttl, ok := r.CS.ttl(); !ok || ttl > 0 {
		t.Errorf("ttl = %d (%v), want a stale one", ttl, ok)
	}
}

// TestStaleIfErrorNotForOtherStatuses checks that only 500, 502, 503 and
// 504 count as errors (RFC 5861 §4): other answers to a revalidation, 404
// or a 501 and 505 included, are served, not the stale entry.
func TestStaleIfErrorNotForOtherStatuses(t *testing.T) {
	for _, status := range []int{404, 501, 505} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 {
					w.Header().Set("Cache-Control", "max-age=10, stale-if-error=600")
					io.WriteString(w, "payload")
					return
				}
				w.WriteHeader(status)
				io.WriteString(w, "answer")
			})
			e.get("/e")
			e.advance(30 * time.Second)
			r := e.get("/e")
			wantStatus(t, r, status)
			wantBody(t, r, "answer")
			wantFwd(t, r, "stale")
		})
	}
}

// TestStaleIfErrorCoalesced checks that every request waiting on a failed
// revalidation gets the stale answer, from one origin request: the leader
// and the waiters alike (collapsed), each counted.
func TestStaleIfErrorCoalesced(t *testing.T) {
	tiers(t, opts{}, func(t *testing.T, o opts) {
		g := testkit.NewGate(t)
		e := newEnv(t, o, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				w.Header().Set("Cache-Control", "max-age=10")
				io.WriteString(w, long("payload"))
				return
			}
			g.Wait(r.Context())
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		t.Cleanup(g.Open) // runs before the servers close
		e.get("/e")
		e.advance(time.Minute)
		const n = 8
		var wg sync.WaitGroup
		results := make([]result, n)
		errs := make([]error, n)
		base := e.joined()
		for i := range n {
			wg.Go(func() { results[i], errs[i] = e.try(context.Background(), http.MethodGet, "/e") })
		}
		e.origin.Await(t, "/e", 2)
		e.awaitJoined(base + n - 1)
		g.Open()
		wg.Wait()
		collapsed := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			wantStatus(t, results[i], 200)
			wantBody(t, results[i], long("payload"))
			wantStaleOnError(t, results[i], "origin-error", 503)
			if results[i].CS.has("collapsed") {
				collapsed++
			}
		}
		if collapsed != n-1 {
			t.Errorf("%d collapsed answers, want %d", collapsed, n-1)
		}
		e.wantHits("/e", 2)
		if v, _ := testkit.Metric(t, e.reg, "edged_cache_stale_on_error_total", "reason", "origin_error"); v != n {
			t.Errorf("edged_cache_stale_on_error_total{reason=origin_error} = %v, want %d", v, n)
		}
	})
}

// TestStaleIfErrorAfterBackgroundRevalidation checks the
// stale-while-revalidate path (RFC 5861 §3, §4): a background
// revalidation that fails leaves the stale entry in place, and a request
// beyond the stale-while-revalidate window that joins it (or revalidates
// later) gets the stale answer, not the error.
func TestStaleIfErrorAfterBackgroundRevalidation(t *testing.T) {
	g := testkit.NewGate(t)
	e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=30")
			io.WriteString(w, "payload")
			return
		}
		g.Wait(r.Context())
		w.WriteHeader(http.StatusBadGateway)
	})
	t.Cleanup(g.Open)
	e.get("/e")
	e.advance(20 * time.Second)
	r := e.get("/e") // served stale at once; the revalidation is held
	wantHit(t, r)
	wantBody(t, r, "payload")
	e.origin.Await(t, "/e", 2)
	e.advance(time.Minute) // beyond stale-while-revalidate: a request waits
	var late result
	var lateErr error
	done := make(chan struct{})
	base := e.joined()
	go func() {
		defer close(done)
		late, lateErr = e.try(context.Background(), http.MethodGet, "/e")
	}()
	e.awaitJoined(base + 1)
	g.Open()
	<-done
	if lateErr != nil {
		t.Fatal(lateErr)
	}
	wantStatus(t, late, 200)
	wantBody(t, late, "payload")
	wantStaleOnError(t, late, "origin-error", 502)
	if !late.CS.has("collapsed") {
		t.Errorf("the waiter did not join the background revalidation: %v", late)
	}
	// The entry is still there: the next failure is answered from it too.
	r = e.get("/e")
	wantStaleOnError(t, r, "origin-error", 502)
	wantBody(t, r, "payload")
	e.wantHits("/e", 3)
}

// TestStaleIfErrorRecovers checks that after an error served stale the
// next successful revalidation replaces the entry (RFC 5861 §4, RFC 9111
// §4.3.3).
func TestStaleIfErrorRecovers(t *testing.T) {
	tiers(t, opts{}, func(t *testing.T, o opts) {
		e := newEnv(t, o, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 2 {
				w.WriteHeader(503)
				return
			}
			w.Header().Set("Cache-Control", "max-age=10, stale-if-error=600")
			io.WriteString(w, long("v")+strconv.Itoa(n))
		})
		e.get("/e")
		e.advance(30 * time.Second)
		r := e.get("/e")
		wantStatus(t, r, 200)
		wantBody(t, r, long("v")+"1")
		r = e.get("/e")
		wantStatus(t, r, 200)
		wantBody(t, r, long("v")+"3")
		wantHit(t, e.get("/e"))
	})
}
