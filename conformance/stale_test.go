package conformance_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
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

// TestStaleIfError checks RFC 5861 §4: when revalidation fails with an
// error, the stale entry is served within the window, else the error.
func TestStaleIfError(t *testing.T) {
	type failure struct {
		name   string
		status int  // origin status on revalidation
		down   bool // origin unreachable
		reset  bool // connection closed without an answer
		hang   bool // origin never answers (timeout)
		want   int  // status beyond the window
	}
	failures := []failure{
		{name: "500", status: 500, want: 500},
		{name: "502", status: 502, want: 502},
		{name: "503", status: 503, want: 503},
		{name: "504", status: 504, want: 504},
		{name: "connection refused", down: true, want: 502},
		{name: "connection reset", reset: true, want: 502},
		{name: "timeout", hang: true, want: 504},
	}
	for _, f := range failures {
		for _, tc := range []struct {
			name    string
			cc      string
			policy  rfc.Policy
			advance time.Duration
			stale   bool
		}{
			{name: "inside the window: stale served", cc: "max-age=10, stale-if-error=60", advance: 30 * time.Second, stale: true},
			{name: "beyond the window: error", cc: "max-age=10, stale-if-error=60", advance: 71 * time.Second},
			{name: "site default window", cc: "max-age=10", policy: policyStale(0, time.Minute), advance: 30 * time.Second, stale: true},
			{name: "RFC 9111 §5.2.2.4 no-cache: never, whatever the response's window", cc: "max-age=10, no-cache, stale-if-error=600", advance: 30 * time.Second},
			{name: "RFC 9111 §5.2.2.4 no-cache: never, whatever the site's window", cc: "max-age=10, no-cache", policy: policyStale(0, time.Hour), advance: 30 * time.Second},
			{name: "RFC 9111 §5.2.2.4 no-cache while fresh: never", cc: "max-age=600, no-cache, stale-if-error=600", advance: 30 * time.Second},
		} {
			t.Run("RFC 5861 §4 "+f.name+" "+tc.name, func(t *testing.T) {
				o := opts{policy: tc.policy}
				if f.hang {
					o.fillTimeout = 300 * time.Millisecond
				}
				var e *env
				var g *testkit.Gate
				e = newEnv(t, o, func(w http.ResponseWriter, r *http.Request, n int) {
					if n == 1 {
						w.Header().Set("Cache-Control", tc.cc)
						w.Header().Set("ETag", `"e"`)
						io.WriteString(w, long("payload"))
						return
					}
					switch {
					case f.reset:
						resetConn(w)
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
				if tc.stale {
					wantStatus(t, r, 200)
					wantBody(t, r, long("payload"))
					wantFwd(t, r, "stale")
					if r.CS.get("detail") != "stale-if-error" {
						t.Errorf("detail = %q, want stale-if-error (%v)", r.CS.get("detail"), r)
					}
					wantAge(t, r, int(tc.advance/time.Second))
					if f.status != 0 && r.CS.get("fwd-status") != strconv.Itoa(f.status) {
						t.Errorf("fwd-status = %q, want %d (%v)", r.CS.get("fwd-status"), f.status, r)
					}
					return
				}
				wantStatus(t, r, f.want)
				if r.Body == long("payload") {
					t.Errorf("stale body served beyond the window: %v", r)
				}
			})
		}
	}
}

// TestStaleIfErrorNotForNonErrors checks that a 404 on revalidation is an
// answer, not an error: it is served, not the stale entry (RFC 5861 §4).
func TestStaleIfErrorNotForNonErrors(t *testing.T) {
	e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Cache-Control", "max-age=10, stale-if-error=600")
			io.WriteString(w, "payload")
			return
		}
		w.WriteHeader(404)
		io.WriteString(w, "gone")
	})
	e.get("/e")
	e.advance(30 * time.Second)
	r := e.get("/e")
	wantStatus(t, r, 404)
	wantBody(t, r, "gone")
}

// TestStaleWithoutPermission checks edged's choice for a stale entry whose
// revalidation fails and that names no stale-if-error: the error is
// returned (RFC 9111 §4.2.4 allows, but does not require, serving stale).
func TestStaleWithoutPermission(t *testing.T) {
	e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Cache-Control", "max-age=10")
			io.WriteString(w, "payload")
			return
		}
		w.WriteHeader(503)
		io.WriteString(w, "down")
	})
	e.get("/e")
	e.advance(30 * time.Second)
	r := e.get("/e")
	wantStatus(t, r, 503)
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
