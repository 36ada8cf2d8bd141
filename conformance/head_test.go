package conformance_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
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
// with a conditional HEAD (RFC 9111 §4.3.1, §4.3.5: the body is not
// needed) and that the refreshed entry serves the next GET in full.
func TestHeadRevalidates(t *testing.T) {
	tiers(t, opts{}, func(t *testing.T, o opts) {
		e := newEnv(t, o, validatingOrigin("max-age=10", `"h"`, "", long("payload")))
		e.get("/h")
		e.advance(20 * time.Second)
		h := e.do(http.MethodHead, "/h")
		wantStatus(t, h, 200)
		wantBody(t, h, "")
		wantFwd(t, h, "stale")
		if h.CS.get("fwd-status") != "304" || h.Header.Get("Content-Length") != strconv.Itoa(len(long("payload"))) {
			t.Errorf("HEAD answer %v Content-Length %q, want fwd-status=304 and the stored length", h, h.Header.Get("Content-Length"))
		}
		last := e.origin.last(t, "/h")
		if last.Method != http.MethodHead || last.Header.Get("If-None-Match") != `"h"` {
			t.Errorf("revalidation: %s with If-None-Match %q, want a HEAD with \"h\"", last.Method, last.Header.Get("If-None-Match"))
		}
		r := e.get("/h")
		wantHit(t, r)
		wantBody(t, r, long("payload"))
		e.wantHits("/h", 2)
	})
}

