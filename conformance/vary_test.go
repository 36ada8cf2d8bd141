package conformance_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// varyOrigin answers with Vary: vary and a body naming the request's values
// of the varied fields and the request number.
func varyOrigin(vary string, extra ...string) originFunc {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", vary)
		for i := 0; i+1 < len(extra); i += 2 {
			w.Header().Add(extra[i], extra[i+1])
		}
		var parts []string
		for name := range strings.SplitSeq(vary, ",") {
			parts = append(parts, strings.Join(r.Header.Values(strings.TrimSpace(name)), "+"))
		}
		io.WriteString(w, long(strings.Join(parts, "|")+"#"+strconv.Itoa(n)))
	}
}

// TestVaryVariantsSideBySide alternates two variants of one URL: after one
// fill each, both are hits (RFC 9111 §4.1).
func TestVaryVariantsSideBySide(t *testing.T) {
	tiers(t, opts{}, func(t *testing.T, o opts) {
		e := newEnv(t, o, varyOrigin("Accept-Language"))
		r := e.get("/v", "Accept-Language", "en")
		wantFwd(t, r, "uri-miss")
		wantBody(t, r, long("en#1"))
		r = e.get("/v", "Accept-Language", "fr")
		// §4.1: the stored response does not match; RFC 9211 §2.2 vary-miss.
		wantFwd(t, r, "vary-miss")
		wantBody(t, r, long("fr#2"))
		for i := 0; i < 2; i++ {
			r = e.get("/v", "Accept-Language", "en")
			wantHit(t, r)
			wantBody(t, r, long("en#1"))
			r = e.get("/v", "Accept-Language", "fr")
			wantHit(t, r)
			wantBody(t, r, long("fr#2"))
		}
		e.wantHits("/v", 2)
	})
}

