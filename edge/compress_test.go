package edge_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/edged-proxy/edged/cache/coding"
	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/storage"
)

// page is a compressible HTML body of about 20 KiB.
var page = func() []byte {
	var b bytes.Buffer
	b.WriteString("<!doctype html><html><head><title>edged</title></head><body>\n")
	for i := range 300 {
		fmt.Fprintf(&b, "<p class=\"row\">Row %d of a page the origin sends uncompressed.</p>\n", i)
	}
	b.WriteString("</body></html>\n")
	return b.Bytes()
}()

// compressOrigin serves the resources of the compression tests.
func compressOrigin(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "max-age=3600")
	switch r.URL.Path {
	case "/page", "/page2":
		hd.Set("Content-Type", "text/html; charset=utf-8")
		hd.Set("Etag", `"p1"`)
		w.Write(page)
	case "/weak":
		hd.Set("Content-Type", "text/html")
		hd.Set("Etag", `W/"w1"`)
		w.Write(page)
	case "/small":
		hd.Set("Content-Type", "text/html")
		io.WriteString(w, "<p>too small to be worth it</p>")
	case "/png":
		hd.Set("Content-Type", "image/png")
		w.Write(page) // compressible bytes, but not a listed type
	case "/notransform":
		hd.Set("Cache-Control", "max-age=3600, no-transform")
		hd.Set("Content-Type", "text/html")
		w.Write(page)
	case "/gzipped": // the origin compresses itself
		hd.Set("Content-Type", "text/html")
		hd.Set("Content-Encoding", "gzip")
		hd.Set("Vary", "Accept-Encoding")
		hd.Set("Etag", `"g1"`)
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(page)
		zw.Close()
		w.Write(b.Bytes())
	default:
		http.NotFound(w, r)
	}
}

func compressing(s *edge.Site) { s.Compression = coding.Config{Enabled: true} }

// fetch sends a GET (or HEAD) with Accept-Encoding ae ("-": no such
// field) and the extra field pairs, without the client decompressing.
func fetch(t *testing.T, base, method, path, ae string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "example.com"
	if ae != "-" {
		req.Header.Set("Accept-Encoding", ae)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// decoded is body decompressed as its Content-Encoding says.
func decoded(t *testing.T, ce string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch ce {
	case "":
		return body
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unexpected Content-Encoding %q", ce)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", ce, err)
	}
	return out
}

func hasVaryAE(h http.Header) bool {
	for _, v := range h.Values("Vary") {
		for n := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(n), "Accept-Encoding") {
				return true
			}
		}
	}
	return false
}

// A compressible response is compressed once, at fill time, and each
// client gets the coding its Accept-Encoding negotiates, byte-exactly the
// origin's body once decoded, from one origin request; hits included.
func TestCompressedVariantsByteExact(t *testing.T) {
	o := newOrigin(t, compressOrigin)
	base, _ := newEdge(t, edgeOpts{site: compressing}, o)
	tests := []struct {
		ae, want string
	}{
		{"-", ""},
		{"gzip", "gzip"},
		{"br", "br"},
		{"zstd", "zstd"},
		{"identity", ""},
		{"gzip, deflate, br, zstd", "br"},
		{"gzip;q=1, br;q=0.5", "gzip"},
		{"br;q=0, zstd;q=0.2, gzip;q=0.1", "zstd"},
		{"deflate", ""},
		{"*;q=0", ""}, // nothing acceptable: identity, not 406
		{"identity;q=0, *;q=0", ""},
		{"", ""},
	}
	for round := range 2 { // the first request of round 0 fills, the rest hit
		for _, tt := range tests {
			resp, body := fetch(t, base, http.MethodGet, "/page", tt.ae)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("Accept-Encoding %q: status %d", tt.ae, resp.StatusCode)
			}
			ce := resp.Header.Get("Content-Encoding")
			if ce != tt.want {
				t.Errorf("round %d, Accept-Encoding %q: Content-Encoding %q, want %q", round, tt.ae, ce, tt.want)
			}
			if got := decoded(t, ce, body); !bytes.Equal(got, page) {
				t.Errorf("Accept-Encoding %q: decoded body differs from the origin's (%d bytes, want %d)", tt.ae, len(got), len(page))
			}
			if cl := resp.Header.Get("Content-Length"); cl != fmt.Sprint(len(body)) {
				t.Errorf("Accept-Encoding %q: Content-Length %s for %d bytes", tt.ae, cl, len(body))
			}
			if ce != "" && len(body) > len(page)/3 {
				t.Errorf("%s: %d bytes from %d", ce, len(body), len(page))
			}
			if !hasVaryAE(resp.Header) {
				t.Errorf("Accept-Encoding %q: Vary %q lacks Accept-Encoding", tt.ae, resp.Header.Values("Vary"))
			}
			wantTag := `"p1"`
			if ce != "" {
				wantTag = `"p1-` + ce + `"`
			}
			if tag := resp.Header.Get("Etag"); tag != wantTag {
				t.Errorf("Accept-Encoding %q: ETag %s, want %s", tt.ae, tag, wantTag)
			}
			if round == 1 && !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
				t.Errorf("Accept-Encoding %q: Cache-Status %q on a second round", tt.ae, resp.Header.Get("Cache-Status"))
			}
		}
	}
	if n := o.hits("/page"); n != 1 {
		t.Errorf("origin hits = %d, want 1", n)
	}
	// The fill's own clients, leader and joiner alike, get their coding
	// too: a first request that accepts br.
	resp, body := fetch(t, base, http.MethodGet, "/page2", "br")
	if ce := resp.Header.Get("Content-Encoding"); ce != "br" || !bytes.Equal(decoded(t, ce, body), page) {
		t.Errorf("the filling request got Content-Encoding %q", ce)
	}
}