// TestHeadRevalidation checks what the answer to a HEAD revalidation does
// to the stored GET response (RFC 9111 §4.3.5): a 200 whose validators
// (ETag, Last-Modified) and Content-Length match it updates its header
// and freshness as a 304 would (fields it lacks are kept); any other
// answer is passed to the client and leaves the stored response stale,
// to be revalidated by the next GET; a 5xx lets the stale response stand
// in (RFC 5861 §4).
func TestHeadRevalidation(t *testing.T) {
	body := long("payload")
	cases := []struct {
		name    string
		stored  []string // the stored GET response's fields, beside Cache-Control: max-age=10 and Template-A: 1
		status  int      // the HEAD answer's status
		answer  []string // the HEAD answer's fields
		bodyLen int      // the Content-Length the HEAD answer announces; 0: none
		updated bool     // the stored response is freshened and updated
		stale   bool     // the stale response answers the HEAD (origin error)
	}{
		{name: "200 without validators on either side: updated", status: 200, answer: []string{"Cache-Control", "max-age=1000", "Template-A", "2"}, updated: true},
		{name: "200 without Template-A: stored fields kept", status: 200, answer: []string{"Cache-Control", "max-age=1000"}, updated: true},
		{name: "200 with the same ETag: updated", stored: []string{"ETag", `"a"`}, status: 200, answer: []string{"ETag", `"a"`, "Cache-Control", "max-age=1000", "Template-A", "2"}, updated: true},
		{name: "200 with the same Last-Modified and length: updated", stored: []string{"Last-Modified", httpDate(epoch.Add(-time.Hour))}, status: 200, answer: []string{"Last-Modified", httpDate(epoch.Add(-time.Hour)), "Cache-Control", "max-age=1000", "Template-A", "2"}, bodyLen: len(body), updated: true},
		{name: "200 with another ETag: passed through", stored: []string{"ETag", `"a"`}, status: 200, answer: []string{"ETag", `"b"`, "Cache-Control", "max-age=1000", "Template-A", "2"}},
		{name: "200 without the stored ETag: passed through", stored: []string{"ETag", `"a"`}, status: 200, answer: []string{"Cache-Control", "max-age=1000", "Template-A", "2"}},
		{name: "200 with an ETag the stored response lacks: passed through", status: 200, answer: []string{"ETag", `"b"`, "Cache-Control", "max-age=1000", "Template-A", "2"}},
		{name: "200 with another Content-Length: passed through", status: 200, answer: []string{"Cache-Control", "max-age=1000", "Template-A", "2"}, bodyLen: len(body) + 1},
		{name: "404: passed through", status: 404, answer: []string{"Cache-Control", "max-age=1000", "Template-A", "2"}},
		{name: "503: the stale response stands in", status: 503, stale: true},
	}
	for _, tc := range cases {
		tiers(t, opts{}, func(t *testing.T, o opts) {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, o, func(w http.ResponseWriter, r *http.Request, n int) {
					hd := w.Header()
					if n == 1 || r.Method == http.MethodGet {
						hd.Set("Cache-Control", "max-age=10")
						hd.Set("Template-A", "1")
						for i := 0; i+1 < len(tc.stored); i += 2 {
							hd.Set(tc.stored[i], tc.stored[i+1])
						}
						if n > 1 && r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Modified-Since") == "" {
							io.WriteString(w, long("changed")) // a refetch after a passed-through HEAD
							return
						}
						io.WriteString(w, body)
						return
					}
					for i := 0; i+1 < len(tc.answer); i += 2 {
						hd.Set(tc.answer[i], tc.answer[i+1])
					}
					if tc.bodyLen > 0 {
						hd.Set("Content-Length", strconv.Itoa(tc.bodyLen))
					}
					w.WriteHeader(tc.status)
				})
				e.get("/h")
				e.advance(20 * time.Second)
				h := e.do(http.MethodHead, "/h")
				if m := e.origin.last(t, "/h").Method; m != http.MethodHead {
					t.Fatalf("the revalidation was a %s, want HEAD", m)
				}
				wantBody(t, h, "")
				switch {
				case tc.stale:
					wantStatus(t, h, 200)
					wantStaleOnError(t, h, "origin-error", tc.status)
				case tc.updated:
					wantStatus(t, h, 200)
					wantFwd(t, h, "stale")
					if ttl, _ := h.CS.ttl(); ttl != 1000 || h.CS.get("fwd-status") != "200" {
						t.Errorf("HEAD answer %v, want fwd-status=200 and the new ttl", h)
					}
				default:
					wantStatus(t, h, tc.status)
					wantFwd(t, h, "stale")
					if h.CS.get("detail") != "head" || h.CS.has("stored") {
						t.Errorf("passed-through HEAD answer %v, want detail=head, not stored", h)
					}
				}
				label := map[bool]string{true: "head_updated", false: "head_changed"}[tc.updated]
				if v, _ := testkit.Metric(t, e.reg, "edged_cache_revalidations_total", "result", label); (v == 1) != (tc.updated || tc.status == 200) {
					t.Errorf("edged_cache_revalidations_total{result=%q} = %v", label, v)
				}
				wantTemplate := "1"
				if (tc.updated || !tc.stale) && slices.Contains(tc.answer, "Template-A") {
					wantTemplate = "2" // the HEAD answer's own, or the updated entry's
				}
				if got := h.Header.Get("Template-A"); got != wantTemplate {
					t.Errorf("HEAD answer Template-A = %q, want %q", got, wantTemplate)
				}
				r := e.get("/h")
				if !tc.updated {
					// Still stale: the GET revalidates (or refetches) it.
					wantFwd(t, r, "stale")
					return
				}
				wantHit(t, r)
				wantBody(t, r, body)
				if got := r.Header.Get("Template-A"); got != wantTemplate {
					t.Errorf("GET after the update: Template-A = %q, want %q", got, wantTemplate)
				}
				if ttl, _ := r.CS.ttl(); ttl != 1000 {
					t.Errorf("GET after the update: %v, want ttl=1000", r)
				}
				e.wantHits("/h", 2)
			})
		})
	}
}

// TestHeadRevalidationOriginWithoutHead checks that an origin answering
// HEAD with 405 or 501 (it does not support it) is revalidated with a GET
// after all, and the HEAD answered from the refreshed entry.
func TestHeadRevalidationOriginWithoutHead(t *testing.T) {
	for _, status := range []int{405, 501} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			o := validatingOrigin("max-age=10", `"h"`, "", "payload")
			e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
				if r.Method == http.MethodHead {
					w.WriteHeader(status)
					return
				}
				o(w, r, n)
			})
			e.get("/h")
			e.advance(20 * time.Second)
			h := e.do(http.MethodHead, "/h")
			wantStatus(t, h, 200)
			wantFwd(t, h, "stale")
			if h.CS.get("fwd-status") != "304" {
				t.Errorf("HEAD answer %v, want the GET revalidation's fwd-status=304", h)
			}
			rr := e.origin.Requests("/h")
			if len(rr) != 3 || rr[1].Method != http.MethodHead || rr[2].Method != http.MethodGet || rr[2].Header.Get("If-None-Match") != `"h"` {
				t.Errorf("origin requests %d, want the HEAD and then a conditional GET", len(rr))
			}
			wantHit(t, e.get("/h"))
		})
	}
}

