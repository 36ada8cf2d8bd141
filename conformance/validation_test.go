package conformance_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// validatingOrigin serves body with the validators given and answers a
// matching If-None-Match (or, without one, If-Modified-Since) with 304.
// Header pairs in notModified are added to 304 responses only.
func validatingOrigin(cc, etag, lastModified, body string, notModified ...string) originFunc {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", cc)
		if etag != "" {
			w.Header().Set("ETag", etag)
		}
		if lastModified != "" {
			w.Header().Set("Last-Modified", lastModified)
		}
		inm, ims := r.Header.Get("If-None-Match"), r.Header.Get("If-Modified-Since")
		if (inm != "" && inm == etag) || (inm == "" && ims != "" && ims == lastModified) {
			for i := 0; i+1 < len(notModified); i += 2 {
				w.Header().Set(notModified[i], notModified[i+1])
			}
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, body)
	}
}

// TestRevalidationRequest checks the conditional request a cache sends for a
// stale entry (RFC 9111 §4.3.1).
func TestRevalidationRequest(t *testing.T) {
	lm := httpDate(epoch.Add(-time.Hour))
	cases := []struct {
		name        string
		etag, lm    string
		wantINM     string
		wantIMS     string
		wantINMNone bool
	}{
		{name: "§4.3.1 strong ETag is sent as If-None-Match", etag: `"abc"`, wantINM: `"abc"`},
		{name: "§4.3.1 weak ETag is sent as If-None-Match", etag: `W/"abc"`, wantINM: `W/"abc"`},
		{name: "§4.3.1 Last-Modified only: If-Modified-Since", lm: lm, wantIMS: lm, wantINMNone: true},
		{name: "§4.3.1 both validators: If-None-Match and If-Modified-Since", etag: `"abc"`, lm: lm, wantINM: `"abc"`, wantIMS: lm},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, opts{}, validatingOrigin("max-age=10", tc.etag, tc.lm, "payload"))
			e.get("/r")
			if h := e.origin.last(t, "/r").Header; h.Get("If-None-Match") != "" || h.Get("If-Modified-Since") != "" {
				t.Errorf("first fetch was conditional: %v", h)
			}
			e.advance(20 * time.Second)
			r := e.get("/r")
			wantStatus(t, r, 200)
			wantBody(t, r, "payload")
			wantFwd(t, r, "stale")
			if r.CS.get("fwd-status") != "304" {
				t.Errorf("fwd-status = %q, want 304 (%v)", r.CS.get("fwd-status"), r)
			}
			h := e.origin.last(t, "/r").Header
			if tc.wantINM != "" && h.Get("If-None-Match") != tc.wantINM {
				t.Errorf("If-None-Match = %q, want %q", h.Get("If-None-Match"), tc.wantINM)
			}
			if tc.wantINMNone && h.Get("If-None-Match") != "" {
				t.Errorf("If-None-Match = %q, want none", h.Get("If-None-Match"))
			}
			if tc.wantIMS != "" && h.Get("If-Modified-Since") != tc.wantIMS {
				t.Errorf("If-Modified-Since = %q, want %q", h.Get("If-Modified-Since"), tc.wantIMS)
			}
			e.wantHits("/r", 2)
		})
	}
}

// TestRevalidationNoValidator checks that a stale entry without validators
// is fetched again unconditionally and replaced (RFC 9111 §4.3.1, §4).
func TestRevalidationNoValidator(t *testing.T) {
	e := newEnv(t, opts{}, numbered("v", "Cache-Control", "max-age=10"))
	e.get("/r")
	e.advance(20 * time.Second)
	r := e.get("/r")
	wantFwd(t, r, "stale")
	wantBody(t, r, "v2")
	h := e.origin.last(t, "/r").Header
	if h.Get("If-None-Match") != "" || h.Get("If-Modified-Since") != "" {
		t.Errorf("unconditional refetch carried validators: %v", h)
	}
	wantHit(t, e.get("/r"))
}

// TestNotModifiedRefreshes checks that a 304 makes the entry fresh again
// (RFC 9111 §4.3.4).
func TestNotModifiedRefreshes(t *testing.T) {
	tiers(t, opts{}, func(t *testing.T, o opts) {
		e := newEnv(t, o, validatingOrigin("max-age=60", `"e1"`, "", long("payload")))
		e.get("/r")
		e.advance(70 * time.Second)
		r := e.get("/r")
		wantFwd(t, r, "stale")
		wantBody(t, r, long("payload"))
		e.advance(30 * time.Second)
		r = e.get("/r")
		wantHit(t, r)
		wantBody(t, r, long("payload"))
		wantAge(t, r, 30)
		e.wantHits("/r", 2)
	})
}

