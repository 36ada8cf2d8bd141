package origin_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged-proxy/edged/loadtest/origin"
	"github.com/edged-proxy/edged/loadtest/sizemix"
)

func newServer(t *testing.T, cfg origin.Config) (*origin.Origin, *httptest.Server) {
	t.Helper()
	o, err := origin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	return o, srv
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestExpectedIsDeterministicAndPrefixStable(t *testing.T) {
	a := origin.Expected("k1", 1000)
	if !bytes.Equal(a, origin.Expected("k1", 1000)) {
		t.Fatal("Expected is not deterministic")
	}
	if !bytes.Equal(a[:333], origin.Expected("k1", 333)) {
		t.Fatal("a shorter object is not a prefix of a longer one")
	}
	if bytes.Equal(a, origin.Expected("k2", 1000)) {
		t.Fatal("two ids share a body")
	}
}

func TestVerifier(t *testing.T) {
	want := origin.Expected("obj", 10000)
	v := origin.NewVerifier("obj")
	// Odd-sized writes cross the verifier's internal chunks and 8-byte words.
	for i := 0; i < len(want); i += 777 {
		if _, err := v.Write(want[i:min(i+777, len(want))]); err != nil {
			t.Fatalf("write at %d: %v", i, err)
		}
	}
	if v.N() != int64(len(want)) {
		t.Fatalf("N = %d, want %d", v.N(), len(want))
	}
	bad := bytes.Clone(want)
	bad[5000] ^= 1
	v = origin.NewVerifier("obj")
	if _, err := v.Write(bad); !errors.Is(err, origin.ErrMismatch) {
		t.Fatalf("corrupt body: err = %v, want ErrMismatch", err)
	}
}

func TestServesDeterministicObjects(t *testing.T) {
	mix, _ := sizemix.Parse("3000")
	_, srv := newServer(t, origin.Config{Sizes: mix})
	for _, tc := range []struct {
		url, id string
		size    int
		cc      string
	}{
		{"/obj/a?size=10KiB", "a", 10240, origin.DefaultCacheControl},
		{"/obj/b", "b", 3000, origin.DefaultCacheControl},
		{"/obj/c?size=0&cc=private", "c", 0, "private"},
		{"/obj/d?size=5&cc=none", "d", 5, ""},
	} {
		resp, body, err := get(t, srv.URL+tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if resp.StatusCode != 200 || !bytes.Equal(body, origin.Expected(tc.id, tc.size)) {
			t.Errorf("%s: status %d, %d bytes; want 200 and the expected %d bytes", tc.url, resp.StatusCode, len(body), tc.size)
		}
		if got := resp.Header.Get("Cache-Control"); got != tc.cc {
			t.Errorf("%s: Cache-Control %q, want %q", tc.url, got, tc.cc)
		}
		if resp.ContentLength != int64(tc.size) || resp.Header.Get("Last-Modified") == "" {
			t.Errorf("%s: Content-Length %d, Last-Modified %q", tc.url, resp.ContentLength, resp.Header.Get("Last-Modified"))
		}
		if got, want := resp.Header.Get("ETag"), origin.ETag(tc.id, int64(tc.size), "1"); got != want {
			t.Errorf("%s: ETag %s, want %s", tc.url, got, want)
		}
	}
	// Revalidation: a matching If-None-Match gets 304; a new version changes the ETag.
	resp, _, _ := get(t, srv.URL+"/obj/a?size=10KiB", "If-None-Match", origin.ETag("a", 10240, "1"))
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d, want 304", resp.StatusCode)
	}
	resp, _, _ = get(t, srv.URL+"/obj/a?size=10KiB&v=2", "If-None-Match", origin.ETag("a", 10240, "1"))
	if resp.StatusCode != 200 {
		t.Errorf("new version: status %d, want 200", resp.StatusCode)
	}
}

func stats(t *testing.T, url string) origin.Stats {
	t.Helper()
	resp, body, err := get(t, url)
	if err != nil {
		t.Fatal(err)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("/__stats Cache-Control %q, want no-store", cc)
	}
	var s origin.Stats
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return s
}

func TestStatsCountAndReset(t *testing.T) {
	o, srv := newServer(t, origin.Config{})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			path := "/obj/x"
			if i%4 == 0 {
				path = "/obj/y"
			}
			if _, _, err := get(t, srv.URL+path+"?size=100"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s := stats(t, srv.URL+"/__stats")
	if s.Requests != 20 || s.Paths["/obj/x"] != 15 || s.Paths["/obj/y"] != 5 || s.Bytes != 2000 {
		t.Fatalf("stats %+v; want 20 requests (15 x, 5 y), 2000 bytes", s)
	}
	if s = stats(t, srv.URL+"/__stats?path=/obj/y"); len(s.Paths) != 1 || s.Paths["/obj/y"] != 5 {
		t.Errorf("filtered stats paths %v", s.Paths)
	}
	resp, err := http.Post(srv.URL+"/__stats/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := o.Stats(nil); s.Requests != 0 || len(s.Paths) != 0 {
		t.Fatalf("after reset: %+v", s)
	}
}

func TestFailureInjection(t *testing.T) {
	o, srv := newServer(t, origin.Config{})

	resp, body, err := get(t, srv.URL+"/obj/e?status=503")
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Cache-Control") != "no-store" || !strings.Contains(string(body), "503") {
		t.Errorf("status=503: %v %v %q", err, resp, body)
	}

	// A reset mid-body must reach a Go client as an error, after some bytes.
	_, body, err = get(t, srv.URL+"/obj/r?size=64KiB&reset=after:1000")
	if err == nil {
		t.Fatalf("reset=after:1000: read %d bytes without error", len(body))
	}
	if len(body) > 1000 || !bytes.Equal(body, origin.Expected("r", len(body))) {
		t.Errorf("reset=after:1000: got %d bytes before the error, want a valid prefix of at most 1000", len(body))
	}

	// Probabilistic failure with a pinned draw.
	_, srv2 := newServer(t, origin.Config{FailProb: 0.5, FailStatus: 502, Float64: func() float64 { return 0.25 }})
	if resp, _, _ := get(t, srv2.URL+"/obj/p"); resp.StatusCode != 502 {
		t.Errorf("FailProb 0.5 with draw 0.25: status %d, want 502", resp.StatusCode)
	}
	if resp, _, _ := get(t, srv2.URL+"/obj/p?fail=0"); resp.StatusCode != 200 {
		t.Errorf("fail=0: status %d, want 200", resp.StatusCode)
	}
	if got := o.Stats(nil).Failures; got != 2 {
		t.Errorf("injected failures %d, want 2", got)
	}

	resp, _, _ = get(t, srv.URL+"/obj/q?delay=bogus")
	if resp.StatusCode != 400 {
		t.Errorf("bad delay: status %d, want 400", resp.StatusCode)
	}
}

func TestDelayAndRate(t *testing.T) {
	_, srv := newServer(t, origin.Config{})
	start := time.Now()
	if _, _, err := get(t, srv.URL+"/obj/d?delay=60ms"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("delay=60ms answered in %v", d)
	}
	start = time.Now()
	_, body, err := get(t, srv.URL+"/obj/s?size=20KiB&rate=200KiB/s")
	if err != nil || !bytes.Equal(body, origin.Expected("s", 20480)) {
		t.Fatalf("rate: %v, %d bytes", err, len(body))
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("20KiB at 200KiB/s took %v, want about 100ms", d)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []origin.Config{
		{FailProb: 2},
		{Delay: -1},
		{FailStatus: 42},
		{DefaultSize: 10, MaxSize: 5},
	} {
		if _, err := origin.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestFixed(t *testing.T) {
	srv := httptest.NewServer(origin.Fixed([]byte("hello"), "public, max-age=60"))
	defer srv.Close()
	resp, body, err := get(t, srv.URL+"/anything")
	if err != nil || string(body) != "hello" || resp.Header.Get("Cache-Control") != "public, max-age=60" {
		t.Fatalf("Fixed: %v %q %v", err, body, resp.Header)
	}
}

// Connections counts the connections accepted: a keep-alive client's
// requests share one, a client without keep-alive opens one per request, a
// connection that carries no request counts, and the polls of /__stats do
// not.
func TestStatsCountConnections(t *testing.T) {
	o, err := origin.New(origin.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(o)
	srv.Config.ConnContext = o.ConnContext
	srv.Start()
	t.Cleanup(srv.Close)
	do := func(tr *http.Transport, n int) {
		t.Helper()
		client := &http.Client{Transport: tr}
		for i := range n {
			resp, err := client.Get(srv.URL + "/obj/c" + strconv.Itoa(i))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	keep := &http.Transport{}
	defer keep.CloseIdleConnections()
	do(keep, 5)
	do(&http.Transport{DisableKeepAlives: true}, 3)
	idle, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	// The server accepts in order: this request's connection comes after
	// the unused one's.
	do(&http.Transport{DisableKeepAlives: true}, 1)
	stats(t, srv.URL+"/__stats")
	s := stats(t, srv.URL+"/__stats")
	if s.Requests != 9 || s.Connections != 6 {
		t.Errorf("requests %d, connections %d; want 9 and 6", s.Requests, s.Connections)
	}
	o.ResetStats()
	do(keep, 2) // the kept connection: not new since the reset
	if s := o.Stats(nil); s.Requests != 2 || s.Connections != 0 {
		t.Errorf("after reset: requests %d, connections %d; want 2 and 0", s.Requests, s.Connections)
	}
}

// text=1 serves compressible text/html whose bytes, like the binary
// bodies', depend only on the id and the offset (ranges agree).
func TestTextBodies(t *testing.T) {
	o, err := origin.New(origin.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o)
	defer srv.Close()
	get := func(hdr ...string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+"/obj/t1?size=20KiB&text=1", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, whole := get()
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" || len(whole) != 20<<10 {
		t.Fatalf("Content-Type %q, %d bytes", ct, len(whole))
	}
	_, part := get("Range", "bytes=1000-1999")
	if !bytes.Equal(part, whole[1000:2000]) {
		t.Error("a range differs from the same bytes of the whole body")
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(whole)
	zw.Close()
	if r := float64(z.Len()) / float64(len(whole)); r > 0.5 {
		t.Errorf("text compresses to %.2f of its size, want well under half", r)
	}
	for _, c := range whole {
		if c != ' ' && c != '\n' && (c < 'a' || c > 'z') {
			t.Fatalf("byte %q in a text body", c)
		}
	}
}