// TestHeadRevalidationFreshEntry checks that a HEAD forced to revalidate
// a fresh entry (request no-cache) and finding it changed makes it stale
// (RFC 9111 §4.3.5 "consider the stored response to be stale"): the next
// GET goes to the origin.
func TestHeadRevalidationFreshEntry(t *testing.T) {
	e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"v`+strconv.Itoa(n)+`"`)
		io.WriteString(w, "v"+strconv.Itoa(n))
	})
	e.get("/h")
	h := e.do(http.MethodHead, "/h", "Cache-Control", "no-cache")
	wantFwd(t, h, "request")
	if h.Header.Get("ETag") != `"v2"` {
		t.Errorf("HEAD answer ETag %q, want the origin's \"v2\"", h.Header.Get("ETag"))
	}
	r := e.get("/h")
	wantFwd(t, r, "stale")
	wantBody(t, r, "v3")
	wantHit(t, e.get("/h"))
}

// TestHeadRevalidationCoalesced checks that a GET arriving while a HEAD
// revalidates the entry waits for it and gets the refreshed entry with
// its body when the origin answers 304; and that when the HEAD answer is
// passed through, the GET fetches on its own.
func TestHeadRevalidationCoalesced(t *testing.T) {
	for _, changed := range []bool{false, true} {
		t.Run(fmt.Sprintf("changed=%v", changed), func(t *testing.T) {
			g := testkit.NewGate(t)
			e := newEnv(t, opts{}, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Cache-Control", "max-age=10")
				etag := `"a"`
				if changed && n > 1 {
					etag = `"b"`
				}
				w.Header().Set("ETag", etag)
				if n == 2 {
					g.Wait(r.Context())
				}
				if r.Header.Get("If-None-Match") == etag {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				io.WriteString(w, "body "+etag)
			})
			t.Cleanup(g.Open)
			e.get("/h")
			e.advance(time.Minute)
			var head result
			done := make(chan struct{})
			go func() { defer close(done); head, _ = e.try(context.Background(), http.MethodHead, "/h") }()
			e.origin.Await(t, "/h", 2)
			var get result
			var getErr error
			gdone := make(chan struct{})
			base := e.joined()
			go func() { defer close(gdone); get, getErr = e.try(context.Background(), http.MethodGet, "/h") }()
			e.awaitJoined(base + 1)
			g.Open()
			<-done
			<-gdone
			if getErr != nil {
				t.Fatal(getErr)
			}
			wantStatus(t, head, 200)
			wantStatus(t, get, 200)
			if !changed {
				wantBody(t, get, `body "a"`)
				if !get.CS.has("collapsed") || get.CS.get("fwd-status") != "304" {
					t.Errorf("GET on a HEAD revalidation: %v, want collapsed with fwd-status=304", get)
				}
				e.wantHits("/h", 2)
				return
			}
			wantBody(t, get, `body "b"`)
			if get.CS.has("collapsed") {
				t.Errorf("GET collapsed on a passed-through HEAD answer: %v", get)
			}
			if rr := e.origin.Requests("/h"); len(rr) != 3 || rr[2].Method != http.MethodGet {
				t.Errorf("origin requests %d, want the HEAD and then the GET's own", len(rr))
			}
		})
	}
}

// TestHeadStaleWhileRevalidate checks that a HEAD within a
// stale-while-revalidate window is answered at once and refreshes the
// entry in the background with a GET (a changed response is stored at
// once).
func TestHeadStaleWhileRevalidate(t *testing.T) {
	e := newEnv(t, opts{}, numbered("v", "Cache-Control", "max-age=10, stale-while-revalidate=60"))
	e.get("/h")
	e.advance(20 * time.Second)
	wantHit(t, e.do(http.MethodHead, "/h"))
	e.origin.Await(t, "/h", 2)
	if m := e.origin.Requests("/h")[1].Method; m != http.MethodGet {
		t.Errorf("background revalidation was a %s, want GET", m)
	}
	var last result
	if !testkit.Poll(5*time.Second, func() bool {
		r, err := e.try(context.Background(), http.MethodGet, "/h")
		last = r
		return err == nil && r.Body == "v2" && r.CS.hit()
	}) {
		t.Fatalf("the entry was not refreshed: last %v, origin hits %d", last, e.origin.hits("/h"))
	}
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
