package conformance_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/cache/rfc"
)

// TestFreshness stores one response, moves the clock, and checks whether the
// second request is served from the cache (fresh) or goes to the origin.
func TestFreshness(t *testing.T) {
	type hdrFunc func(date time.Time) []string
	fixed := func(h ...string) hdrFunc { return func(time.Time) []string { return h } }
	cases := []struct {
		name    string
		status  int
		hdr     hdrFunc
		policy  rfc.Policy
		advance time.Duration
		fresh   bool
	}{
		{name: "§4.2.1 max-age: fresh before the lifetime ends", hdr: fixed("Cache-Control", "max-age=60"), advance: 59 * time.Second, fresh: true},
		{name: "§4.2 max-age: stale once current_age equals the lifetime", hdr: fixed("Cache-Control", "max-age=60"), advance: 60 * time.Second, fresh: false},
		{name: "§4.2.1 s-maxage overrides a shorter max-age", hdr: fixed("Cache-Control", "max-age=10, s-maxage=100"), advance: 50 * time.Second, fresh: true},
		{name: "§4.2.1 s-maxage overrides a longer max-age", hdr: fixed("Cache-Control", "max-age=100, s-maxage=10"), advance: 20 * time.Second, fresh: false},
		{name: "§4.2.1 max-age overrides a shorter Expires", hdr: func(d time.Time) []string {
			return []string{"Cache-Control", "max-age=100", "Expires", httpDate(d.Add(10 * time.Second))}
		}, advance: 50 * time.Second, fresh: true},
		{name: "§4.2.1 max-age overrides a longer Expires", hdr: func(d time.Time) []string {
			return []string{"Cache-Control", "max-age=10", "Expires", httpDate(d.Add(1000 * time.Second))}
		}, advance: 50 * time.Second, fresh: false},
		{name: "§4.2.1 s-maxage overrides Expires", hdr: func(d time.Time) []string {
			return []string{"Cache-Control", "s-maxage=10", "Expires", httpDate(d.Add(1000 * time.Second))}
		}, advance: 50 * time.Second, fresh: false},
		{name: "§4.2.1 Expires minus Date: fresh inside", hdr: func(d time.Time) []string {
			return []string{"Expires", httpDate(d.Add(30 * time.Second))}
		}, advance: 20 * time.Second, fresh: true},
		{name: "§4.2.1 Expires minus Date: stale after", hdr: func(d time.Time) []string {
			return []string{"Expires", httpDate(d.Add(30 * time.Second))}
		}, advance: 31 * time.Second, fresh: false},
		{name: "§4.2.1 Expires is measured from Date, not the cache's clock", hdr: func(d time.Time) []string {
			// Date 100 s behind the cache; lifetime 130 s; apparent age 100 s.
			return []string{"Date", httpDate(d.Add(-100 * time.Second)), "Expires", httpDate(d.Add(30 * time.Second))}
		}, advance: 20 * time.Second, fresh: true},
		{name: "§4.2.3 apparent age (response_time - Date) counts against the lifetime", hdr: func(d time.Time) []string {
			return []string{"Date", httpDate(d.Add(-100 * time.Second)), "Expires", httpDate(d.Add(30 * time.Second))}
		}, advance: 31 * time.Second, fresh: false},
		{name: "§5.3 invalid Expires (\"0\") means already expired", hdr: fixed("Expires", "0"), advance: 0, fresh: false},
		{name: "§5.3 invalid Expires (garbage) means already expired", hdr: fixed("Expires", "next tuesday", "Last-Modified", httpDate(epoch.Add(-1000*time.Hour))), advance: time.Second, fresh: false},
		// RFC 9110 §5.6.7 HTTP-dates, exactly. The clock starts at
		// epoch (Sat, 01 Mar 2025 12:00:00 GMT); the "loose" dates have a
		// one-digit hour, which http.ParseTime takes and the grammar does
		// not, and name a time that would flip the outcome if read.
		{name: "RFC 9110 §5.6.7 Expires as an rfc850-date", hdr: func(d time.Time) []string {
			return []string{"Expires", d.Add(time.Minute).UTC().Format("Monday, 02-Jan-06 15:04:05 GMT")}
		}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9110 §5.6.7 Expires as an asctime-date", hdr: func(d time.Time) []string {
			return []string{"Expires", d.Add(time.Minute).UTC().Format(time.ANSIC)}
		}, advance: 30 * time.Second, fresh: true},
		{name: "RFC 9111 §4.2 a cache reads an HTTP-date case-insensitively", hdr: func(d time.Time) []string {
			return []string{"Expires", strings.ToUpper(httpDate(d.Add(time.Minute)))}
		}, advance: 30 * time.Second, fresh: true},
		{name: "§5.3 Expires with a one-digit hour is invalid: already expired", hdr: fixed("Expires", "Sun, 02 Mar 2025 9:00:00 GMT"), advance: 30 * time.Second, fresh: false},
		{name: "§5.3 Expires with a double space is invalid: already expired", hdr: fixed("Expires", "Sun, 02 Mar 2025  09:00:00 GMT"), advance: 30 * time.Second, fresh: false},
		{name: "§4.2.3 a Date with a one-digit hour is ignored, not read as 11 hours old", hdr: fixed("Date", "Sat, 01 Mar 2025 1:00:00 GMT", "Cache-Control", "max-age=60"), advance: 30 * time.Second, fresh: true},
		{name: "§4.2.2 a Last-Modified with a one-digit hour is ignored: no heuristic", hdr: fixed("Last-Modified", "Fri, 28 Feb 2025 1:00:00 GMT"), advance: time.Minute, fresh: false},
		{name: "§4.2.1 Expires in the past is stale on arrival", hdr: func(d time.Time) []string {
			return []string{"Expires", httpDate(d.Add(-time.Hour))}
		}, advance: 0, fresh: false},
		{name: "§4.2.1 Expires equal to Date is stale on arrival", hdr: func(d time.Time) []string {
			return []string{"Expires", httpDate(d)}
		}, advance: 0, fresh: false},
		{name: "§4.2.1 duplicate max-age: first value or stale, never the last", hdr: fixed("Cache-Control", "max-age=10, max-age=600"), advance: 30 * time.Second, fresh: false},
		{name: "§5.2 directive names are case-insensitive (MAX-AGE)", hdr: fixed("Cache-Control", "PUBLIC, MAX-AGE=60"), advance: 30 * time.Second, fresh: true},
		{name: "§5.2 quoted-string argument max-age=\"60\" accepted", hdr: fixed("Cache-Control", `max-age="60"`), advance: 30 * time.Second, fresh: true},
		{name: "RFC 9110 §5.3 Cache-Control field lines are combined", hdr: fixed("Cache-Control", "public", "Cache-Control", "max-age=60"), advance: 30 * time.Second, fresh: true},
		{name: "§5.2.3 unknown extension directives are ignored", hdr: fixed("Cache-Control", `foo="bar, no-store", max-age=60, baz`), advance: 30 * time.Second, fresh: true},
		{name: "§4.2.1 invalid max-age makes the response stale", hdr: fixed("Cache-Control", "max-age=abc"), advance: 0, fresh: false},
		{name: "§4.2.2 heuristic: 10% of Date - Last-Modified, fresh inside", hdr: func(d time.Time) []string {
			return []string{"Last-Modified", httpDate(d.Add(-1000 * time.Second))}
		}, advance: 90 * time.Second, fresh: true},
		{name: "§4.2.2 heuristic: 10% of Date - Last-Modified, stale after", hdr: func(d time.Time) []string {
			return []string{"Last-Modified", httpDate(d.Add(-1000 * time.Second))}
		}, advance: 101 * time.Second, fresh: false},
		{name: "§4.2.2 heuristic fraction is configurable (0.5)", hdr: func(d time.Time) []string {
			return []string{"Last-Modified", httpDate(d.Add(-100 * time.Second))}
		}, policy: rfc.Policy{HeuristicFraction: 0.5}, advance: 49 * time.Second, fresh: true},
		{name: "§4.2.2 heuristic capped by HeuristicMax", hdr: func(d time.Time) []string {
			return []string{"Last-Modified", httpDate(d.Add(-10000 * time.Hour))}
		}, policy: rfc.Policy{HeuristicMax: time.Hour}, advance: time.Hour + time.Second, fresh: false},
		{name: "§4.2.2 heuristic cap: 24h by default", hdr: func(d time.Time) []string {
			return []string{"Last-Modified", httpDate(d.Add(-10000 * time.Hour))}
		}, advance: 24*time.Hour + time.Second, fresh: false},
		{name: "§4.2.2 heuristic not used with explicit freshness", hdr: func(d time.Time) []string {
			return []string{"Cache-Control", "max-age=10", "Last-Modified", httpDate(d.Add(-100000 * time.Second))}
		}, advance: 20 * time.Second, fresh: false},
		{name: "§4.2.2 heuristic not used when Expires is present", hdr: func(d time.Time) []string {
			return []string{"Expires", httpDate(d.Add(10 * time.Second)), "Last-Modified", httpDate(d.Add(-100000 * time.Second))}
		}, advance: 20 * time.Second, fresh: false},
		{name: "§4.2.2 heuristic applies to 301 (RFC 9110 §15.1)", status: 301, hdr: func(d time.Time) []string {
			return []string{"Location", "/elsewhere", "Last-Modified", httpDate(d.Add(-1000 * time.Second))}
		}, advance: 50 * time.Second, fresh: true},
		{name: "§4.2.2 heuristic applies to 308 (RFC 9110 §15.1)", status: 308, hdr: func(d time.Time) []string {
			return []string{"Location", "/elsewhere", "Last-Modified", httpDate(d.Add(-1000 * time.Second))}
		}, advance: 50 * time.Second, fresh: true},
		{name: "§4.2.2 no heuristic for 302 (not heuristically cacheable)", status: 302, hdr: func(d time.Time) []string {
			return []string{"Location", "/elsewhere", "Last-Modified", httpDate(d.Add(-1000 * time.Second))}
		}, advance: time.Second, fresh: false},
		{name: "§4.2.2 no heuristic for 500", status: 500, hdr: func(d time.Time) []string {
			return []string{"Last-Modified", httpDate(d.Add(-1000 * time.Second))}
		}, advance: time.Second, fresh: false},
		{name: "§3 302 with explicit max-age is stored", status: 302, hdr: fixed("Location", "/elsewhere", "Cache-Control", "max-age=60"), advance: 30 * time.Second, fresh: true},
		{name: "§3 404 with explicit max-age is stored", status: 404, hdr: fixed("Cache-Control", "max-age=60"), advance: 30 * time.Second, fresh: true},
		{name: "§4.2.2 DefaultTTL replaces the heuristic", hdr: fixed(), policy: rfc.Policy{DefaultTTL: 30 * time.Second}, advance: 20 * time.Second, fresh: true},
		{name: "§4.2.2 DefaultTTL is not used with explicit freshness", hdr: fixed("Cache-Control", "max-age=5"), policy: rfc.Policy{DefaultTTL: time.Hour}, advance: 10 * time.Second, fresh: false},
		{name: "§4.2.2 negative caching: 404 lives NegativeTTL", status: 404, hdr: fixed(), policy: rfc.Policy{NegativeTTL: 30 * time.Second}, advance: 20 * time.Second, fresh: true},
		{name: "§4.2.2 negative caching: 404 stale after NegativeTTL", status: 404, hdr: fixed(), policy: rfc.Policy{NegativeTTL: 30 * time.Second}, advance: 31 * time.Second, fresh: false},
		{name: "§4.2.2 negative caching: 410 lives NegativeTTL", status: 410, hdr: fixed(), policy: rfc.Policy{NegativeTTL: 30 * time.Second}, advance: 20 * time.Second, fresh: true},
		{name: "§4.2.1 negative caching: origin max-age overrides NegativeTTL", status: 404, hdr: fixed("Cache-Control", "max-age=5"), policy: rfc.Policy{NegativeTTL: time.Hour}, advance: 10 * time.Second, fresh: false},
		{name: "§4.2.1 negative caching: origin no-store overrides NegativeTTL", status: 404, hdr: fixed("Cache-Control", "no-store"), policy: rfc.Policy{NegativeTTL: time.Hour}, advance: 0, fresh: false},
		{name: "§4.2.2 negative caching does not apply to 500", status: 500, hdr: fixed(), policy: rfc.Policy{NegativeTTL: time.Hour}, advance: 0, fresh: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status := tc.status
			if status == 0 {
				status = 200
			}
			var e *env
			e = newEnv(t, opts{policy: tc.policy}, func(w http.ResponseWriter, r *http.Request, n int) {
				h := tc.hdr(e.clock.Now())
				for i := 0; i+1 < len(h); i += 2 {
					if i == 0 || h[i] != h[i-2] {
						w.Header().Del(h[i])
					}
					w.Header().Add(h[i], h[i+1])
				}
				w.WriteHeader(status)
				io.WriteString(w, "v"+strconv.Itoa(n))
			})
			r1 := e.get("/f")
			wantStatus(t, r1, status)
			e.advance(tc.advance)
			r2 := e.get("/f")
			wantStatus(t, r2, status)
			if tc.fresh {
				wantHit(t, r2)
				e.wantHits("/f", 1)
				if status != 301 && status != 302 && status != 308 {
					wantBody(t, r2, "v1")
				}
			} else {
				if r2.CS.hit() {
					t.Errorf("stale response served as a hit: %v", r2)
				}
				e.wantHits("/f", 2)
			}
		})
	}
}

