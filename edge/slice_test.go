package edge_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/edge/rules"
	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/purge/selector"
	"github.com/edged-proxy/edged/storage"
)

// genAt is byte off of the synthetic object of version v: a function of
// the offset, so that an object of any size is served and checked
// without ever being held whole.
func genAt(v, off int64) byte {
	x := uint64(off)*0x9E3779B97F4A7C15 + uint64(v)*0xBF58476D1CE4E5B9
	return byte(x>>56) ^ byte(off>>20)
}

// genReader is the synthetic object [0, size) of version v as an
// io.ReadSeeker, for http.ServeContent.
type genReader struct {
	v, size, off int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), g.size-g.off))
	for i := range n {
		p[i] = genAt(g.v, g.off+int64(i))
	}
	g.off += int64(n)
	return n, nil
}

func (g *genReader) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		g.off = off
	case io.SeekCurrent:
		g.off += off
	case io.SeekEnd:
		g.off = g.size + off
	}
	return g.off, nil
}

// wantGen checks that got is [off, off+len(got)) of version v.
func wantGen(t *testing.T, got []byte, v, off int64) {
	t.Helper()
	for i, b := range got {
		if b != genAt(v, off+int64(i)) {
			t.Fatalf("byte %d (object offset %d) is %#x, want %#x of version %d", i, off+int64(i), b, genAt(v, off+int64(i)), v)
		}
	}
}

// sliceOrigin serves synthetic objects: /MODE/SIZE, SIZE bytes of the
// current version. MODE "range" (or any other not below) honours Range (http.ServeContent, strong
// ETag "vN"); "norange" always answers 200 with the whole body; "weak"
// has a weak ETag; "novalid" has no validator at all; "nocr" answers a
// Range with a 206 without Content-Range. It records the
// Range of every request.
type sliceOrigin struct {
	*origin
	version atomic.Int64
	mu      sync.Mutex
	ranges  []string // "path range", in arrival order
	revals  []string // "range if-none-match" of the conditional requests
}

func newSliceOrigin(t testing.TB) *sliceOrigin {
	o := &sliceOrigin{}
	o.version.Store(1)
	o.origin = &origin{testkit.NewOrigin(t, http.HandlerFunc(o.serve))}
	return o
}

func (o *sliceOrigin) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) != 2 {
		http.NotFound(w, r)
		return
	}
	size, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	o.mu.Lock()
	o.ranges = append(o.ranges, r.URL.Path+" "+r.Header.Get("Range"))
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		o.revals = append(o.revals, r.Header.Get("Range")+" "+inm)
	}
	o.mu.Unlock()
	v := o.version.Load()
	g := &genReader{v: v, size: size}
	w.Header().Set("Cache-Control", "public, max-age=600")
	w.Header().Set("Surrogate-Key", "big "+parts[0])
	switch parts[0] {
	default: // "range", and any other
		w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, v))
	case "weak":
		w.Header().Set("ETag", fmt.Sprintf(`W/"v%d"`, v))
	case "novalid":
	case "nocr": // a 206 without Content-Range
		w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, v))
		if r.Header.Get("Range") != "" {
			w.WriteHeader(http.StatusPartialContent)
			io.CopyN(w, g, min(size, 1000))
			return
		}
	case "norange":
		w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, v))
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		if r.Method != http.MethodHead {
			io.Copy(w, g)
		}
		return
	}
	http.ServeContent(w, r, "", time.Time{}, g)
}

// rangesOf returns the Range fields the origin saw for path, and forgets
// them.
func (o *sliceOrigin) rangesOf(path string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out, rest []string
	for _, r := range o.ranges {
		if p, rng, _ := strings.Cut(r, " "); p == path {
			out = append(out, rng)
		} else {
			rest = append(rest, r)
		}
	}
	o.ranges = rest
	return out
}

func slicing(size int64) func(*edge.Site) {
	return func(s *edge.Site) { s.Slice = size }
}

func sliceGet(t *testing.T, base, method, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "example.com"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, body
}

