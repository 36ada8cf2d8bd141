package edge_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/edge/rules"
)

// discardWriter is the cheapest possible http.ResponseWriter, so that the
// handler benchmark measures edged's hit path and not a recorder's.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// SetWriteDeadline lets http.ResponseController set deadlines, as on a
// real connection.
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }

func benchEdge(b *testing.B) (http.Handler, string) {
	body := strings.Repeat("x", 1024)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("ETag", `"abc"`)
		io.WriteString(w, body)
	}))
	b.Cleanup(o.Close)
	base, h, _ := buildEdge(b, edgeOpts{}, o.URL)
	return h, base
}

// BenchmarkHitHandler measures a memory-tier hit of a 1 KiB object through
// edge.Handler.ServeHTTP (routing, key, lookup, headers, body), in parallel.
func BenchmarkHitHandler(b *testing.B) {
	h, _ := benchEdge(b)
	warm := httptest.NewRequest("GET", "http://example.com/hot", nil)
	h.ServeHTTP(httptest.NewRecorder(), warm)
	b.ReportAllocs()
	b.SetBytes(1024)
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", "http://example.com/hot", nil)
		w := &discardWriter{h: make(http.Header, 16)}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, req)
			if w.code != 200 {
				b.Fatalf("status %d", w.code)
			}
		}
	})
}

// BenchmarkHitLoopback measures the same hit over real keep-alive HTTP/1.1
// connections on 127.0.0.1, client cost included.
func BenchmarkHitLoopback(b *testing.B) {
	_, base := benchEdge(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	get := func() int {
		req, _ := http.NewRequest("GET", base+"/hot", nil)
		req.Host = "example.com"
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	get()
	b.ReportAllocs()
	b.SetBytes(1024)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if get() != 200 {
				b.Fatal("not 200")
			}
		}
	})
}

// BenchmarkDiskHit1MiB measures disk-tier hits of 1 MiB objects over real
// keep-alive HTTP/1.1 on 127.0.0.1: verify-then-sendfile (the default for
// objects up to cache.Config.VerifyLimit) against block-verified streaming.
func BenchmarkDiskHit1MiB(b *testing.B) {
	const size = 1 << 20
	body := strings.Repeat("y", size)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		io.WriteString(w, body)
	}))
	b.Cleanup(o.Close)
	for _, mode := range []struct {
		name        string
		verifyLimit int64
	}{{"sendfile", 0}, {"verifying-reader", 1}} {
		b.Run(mode.name, func(b *testing.B) {
			base, _, _ := buildEdge(b, edgeOpts{disk: true, maxObject: 64 << 10, verifyLimit: mode.verifyLimit}, o.URL)
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			b.Cleanup(tr.CloseIdleConnections)
			client := &http.Client{Transport: tr}
			get := func() string {
				req, _ := http.NewRequest("GET", base+"/big", nil)
				req.Host = "example.com"
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if n != size {
					b.Fatalf("read %d bytes", n)
				}
				return resp.Header.Get("Cache-Status")
			}
			for !strings.HasPrefix(get(), "edged; hit") { // wait for the fill to be committed
			}
			b.ReportAllocs()
			b.SetBytes(size)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get()
				}
			})
		})
	}
}

// BenchmarkHitHandlerRateLimit is BenchmarkHitHandler without and with a
// site rate limit the client stays under, and with an address list of
// 5,000 ranges: the limits' cost on the hit path.
func BenchmarkHitHandlerRateLimit(b *testing.B) {
	deny := make([]string, 5000)
	for i := range deny {
		deny[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24).String()
	}
	for _, bc := range []struct {
		name string
		site func(*edge.Site)
	}{
		{"none", nil},
		{"site limit", func(s *edge.Site) { s.RateLimit = rules.RateLimit{Rate: 1e9, Burst: 1e9} }},
		{"site limit and deny list", func(s *edge.Site) {
			s.RateLimit = rules.RateLimit{Rate: 1e9, Burst: 1e9}
			s.DenyClients = deny
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			o := httptest.NewServer(cacheable(strings.Repeat("x", 1024)))
			b.Cleanup(o.Close)
			_, h, _ := buildEdge(b, edgeOpts{site: bc.site}, o.URL)
			warm := httptest.NewRequest("GET", "http://example.com/hot", nil)
			h.ServeHTTP(httptest.NewRecorder(), warm)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "http://example.com/hot", nil)
				w := &discardWriter{h: make(http.Header, 16)}
				for pb.Next() {
					clear(w.h)
					h.ServeHTTP(w, req)
					if w.code != 200 {
						b.Fatalf("status %d", w.code)
					}
				}
			})
		})
	}
}