// TestFreshnessTiers checks max-age expiry with the memory and disk tiers.
func TestFreshnessTiers(t *testing.T) {
	tiers(t, opts{}, func(t *testing.T, o opts) {
		// §4.2.1: max-age=60 is fresh at 59 s and stale at 60 s.
		e := newEnv(t, o, numbered(long("v"), "Cache-Control", "max-age=60"))
		wantBody(t, e.get("/t"), long("v")+"1")
		e.advance(59 * time.Second)
		r := e.get("/t")
		wantHit(t, r)
		wantBody(t, r, long("v")+"1")
		wantAge(t, r, 59)
		e.advance(time.Second)
		r = e.get("/t")
		wantFwd(t, r, "stale")
		wantBody(t, r, long("v")+"2")
	})
}

// TestAge checks the Age header (RFC 9111 §5.1) computed per §4.2.3.
func TestAge(t *testing.T) {
	t.Run("§5.1 Age on a miss is 0 and grows with resident time", func(t *testing.T) {
		e := newEnv(t, opts{}, nil)
		r := e.get("/a")
		wantAge(t, r, 0)
		e.advance(10 * time.Second)
		r = e.get("/a")
		wantHit(t, r)
		wantAge(t, r, 10)
		if ttl, ok := r.CS.ttl(); !ok || ttl != 50 {
			t.Errorf("ttl = %v %v, want 50", ttl, ok)
		}
	})
	t.Run("§4.2.3 apparent age: Date in the past counts", func(t *testing.T) {
		var e *env
		e = newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Date", httpDate(e.clock.Now().Add(-20*time.Second)))
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "x")
		})
		wantAge(t, e.get("/a"), 20)
		e.advance(5 * time.Second)
		r := e.get("/a")
		wantHit(t, r)
		wantAge(t, r, 25)
	})
	t.Run("§4.2.3 apparent age: Date in the future counts as 0", func(t *testing.T) {
		var e *env
		e = newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Date", httpDate(e.clock.Now().Add(300*time.Second)))
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "x")
		})
		wantAge(t, e.get("/a"), 0)
		e.advance(5 * time.Second)
		wantAge(t, e.get("/a"), 5)
	})
	t.Run("§4.2.3 Age from upstream is added (corrected_age_value)", func(t *testing.T) {
		e := newEnv(t, opts{}, respond(200, "x", "Cache-Control", "max-age=100", "Age", "30"))
		wantAge(t, e.get("/a"), 30)
		e.advance(10 * time.Second)
		r := e.get("/a")
		wantHit(t, r)
		wantAge(t, r, 40)
		if ttl, _ := r.CS.ttl(); ttl != 60 {
			t.Errorf("ttl = %d, want 60 (%v)", ttl, r)
		}
	})
	t.Run("§4.2.3 response_delay is added to the upstream Age", func(t *testing.T) {
		var e *env
		e = newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
			// The origin takes 3 s (fake) to answer; its Date is from when
			// it started. apparent_age = 3, corrected_age_value = 5 + 3.
			e.clock.Advance(3 * time.Second)
			w.Header().Set("Age", "5")
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "x")
		})
		wantAge(t, e.get("/a"), 8)
	})
	t.Run("§4.2.3 apparent age wins over a smaller corrected Age", func(t *testing.T) {
		var e *env
		e = newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Date", httpDate(e.clock.Now().Add(-40*time.Second)))
			w.Header().Set("Age", "5")
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "x")
		})
		wantAge(t, e.get("/a"), 40)
	})
	t.Run("§4.2 upstream Age beyond max-age: stale on arrival", func(t *testing.T) {
		e := newEnv(t, opts{}, respond(200, "x", "Cache-Control", "max-age=60", "Age", "70"))
		e.get("/a")
		r := e.get("/a")
		if r.CS.hit() {
			t.Errorf("response older than its max-age served as a hit: %v", r)
		}
		e.wantHits("/a", 2)
	})
	t.Run("§5.1 invalid upstream Age is ignored", func(t *testing.T) {
		e := newEnv(t, opts{}, respond(200, "x", "Cache-Control", "max-age=60", "Age", "abc"))
		wantAge(t, e.get("/a"), 0)
		r := e.get("/a")
		wantHit(t, r)
		wantAge(t, r, 0)
	})
	t.Run("§5.1 Age on a revalidated response restarts from the 304", func(t *testing.T) {
		e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("ETag", `"e"`)
			if r.Header.Get("If-None-Match") == `"e"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			io.WriteString(w, "x")
		})
		e.get("/a")
		e.advance(100 * time.Second)
		r := e.get("/a")
		wantFwd(t, r, "stale")
		wantAge(t, r, 0)
		e.advance(7 * time.Second)
		r = e.get("/a")
		wantHit(t, r)
		wantAge(t, r, 7)
	})
}
