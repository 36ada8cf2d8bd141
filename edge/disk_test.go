package edge_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/storage"
)

// pattern returns n deterministic bytes for object name.
func pattern(name string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + (i*7+len(name))%26)
	}
	return b
}

// objectOrigin serves /obj/N as N deterministic bytes, optionally slowly
// (chunk bytes every pause) and without Content-Length.
func objectOrigin(t *testing.T, chunk int, pause time.Duration, chunked bool) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/obj/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		body := pattern(r.URL.Path, n)
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("ETag", `"`+r.URL.Path+`"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		if !chunked {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		for len(body) > 0 {
			k := min(chunk, len(body))
			if _, err := w.Write(body[:k]); err != nil {
				return
			}
			body = body[k:]
			if pause > 0 {
				w.(http.Flusher).Flush()
				time.Sleep(pause) // a slow origin body on purpose, not a wait
			}
		}
	})
}

// Fifty clients ask at once for a large object that the origin sends
// slowly: one origin fetch, every client gets every byte, while the body
// is written to disk (read-while-write).
func TestReadWhileWrite(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			o := objectOrigin(t, 64<<10, 5*time.Millisecond, chunked)
			base, _ := newEdge(t, edgeOpts{disk: true, maxObject: 64 << 10}, o)
			const size, clients = 2 << 20, 50
			want := pattern("/obj/2097152", size)
			var wg sync.WaitGroup
			errs := make(chan string, clients)
			for range clients {
				wg.Go(func() {
					req, _ := http.NewRequest("GET", base+"/obj/2097152", nil)
					req.Host = "example.com"
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						errs <- err.Error()
						return
					}
					defer resp.Body.Close()
					got, err := io.ReadAll(resp.Body)
					if err != nil || resp.StatusCode != 200 || string(got) != string(want) {
						errs <- fmt.Sprintf("status %d, %d bytes, err %v", resp.StatusCode, len(got), err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			if got := o.hits("/obj/2097152"); got != 1 {
				t.Errorf("origin saw %d fetches, want 1", got)
			}
			// Once complete, it is a disk hit with a Content-Length.
			waitFor(t, func() bool {
				resp, _ := get(t, base, "GET", "example.com", "/obj/2097152")
				return strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit")
			})
			resp, body := get(t, base, "GET", "example.com", "/obj/2097152")
			if resp.ContentLength != size || body != string(want) {
				t.Errorf("disk hit: length %d, body ok %v", resp.ContentLength, body == string(want))
			}
		})
	}
}

func TestRanges(t *testing.T) {
	const size = 1000
	tests := []struct {
		name       string
		hdr        []string
		wantStatus int
		wantRange  string // Content-Range
		wantBody   [2]int // slice bounds of the pattern; {-1} for none
	}{
		{"no range", nil, 200, "", [2]int{0, size}},
		{"first bytes", []string{"Range", "bytes=0-9"}, 206, "bytes 0-9/1000", [2]int{0, 10}},
		{"middle", []string{"Range", "bytes=100-199"}, 206, "bytes 100-199/1000", [2]int{100, 200}},
		{"open end", []string{"Range", "bytes=990-"}, 206, "bytes 990-999/1000", [2]int{990, 1000}},
		{"suffix", []string{"Range", "bytes=-5"}, 206, "bytes 995-999/1000", [2]int{995, 1000}},
		{"suffix longer than body", []string{"Range", "bytes=-5000"}, 206, "bytes 0-999/1000", [2]int{0, 1000}},
		{"end past size clipped", []string{"Range", "bytes=900-5000"}, 206, "bytes 900-999/1000", [2]int{900, 1000}},
		{"unsatisfiable start", []string{"Range", "bytes=1000-"}, 416, "bytes */1000", [2]int{-1}},
		{"zero suffix", []string{"Range", "bytes=-0"}, 416, "bytes */1000", [2]int{-1}},
		{"multi-range served whole", []string{"Range", "bytes=0-1,5-6"}, 200, "", [2]int{0, size}},
		{"other unit ignored", []string{"Range", "items=0-1"}, 200, "", [2]int{0, size}},
		{"malformed ignored", []string{"Range", "bytes=5-1"}, 200, "", [2]int{0, size}},
		{"if-range etag match", []string{"Range", "bytes=0-9", "If-Range", `"/obj/1000"`}, 206, "bytes 0-9/1000", [2]int{0, 10}},
		{"if-range etag mismatch", []string{"Range", "bytes=0-9", "If-Range", `"other"`}, 200, "", [2]int{0, size}},
		{"if-range date match", []string{"Range", "bytes=0-9", "If-Range", "Mon, 02 Jan 2006 15:04:05 GMT"}, 206, "bytes 0-9/1000", [2]int{0, 10}},
		{"if-range date mismatch", []string{"Range", "bytes=0-9", "If-Range", "Tue, 03 Jan 2006 15:04:05 GMT"}, 200, "", [2]int{0, size}},
		{"if-range asctime date match", []string{"Range", "bytes=0-9", "If-Range", "Mon Jan  2 15:04:05 2006"}, 206, "bytes 0-9/1000", [2]int{0, 10}},
		{"if-range date matched case-insensitively", []string{"Range", "bytes=0-9", "If-Range", "MON, 02 JAN 2006 15:04:05 GMT"}, 206, "bytes 0-9/1000", [2]int{0, 10}},
		{"if-range date with a double space is no date", []string{"Range", "bytes=0-9", "If-Range", "Mon, 02 Jan 2006  15:04:05 GMT"}, 200, "", [2]int{0, size}},
	}
	for _, tier := range []struct {
		name string
		opts edgeOpts
	}{
		{"memory", edgeOpts{}},
		{"disk", edgeOpts{disk: true, maxObject: 100}}, // 1000 bytes > max object: disk only
	} {
		t.Run(tier.name, func(t *testing.T) {
			o := objectOrigin(t, 1<<20, 0, false)
			base, _ := newEdge(t, tier.opts, o)
			// A Range request on a miss fetches the whole object once and
			// answers the range from it.
			resp, body := get(t, base, "GET", "example.com", "/obj/1000", "Range", "bytes=0-9")
			if resp.StatusCode != 206 || body != string(pattern("/obj/1000", size)[:10]) {
				t.Fatalf("range on a miss: %d %q", resp.StatusCode, body)
			}
			waitFor(t, func() bool {
				r, _ := get(t, base, "HEAD", "example.com", "/obj/1000")
				return strings.HasPrefix(r.Header.Get("Cache-Status"), "edged; hit")
			})
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					resp, body := get(t, base, "GET", "example.com", "/obj/1000", tt.hdr...)
					if resp.StatusCode != tt.wantStatus {
						t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
					}
					if got := resp.Header.Get("Content-Range"); got != tt.wantRange {
						t.Errorf("Content-Range %q, want %q", got, tt.wantRange)
					}
					if tt.wantBody[0] >= 0 {
						want := string(pattern("/obj/1000", size)[tt.wantBody[0]:tt.wantBody[1]])
						if body != want || resp.ContentLength != int64(len(want)) {
							t.Errorf("body %d bytes (Content-Length %d), want %d bytes", len(body), resp.ContentLength, len(want))
						}
					}
				})
			}
			if got := o.hits("/obj/1000"); got != 1 {
				t.Errorf("origin saw %d fetches, want 1", got)
			}
		})
	}
}

// A fill invalidated while in flight answers its waiters but is not
// stored: the next request goes to the origin again.
func TestInvalidateDuringFill(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", disk), func(t *testing.T) {
			release := make(chan struct{})
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == "GET" && r.URL.Query().Get("wait") == "1" {
					<-release
				}
				w.Header().Set("Cache-Control", "max-age=600")
				io.WriteString(w, "v")
			})
			reg := prometheus.NewRegistry()
			base, c := newEdge(t, edgeOpts{disk: disk, reg: reg}, o)
			done := make(chan string)
			go func() {
				_, b := get(t, base, "GET", "example.com", "/doc?wait=1")
				done <- b
			}()
			waitFor(t, func() bool { return o.hits("/doc") == 1 })
			c.Invalidate("http://example.com/doc?wait=1")
			close(release)
			if b := <-done; b != "v" {
				t.Fatalf("in-flight request got %q", b)
			}
			// The fill counts its outcome before it answers: it stored
			// nothing, in either tier (no write-behind was started).
			if got := metricValue(t, reg, "edged_cache_fills_total", "result", "invalidated"); got != 1 {
				t.Errorf("fills invalidated = %v, want 1", got)
			}
			resp, _ := get(t, base, "GET", "example.com", "/doc?wait=1")
			if strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
				t.Errorf("a fill invalidated in flight was stored: %q", resp.Header.Get("Cache-Status"))
			}
		})
	}
}

// An origin that drops the connection mid-body: the clients get a
// truncated response they can tell from a complete one, and nothing is
// stored.
func TestOriginDropsMidBody(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(2<<20))
		w.Write(pattern("x", 300<<10))
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	var store *storage.Store
	base, _ := newEdge(t, edgeOpts{disk: true, maxObject: 64 << 10, onDisk: func(s *storage.Store) { store = s }}, o)
	// A fresh connection per request: an aborted response closes its own.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	answered := 0
	for i := 0; answered < 2 && i < 10; i++ {
		req, _ := http.NewRequest("GET", base+"/big", nil)
		req.Host = "example.com"
		resp, err := client.Do(req)
		if err != nil {
			continue // a clean failure too, but not an answer
		}
		answered++
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		// Either a clean error status, or a 200 whose body ends in an error.
		if err == nil && resp.StatusCode == http.StatusOK {
			t.Fatalf("request %d: a truncated body (%d bytes) was presented as complete", i, len(b))
		}
		if strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
			t.Fatalf("request %d was a hit on a failed fill", i)
		}
	}
	if got := o.hits("/big"); got < answered || answered < 2 {
		t.Errorf("%d answers, %d origin fetches: every answer must come from the origin", answered, got)
	}
	waitFor(t, func() bool { return store.Stats().Objects == 0 })
	var keys []string
	store.Keys(func(k string) bool { keys = append(keys, k); return true })
	if len(keys) != 0 {
		t.Errorf("stored after a failed fill: %v", keys)
	}
}

// A Range far into an object the cache lacks goes to the origin as is; a
// Range near the start fetches the whole object once.
func TestRangeForwardBeyondOffset(t *testing.T) {
	content := pattern("r", 5000)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("X-Saw-Range", r.Header.Get("Range"))
		w.Header().Set("X-Saw-If-Range", r.Header.Get("If-Range"))
		w.Header().Set("Etag", `"v1"`)
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(content)))
	})
	base, _ := newEdge(t, edgeOpts{rangeFwd: 1000}, o)

	// The forwarded Range keeps its If-Range: the answer is this client's.
	resp, body := get(t, base, "GET", "example.com", "/f", "Range", "bytes=2000-2009", "If-Range", `"v1"`)
	if resp.StatusCode != 206 || body != string(content[2000:2010]) || resp.Header.Get("X-Saw-Range") != "bytes=2000-2009" {
		t.Fatalf("far range: %d %q, origin saw Range %q", resp.StatusCode, body, resp.Header.Get("X-Saw-Range"))
	}
	if got := resp.Header.Get("X-Saw-If-Range"); got != `"v1"` {
		t.Errorf("far range: origin saw If-Range %q, want the client's", got)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=range") {
		t.Errorf("far range: Cache-Status %q", cs)
	}
	resp, body = get(t, base, "GET", "example.com", "/f", "Range", "bytes=10-19")
	if resp.StatusCode != 206 || body != string(content[10:20]) || resp.Header.Get("X-Saw-Range") != "" {
		t.Fatalf("near range: %d %q, origin saw Range %q", resp.StatusCode, body, resp.Header.Get("X-Saw-Range"))
	}
	resp, body = get(t, base, "GET", "example.com", "/f", "Range", "bytes=2000-2009")
	if !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") || body != string(content[2000:2010]) {
		t.Errorf("far range once stored: %q %q", resp.Header.Get("Cache-Status"), body)
	}
	if got := o.hits("/f"); got != 2 {
		t.Errorf("origin saw %d requests, want 2", got)
	}
}

// The disk refuses a fill half way (full, read-only, over budget): the
// clients already reading still get the whole body, from memory, and the
// object is simply not stored.
func TestDiskFailureDuringFillStillServes(t *testing.T) {
	o := objectOrigin(t, 64<<10, 2*time.Millisecond, true)
	var store *storage.Store
	// A 1 MiB disk budget: the 3 MiB body cannot be written whole.
	base, _ := newEdge(t, edgeOpts{disk: true, diskMax: 1 << 20, maxObject: 64 << 10, onDisk: func(s *storage.Store) { store = s }}, o)
	const size = 3 << 20
	path := "/obj/" + strconv.Itoa(size)
	want := string(pattern(path, size))
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			_, body := get(t, base, "GET", "example.com", path)
			if body != want {
				t.Errorf("got %d bytes, want the whole %d", len(body), size)
			}
		})
	}
	wg.Wait()
	if got := o.hits(path); got != 1 {
		t.Errorf("origin saw %d fetches, want 1 (shared)", got)
	}
	resp, body := get(t, base, "GET", "example.com", path)
	if body != want || strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
		t.Errorf("after the failed store: %q, %d bytes", resp.Header.Get("Cache-Status"), len(body))
	}
	waitFor(t, func() bool { return store.Stats().Objects == 0 })
}

// Hits count their body bytes by the tier that held them: an object small
// enough for memory is a memory hit, one over the memory tier's object
// limit a disk hit, on both HTTP/1 paths.
func TestHitBytesByTier(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := edge.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	o := objectOrigin(t, 1<<20, 0, false)
	base, _ := newEdge(t, edgeOpts{disk: true, maxObject: 4096, metrics: m}, o)
	for _, p := range []string{"/obj/300", "/obj/20000"} {
		get(t, base, "GET", "example.com", p)
		waitFor(t, func() bool {
			r, _ := get(t, base, "HEAD", "example.com", p)
			return strings.HasPrefix(r.Header.Get("Cache-Status"), "edged; hit")
		})
	}
	bytes := func(tier string) float64 {
		v, _ := testkit.Metric(t, reg, "edged_hit_bytes_total", "tier", tier)
		return v
	}
	disk := bytes("disk")
	get(t, base, "GET", "example.com", "/obj/20000", "Cache-Control", "max-age=3600") // general path
	get(t, base, "GET", "example.com", "/obj/20000")                                  // fast path on edged's loop
	// Metrics are recorded once the response is written: wait for them.
	waitFor(t, func() bool { return bytes("disk")-disk == 40000 })
	// The small object is a disk hit until the memory tier has taken it
	// (its admission is asynchronous), then a memory hit.
	waitFor(t, func() bool {
		mem := bytes("memory")
		get(t, base, "GET", "example.com", "/obj/300")
		return testkit.Poll(time.Second, func() bool { return bytes("memory")-mem == 300 })
	})
}