// A 1 MiB range at 2 GiB of a 4 GiB object fetches only the slices it
// covers (one when aligned, two when not), and the same range again is a
// hit with no origin request. The object is generated from the offset:
// it exists nowhere whole.
func TestSliceFourGiB(t *testing.T) {
	const size, slice = 4 << 30, 1 << 20
	path := fmt.Sprintf("/range/%d", int64(size))
	for _, tc := range []struct {
		name   string
		off    int64
		slices int
	}{
		{"aligned", 2 << 30, 1},
		{"unaligned", 2<<30 + 512<<10, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newSliceOrigin(t)
			base, _ := newEdge(t, edgeOpts{site: slicing(slice)}, o.origin)
			rng := fmt.Sprintf("bytes=%d-%d", tc.off, tc.off+1<<20-1)
			for i, want := range []string{"fwd=uri-miss", "hit"} {
				start := time.Now()
				resp, body := sliceGet(t, base, http.MethodGet, path, "Range", rng)
				took := time.Since(start)
				if resp.StatusCode != http.StatusPartialContent || int64(len(body)) != 1<<20 {
					t.Fatalf("request %d: %d with %d bytes", i+1, resp.StatusCode, len(body))
				}
				if cr, wantCR := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", tc.off, tc.off+1<<20-1, int64(size)); cr != wantCR {
					t.Errorf("Content-Range %q, want %q", cr, wantCR)
				}
				wantGen(t, body, 1, tc.off)
				cs := resp.Header.Get("Cache-Status")
				if !strings.Contains(cs, want) || !strings.Contains(cs, "detail=slices") {
					t.Errorf("request %d: Cache-Status %q, want %s and detail=slices", i+1, cs, want)
				}
				got := o.rangesOf(path)
				if n := map[int]int{0: tc.slices, 1: 0}[i]; len(got) != n {
					t.Errorf("request %d: the origin served %d ranges %q, want %d", i+1, len(got), got, n)
				}
				t.Logf("%s, request %d (%s): %v, origin ranges %q", tc.name, i+1, want, took, got)
			}
		})
	}
}

// Ranges over a sliced object: each answer is the one RFC 9110 §14
// gives for the whole object, its bytes from the slices.
func TestSliceRanges(t *testing.T) {
	const slice = 256 << 10
	const size = 3*slice + 1000 // the last slice is short
	path := fmt.Sprintf("/range/%d", size)
	o := newSliceOrigin(t)
	base, _ := newEdge(t, edgeOpts{site: slicing(slice)}, o.origin)
	for _, tc := range []struct {
		name, method, rng string
		status            int
		first, last       int64 // the bytes sent; last < first: none
	}{
		{"first slice", "GET", "bytes=0-99", 206, 0, 99},
		{"middle slice", "GET", fmt.Sprintf("bytes=%d-%d", slice+5, 2*slice-1), 206, slice + 5, 2*slice - 1},
		{"last slice", "GET", fmt.Sprintf("bytes=%d-", 3*slice+10), 206, 3*slice + 10, size - 1},
		{"two slices", "GET", fmt.Sprintf("bytes=%d-%d", slice-10, slice+10), 206, slice - 10, slice + 10},
		{"three slices", "GET", fmt.Sprintf("bytes=%d-%d", slice-10, 2*slice+10), 206, slice - 10, 2*slice + 10},
		{"suffix", "GET", "bytes=-1500", 206, size - 1500, size - 1},
		{"suffix longer than the object", "GET", fmt.Sprintf("bytes=-%d", 2*size), 206, 0, size - 1},
		{"open-ended", "GET", fmt.Sprintf("bytes=%d-", 2*slice-7), 206, 2*slice - 7, size - 1},
		{"last past the end", "GET", fmt.Sprintf("bytes=%d-%d", size-10, size+100), 206, size - 10, size - 1},
		{"unsatisfiable", "GET", fmt.Sprintf("bytes=%d-", size), 416, 0, -1},
		{"unsatisfiable far", "GET", fmt.Sprintf("bytes=%d-", 100*size), 416, 0, -1},
		{"multiple ranges: the whole object", "GET", "bytes=0-9,20-29", 200, 0, size - 1},
		{"no range", "GET", "", 200, 0, size - 1},
		{"HEAD", "HEAD", "", 200, 0, -1},
		{"HEAD with a range", "HEAD", "bytes=0-9", 200, 0, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.rng != "" {
				hdr = []string{"Range", tc.rng}
			}
			resp, body := sliceGet(t, base, tc.method, path, hdr...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			n := tc.last - tc.first + 1
			switch {
			case tc.status == 416:
				if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", size) {
					t.Errorf("Content-Range %q", cr)
				}
			case tc.status == 206:
				if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", tc.first, tc.last, size) {
					t.Errorf("Content-Range %q", cr)
				}
			case tc.method == "HEAD" || tc.status == 200:
				if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(size) {
					t.Errorf("Content-Length %q, want %d", cl, size)
				}
			}
			if n < 0 {
				n = 0
			}
			if int64(len(body)) != n {
				t.Fatalf("%d body bytes, want %d", len(body), n)
			}
			wantGen(t, body, 1, tc.first)
			if resp.Header.Get("Etag") != `"v1"` || !strings.Contains(resp.Header.Get("Cache-Status"), "detail=slices") {
				t.Errorf("ETag %q, Cache-Status %q", resp.Header.Get("Etag"), resp.Header.Get("Cache-Status"))
			}
		})
	}
	// Every slice was fetched once, with its own aligned Range.
	got := o.rangesOf(path)
	seen := map[string]int{}
	for _, r := range got {
		seen[r]++
	}
	for i := range 4 {
		r := fmt.Sprintf("bytes=%d-%d", i*slice, (i+1)*slice-1)
		if seen[r] != 1 {
			t.Errorf("slice %d (%s) fetched %d times; all ranges: %q", i, r, seen[r], got)
		}
	}
	if len(seen) != 4 || len(got) != 4 {
		t.Errorf("the origin served %q, want each of the 4 slices once", got)
	}
}

