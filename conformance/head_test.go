package conformance_test

import (
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestHeadFromStoredGet checks that HEAD is answered from a stored GET
// response with the same header fields and no body (RFC 9110 §9.3.2,
// RFC 9111 §4).
func TestHeadFromStoredGet(t *testing.T) {
	tiers(t, opts{}, func(t *testing.T, o opts) {
		body := long("payload")
		e := newEnv(t, o, respond(200, body, "Cache-Control", "max-age=60", "ETag", `"h"`, "X-Custom", "c", "Content-Type", "text/plain"))
		g := e.get("/h")
		e.advance(3 * time.Second)
		h := e.do(http.MethodHead, "/h")
		wantStatus(t, h, 200)
		wantHit(t, h)
		wantBody(t, h, "")
		wantAge(t, h, 3)
		for _, k := range []string{"ETag", "X-Custom", "Content-Type", "Cache-Control"} {
			if h.Header.Get(k) != g.Header.Get(k) {
				t.Errorf("HEAD %s = %q, GET had %q", k, h.Header.Get(k), g.Header.Get(k))
			}
		}
		if h.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("HEAD Content-Length = %q, want %d", h.Header.Get("Content-Length"), len(body))
		}
		e.wantHits("/h", 1)
	})
}

// TestHeadMiss checks edged's documented choice: a HEAD miss is fetched as
// a GET and stored, so a later GET is a hit (RFC 9110 §9.3.2 allows a HEAD
// to be answered like a GET without the body).
func TestHeadMiss(t *testing.T) {
	e := newEnv(t, opts{}, respond(200, "payload", "Cache-Control", "max-age=60"))
	h := e.do(http.MethodHead, "/h")
	wantStatus(t, h, 200)
	wantBody(t, h, "")
	if got := e.origin.last(t, "/h").Method; got != http.MethodGet {
		t.Errorf("origin got %s, want GET", got)
	}
	r := e.get("/h")
	wantHit(t, r)
	wantBody(t, r, "payload")
	e.wantHits("/h", 1)
}

// TestHeadRevalidates checks that a HEAD on a stale entry revalidates it
// like a GET (RFC 9111 §4.3.1) and that the refreshed entry serves the next
// GET in full.
func TestHeadRevalidates(t *testing.T) {
	e := newEnv(t, opts{}, validatingOrigin("max-age=10", `"h"`, "", "payload"))
	e.get("/h")
	e.advance(20 * time.Second)
	h := e.do(http.MethodHead, "/h")
	wantStatus(t, h, 200)
	wantBody(t, h, "")
	wantFwd(t, h, "stale")
	if got := e.origin.last(t, "/h").Header.Get("If-None-Match"); got != `"h"` {
		t.Errorf("revalidation If-None-Match = %q", got)
	}
	r := e.get("/h")
	wantHit(t, r)
	wantBody(t, r, "payload")
}

// TestHeadNotStoredWhenUncacheable checks that a HEAD to an uncacheable
// resource stores nothing (RFC 9111 §3).
func TestHeadNotStoredWhenUncacheable(t *testing.T) {
	e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "v"+strconv.Itoa(n))
	})
	e.do(http.MethodHead, "/h")
	r := e.get("/h")
	wantBody(t, r, "v2")
	if r.CS.hit() {
		t.Errorf("no-store response reused: %v", r)
	}
}

// TestHeadConditional checks a conditional HEAD against a fresh entry
// (RFC 9110 §13.1.2).
func TestHeadConditional(t *testing.T) {
	e := newEnv(t, opts{}, respond(200, "payload", "Cache-Control", "max-age=60", "ETag", `"h"`))
	e.get("/h")
	r := e.do(http.MethodHead, "/h", "If-None-Match", `"h"`)
	wantStatus(t, r, 304)
	wantHit(t, r)
}

// TestRangeFromStoredEntry is a smoke test: a single range of a stored
// entry is answered 206 from the cache (RFC 9110 §14.2, §15.3.7).
func TestRangeFromStoredEntry(t *testing.T) {
	e := newEnv(t, opts{}, respond(200, "0123456789", "Cache-Control", "max-age=60"))
	e.get("/r")
	r := e.get("/r", "Range", "bytes=2-5")
	wantStatus(t, r, http.StatusPartialContent)
	wantBody(t, r, "2345")
	wantHit(t, r)
	if got := r.Header.Get("Content-Range"); got != "bytes 2-5/10" {
		t.Errorf("Content-Range = %q", got)
	}
	e.wantHits("/r", 1)
}
