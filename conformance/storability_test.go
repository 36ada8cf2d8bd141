package conformance_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// TestStorability sends two requests and checks whether the first response
// was stored and reused (RFC 9111 §3).
func TestStorability(t *testing.T) {
	cases := []struct {
		name   string
		status int
		resp   []string // response header pairs
		req1   []string // header pairs of the first request
		req2   []string // header pairs of the second request
		stored bool     // the second request is a hit
		detail string   // Cache-Status detail expected on the first response, if any
	}{
		{name: "§3 200 with max-age is stored", resp: []string{"Cache-Control", "max-age=60"}, stored: true},
		{name: "§5.2.2.5 no-store is not stored", resp: []string{"Cache-Control", "max-age=60, no-store"}, detail: "no-store"},
		{name: "§5.2.2.5 no-store in a second Cache-Control line", resp: []string{"Cache-Control", "max-age=60", "Cache-Control", "no-store"}, detail: "no-store"},
		{name: "§5.2.2.5 NO-STORE in upper case", resp: []string{"Cache-Control", "max-age=60, NO-STORE"}, detail: "no-store"},
		{name: "§5.2.2.7 private is not stored by a shared cache", resp: []string{"Cache-Control", "private, max-age=60"}, detail: "private"},
		{name: "§5.2.2.7 private beats public", resp: []string{"Cache-Control", "public, private, max-age=60"}, detail: "private"},
		{name: "§5.2.2.7 qualified private=\"X-User\" is treated as private (edged choice)", resp: []string{"Cache-Control", `private="X-User", max-age=60`}, detail: "private"},
		{name: "§5.2.2.7 qualified private with a list is treated as private", resp: []string{"Cache-Control", `max-age=60, private="X-User, X-Other"`}, detail: "private"},
		{name: "§3.5 Authorization request: not stored without public/s-maxage/must-revalidate", resp: []string{"Cache-Control", "max-age=60"}, req1: []string{"Authorization", "Bearer alice"}, detail: "authorization"},
		{name: "§3.5 Authorization request: stored with public", resp: []string{"Cache-Control", "public, max-age=60"}, req1: []string{"Authorization", "Bearer alice"}, stored: true},
		{name: "§3.5 Authorization request: stored with s-maxage", resp: []string{"Cache-Control", "s-maxage=60"}, req1: []string{"Authorization", "Bearer alice"}, stored: true},
		{name: "§3.5 Authorization request: stored with must-revalidate", resp: []string{"Cache-Control", "max-age=60, must-revalidate"}, req1: []string{"Authorization", "Bearer alice"}, stored: true},
		{name: "§3.5 Authorization request: an empty Authorization field counts", resp: []string{"Cache-Control", "max-age=60"}, req1: []string{"Authorization", ""}, detail: "authorization"},
		{name: "§3.5 Authorization request: the stored response is not reused for another user unless public", resp: []string{"Cache-Control", "max-age=60"}, req1: []string{"Authorization", "Bearer alice"}, req2: []string{"Authorization", "Bearer bob"}},
		{name: "§3 Set-Cookie responses are never stored (edged policy)", resp: []string{"Cache-Control", "public, max-age=60", "Set-Cookie", "session=alice"}, detail: "set-cookie"},
		{name: "§4.1 Vary: * is never stored or matched", resp: []string{"Cache-Control", "max-age=60", "Vary", "*"}},
		{name: "§4.1 Vary with * among other names is never matched", resp: []string{"Cache-Control", "max-age=60", "Vary", "Accept-Encoding, *"}},
		{name: "§3 302 without explicit freshness is not stored", status: 302, resp: []string{"Location", "/x"}},
		{name: "§3 500 without explicit freshness is not stored", status: 500},
		{name: "§3 204 with max-age is stored", status: 204, resp: []string{"Cache-Control", "max-age=60"}, stored: true},
		{name: "§3 307 with max-age is stored", status: 307, resp: []string{"Location", "/x", "Cache-Control", "max-age=60"}, stored: true},
		{name: "§3 410 with max-age is stored", status: 410, resp: []string{"Cache-Control", "max-age=60"}, stored: true},
		{name: "§5.2.2.3 must-understand with a known status overrides no-store", resp: []string{"Cache-Control", "must-understand, no-store, max-age=60"}, stored: true},
		{name: "§5.2 odd spacing and case in Cache-Control are parsed", resp: []string{"Cache-Control", "  Public ,MAX-AGE=60 ,  "}, stored: true},
		{name: "§5.2 a quoted comma does not end a directive", resp: []string{"Cache-Control", `ext="a, no-store", max-age=60`}, stored: true},
		{name: "§5.2 an unquoted no-cache argument ends at the comma (no-store still applies)", resp: []string{"Cache-Control", "max-age=60, no-cache=X-Foo,no-store"}, detail: "no-store"},
		{name: "§5.2.2.5 no-store with an argument still applies", resp: []string{"Cache-Control", "max-age=60, no-store=1"}, detail: "no-store"},
		{name: "§3 Cache-Control extension public=x does not make a private response storable", resp: []string{"Cache-Control", "private, public=x, max-age=60"}, detail: "private"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status := tc.status
			if status == 0 {
				status = 200
			}
			e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
				for i := 0; i+1 < len(tc.resp); i += 2 {
					w.Header().Add(tc.resp[i], tc.resp[i+1])
				}
				w.WriteHeader(status)
				if status != 204 {
					io.WriteString(w, "v"+strconv.Itoa(n))
				}
			})
			r1 := e.get("/s", tc.req1...)
			wantStatus(t, r1, status)
			if tc.stored != r1.CS.has("stored") {
				t.Errorf("first response: stored=%v, want %v (%v)", r1.CS.has("stored"), tc.stored, r1)
			}
			if tc.detail != "" && r1.CS.get("detail") != tc.detail {
				t.Errorf("first response: detail=%q, want %q (%v)", r1.CS.get("detail"), tc.detail, r1)
			}
			r2 := e.get("/s", tc.req2...)
			wantStatus(t, r2, status)
			if tc.stored {
				wantHit(t, r2)
				e.wantHits("/s", 1)
			} else {
				if r2.CS.hit() {
					t.Errorf("second response is a hit: %v", r2)
				}
				e.wantHits("/s", 2)
				if status == 200 {
					wantBody(t, r2, "v2")
				}
			}
		})
	}
}