// A HEAD miss fetches one slice, not the object, and answers with the
// object's length.
func TestSliceHeadMiss(t *testing.T) {
	const slice = 256 << 10
	path := "/range/700000"
	o := newSliceOrigin(t)
	base, _ := newEdge(t, edgeOpts{site: slicing(slice)}, o.origin)
	resp, body := sliceGet(t, base, "HEAD", path)
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Length") != "700000" || resp.Header.Get("Etag") != `"v1"` {
		t.Fatalf("HEAD: %d, Content-Length %q, ETag %q", resp.StatusCode, resp.Header.Get("Content-Length"), resp.Header.Get("Etag"))
	}
	if got := o.rangesOf(path); len(got) != 1 || got[0] != "bytes=0-262143" {
		t.Errorf("the origin served %q, want slice 0 (with GET)", got)
	}
	if m := o.Last().Method; m != "GET" {
		t.Errorf("the slice was asked with %s", m)
	}
}

// Conditional requests are answered from the slices' metadata.
func TestSliceConditionals(t *testing.T) {
	const slice = 256 << 10
	path := "/range/1000000"
	o := newSliceOrigin(t)
	base, _ := newEdge(t, edgeOpts{site: slicing(slice)}, o.origin)
	sliceGet(t, base, "GET", path, "Range", "bytes=0-0")
	for _, tc := range []struct {
		name   string
		hdr    []string
		status int
		n      int
	}{
		{"If-None-Match matching", []string{"If-None-Match", `"v1"`}, 304, 0},
		{"If-None-Match other", []string{"If-None-Match", `"v0"`}, 200, 1000000},
		{"If-Range matching", []string{"Range", "bytes=10-19", "If-Range", `"v1"`}, 206, 10},
		{"If-Range other", []string{"Range", "bytes=10-19", "If-Range", `"v0"`}, 200, 1000000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := sliceGet(t, base, "GET", path, tc.hdr...)
			if resp.StatusCode != tc.status || len(body) != tc.n {
				t.Fatalf("%d with %d bytes, want %d with %d", resp.StatusCode, len(body), tc.status, tc.n)
			}
		})
	}
}

