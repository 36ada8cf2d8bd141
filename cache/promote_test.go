package cache

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/purge/selector"
	"github.com/edged-proxy/edged/storage"
)

// A purge that runs between a disk hit's read and its promotion to memory
// must not be undone by the promotion. (Regression: the purge scanned
// memory before the promotion's copy landed and deleted only the disk
// object, so the purged object stayed in memory and was served as a hit.)
func TestPurgeDuringPromotionStays(t *testing.T) {
	const key = "http://example.com/obj"
	for _, tc := range []struct {
		name string
		sel  selector.Selector
	}{
		{"url", selector.Selector{URLs: []string{key}}},
		{"prefix", selector.Selector{Prefixes: []string{"example.com/ob"}}},
		{"tag", selector.Selector{Tags: []string{"t1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk, err := storage.Open(storage.Options{Dir: t.TempDir(), Fsync: storage.FsyncNever})
			if err != nil {
				t.Fatal(err)
			}
			defer disk.Close()
			now := time.Now()
			body := []byte("stored body")
			hdr := encodeEntry(&Entry{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}},
				Lifetime: time.Hour, Tags: []string{"t1"}, Timing: rfc.Timing{RequestTime: now, ResponseTime: now}})
			w, err := disk.Create(key)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(body)
			if err := w.Commit(storage.Meta{Header: hdr, Size: int64(len(body)), Tags: []string{"t1"}}); err != nil {
				t.Fatal(err)
			}
			w.Close()

			c, err := New(Config{Disk: disk, FillTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			purged := false
			c.beforePromote = func() {
				if !purged {
					purged = true
					if _, err := c.Purge(context.Background(), tc.sel); err != nil {
						t.Error(err)
					}
				}
			}
			req := &Request{Key: key, In: httptest.NewRequest("GET", key, nil), RangeStart: -1}
			res, err := c.Get(context.Background(), req)
			if err != nil || !res.Hit {
				t.Fatalf("first request: hit %v, err %v (the disk object should be served)", res.Hit, err)
			}
			if !purged {
				t.Fatal("the promotion hook did not run")
			}
			if _, ok := c.mem.get(key); ok {
				t.Fatal("the purged object is back in memory")
			}
			if _, err := disk.Get(key); err == nil {
				t.Fatal("the purged object is still on disk")
			}
		})
	}
}