// TestNotModifiedUpdatesHeaders checks that a 304 replaces the stored
// header fields it carries (RFC 9111 §3.2, §4.3.4).
func TestNotModifiedUpdatesHeaders(t *testing.T) {
	tiers(t, opts{}, func(t *testing.T, o opts) {
		body := long("payload")
		var e *env
		e = newEnv(t, o, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				w.Header().Set("Cache-Control", "max-age=10")
				w.Header().Set("ETag", `"v1"`)
				w.Header().Set("X-Custom", "old")
				w.Header().Set("X-Kept", "kept")
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, body)
				return
			}
			if r.Header.Get("If-None-Match") != `"v1"` && r.Header.Get("If-None-Match") != `"v2"` {
				t.Errorf("revalidation %d: If-None-Match = %q", n, r.Header.Get("If-None-Match"))
			}
			// Written by hand: net/http would drop the Content-Length of
			// a 304, and §3.2 says the cache must not take it.
			conn, bw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			fmt.Fprintf(bw, "HTTP/1.1 304 Not Modified\r\nDate: %s\r\nCache-Control: max-age=120\r\nETag: \"v2\"\r\nX-Custom: new\r\nExpires: %s\r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
				httpDate(e.clock.Now()), httpDate(e.clock.Now().Add(120*time.Second)))
			bw.Flush()
		})
		e.get("/u")
		e.advance(20 * time.Second)
		r := e.get("/u")
		wantStatus(t, r, 200)
		wantBody(t, r, body)
		check := func(r result) {
			t.Helper()
			for k, v := range map[string]string{"X-Custom": "new", "Etag": `"v2"`, "Cache-Control": "max-age=120", "X-Kept": "kept", "Content-Type": "text/plain", "Content-Length": strconv.Itoa(len(body))} {
				if got := r.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q (%v)", k, got, v, r)
				}
			}
		}
		check(r)
		// The new max-age=120 governs freshness from the 304 on.
		e.advance(100 * time.Second)
		r = e.get("/u")
		wantHit(t, r)
		wantBody(t, r, body)
		check(r)
		e.wantHits("/u", 2)
		// The next revalidation uses the new validator.
		e.advance(30 * time.Second)
		e.get("/u")
		if got := e.origin.last(t, "/u").Header.Get("If-None-Match"); got != `"v2"` {
			t.Errorf("second revalidation If-None-Match = %q, want \"v2\"", got)
		}
	})
}

// TestChangedResponseReplaces checks that a 200 to a revalidation replaces
// the stored entry (RFC 9111 §4.3.3).
func TestChangedResponseReplaces(t *testing.T) {
	tiers(t, opts{}, func(t *testing.T, o opts) {
		e := newEnv(t, o, func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Cache-Control", "max-age=10")
			w.Header().Set("ETag", `"v`+strconv.Itoa(n)+`"`)
			io.WriteString(w, long("version ")+strconv.Itoa(n))
		})
		e.get("/c")
		e.advance(20 * time.Second)
		r := e.get("/c")
		wantFwd(t, r, "stale")
		wantBody(t, r, long("version ")+"2")
		if !r.CS.has("stored") {
			t.Errorf("replacement not stored: %v", r)
		}
		r = e.get("/c")
		wantHit(t, r)
		wantBody(t, r, long("version ")+"2")
		if r.Header.Get("ETag") != `"v2"` {
			t.Errorf("ETag = %q, want \"v2\"", r.Header.Get("ETag"))
		}
	})
}