// A full-object request streams the slices in order, fetching each as
// the client gets there: the edge never holds the whole object.
func TestSliceFullObjectStreams(t *testing.T) {
	const slice, size = 1 << 20, 40 << 20
	path := fmt.Sprintf("/range/%d", size)
	o := newSliceOrigin(t)
	base, _ := newEdge(t, edgeOpts{site: slicing(slice)}, o.origin)
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Host = "example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != size {
		t.Fatalf("%d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	first := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	// With the client 1 MiB in, the edge is at most the socket buffers
	// ahead: a few slices, not forty.
	early := len(o.rangesOf(path))
	if early > 12 {
		t.Errorf("the origin had served %d of 40 slices when the client had read one", early)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	wantGen(t, first, 1, 0)
	wantGen(t, rest, 1, 1<<20)
	if len(rest) != size-1<<20 {
		t.Fatalf("%d bytes", len(rest)+len(first))
	}
	got := o.rangesOf(path)
	for i, r := range got {
		if want := fmt.Sprintf("bytes=%d-%d", (early+i)*slice, (early+i+1)*slice-1); r != want {
			t.Fatalf("range %d the origin served: %q, want %q (in order)", early+i, r, want)
		}
	}
	t.Logf("slices fetched when the client had read 1 MiB: %d of 40", early)
}

// Concurrent clients wanting the same missing slice cause one origin
// fetch of it.
func TestSliceCoalesced(t *testing.T) {
	const slice, clients = 1 << 20, 20
	path := "/range/10000000"
	o := newSliceOrigin(t)
	reg := prometheus.NewRegistry()
	base, _ := newEdge(t, edgeOpts{site: slicing(slice), reg: reg}, o.origin)
	o.Hold()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", base+path, nil)
			req.Host = "example.com"
			req.Header.Set("Range", "bytes=2097152-2097251")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 206 || len(body) != 100 {
				errs <- fmt.Errorf("%d, %d bytes, %v", resp.StatusCode, len(body), err)
				return
			}
			for i, b := range body {
				if b != genAt(1, 2097152+int64(i)) {
					errs <- errors.New("wrong bytes")
					return
				}
			}
		})
	}
	waitFor(t, func() bool {
		return metricValue(t, reg, "edged_cache_coalesced_waiters_total") >= clients-1
	})
	o.Release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := o.rangesOf(path); len(got) != 1 || got[0] != "bytes=2097152-3145727" {
		t.Errorf("the origin served %q, want slice 2 once", got)
	}
	if n := metricValue(t, reg, "edged_slice_fetches_total", "site", "test", "result", "origin"); n != 1 {
		t.Errorf("edged_slice_fetches_total{result=origin} = %v, want 1", n)
	}
	if n := metricValue(t, reg, "edged_slice_fetches_total", "site", "test", "result", "collapsed"); n != clients-1 {
		t.Errorf("edged_slice_fetches_total{result=collapsed} = %v, want %d", n, clients-1)
	}
}

// The object changes between two slices. A stored slice of the old
// version is never combined with a new one: a response whose first
// slice was the old version is cut off, every old slice is discarded,
// and the next request gets the new version whole.
func TestSliceChangedETag(t *testing.T) {
	const slice = 256 << 10
	const size = 3 * slice
	path := fmt.Sprintf("/range/%d", size)
	o := newSliceOrigin(t)
	reg := prometheus.NewRegistry()
	base, _ := newEdge(t, edgeOpts{site: slicing(slice), reg: reg}, o.origin)

	// Slice 0 stored at v1; the object becomes v2.
	sliceGet(t, base, "GET", path, "Range", "bytes=0-9")
	o.rangesOf(path)
	o.version.Store(2)

	req, _ := http.NewRequest("GET", base+path, nil)
	req.Host = "example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(body) >= size {
		t.Fatalf("a response mixing versions completed: %d bytes, %v", len(body), err)
	}
	wantGen(t, body, 1, 0) // what was sent is all v1
	if n := metricValue(t, reg, "edged_slice_fetches_total", "site", "test", "result", "changed"); n != 1 {
		t.Errorf("changed slices counted %v, want 1", n)
	}
	// Slice 0 (v1) was discarded with the others: all fresh now.
	resp, body = sliceGet(t, base, "GET", path)
	if resp.StatusCode != 200 || len(body) != size || resp.Header.Get("Etag") != `"v2"` {
		t.Fatalf("after the change: %d, %d bytes, ETag %q", resp.StatusCode, len(body), resp.Header.Get("Etag"))
	}
	wantGen(t, body, 2, 0)
	if got := o.rangesOf(path); len(got) != 3 {
		t.Errorf("the origin served %q after the change; want slice 1 once, then slices 0 and 2", got)
	}

	// All three slices stored at v2; the object becomes v3. A request
	// that revalidates slice 0 gets v3, which discards slices 1 and 2 at
	// once: the next whole response is v3, not cut off.
	o.version.Store(3)
	sliceGet(t, base, "GET", path, "Range", fmt.Sprintf("bytes=0-%d", slice-1), "Cache-Control", "no-cache")
	resp, body = sliceGet(t, base, "GET", path)
	if resp.Header.Get("Etag") != `"v3"` || len(body) != size {
		t.Fatalf("v3: ETag %q, %d bytes", resp.Header.Get("Etag"), len(body))
	}
	wantGen(t, body, 3, 0)
}

