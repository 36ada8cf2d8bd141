package cache

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edged-proxy/edged/cache/rfc"
)

// BenchmarkGetHit measures a memory-tier hit through Cache.Get: lookup,
// Vary check, freshness and request directives.
func BenchmarkGetHit(b *testing.B) {
	c, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	now := time.Now()
	e := &Entry{Key: "http://example.com/hot", Primary: "http://example.com/hot", Status: 200,
		Header: http.Header{"Content-Type": {"text/plain"}}, Body: make([]byte, 1024), Lifetime: time.Hour,
		Timing: rfc.Timing{RequestTime: now, ResponseTime: now}}
	c.mem.set(e)
	r := &Request{Key: e.Key, In: httptest.NewRequest("GET", "http://example.com/hot", nil), RangeStart: -1}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := c.Get(context.Background(), r)
			if err != nil || !res.Hit {
				b.Fatal("not a hit")
			}
		}
	})
}
