package edge_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/cache/coding"
	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/internal/logbuf"
	"github.com/edged-proxy/edged/lb"
)

// BenchmarkCompressedHitServer is BenchmarkHitServer for a 20 KiB HTML
// page stored with its br, zstd and gzip variants, over 64 connections:
// an identity hit (no Accept-Encoding) against hits that negotiate each
// coding (a browser's "gzip, deflate, br, zstd" gets br). Nothing is
// compressed per request: the difference is the negotiation, the second
// lookup and the smaller body.
//
//	go test ./edge -run '^$' -bench CompressedHitServer -count 6
func BenchmarkCompressedHitServer(b *testing.B) {
	addr := compressedEdge(b)
	for _, tc := range []struct{ name, ae string }{
		{"identity", ""},
		{"br", "gzip, deflate, br, zstd"},
		{"zstd", "zstd"},
		{"gzip", "gzip"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			field := ""
			if tc.ae != "" {
				field = "Accept-Encoding: " + tc.ae + "\r\n"
			}
			runRaw(b, addr, 64, "GET /page HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\n"+field+"\r\n")
		})
	}
}

// compressedEdge is daemonEdge with compression on and the page as its
// one object.
func compressedEdge(b *testing.B) string {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("ETag", `"5b02e2c74be91827"`)
		w.Write(page)
	}))
	b.Cleanup(o.Close)
	pool, err := lb.NewPool(lb.Config{Name: "bench", Shards: []lb.Shard{{Name: "o", URL: o.URL, Weight: 1}}})
	if err != nil {
		b.Fatal(err)
	}
	c, err := cache.New(cache.Config{MaxBytes: 64 << 20, FillTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	m, err := edge.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	access := logbuf.New(io.Discard, 0, 0)
	b.Cleanup(func() { access.Close() })
	site := &edge.Site{Name: "bench", Hosts: []string{"*"}, Origin: pool, Compression: coding.Config{Enabled: true}}
	h, err := edge.New(edge.Config{Sites: []*edge.Site{site}, Cache: c, Metrics: m, AccessLog: access,
		WriteTimeout: time.Minute, StripResponseHeaders: []string{"Surrogate-Key", "Cache-Tag"}})
	if err != nil {
		b.Fatal(err)
	}
	return serve(b, h, m)
}

// runRaw sends req over conns keep-alive connections, one in flight on
// each, for b.N requests in all.
func runRaw(b *testing.B, addr string, conns int, req string) {
	clients := make(chan *rawClient, conns)
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		rc := &rawClient{c: c, r: bufio.NewReaderSize(c, 32<<10), req: []byte(req)}
		if st, err := rc.get(); err != nil || st != 200 {
			b.Fatalf("warm-up: status %d, %v", st, err)
		}
		clients <- rc
	}
	b.ReportAllocs()
	b.SetParallelism((conns + 1) / 2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rc := <-clients
		for pb.Next() {
			if st, err := rc.get(); err != nil || st != 200 {
				b.Errorf("status %d, %v", st, err)
				return
			}
		}
	})
}