// A request that must revalidate revalidates each slice it reads with
// its Range and ETag: 304s refresh them, and the body is the stored one.
func TestSliceRevalidation(t *testing.T) {
	const slice = 256 << 10
	const size = 2*slice + 10
	path := fmt.Sprintf("/range/%d", size)
	o := newSliceOrigin(t)
	base, _ := newEdge(t, edgeOpts{site: slicing(slice)}, o.origin)
	sliceGet(t, base, "GET", path)
	o.rangesOf(path)
	resp, body := sliceGet(t, base, "GET", path, "Cache-Control", "max-age=0")
	if resp.StatusCode != 200 || len(body) != size {
		t.Fatalf("%d with %d bytes", resp.StatusCode, len(body))
	}
	wantGen(t, body, 1, 0)
	o.mu.Lock()
	revals := o.revals
	o.mu.Unlock()
	want := []string{`bytes=0-262143 "v1"`, `bytes=262144-524287 "v1"`, `bytes=524288-786431 "v1"`}
	if strings.Join(revals, ", ") != strings.Join(want, ", ") {
		t.Errorf("conditional requests %q, want %q", revals, want)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=request; fwd-status=304") {
		t.Errorf("Cache-Status %q", cs)
	}
	// Refreshed: the next plain request is a hit.
	if resp, _ := sliceGet(t, base, "GET", path); !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
		t.Errorf("after the revalidation: Cache-Status %q", resp.Header.Get("Cache-Status"))
	}
}

// Origins whose answers cannot be slices are served the normal way:
// one that ignores Range, one with a weak ETag, one with no validator.
func TestSliceUnsliceable(t *testing.T) {
	const slice = 256 << 10
	const size = 600000
	for _, mode := range []string{"norange", "weak", "novalid", "nocr"} {
		t.Run(mode, func(t *testing.T) {
			path := fmt.Sprintf("/%s/%d", mode, size)
			o := newSliceOrigin(t)
			base, _ := newEdge(t, edgeOpts{site: slicing(slice)}, o.origin)
			for i := range 2 {
				resp, body := sliceGet(t, base, "GET", path, "Range", "bytes=300000-300099")
				if resp.StatusCode != 206 || len(body) != 100 {
					t.Fatalf("request %d: %d with %d bytes", i+1, resp.StatusCode, len(body))
				}
				wantGen(t, body, 1, 300000)
				if cs := resp.Header.Get("Cache-Status"); strings.Contains(cs, "slices") {
					t.Errorf("Cache-Status %q: not sliced", cs)
				}
				resp, body = sliceGet(t, base, "GET", path)
				if resp.StatusCode != 200 || len(body) != size {
					t.Fatalf("request %d, whole: %d with %d bytes", i+1, resp.StatusCode, len(body))
				}
				wantGen(t, body, 1, 0)
			}
			// The first request tried a slice, then filled the whole
			// object, which serves everything after.
			if got := o.rangesOf(path); len(got) != 2 {
				t.Errorf("the origin served %q, want a slice attempt and one whole fill", got)
			}
		})
	}
}

// An empty object (the origin answers slice 0 with 416) is served the
// normal way; an object smaller than a slice is one slice.
func TestSliceSmallObjects(t *testing.T) {
	const slice = 256 << 10
	o := newSliceOrigin(t)
	base, _ := newEdge(t, edgeOpts{site: slicing(slice)}, o.origin)
	for i := range 2 {
		resp, body := sliceGet(t, base, "GET", "/range/0")
		if resp.StatusCode != 200 || len(body) != 0 || strings.Contains(resp.Header.Get("Cache-Status"), "slices") {
			t.Fatalf("empty, request %d: %d with %d bytes, Cache-Status %q", i+1, resp.StatusCode, len(body), resp.Header.Get("Cache-Status"))
		}
		resp, body = sliceGet(t, base, "GET", "/range/1000")
		if resp.StatusCode != 200 || len(body) != 1000 || resp.Header.Get("Content-Length") != "1000" || resp.Header.Get("Content-Range") != "" {
			t.Fatalf("small, request %d: %d with %d bytes, Content-Range %q", i+1, resp.StatusCode, len(body), resp.Header.Get("Content-Range"))
		}
		wantGen(t, body, 1, 0)
	}
	if got := o.rangesOf("/range/0"); len(got) != 2 || got[0] != "bytes=0-262143" || got[1] != "" {
		t.Errorf("empty: the origin served %q, want a slice attempt (416) and one whole fill", got)
	}
	if got := o.rangesOf("/range/1000"); len(got) != 1 || got[0] != "bytes=0-262143" {
		t.Errorf("small: the origin served %q, want slice 0 once", got)
	}
}