// TestClientConditionals checks conditional requests answered from a fresh
// entry without contacting the origin (RFC 9110 §13, RFC 9111 §4.3.2).
func TestClientConditionals(t *testing.T) {
	lm := epoch.Add(-time.Hour)
	cases := []struct {
		name   string
		etag   string
		lm     string // Last-Modified; "" is httpDate(lm), "-" none
		noDate bool   // the origin sends no Date
		hdr    []string
		want   int
	}{
		{name: "RFC 9110 §13.1.2 If-None-Match matching strong ETag: 304", etag: `"a"`, hdr: []string{"If-None-Match", `"a"`}, want: 304},
		{name: "RFC 9110 §13.1.2 If-None-Match uses weak comparison (W/ stored)", etag: `W/"a"`, hdr: []string{"If-None-Match", `"a"`}, want: 304},
		{name: "RFC 9110 §13.1.2 If-None-Match uses weak comparison (W/ sent)", etag: `"a"`, hdr: []string{"If-None-Match", `W/"a"`}, want: 304},
		{name: "RFC 9110 §13.1.2 If-None-Match list with a match: 304", etag: `"a"`, hdr: []string{"If-None-Match", `"x", "y", "a"`}, want: 304},
		{name: "RFC 9110 §13.1.2 If-None-Match over two field lines", etag: `"a"`, hdr: []string{"If-None-Match", `"x"`, "If-None-Match", `"a"`}, want: 304},
		{name: "RFC 9110 §13.1.2 If-None-Match: * matches a stored representation", etag: `"a"`, hdr: []string{"If-None-Match", "*"}, want: 304},
		{name: "RFC 9110 §13.1.2 If-None-Match without a match: 200", etag: `"a"`, hdr: []string{"If-None-Match", `"b"`}, want: 200},
		{name: "RFC 9110 §8.8.3 entity-tags are case-sensitive", etag: `"abc"`, hdr: []string{"If-None-Match", `"ABC"`}, want: 200},
		{name: "RFC 9110 §13.1.3 If-Modified-Since equal to Last-Modified: 304", hdr: []string{"If-Modified-Since", httpDate(lm)}, want: 304},
		{name: "RFC 9110 §13.1.3 If-Modified-Since after Last-Modified: 304", hdr: []string{"If-Modified-Since", httpDate(lm.Add(time.Minute))}, want: 304},
		{name: "RFC 9110 §13.1.3 If-Modified-Since before Last-Modified: 200", hdr: []string{"If-Modified-Since", httpDate(lm.Add(-time.Minute))}, want: 200},
		{name: "RFC 9110 §13.1.3 invalid If-Modified-Since is ignored: 200", hdr: []string{"If-Modified-Since", "yesterday"}, want: 200},
		{name: "RFC 9110 §5.6.7 If-Modified-Since as an rfc850-date: 304", hdr: []string{"If-Modified-Since", lm.Format("Monday, 02-Jan-06 15:04:05 GMT")}, want: 304},
		{name: "RFC 9110 §5.6.7 If-Modified-Since as an asctime-date: 304", hdr: []string{"If-Modified-Since", lm.Format(time.ANSIC)}, want: 304},
		{name: "RFC 9110 §13.1.3 If-Modified-Since with a one-digit hour is invalid, ignored: 200", hdr: []string{"If-Modified-Since", "Sun, 02 Mar 2025 9:00:00 GMT"}, want: 200},
		{name: "RFC 9110 §13.1.3 If-None-Match takes precedence over If-Modified-Since", etag: `"a"`, hdr: []string{"If-None-Match", `"b"`, "If-Modified-Since", httpDate(lm.Add(time.Minute))}, want: 200},
		{name: "RFC 9110 §13.2.2 If-None-Match match wins over an old If-Modified-Since", etag: `"a"`, hdr: []string{"If-None-Match", `"a"`, "If-Modified-Since", httpDate(lm.Add(-time.Minute))}, want: 304},
		{name: "RFC 9111 §4.3.2 no Last-Modified: If-Modified-Since equal to Date: 304", lm: "-", hdr: []string{"If-Modified-Since", httpDate(epoch)}, want: 304},
		{name: "RFC 9111 §4.3.2 no Last-Modified: If-Modified-Since after Date: 304", lm: "-", hdr: []string{"If-Modified-Since", httpDate(epoch.Add(time.Minute))}, want: 304},
		{name: "RFC 9111 §4.3.2 no Last-Modified: If-Modified-Since before Date: 200", lm: "-", hdr: []string{"If-Modified-Since", httpDate(epoch.Add(-time.Minute))}, want: 200},
		{name: "RFC 9111 §4.3.2 invalid Last-Modified: compared with Date", lm: "last week", hdr: []string{"If-Modified-Since", httpDate(epoch)}, want: 304},
		{name: "RFC 9111 §4.3.2 no Last-Modified or Date: compared with the time received (304)", lm: "-", noDate: true, hdr: []string{"If-Modified-Since", httpDate(epoch.Add(time.Minute))}, want: 304},
		{name: "RFC 9111 §4.3.2 no Last-Modified or Date: compared with the time received (200)", lm: "-", noDate: true, hdr: []string{"If-Modified-Since", httpDate(epoch.Add(-time.Minute))}, want: 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lastModified := httpDate(lm)
			switch tc.lm {
			case "":
			case "-":
				lastModified = ""
			default:
				lastModified = tc.lm
			}
			o := validatingOrigin("max-age=600", tc.etag, lastModified, "payload")
			e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
				if tc.noDate {
					w.Header()["Date"] = nil // not even net/http's own
				}
				o(w, r, n)
			})
			e.get("/cond")
			r := e.get("/cond", tc.hdr...)
			wantStatus(t, r, tc.want)
			wantHit(t, r)
			e.wantHits("/cond", 1)
			if tc.want == 304 {
				wantBody(t, r, "")
				// RFC 9110 §15.4.5: the 304 carries the fields a 200 would.
				if tc.etag != "" && r.Header.Get("ETag") != tc.etag {
					t.Errorf("304 ETag = %q, want %q", r.Header.Get("ETag"), tc.etag)
				}
				if r.Header.Get("Cache-Control") != "max-age=600" {
					t.Errorf("304 Cache-Control = %q", r.Header.Get("Cache-Control"))
				}
				if r.Header.Get("Age") == "" {
					t.Errorf("304 from the cache without Age (%v)", r)
				}
			} else {
				wantBody(t, r, "payload")
			}
		})
	}
}