// TestStorabilityNoCache checks that no-cache responses are stored but
// validated before every reuse (RFC 9111 §5.2.2.4).
func TestStorabilityNoCache(t *testing.T) {
	for _, cc := range []struct{ name, value string }{
		{"§5.2.2.4 no-cache: stored, validated on every use", "max-age=600, no-cache"},
		{"§5.2.2.4 a qualified no-cache whose list is not field names is treated like no-cache (edged choice)", `max-age=600, no-cache="X Foo"`},
		{"§5.2.2.4 an empty qualified no-cache is treated like no-cache (edged choice)", `max-age=600, no-cache=""`},
		{"§5.2.2.4 no-cache beside a qualified one applies to the whole response", `max-age=600, no-cache="X-Foo", no-cache`},
	} {
		t.Run(cc.name, func(t *testing.T) {
			e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Cache-Control", cc.value)
				w.Header().Set("ETag", `"nc"`)
				if r.Header.Get("If-None-Match") == `"nc"` {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				io.WriteString(w, "v"+strconv.Itoa(n))
			})
			r1 := e.get("/nc")
			if !r1.CS.has("stored") {
				t.Errorf("no-cache response not stored: %v", r1)
			}
			for i := 2; i <= 3; i++ {
				r := e.get("/nc")
				wantStatus(t, r, 200)
				wantBody(t, r, "v1")
				if r.CS.hit() {
					t.Errorf("request %d: no-cache response reused without validation: %v", i, r)
				}
				e.wantHits("/nc", i)
				if got := e.origin.last(t, "/nc").Header.Get("If-None-Match"); got != `"nc"` {
					t.Errorf("request %d: origin got If-None-Match %q, want \"nc\"", i, got)
				}
			}
		})
	}
}

