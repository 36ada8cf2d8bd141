package cache

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/storage"
)

// sizeOrigin answers /name-N with N bytes of 'x', cacheable for an hour,
// after gate (when set) opens.
type sizeOrigin struct {
	gate *testkit.Gate
	sent atomic.Int32
}

func (o *sizeOrigin) Send(out *http.Request, _ string) (*http.Response, string, error) {
	o.sent.Add(1)
	if o.gate != nil && !o.gate.Wait(out.Context()) {
		return nil, "o", out.Context().Err()
	}
	p := out.URL.Path
	n, _ := strconv.Atoi(p[strings.LastIndexByte(p, '-')+1:])
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Cache-Control": {"max-age=3600"}}, Body: io.NopCloser(strings.NewReader(strings.Repeat("x", n))),
		ContentLength: int64(n), Request: out}, "o", nil
}

// admitCache is a cache with a disk tier in a temporary directory and
// the admission given; bodies above larger bytes are "large".
func admitCache(t *testing.T, mode string, larger int64) (*Cache, *storage.Store, *prometheus.Registry) {
	t.Helper()
	disk, err := storage.Open(storage.Options{Dir: t.TempDir(), Fsync: storage.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	reg := prometheus.NewRegistry()
	c, err := New(Config{Disk: disk, DiskAdmission: mode, DiskAdmitLargerThan: larger, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, disk, reg
}

// get requests path and reads its body whole.
func get(t *testing.T, c *Cache, o Origin, path string) Result {
	t.Helper()
	res, err := c.Get(context.Background(), flightRequest(o, path))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body.NewReader(0, -1))
	res.Body.Close()
	if err != nil || len(b) != int(res.Body.Size()) {
		t.Fatalf("%s: read %d bytes of %d, err %v", path, len(b), res.Body.Size(), err)
	}
	return res
}

// onDisk reports whether the disk tier holds path, once the write-behind
// copies started so far have landed.
func onDisk(t *testing.T, c *Cache, d *storage.Store, path string) bool {
	t.Helper()
	c.writers.Wait()
	obj, err := d.Get("http://example.com" + path)
	if err != nil {
		return false
	}
	obj.Close()
	return true
}

func TestDiskAdmission(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     string
		path     string
		requests int
		onDisk   bool
		results  map[string]float64 // edged_disk_admissions_total by result
	}{
		{"second-hit, one request: memory only", AdmitSecondHit, "/a-100", 1, false, map[string]float64{"rejected": 1}},
		{"second-hit, a memory hit admits", AdmitSecondHit, "/a-100", 2, true, map[string]float64{"rejected": 1, "admitted": 1}},
		{"second-hit, later hits count no more", AdmitSecondHit, "/a-100", 5, true, map[string]float64{"rejected": 1, "admitted": 1}},
		{"second-hit, larger than the size rule: at once", AdmitSecondHit, "/b-5000", 1, true, map[string]float64{"large": 1}},
		{"always", AdmitAlways, "/a-100", 1, true, map[string]float64{"admitted": 1}},
		{"off never writes", AdmitOff, "/a-100", 3, false, map[string]float64{"rejected": 1}},
		{"off never writes, large either", AdmitOff, "/b-5000", 3, false, map[string]float64{"rejected": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, d, reg := admitCache(t, tc.mode, 1000)
			o := &sizeOrigin{}
			for i := range tc.requests {
				if res := get(t, c, o, tc.path); res.Hit != (i > 0) {
					t.Fatalf("request %d: hit %v", i+1, res.Hit)
				}
			}
			if got := onDisk(t, c, d, tc.path); got != tc.onDisk {
				t.Errorf("on disk %v, want %v", got, tc.onDisk)
			}
			if n := o.sent.Load(); n != 1 {
				t.Errorf("origin asked %d times, want 1 (the rest are memory hits)", n)
			}
			for _, res := range []string{"admitted", "rejected", "large"} {
				got, _ := testkit.Metric(t, reg, "edged_disk_admissions_total", "result", res)
				if got != tc.results[res] {
					t.Errorf("admissions{result=%q} = %v, want %v", res, got, tc.results[res])
				}
			}
		})
	}
}

// A fill the doorkeeper rejects is still shared by every waiter of its
// flight, with one origin fetch, and written nowhere but memory.
func TestNotAdmittedServedToAllWaiters(t *testing.T) {
	c, d, reg := admitCache(t, AdmitSecondHit, 1<<20)
	o := &sizeOrigin{gate: testkit.NewGate(t)}
	const clients = 8
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() { get(t, c, o, "/w-2000") })
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		n, _ := testkit.Metric(t, reg, "edged_cache_coalesced_waiters_total")
		return n == clients-1
	}, "every client but the leader joining the fill")
	o.gate.Open()
	wg.Wait()
	if n := o.sent.Load(); n != 1 {
		t.Errorf("origin asked %d times, want 1", n)
	}
	if onDisk(t, c, d, "/w-2000") {
		t.Error("a first-request object was written to disk")
	}
	if _, ok := c.mem.get("http://example.com/w-2000"); !ok {
		t.Error("the object is not in memory")
	}
}

