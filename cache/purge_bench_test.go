package cache

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/purge/selector"
	"github.com/edged-proxy/edged/storage"
)

// BenchmarkPurgeTag purges one tag covering N disk objects (N from
// EDGED_BENCH_OBJECTS, default 100000) while other goroutines keep hitting
// a hot object, and reports the purge time and the hits' p99 during it.
// Run it once: go test -run XXX -bench PurgeTag -benchtime 1x ./cache
func BenchmarkPurgeTag(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("EDGED_BENCH_OBJECTS")); err == nil {
		n = v
	}
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		disk, err := storage.Open(storage.Options{Dir: dir, Fsync: storage.FsyncNever, MaxBytes: 1 << 40})
		if err != nil {
			b.Fatal(err)
		}
		hdr := encodeEntry(&Entry{Status: 200, Header: http.Header{}, Lifetime: time.Hour, Tags: []string{"big"}})
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 8 {
			wg.Go(func() {
				for i := next.Add(1); i <= int64(n); i = next.Add(1) {
					w, err := disk.Create(fmt.Sprintf("http://example.com/obj/%d", i))
					if err != nil {
						b.Error(err)
						return
					}
					w.Write([]byte("x"))
					if err := w.Commit(storage.Meta{Header: hdr, Size: 1, Tags: []string{"big"}}); err != nil {
						b.Error(err)
					}
					w.Close()
				}
			})
		}
		wg.Wait()
		c, err := New(Config{Disk: disk})
		if err != nil {
			b.Fatal(err)
		}
		// A hot object in memory, hit continuously during the purge.
		hot := &Entry{Key: "http://example.com/hot", Primary: "http://example.com/hot", Status: 200,
			Header: http.Header{}, Body: []byte("hot"), Lifetime: time.Hour,
			Timing: rfc.Timing{RequestTime: time.Now(), ResponseTime: time.Now()}}
		c.mem.set(hot)
		req := &Request{Key: hot.Key, In: httptest.NewRequest("GET", "http://example.com/hot", nil), RangeStart: -1}
		stop := make(chan struct{})
		var mu sync.Mutex
		var lat []time.Duration
		var hw sync.WaitGroup
		for range 4 {
			hw.Go(func() {
				var mine []time.Duration
				for {
					select {
					case <-stop:
						mu.Lock()
						lat = append(lat, mine...)
						mu.Unlock()
						return
					default:
					}
					t0 := time.Now()
					if res, err := c.Get(context.Background(), req); err != nil || !res.Hit {
						b.Error("hot object not a hit")
						return
					}
					mine = append(mine, time.Since(t0))
				}
			})
		}
		b.StartTimer()
		t0 := time.Now()
		got, err := c.Purge(context.Background(), selector.Selector{Tags: []string{"big"}})
		took := time.Since(t0)
		b.StopTimer()
		close(stop)
		hw.Wait()
		if err != nil || got.Tags != n {
			b.Fatalf("purge: %+v %v", got, err)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(took.Milliseconds()), "purge-ms")
		b.ReportMetric(float64(n), "objects")
		if len(lat) > 0 {
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "hit-p99-ns")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "hit-max-µs")
			b.ReportMetric(float64(len(lat)), "hits")
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "hit-p50-ns")
		}
		c.Close()
		disk.Close()
		b.StartTimer()
	}
}
