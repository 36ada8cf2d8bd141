package edge_test

import (
	"bufio"
	"net"
	"net/http"
	"testing"

	"github.com/edged-proxy/edged/cache/coding"
	"github.com/edged-proxy/edged/edge"
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
	_, addr := daemonEdgeFor(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("ETag", `"5b02e2c74be91827"`)
		w.Write(page)
	}, func(s *edge.Site) { s.Compression = coding.Config{Enabled: true} })
	return addr
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