// Validators never cross codings: the identity ETag does not make a br
// variant 304, its own ETag does; a weak ETag stays weak.
func TestCompressedETags(t *testing.T) {
	o := newOrigin(t, compressOrigin)
	base, _ := newEdge(t, edgeOpts{site: compressing}, o)
	fetch(t, base, http.MethodGet, "/page", "br") // fill
	tests := []struct {
		ae, inm string
		want    int
	}{
		{"br", `"p1"`, http.StatusOK},
		{"br", `"p1-br"`, http.StatusNotModified},
		{"br", `"p1-gzip"`, http.StatusOK},
		{"gzip", `"p1-gzip"`, http.StatusNotModified},
		{"identity", `"p1-br"`, http.StatusOK},
		{"identity", `"p1"`, http.StatusNotModified},
		{"zstd", `W/"p1-zstd"`, http.StatusNotModified}, // weak comparison
	}
	for _, tt := range tests {
		resp, _ := fetch(t, base, http.MethodGet, "/page", tt.ae, "If-None-Match", tt.inm)
		if resp.StatusCode != tt.want {
			t.Errorf("Accept-Encoding %s, If-None-Match %s: status %d, want %d", tt.ae, tt.inm, resp.StatusCode, tt.want)
		}
	}
	resp, _ := fetch(t, base, http.MethodGet, "/weak", "gzip")
	if tag := resp.Header.Get("Etag"); tag != `W/"w1-gzip"` {
		t.Errorf("weak ETag of the gzip variant = %s, want W/\"w1-gzip\"", tag)
	}
}

// A Range request is answered from the representation it names: the
// bytes of the compressed body for a client that accepts the coding.
func TestCompressedRange(t *testing.T) {
	o := newOrigin(t, compressOrigin)
	base, _ := newEdge(t, edgeOpts{site: compressing}, o)
	_, whole := fetch(t, base, http.MethodGet, "/page", "gzip")
	resp, part := fetch(t, base, http.MethodGet, "/page", "gzip", "Range", "bytes=10-99")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, whole[10:100]) {
		t.Fatalf("status %d, %d bytes; want 206 and bytes 10-99 of the gzip body", resp.StatusCode, len(part))
	}
	if cr, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes 10-99/%d", len(whole)); cr != want {
		t.Errorf("Content-Range %q, want %q", cr, want)
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Errorf("Content-Encoding %q on the 206, want gzip", ce)
	}
	// If-Range with the identity validator names another representation:
	// the whole gzip body, not a range of it.
	resp, body := fetch(t, base, http.MethodGet, "/page", "gzip", "Range", "bytes=10-99", "If-Range", `"p1"`)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, whole) {
		t.Errorf("If-Range with the identity ETag: status %d, %d bytes; want 200 and the whole gzip body", resp.StatusCode, len(body))
	}
	resp, part = fetch(t, base, http.MethodGet, "/page", "identity", "Range", "bytes=0-14")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, page[:15]) {
		t.Errorf("identity range: status %d, %q", resp.StatusCode, part)
	}
}