// A purge of a sliced object by URL, prefix, tag or host removes every
// slice of it, and counts the object once.
func TestSlicePurge(t *testing.T) {
	const slice = 256 << 10
	const size = 3*slice + 5
	path := fmt.Sprintf("/range/%d", size)
	for _, tc := range []struct {
		name string
		sel  selector.Selector
		get  func(cache.PurgeCounts) int
	}{
		{"url", selector.Selector{URLs: []string{"http://example.com" + path}}, func(n cache.PurgeCounts) int { return n.URLs }},
		{"prefix", selector.Selector{Prefixes: []string{"example.com/range/"}}, func(n cache.PurgeCounts) int { return n.Prefixes }},
		{"tag", selector.Selector{Tags: []string{"big"}}, func(n cache.PurgeCounts) int { return n.Tags }},
		{"host", selector.Selector{Hosts: []string{"example.com"}}, func(n cache.PurgeCounts) int { return n.Hosts }},
	} {
		for _, disk := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/disk=%v", tc.name, disk), func(t *testing.T) {
				o := newSliceOrigin(t)
				var store *storage.Store
				base, c := newEdge(t, edgeOpts{site: slicing(slice), disk: disk, onDisk: func(s *storage.Store) { store = s }}, o.origin)
				sliceGet(t, base, "GET", path)
				if disk {
					waitFor(t, func() bool { return store.Stats().Objects == 4 })
				}
				if got := o.rangesOf(path); len(got) != 4 {
					t.Fatalf("filling: %q", got)
				}
				n, err := c.Purge(t.Context(), tc.sel)
				if err != nil {
					t.Fatal(err)
				}
				if tc.get(n) != 1 {
					t.Errorf("purge counted %+v, want the object once", n)
				}
				if disk && store.Stats().Objects != 0 {
					t.Errorf("%d objects left on disk", store.Stats().Objects)
				}
				resp, body := sliceGet(t, base, "GET", path)
				wantGen(t, body, 1, 0)
				if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=uri-miss") {
					t.Errorf("after the purge: Cache-Status %q", cs)
				}
				if got := o.rangesOf(path); len(got) != 4 {
					t.Errorf("after the purge the origin served %q, want all 4 slices again", got)
				}
			})
		}
	}
}

// An unsafe request to the URL invalidates every slice (RFC 9111 §4.4).
func TestSliceInvalidatedByPost(t *testing.T) {
	const slice = 256 << 10
	path := "/range/600000"
	o := newSliceOrigin(t)
	base, _ := newEdge(t, edgeOpts{site: slicing(slice)}, o.origin)
	sliceGet(t, base, "GET", path)
	o.rangesOf(path)
	sliceGet(t, base, "POST", path)
	o.rangesOf(path)
	sliceGet(t, base, "GET", path, "Range", "bytes=500000-500001")
	if got := o.rangesOf(path); len(got) != 1 || got[0] != "bytes=262144-524287" {
		t.Errorf("after the POST the origin served %q, want slice 1 again", got)
	}
}