// TestClientConditionalOnMiss checks that a client's validator is not
// forwarded on a fill: the cache needs the full response to store it
// (RFC 9111 §4.3.2), and still answers the client 304.
func TestClientConditionalOnMiss(t *testing.T) {
	e := newEnv(t, opts{}, validatingOrigin("max-age=600", `"a"`, "", "payload"))
	r := e.get("/m", "If-None-Match", `"a"`)
	wantStatus(t, r, 304)
	if h := e.origin.last(t, "/m").Header; h.Get("If-None-Match") != "" {
		t.Errorf("fill forwarded the client's If-None-Match %q", h.Get("If-None-Match"))
	}
	r = e.get("/m")
	wantHit(t, r)
	wantBody(t, r, "payload")
}

// TestMustRevalidateNeverStale checks that must-revalidate, proxy-revalidate
// and s-maxage forbid serving stale, and that a revalidation that cannot
// reach the origin gets 504 (RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.8, §5.2.2.10).
func TestMustRevalidateNeverStale(t *testing.T) {
	for _, tc := range []struct{ name, cc string }{
		{"§5.2.2.2 must-revalidate", "max-age=10, must-revalidate"},
		{"§5.2.2.8 proxy-revalidate", "max-age=10, proxy-revalidate"},
		{"§5.2.2.10 s-maxage implies proxy-revalidate", "s-maxage=10"},
	} {
		t.Run(tc.name+": origin unreachable gives 504", func(t *testing.T) {
			e := newEnv(t, opts{policy: policyStale(time.Hour, time.Hour)}, validatingOrigin(tc.cc, `"a"`, "", "payload"))
			e.get("/m")
			e.advance(20 * time.Second)
			e.closeOrigin()
			r := e.get("/m")
			wantStatus(t, r, http.StatusGatewayTimeout)
			if r.Body == "payload" {
				t.Errorf("stale body served: %v", r)
			}
			if !r.CS.present {
				t.Errorf("no edged Cache-Status on the 504: %v", r)
			}
		})
		t.Run(tc.name+": max-stale request cannot get it stale", func(t *testing.T) {
			e := newEnv(t, opts{}, validatingOrigin(tc.cc, `"a"`, "", "payload"))
			e.get("/m")
			e.advance(20 * time.Second)
			r := e.get("/m", "Cache-Control", "max-stale=3600")
			if r.CS.hit() {
				t.Errorf("served stale: %v", r)
			}
			e.wantHits("/m", 2)
		})
		t.Run(tc.name+": origin 500 on revalidation is forwarded", func(t *testing.T) {
			e := newEnv(t, opts{policy: policyStale(time.Hour, time.Hour)}, func(w http.ResponseWriter, r *http.Request, n int) {
				if n > 1 {
					w.WriteHeader(500)
					io.WriteString(w, "boom")
					return
				}
				w.Header().Set("Cache-Control", tc.cc)
				io.WriteString(w, "payload")
			})
			e.get("/m")
			e.advance(20 * time.Second)
			r := e.get("/m")
			wantStatus(t, r, 500)
			if r.Body == "payload" {
				t.Errorf("stale body served: %v", r)
			}
		})
	}
}
