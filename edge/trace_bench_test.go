package edge_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// otlpSink is a tracer exporting over OTLP/HTTP, as the daemon does
// (batched, protobuf), to a loopback receiver that discards what it gets,
// sampled parent-based at ratio.
func otlpSink(b *testing.B, ratio float64) trace.Tracer {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(sink.Close)
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(sink.URL+"/v1/traces"))
	if err != nil {
		b.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp.Tracer("bench")
}

// BenchmarkTracedHit measures 1 KiB memory-tier hits with tracing off, at
// the default ratio (0.01) and at ratio 1 (every request's spans recorded
// and exported over OTLP/HTTP to a loopback receiver): through
// Handler.ServeHTTP (the general path, as BenchmarkHitHandler) and over 64
// keep-alive connections (the fast path on edged's HTTP/1 loop, as
// BenchmarkHitServer).
func BenchmarkTracedHit(b *testing.B) {
	body := strings.Repeat("x", 1024)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	}))
	b.Cleanup(o.Close)
	for _, tc := range []struct {
		name  string
		ratio float64 // <0: off
	}{{"off", -1}, {"ratio-0.01", 0.01}, {"ratio-1", 1}} {
		tracer := func(b *testing.B) trace.Tracer {
			if tc.ratio < 0 {
				return nil
			}
			return otlpSink(b, tc.ratio)
		}
		b.Run("handler/"+tc.name, func(b *testing.B) {
			_, h, _ := buildEdge(b, edgeOpts{tracer: tracer(b)}, o.URL)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://example.com/hot", nil))
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
		})
		b.Run("server/"+tc.name, func(b *testing.B) {
			base, _, _ := buildEdge(b, edgeOpts{tracer: tracer(b)}, o.URL)
			addr := strings.TrimPrefix(base, "http://")
			const conns = 64
			var mu sync.Mutex
			clients := make([]*rawClient, 0, conns)
			for range conns {
				rc := dialRaw(b, addr, "/hot")
				rc.req = []byte("GET /hot HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\n\r\n")
				if st, err := rc.get(); err != nil || st != 200 {
					b.Fatalf("warm-up: status %d, %v", st, err)
				}
				clients = append(clients, rc)
			}
			b.Cleanup(func() {
				for _, rc := range clients {
					rc.c.Close()
				}
			})
			b.ReportAllocs()
			b.SetBytes(1024)
			b.SetParallelism((conns + 1) / 2)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				rc := clients[len(clients)-1]
				clients = clients[:len(clients)-1]
				mu.Unlock()
				for pb.Next() {
					if st, err := rc.get(); err != nil || st != 200 {
						b.Errorf("status %d, %v", st, err)
						return
					}
				}
			})
		})
	}
}