// Slices stored on disk survive a restart: a new store over the same
// directory and a new cache serve them with no origin request.
func TestSliceDiskRestart(t *testing.T) {
	const slice = 256 << 10
	const size = 3*slice + 77
	path := fmt.Sprintf("/range/%d", size)
	dir := t.TempDir()
	o := newSliceOrigin(t)
	store, err := storage.Open(storage.Options{Dir: dir, Fsync: storage.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := newEdge(t, edgeOpts{site: slicing(slice), store: store}, o.origin)
	sliceGet(t, first, "GET", path)
	waitFor(t, func() bool { return store.Stats().Objects == 4 })
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	o.rangesOf(path)

	store, err = storage.Open(storage.Options{Dir: dir, Fsync: storage.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	base, _ := newEdge(t, edgeOpts{site: slicing(slice), store: store}, o.origin)
	resp, body := sliceGet(t, base, "GET", path, "Range", fmt.Sprintf("bytes=%d-", slice-3))
	if resp.StatusCode != 206 || len(body) != size-slice+3 {
		t.Fatalf("%d with %d bytes", resp.StatusCode, len(body))
	}
	wantGen(t, body, 1, slice-3)
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
		t.Errorf("Cache-Status %q after the restart", cs)
	}
	if got := o.rangesOf(path); len(got) != 0 {
		t.Errorf("the origin served %q after the restart", got)
	}
}

// A rule slices some paths of a site that does not slice, and no_slice
// serves some paths of a sliced site whole.
func TestSliceRule(t *testing.T) {
	const slice = 256 << 10
	for _, tc := range []struct {
		name      string
		siteSlice int64
		spec      rules.Spec
		sliced    map[string]bool
	}{
		{"slice /range/*", 0, rules.Spec{Name: "video", Match: rules.Match{Paths: []string{"/range/*"}}, Cache: rules.Cache{Slice: slice}},
			map[string]bool{"/range/600000": true, "/other/600000": false}},
		{"no_slice /other/*", slice, rules.Spec{Name: "whole", Match: rules.Match{Paths: []string{"/other/*"}}, Cache: rules.Cache{NoSlice: true}},
			map[string]bool{"/range/600000": true, "/other/600000": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := rules.Compile([]rules.Spec{tc.spec}, rules.Options{Origins: []string{"default"}})
			if err != nil {
				t.Fatal(err)
			}
			o := newSliceOrigin(t)
			base, _ := newEdge(t, edgeOpts{site: func(s *edge.Site) { s.Slice, s.Rules = tc.siteSlice, set }}, o.origin)
			for path, sliced := range tc.sliced {
				resp, body := sliceGet(t, base, "GET", path, "Range", "bytes=300000-300009")
				wantGen(t, body, 1, 300000)
				if got := strings.Contains(resp.Header.Get("Cache-Status"), "detail=slices"); got != sliced || resp.StatusCode != 206 {
					t.Errorf("%s: %d, Cache-Status %q, want sliced %v", path, resp.StatusCode, resp.Header.Get("Cache-Status"), sliced)
				}
			}
		})
	}
}

// slicedPoP is a slice origin and two peer nodes of one PoP in front of
// it, slicing at 256 KiB.
func slicedPoP(t *testing.T) (*sliceOrigin, *peerNode, *peerNode) {
	t.Helper()
	o := newSliceOrigin(t)
	a := newPeerNodeSite(t, "edged-a", o.URL, "", nil, slicing(256<<10))
	b := newPeerNodeSite(t, "edged-b", o.URL, "", nil, slicing(256<<10))
	pop(a, b)
	return o, a, b
}

// In a PoP, a slice fill goes to the key's owner with its Range, and the
// owner answers it from its own slices: the origin serves each slice
// once for the PoP.
func TestSlicePeerHop(t *testing.T) {
	path := "/range/1000000"
	o, a, b := slicedPoP(t)
	a.cluster.setOwner("edged-b")
	b.cluster.setOwner("edged-b")
	for i, base := range []string{a.client, b.client, a.client} {
		resp, body := sliceGet(t, base, "GET", path, "Range", "bytes=300000-300099")
		if resp.StatusCode != 206 || len(body) != 100 {
			t.Fatalf("request %d: %d with %d bytes", i+1, resp.StatusCode, len(body))
		}
		wantGen(t, body, 1, 300000)
		t.Logf("request %d: Cache-Status %q", i+1, resp.Header.Values("Cache-Status"))
	}
	if got := o.rangesOf(path); len(got) != 1 || got[0] != "bytes=262144-524287" {
		t.Errorf("the origin served %q, want slice 1 once", got)
	}
}

// BenchmarkSliceRange is a 1 MiB range at 2 GiB of a 4 GiB object with
// 1 MiB slices: a miss (each iteration a slice not stored yet: one origin
// range fetch, the origin generating its bytes) and a hit.
func BenchmarkSliceRange(b *testing.B) {
	const size, slice = 4 << 30, 1 << 20
	path := fmt.Sprintf("/range/%d", int64(size))
	o := newSliceOrigin(b)
	base, _, _ := buildEdge(b, edgeOpts{site: slicing(slice), cacheBytes: 256 << 20}, o.URL)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	var getFrom func(base string, off int64)
	get := func(off int64) { getFrom(base, off) }
	getFrom = func(base string, off int64) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Host = "example.com"
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+slice-1))
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != slice || resp.StatusCode != 206 {
			b.Fatalf("%d, %d bytes, %v", resp.StatusCode, n, err)
		}
	}
	var next int64
	b.Run("origin", func(b *testing.B) { // the origin alone, for scale
		b.SetBytes(slice)
		for b.Loop() {
			getFrom(o.URL, 2<<30)
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.SetBytes(slice)
		for b.Loop() {
			get(2<<30 + next*slice)
			next++
		}
	})
	b.Run("hit", func(b *testing.B) {
		b.SetBytes(slice)
		get(2 << 30)
		for b.Loop() {
			get(2 << 30)
		}
	})
}

// After a restart the warm start copies slices from disk into memory; an
// unsafe request before any request for the object still invalidates
// them in both tiers.
func TestSliceInvalidatedAfterRestart(t *testing.T) {
	const slice = 256 << 10
	path := "/range/600000"
	dir := t.TempDir()
	o := newSliceOrigin(t)
	store, err := storage.Open(storage.Options{Dir: dir, Fsync: storage.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := newEdge(t, edgeOpts{site: slicing(slice), store: store}, o.origin)
	sliceGet(t, first, "GET", path)
	waitFor(t, func() bool { return store.Stats().Objects == 3 })
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store, err = storage.Open(storage.Options{Dir: dir, Fsync: storage.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	base, c := newEdge(t, edgeOpts{site: slicing(slice), store: store}, o.origin)
	if res := <-c.WarmStart(cache.WarmOptions{Rate: -1}); res.Objects != 3 {
		t.Fatalf("the warm start copied %+v, want the 3 slices", res)
	}
	o.rangesOf(path)
	sliceGet(t, base, "POST", path)
	resp, body := sliceGet(t, base, "GET", path)
	wantGen(t, body, 1, 0)
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=uri-miss") {
		t.Errorf("after the POST: Cache-Status %q", cs)
	}
	if got := o.rangesOf(path); len(got) != 4 { // the POST, then 3 slices
		t.Errorf("after the POST the origin served %q, want all 3 slices again", got)
	}
}

// In a PoP each slice has an owner of its own, so one large object's
// slices spread over the nodes: a node fills the slices it owns from the
// origin and asks the owners of the others, and the origin serves each
// slice once for the PoP whichever node the client asks.
func TestSlicesSpreadOverPoP(t *testing.T) {
	path := "/range/1000000"
	o, a, b := slicedPoP(t)
	owner := func(key string) string { // slice 0 is a's, the others and whole keys b's
		if strings.HasSuffix(key, "\x00bytes=0-262143") {
			return "edged-a"
		}
		return "edged-b"
	}
	a.cluster.setOwnerOf(owner)
	b.cluster.setOwnerOf(owner)
	for i, base := range []string{a.client, b.client, a.client} {
		resp, body := sliceGet(t, base, "GET", path, "Range", "bytes=200000-599999") // slices 0, 1 and 2
		if resp.StatusCode != 206 || len(body) != 400000 {
			t.Fatalf("request %d: %d with %d bytes", i+1, resp.StatusCode, len(body))
		}
		wantGen(t, body, 1, 200000)
	}
	got := o.rangesOf(path)
	slices.Sort(got)
	if want := []string{"bytes=0-262143", "bytes=262144-524287", "bytes=524288-786431"}; !slices.Equal(got, want) {
		t.Errorf("the origin served %q, want each of the three slices once", got)
	}
	// b filled slices 1 and 2 for a (misses it answered as their owner,
	// once each); a answered b's request for slice 0 from its own store.
	if n, _ := testkit.Metric(t, b.reg, "edged_peer_requests_total", "cache", "miss"); n != 2 {
		t.Errorf("b filled %v slices as their owner, want 2", n)
	}
	if n, _ := testkit.Metric(t, a.reg, "edged_peer_requests_total", "cache", "hit"); n < 1 {
		t.Errorf("a answered %v peer fetches from its store, want slice 0 at least once", n)
	}
}
