package edge

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzEvalRange: any Range/If-Range pair gives a range inside the
// representation, or none, and never panics.
func FuzzEvalRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=990-", "bytes=5-1", "bytes=0-1,5-6", "bytes=-0", "items=1-2", "bytes=+1-2", "bytes= 1 - 2 "} {
		f.Add(s, "", int64(1000))
	}
	f.Add("bytes=0-0", `"e"`, int64(1))
	f.Fuzz(func(t *testing.T, spec, ifRange string, size int64) {
		if size < 0 {
			size = -size
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Range", spec)
		if ifRange != "" {
			r.Header.Set("If-Range", ifRange)
		}
		h := http.Header{"Etag": {`"e"`}, "Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"}}
		rng, out := evalRange(r.Method, r.Header.Get("Range"), r.Header.Get("If-Range"), h, size, time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC))
		if out == rangePartial && (rng.start < 0 || rng.length <= 0 || rng.start+rng.length > size) {
			t.Fatalf("Range %q on %d bytes gave %+v", spec, size, rng)
		}
		if s := rangeStart(r); s < -1 {
			t.Fatalf("rangeStart %d", s)
		}
	})
}