// The doorkeeper forgets: a request counts for about one window of
// counted requests, then the next one is a first request again.
func TestDoorkeeperForgets(t *testing.T) {
	d, err := newDoorkeeper(AdmitSecondHit, 1000, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.admit("a", 10); got != rejected {
		t.Fatalf("first request: %s", got)
	}
	for range 1023 { // the window's other requests: its counters are halved
		d.seen.Add("b")
	}
	if got := d.admit("a", 10); got != rejected {
		t.Fatalf("request after the window: %s, want rejected (forgotten)", got)
	}
	if got := d.admit("a", 10); got != admitted {
		t.Fatalf("second request within the window: %s, want admitted", got)
	}
	if got := d.admit("big", -1); got != large {
		t.Fatalf("unknown length: %s, want large", got)
	}
	if _, err := newDoorkeeper("sometimes", 0, 1); err == nil {
		t.Error("an unknown admission was accepted")
	}
}

// versionOrigin answers every path with "v" and its version, cacheable
// for an hour, with etag as its ETag when set.
type versionOrigin struct {
	v    atomic.Int32
	sent atomic.Int32
	etag string
}

func (o *versionOrigin) Send(out *http.Request, _ string) (*http.Response, string, error) {
	o.sent.Add(1)
	b := "v" + strconv.Itoa(int(o.v.Load()))
	h := http.Header{"Cache-Control": {"max-age=3600"}}
	if o.etag != "" {
		h.Set("ETag", o.etag)
	}
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(b)),
		ContentLength: int64(len(b)), Request: out}, "o", nil
}

// diskWithV1 is a disk tier in a temporary directory holding version 1 of
// /p from o, stored by a cache that is closed again; o's version is 1.
func diskWithV1(t *testing.T, o *versionOrigin) *storage.Store {
	t.Helper()
	disk, err := storage.Open(storage.Options{Dir: t.TempDir(), Fsync: storage.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	o.v.Store(1)
	first, err := New(Config{Disk: disk, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	get(t, first, o, "/p")
	if !onDisk(t, first, disk, "/p") {
		t.Fatal("v1 not on disk")
	}
	first.Close()
	return disk
}

// A newer version filled into memory but not written to disk (not
// admitted, or its write-behind skipped) drops the disk tier's older
// one: once memory let the newer go, the older, still fresh by its own
// headers, must not be found on disk and served again.
func TestSupersededDiskVersionDropped(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode string
		busy bool // the write-behind queue full
	}{
		{"not admitted", AdmitOff, false},
		{"write-behind skipped", AdmitAlways, true},
		{"written", AdmitAlways, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &versionOrigin{}
			disk := diskWithV1(t, o)

			c, err := New(Config{Disk: disk, DiskAdmission: tc.mode, WriteBehind: 1, Registerer: prometheus.NewRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.busy {
				if !c.writeQ.take(0) {
					t.Fatal("the write queue is full before the test")
				}
				defer c.writeQ.done(0)
			}
			o.v.Store(2)
			r := flightRequest(o, "/p")
			r.In.Header.Set("Cache-Control", "no-cache") // the client asks past the stored v1
			res, err := c.Get(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body.NewReader(0, -1))
			res.Body.Close()
			if string(b) != "v2" {
				t.Fatalf("the refetch answered %q, want v2", b)
			}
			c.writers.Wait()
			obj, err := disk.Get("http://example.com/p")
			if err != nil {
				if tc.name == "written" {
					t.Fatalf("v2 not on disk: %v", err)
				}
				return // the older version is gone: nothing stale to find
			}
			defer obj.Close()
			got, _ := obj.ReadAll()
			if e, derr := decodeEntry(obj.Meta.Header); derr != nil || string(got) != "v2" {
				t.Errorf("disk holds %q (entry %v, %v) after v2 was filled: the superseded version stayed", got, e != nil, derr)
			}
		})
	}
}

// A newer version that memory drops before its write-behind has landed
// must not let the older version on disk, still fresh by its own
// headers, be served after it: a fill of a changed representation drops
// the disk's version before it enters memory, and the next request is
// filled again. A refill of the same representation (same ETag) keeps
// the disk copy, which is then served without asking the origin.
func TestChangedDiskVersionDroppedBeforeNewerServed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		etag    string // the origin's ETag for every version; "" sends none
		want    string // the answer after memory dropped v2, its copy pending
		fetches int32  // origin requests in all
	}{
		{"changed, no validators", "", "v3", 3},
		{"same ETag", `"same"`, "v1", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &versionOrigin{etag: tc.etag}
			disk := diskWithV1(t, o)

			c, err := New(Config{Disk: disk, Registerer: prometheus.NewRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			started, release := make(chan struct{}, 4), make(chan struct{})
			c.beforeWriteBehind = func() { started <- struct{}{}; <-release }
			read := func(r *Request) string {
				t.Helper()
				res, err := c.Get(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body.NewReader(0, -1))
				return string(b)
			}
			o.v.Store(2)
			r := flightRequest(o, "/p")
			r.In.Header.Set("Cache-Control", "no-cache") // the client asks past the stored v1
			if got := read(r); got != "v2" {
				t.Fatalf("the refetch answered %q, want v2", got)
			}
			<-started // v2's copy to disk is under way, and held
			c.mem.del("http://example.com/p")
			o.v.Store(3)
			got := read(flightRequest(o, "/p"))
			close(release)
			c.writers.Wait()
			if got != tc.want {
				t.Errorf("after memory let v2 go, its disk copy pending: answered %q, want %q", got, tc.want)
			}
			if n := o.sent.Load(); n != tc.fetches {
				t.Errorf("origin asked %d times, want %d", n, tc.fetches)
			}
		})
	}
}
