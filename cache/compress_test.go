package cache

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-proxy/edged/cache/coding"
	"github.com/edged-proxy/edged/cache/rfc"
)

// htmlOrigin serves one compressible page with an ETag and max-age=10,
// and answers a matching If-None-Match with 304.
type htmlOrigin struct {
	sent, notModified atomic.Int32
}

var htmlBody = strings.Repeat("<li>a list item the cache compresses</li>\n", 200)

func (o *htmlOrigin) Send(out *http.Request, _ string) (*http.Response, string, error) {
	o.sent.Add(1)
	hd := http.Header{"Cache-Control": {"max-age=10"}, "Etag": {`"e1"`}, "Content-Type": {"text/html"}}
	if out.Header.Get("If-None-Match") == `"e1"` {
		o.notModified.Add(1)
		hd.Set("X-Refreshed", "yes")
		return &http.Response{StatusCode: 304, ProtoMajor: 1, ProtoMinor: 1, Header: hd, Body: http.NoBody, Request: out}, "o", nil
	}
	return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: hd, Body: io.NopCloser(strings.NewReader(htmlBody)),
		ContentLength: int64(len(htmlBody)), Request: out}, "o", nil
}

func compressRequest(t testing.TB, o Origin, ae string) *Request {
	z, err := coding.New(coding.Config{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	in := httptest.NewRequest("GET", "http://example.com/p", nil)
	if ae != "" {
		in.Header.Set("Accept-Encoding", ae)
	}
	return &Request{Key: "http://example.com/p", In: in, Origin: o, RangeStart: -1, Policy: rfc.Policy{}, Compress: z,
		Out: OutBuilderFunc(func(ctx context.Context, f Fetch) (*http.Request, error) {
			out := in.Clone(ctx)
			if f.ETag != "" {
				out.Header.Set("If-None-Match", f.ETag)
			}
			return out, nil
		})}
}

func bodyOf(t *testing.T, res Result) []byte {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body.NewReader(0, -1))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A 304 refreshes the compressed variants with their identity entry: the
// next hits still get them, with the refreshed header; and a variant
// left over from another response is never served.
func TestCompressedVariantsFollowRefresh(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	c, err := New(Config{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := &htmlOrigin{}
	res, err := c.Get(context.Background(), compressRequest(t, o, "br"))
	if err != nil {
		t.Fatal(err)
	}
	br := bodyOf(t, res)
	if ce := res.Entry.Header.Get("Content-Encoding"); ce != "br" || len(br) >= len(htmlBody)/4 {
		t.Fatalf("fill answered Content-Encoding %q, %d bytes", ce, len(br))
	}
	clock = clock.Add(20 * time.Second) // stale: revalidated with the identity ETag
	res, err = c.Get(context.Background(), compressRequest(t, o, "gzip"))
	if err != nil {
		t.Fatal(err)
	}
	bodyOf(t, res)
	if o.notModified.Load() != 1 || res.Entry.Header.Get("Content-Encoding") != "gzip" || res.Entry.Header.Get("X-Refreshed") != "yes" {
		t.Fatalf("after a 304: %d 304s, Content-Encoding %q, X-Refreshed %q", o.notModified.Load(),
			res.Entry.Header.Get("Content-Encoding"), res.Entry.Header.Get("X-Refreshed"))
	}
	res, err = c.Get(context.Background(), compressRequest(t, o, "br"))
	if err != nil {
		t.Fatal(err)
	}
	if got := bodyOf(t, res); !res.Hit || !bytes.Equal(got, br) || res.Entry.Header.Get("X-Refreshed") != "yes" || res.Age != 0 {
		t.Errorf("br after the refresh: hit %v, same body %v, X-Refreshed %q, Age %v", res.Hit, bytes.Equal(got, br),
			res.Entry.Header.Get("X-Refreshed"), res.Age)
	}
	// A variant of another generation (a refresh that did not reach it)
	// gives way to the identity entry.
	id, _ := c.mem.get("http://example.com/p")
	old := id.coded(coding.Zstd, []byte("stale bytes"), 11)
	old.Timing.ResponseTime = old.Timing.ResponseTime.Add(-time.Hour)
	c.mem.set(old)
	res, err = c.Get(context.Background(), compressRequest(t, o, "zstd"))
	if err != nil {
		t.Fatal(err)
	}
	if got := bodyOf(t, res); res.Entry.Header.Get("Content-Encoding") != "" || string(got) != htmlBody {
		t.Errorf("a variant of another response was served: Content-Encoding %q", res.Entry.Header.Get("Content-Encoding"))
	}
	if n := o.sent.Load(); n != 2 {
		t.Errorf("origin asked %d times, want 2", n)
	}
}