// TestVaryMatching checks which request pairs select the same stored
// variant (RFC 9111 §4.1).
func TestVaryMatching(t *testing.T) {
	cases := []struct {
		name  string
		vary  string
		req1  []string
		req2  []string
		match bool
	}{
		{name: "§4.1 same value matches", vary: "Accept-Language", req1: []string{"Accept-Language", "en"}, req2: []string{"Accept-Language", "en"}, match: true},
		{name: "§4.1 different value does not match", vary: "Accept-Language", req1: []string{"Accept-Language", "en"}, req2: []string{"Accept-Language", "fr"}},
		{name: "§4.1 absent then present does not match", vary: "Accept-Language", req1: nil, req2: []string{"Accept-Language", "en"}},
		{name: "§4.1 present then absent does not match", vary: "Accept-Language", req1: []string{"Accept-Language", "en"}, req2: nil},
		{name: "§4.1 absent in both matches", vary: "Accept-Language", req1: nil, req2: nil, match: true},
		{name: "§4.1 Vary field names are case-insensitive", vary: "accept-LANGUAGE", req1: []string{"Accept-Language", "en"}, req2: []string{"Accept-Language", "en"}, match: true},
		{name: "§4.1 whitespace runs are normalised", vary: "Accept-Language", req1: []string{"Accept-Language", "en,   fr"}, req2: []string{"Accept-Language", "en, fr"}, match: true},
		{name: "§4.1 field lines are combined", vary: "Accept-Language", req1: []string{"Accept-Language", "en", "Accept-Language", "fr"}, req2: []string{"Accept-Language", "en, fr"}, match: true},
		{name: "§4.1 every listed field must match", vary: "Accept-Language, X-Device", req1: []string{"Accept-Language", "en", "X-Device", "phone"}, req2: []string{"Accept-Language", "en", "X-Device", "desktop"}},
		{name: "§4.1 every listed field matches", vary: "Accept-Language, X-Device", req1: []string{"Accept-Language", "en", "X-Device", "phone"}, req2: []string{"X-Device", "phone", "Accept-Language", "en"}, match: true},
		{name: "§4.1 unlisted fields are ignored", vary: "Accept-Language", req1: []string{"Accept-Language", "en", "X-Other", "1"}, req2: []string{"Accept-Language", "en", "X-Other", "2"}, match: true},
		{name: "§4.1 Accept-Encoding token order is normalised", vary: "Accept-Encoding", req1: []string{"Accept-Encoding", "gzip, br"}, req2: []string{"Accept-Encoding", "br, gzip"}, match: true},
		{name: "§4.1 Accept-Encoding case is normalised (RFC 9110 §12.5.3 codings are case-insensitive)", vary: "Accept-Encoding", req1: []string{"Accept-Encoding", "gzip, br"}, req2: []string{"Accept-Encoding", "br,GZIP"}, match: true},
		{name: "§4.1 Accept-Encoding whitespace is normalised", vary: "Accept-Encoding", req1: []string{"Accept-Encoding", "gzip,br"}, req2: []string{"Accept-Encoding", " gzip ,  br "}, match: true},
		{name: "§4.1 Accept-Encoding q=1 is the default weight", vary: "Accept-Encoding", req1: []string{"Accept-Encoding", "gzip;q=1.0, br"}, req2: []string{"Accept-Encoding", "br, gzip"}, match: true},
		{name: "§4.1 Accept-Encoding gzip;q=0 (refused) differs from gzip", vary: "Accept-Encoding", req1: []string{"Accept-Encoding", "gzip"}, req2: []string{"Accept-Encoding", "gzip;q=0"}},
		{name: "§4.1 Accept-Encoding different codings differ", vary: "Accept-Encoding", req1: []string{"Accept-Encoding", "gzip"}, req2: []string{"Accept-Encoding", "br"}},
		{name: "§4.1 Vary on two field lines: both apply", vary: "Accept-Language", req1: []string{"Accept-Language", "en", "X-Device", "phone"}, req2: []string{"Accept-Language", "en", "X-Device", "desktop"}},
		{name: "§4.1 whitespace around list separators is normalised", vary: "X-Foo", req1: []string{"X-Foo", "1,2"}, req2: []string{"X-Foo", "1 ,  2"}, match: true},
		{name: "§4.1 field lines are combined for any field", vary: "X-Foo", req1: []string{"X-Foo", "1, 2"}, req2: []string{"X-Foo", "1", "X-Foo", "2"}, match: true},
		{name: "§4.1 empty list members are ignored (RFC 9110 §5.6.1)", vary: "X-Foo", req1: []string{"X-Foo", "1,2"}, req2: []string{"X-Foo", "1,,2,"}, match: true},
		{name: "§4.1 member order is significant", vary: "X-Foo", req1: []string{"X-Foo", "1,2"}, req2: []string{"X-Foo", "2,1"}},
		{name: "§4.1 commas inside a quoted string are not separators", vary: "X-Foo", req1: []string{"X-Foo", `"a,b"`}, req2: []string{"X-Foo", `"a, b"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o originFunc = varyOrigin(tc.vary)
			if strings.HasPrefix(tc.name, "§4.1 Vary on two field lines") {
				o = func(w http.ResponseWriter, r *http.Request, n int) {
					w.Header().Set("Cache-Control", "max-age=600")
					w.Header().Add("Vary", "Accept-Language")
					w.Header().Add("Vary", "X-Device")
					io.WriteString(w, "#"+strconv.Itoa(n))
				}
			}
			e := newEnv(t, opts{}, o)
			r1 := e.get("/v", tc.req1...)
			r2 := e.get("/v", tc.req2...)
			if tc.match {
				wantHit(t, r2)
				wantBody(t, r2, r1.Body)
				e.wantHits("/v", 1)
			} else {
				wantFwd(t, r2, "vary-miss")
				e.wantHits("/v", 2)
				// Both variants are now stored: the first is still a hit.
				r3 := e.get("/v", tc.req1...)
				wantHit(t, r3)
				wantBody(t, r3, r1.Body)
			}
		})
	}
}

// TestVaryEncodingBodies checks that each client gets the representation
// for its own Accept-Encoding (RFC 9111 §4.1, RFC 9110 §12.5.3).
func TestVaryEncodingBodies(t *testing.T) {
	e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Accept-Encoding")
		if strings.Contains(strings.ToLower(r.Header.Get("Accept-Encoding")), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, "gzipped")
			return
		}
		io.WriteString(w, "identity")
	})
	for range 2 {
		r := e.get("/enc", "Accept-Encoding", "gzip, deflate")
		wantBody(t, r, "gzipped")
		if r.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("gzip variant without Content-Encoding: %v", r)
		}
		r = e.get("/enc")
		wantBody(t, r, "identity")
		if r.Header.Get("Content-Encoding") != "" {
			t.Errorf("identity variant with Content-Encoding: %v", r)
		}
		r = e.get("/enc", "Accept-Encoding", "DEFLATE,gzip")
		wantBody(t, r, "gzipped")
	}
	e.wantHits("/enc", 2)
}

// TestVaryIndependentFreshness checks that variants keep their own
// freshness (RFC 9111 §4.1, §4.2).
func TestVaryIndependentFreshness(t *testing.T) {
	e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Vary", "Accept-Language")
		if r.Header.Get("Accept-Language") == "en" {
			w.Header().Set("Cache-Control", "max-age=10")
		} else {
			w.Header().Set("Cache-Control", "max-age=100")
		}
		io.WriteString(w, r.Header.Get("Accept-Language")+strconv.Itoa(n))
	})
	e.get("/v", "Accept-Language", "en")
	e.get("/v", "Accept-Language", "fr")
	e.advance(50 * time.Second)
	r := e.get("/v", "Accept-Language", "fr")
	wantHit(t, r)
	wantBody(t, r, "fr2")
	r = e.get("/v", "Accept-Language", "en")
	wantFwd(t, r, "stale")
	wantBody(t, r, "en3")
	// Refreshing en must not drop fr.
	r = e.get("/v", "Accept-Language", "fr")
	wantHit(t, r)
	wantBody(t, r, "fr2")
}

// TestVaryInvalidationRemovesAllVariants checks that an unsafe request
// invalidates every stored variant of the URI (RFC 9111 §4.4).
func TestVaryInvalidationRemovesAllVariants(t *testing.T) {
	tiers(t, opts{}, func(t *testing.T, o opts) {
		e := newEnv(t, o, varyOrigin("Accept-Language"))
		e.get("/v", "Accept-Language", "en")
		e.get("/v", "Accept-Language", "fr")
		wantHit(t, e.get("/v", "Accept-Language", "fr"))
		if r := e.do(http.MethodPost, "/v"); r.Status != 200 {
			t.Fatalf("POST: %v", r)
		}
		for _, lang := range []string{"en", "fr"} {
			r := e.get("/v", "Accept-Language", lang)
			if r.CS.hit() {
				t.Errorf("%s variant still served after invalidation: %v", lang, r)
			}
		}
	})
}
