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

// BenchmarkGetHitCoded is BenchmarkGetHit on a compressed 20 KiB HTML
// entry: the identity body for a request without Accept-Encoding, and a
// browser's request, which negotiates br and looks the variant up too.
func BenchmarkGetHitCoded(b *testing.B) {
	c, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	o := &htmlOrigin{}
	for _, tc := range []struct{ name, ae, want string }{
		{"identity", "", ""},
		{"br", "gzip, deflate, br, zstd", "br"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := compressRequest(b, o, tc.ae)
			res, err := c.Get(context.Background(), r) // fills once, then hits
			if err != nil {
				b.Fatal(err)
			}
			res.Body.Close()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := c.Get(context.Background(), r)
					if err != nil || !res.Hit || res.Entry.Header.Get("Content-Encoding") != tc.want {
						b.Fatal("not the hit wanted")
					}
					res.Body.Close()
				}
			})
		})
	}
}
