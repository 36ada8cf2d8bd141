package h1_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge/h1"
	"github.com/edged-proxy/edged/internal/testkit"
)

// benchServe serves h with h1 on 127.0.0.1 and returns one keep-alive
// client connection to it.
func benchServe(b *testing.B, h http.HandlerFunc) (net.Conn, *bufio.Reader) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &h1.Server{Handler: h}
	go srv.Serve(ln)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c, bufio.NewReaderSize(c, 16<<10)
}

var benchBody = []byte(strings.Repeat("x", 1024))

// BenchmarkHit is a cache hit as the loop sees it: a GET answered from
// memory by a handler that never looks at the request's context.
func BenchmarkHit(b *testing.B) {
	c, br := benchServe(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(benchBody)
	})
	testkit.RoundTrips(b, c, br, []byte("GET /hot HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\n\r\n"))
}

// BenchmarkMiss is a GET whose handler derives a context with a timeout
// from the request's, as a fill sent to the origin does.
func BenchmarkMiss(b *testing.B) {
	c, br := benchServe(b, func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
		defer cancel()
		if ctx.Err() != nil {
			http.Error(w, "cancelled", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(benchBody)
	})
	testkit.RoundTrips(b, c, br, []byte("GET /cold HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\n\r\n"))
}

// BenchmarkChunkedUpload posts 64 KiB in 4 KiB chunks to a handler that
// reads the body to its end.
func BenchmarkChunkedUpload(b *testing.B) {
	c, br := benchServe(b, func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, strconv.FormatInt(n, 10))
	})
	var req strings.Builder
	req.WriteString("POST /up HTTP/1.1\r\nHost: bench.example\r\nTransfer-Encoding: chunked\r\n\r\n")
	chunk := strings.Repeat("y", 4096)
	for range 16 {
		req.WriteString("1000\r\n" + chunk + "\r\n")
	}
	req.WriteString("0\r\n\r\n")
	b.SetBytes(16 * 4096)
	testkit.RoundTrips(b, c, br, []byte(req.String()))
}