// TestNoCacheQualified checks RFC 9111 §5.2.2.4's qualified form,
// no-cache="field": the response is stored and reused without validation,
// but the named fields are never sent on a reuse without successful
// revalidation: not on a hit, a HEAD or a 304 from the cache, not to
// requests collapsed on another's fill, not on a stale answer for a
// failing origin. The request whose fill or revalidation the origin just
// answered gets them.
func TestNoCacheQualified(t *testing.T) {
	tiers(t, opts{}, func(t *testing.T, o opts) {
		g := testkit.NewGate(t)
		var hold atomic.Bool
		e := newEnv(t, o, func(w http.ResponseWriter, r *http.Request, n int) {
			if hold.Load() {
				g.Wait(r.Context())
			}
			if n == 4 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			w.Header().Set("Cache-Control", `max-age=60, no-cache="X-User, x-token"`)
			w.Header().Set("ETag", `"q"`)
			w.Header().Set("X-User", "user"+strconv.Itoa(n))
			w.Header().Set("X-Token", "t")
			w.Header().Set("X-Shared", "s")
			if r.Header.Get("If-None-Match") == `"q"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			io.WriteString(w, long("body"))
		})
		t.Cleanup(g.Open)
		withheld := func(r result, what string) {
			t.Helper()
			if r.Header.Get("X-User") != "" || r.Header.Get("X-Token") != "" {
				t.Errorf("%s: a no-cache field was sent: X-User=%q X-Token=%q", what, r.Header.Get("X-User"), r.Header.Get("X-Token"))
			}
			if r.Header.Get("X-Shared") != "s" {
				t.Errorf("%s: X-Shared = %q, want s", what, r.Header.Get("X-Shared"))
			}
		}

		r := e.get("/q")
		if !r.CS.has("stored") || r.Header.Get("X-User") != "user1" {
			t.Errorf("the fill: %v X-User=%q, want stored and the origin's fields", r, r.Header.Get("X-User"))
		}
		r = e.get("/q")
		wantHit(t, r)
		wantBody(t, r, long("body"))
		withheld(r, "hit")
		withheld(e.do(http.MethodHead, "/q"), "HEAD hit")
		r = e.get("/q", "If-None-Match", `"q"`)
		wantStatus(t, r, 304)
		withheld(r, "304 from the cache")
		e.wantHits("/q", 1)

		// Stale: the revalidation the origin answers 304 gives the fields
		// (fresh from it) to the request that made it, not to the ones
		// collapsed on it.
		e.advance(2 * time.Minute)
		hold.Store(true)
		const n = 4
		var wg sync.WaitGroup
		res := make([]result, n)
		errs := make([]error, n)
		base := e.joined()
		for i := range n {
			wg.Go(func() { res[i], errs[i] = e.try(context.Background(), http.MethodGet, "/q") })
		}
		e.origin.Await(t, "/q", 2)
		e.awaitJoined(base + n - 1)
		hold.Store(false)
		g.Open()
		wg.Wait()
		leaders := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			wantFwd(t, res[i], "stale")
			wantBody(t, res[i], long("body"))
			if res[i].CS.has("collapsed") {
				withheld(res[i], "collapsed on a revalidation")
				continue
			}
			leaders++
			if res[i].Header.Get("X-User") != "user2" {
				t.Errorf("the revalidating request: X-User = %q, want the 304's user2", res[i].Header.Get("X-User"))
			}
		}
		if leaders != 1 {
			t.Errorf("%d requests not collapsed, want 1", leaders)
		}
		withheld(e.get("/q"), "hit after the revalidation")

		// A stale answer for a failing origin is a reuse without
		// validation.
		e.advance(2 * time.Minute)
		e.get("/q") // 3: refetched (304 again: the fields stay with it)
		e.advance(2 * time.Minute)
		r = e.get("/q") // 4: 502
		wantStaleOnError(t, r, "origin-error", 502)
		withheld(r, "stale on error")
	})
}

// TestSetCookieNotLeaked checks that one client's cookie is never served to
// another (RFC 9111 §3 and edged's Set-Cookie policy).
func TestSetCookieNotLeaked(t *testing.T) {
	e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		if n == 1 {
			w.Header().Set("Set-Cookie", "session=alice")
		}
		io.WriteString(w, "v"+strconv.Itoa(n))
	})
	e.get("/c")
	r := e.get("/c")
	if c := r.Header.Get("Set-Cookie"); c != "" {
		t.Errorf("second client got Set-Cookie %q (%v)", c, r)
	}
	e.wantHits("/c", 2)
}

// TestNonGetNotStored checks that responses to other methods are not
// stored for GET (RFC 9111 §3, §2).
func TestNonGetNotStored(t *testing.T) {
	e := newEnv(t, opts{}, numbered("v", "Cache-Control", "public, max-age=60"))
	r := e.do(http.MethodPost, "/p")
	wantBody(t, r, "v1")
	r = e.get("/p")
	wantBody(t, r, "v2")
	if r.CS.hit() {
		t.Errorf("GET answered from a POST response: %v", r)
	}
}

// TestUnknownStatus checks that a final status edged does not recognise is
// stored when the response has explicit freshness, then served from the
// cache and revalidated like a 200 (RFC 9111 §3: only 206 and 304 must be
// understood to be stored), while heuristic freshness stays with the
// statuses of RFC 9110 §15.1.
func TestUnknownStatus(t *testing.T) {
	cases := []struct {
		name   string
		status int
		cc     string
		stored bool
	}{
		{name: "§3 299 with max-age is stored", status: 299, cc: "max-age=60", stored: true},
		{name: "§3 432 with s-maxage is stored", status: 432, cc: "s-maxage=60", stored: true},
		{name: "§3 599 with max-age is stored", status: 599, cc: "max-age=60", stored: true},
		{name: "§4.2.2 299 with only Last-Modified gets no heuristic", status: 299},
		{name: "§3 599 with max-age and no-store is not stored", status: 599, cc: "max-age=60, no-store"},
		{name: "§5.2.2.3 299 with must-understand is not stored", status: 299, cc: "max-age=60, must-understand"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
				if tc.cc != "" {
					w.Header().Set("Cache-Control", tc.cc)
				}
				w.Header().Set("Last-Modified", httpDate(epoch.Add(-100*time.Hour)))
				w.WriteHeader(tc.status)
				io.WriteString(w, "v"+strconv.Itoa(n))
			})
			r1 := e.get("/u")
			wantStatus(t, r1, tc.status)
			if r1.CS.has("stored") != tc.stored {
				t.Errorf("first response: stored=%v, want %v (%v)", r1.CS.has("stored"), tc.stored, r1)
			}
			e.advance(time.Second)
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				r := e.do(method, "/u")
				wantStatus(t, r, tc.status)
				if tc.stored {
					wantHit(t, r)
				} else if r.CS.hit() {
					t.Errorf("%s is a hit: %v", method, r)
				}
			}
			if tc.stored {
				e.wantHits("/u", 1)
			}
		})
	}
}

// TestUnknownStatusRevalidated checks that a stored response with a status
// edged does not recognise is revalidated when stale, and that a 304 keeps
// its status and body (RFC 9111 §4.3.4).
func TestUnknownStatusRevalidated(t *testing.T) {
	e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"u"`)
		if r.Header.Get("If-None-Match") == `"u"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.WriteHeader(599)
		io.WriteString(w, "v"+strconv.Itoa(n))
	})
	wantStatus(t, e.get("/u"), 599)
	e.advance(20 * time.Second)
	r := e.get("/u")
	wantStatus(t, r, 599)
	wantBody(t, r, "v1")
	if r.CS.fwd() != "stale" || r.CS.get("fwd-status") != "304" {
		t.Errorf("want a revalidation answered 304, got %v", r)
	}
	e.advance(time.Second)
	r = e.get("/u")
	wantStatus(t, r, 599)
	wantBody(t, r, "v1")
	wantHit(t, r)
	e.wantHits("/u", 2)
	if h := e.origin.last(t, "/u").Header; h.Get("If-None-Match") != `"u"` {
		t.Errorf("revalidation sent If-None-Match %q", h.Get("If-None-Match"))
	}
}