// Small bodies, unlisted types, no-transform and responses the origin
// compressed itself are passed as the origin sent them; HEAD gets the
// negotiated variant's fields without a body.
func TestCompressionLeavesAlone(t *testing.T) {
	o := newOrigin(t, compressOrigin)
	base, _ := newEdge(t, edgeOpts{site: compressing}, o)
	for _, path := range []string{"/small", "/png", "/notransform"} {
		for range 2 {
			resp, body := fetch(t, base, http.MethodGet, path, "gzip, br, zstd")
			if ce := resp.Header.Get("Content-Encoding"); ce != "" {
				t.Errorf("%s: Content-Encoding %q, want none", path, ce)
			}
			if hasVaryAE(resp.Header) {
				t.Errorf("%s: Vary: Accept-Encoding on a response never compressed", path)
			}
			if path != "/small" && !bytes.Equal(body, page) {
				t.Errorf("%s: body changed", path)
			}
		}
	}
	var gz []byte
	for i, ae := range []string{"gzip", "gzip", "br"} { // the origin's gzip, stored under its Vary
		resp, body := fetch(t, base, http.MethodGet, "/gzipped", ae)
		if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" || resp.Header.Get("Etag") != `"g1"` {
			t.Errorf("origin-compressed, Accept-Encoding %s: Content-Encoding %q, ETag %s; want the origin's", ae, ce, resp.Header.Get("Etag"))
		}
		if i == 0 {
			gz = body
		} else if ae == "gzip" && !bytes.Equal(body, gz) {
			t.Error("the origin's gzip body was changed")
		}
		if !bytes.Equal(decoded(t, "gzip", body), page) {
			t.Error("the origin's gzip body does not decode to the page")
		}
	}
	resp, body := fetch(t, base, http.MethodHead, "/page", "zstd")
	resp2, full := fetch(t, base, http.MethodGet, "/page", "zstd")
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("Content-Encoding") != "zstd" ||
		resp.Header.Get("Content-Length") != resp2.Header.Get("Content-Length") || resp.Header.Get("Content-Length") != fmt.Sprint(len(full)) {
		t.Errorf("HEAD: status %d, %d body bytes, Content-Encoding %q, Content-Length %s (GET: %d bytes)",
			resp.StatusCode, len(body), resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Length"), len(full))
	}
}

// Compressed variants reach the disk tier and are served from it after
// the memory tier lost them (a restart).
func TestCompressedFromDisk(t *testing.T) {
	o := newOrigin(t, compressOrigin)
	var store *storage.Store
	first, _ := newEdge(t, edgeOpts{site: compressing, disk: true, onDisk: func(s *storage.Store) { store = s }}, o)
	fetch(t, first, http.MethodGet, "/page", "br")
	waitFor(t, func() bool { return store.Stats().Objects == 4 })       // identity, br, zstd, gzip
	base, _ := newEdge(t, edgeOpts{site: compressing, store: store}, o) // an empty memory tier
	for _, ae := range []string{"br", "gzip", "zstd", "-"} {
		resp, body := fetch(t, base, http.MethodGet, "/page", ae)
		want := strings.TrimPrefix(ae, "-")
		if ce := resp.Header.Get("Content-Encoding"); ce != want || !bytes.Equal(decoded(t, ce, body), page) {
			t.Errorf("from disk, Accept-Encoding %s: Content-Encoding %q", ae, ce)
		}
	}
	if n := o.hits("/page"); n != 1 {
		t.Errorf("origin hits = %d, want 1", n)
	}
}

// Compressed hits take edged's fast path: the negotiation is the cache's,
// and each compressed variant has its own encoded head.
func TestCompressedHitsTakeFastPath(t *testing.T) {
	origin := testkit.NewOrigin(t, http.HandlerFunc(diffOrigin))
	ours, reg := diffEdge(t, origin.URL, edge.HTTP1Edged, time.Now)
	req := func(ae string) string {
		return "GET /html HTTP/1.1\r\nHost: www.example.com\r\nAccept-Encoding: " + ae + "\r\n\r\n"
	}
	testkit.Exchange(t, ours, req("gzip"), []string{"GET"}) // the fill
	before, _ := testkit.Metric(t, reg, "edged_fast_path_responses_total")
	raw := req("br") + req("gzip") + req("zstd") + req("identity") + req("gzip, deflate, br, zstd")
	got := testkit.Exchange(t, ours, raw, []string{"GET", "GET", "GET", "GET", "GET"})
	for i, want := range []string{"br", "gzip", "zstd", "", "br"} {
		if want != "" && !strings.Contains(got[i], "\nContent-Encoding: "+want+"\n") || want == "" && strings.Contains(got[i], "Content-Encoding") {
			t.Errorf("answer %d, want Content-Encoding %q:\n%s", i, want, got[i])
		}
	}
	// An answer is counted once written, which the client may see first:
	// wait for the count to settle.
	var after float64
	testkit.Poll(5*time.Second, func() bool {
		after, _ = testkit.Metric(t, reg, "edged_fast_path_responses_total")
		return after-before >= 5
	})
	if after-before != 5 {
		t.Errorf("the fast path answered %v of 5 compressed and identity hits", after-before)
	}
}
