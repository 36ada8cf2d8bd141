package cache

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/purge/selector"
	"github.com/edged-proxy/edged/storage"
)

// warmDisk fills a disk tier in dir with cold objects, then hot ones (the
// most recently stored are the most recently used), closes it (flushing
// the access times) and reopens it, as a restart does. It returns the
// reopened store and the memory cost of the hot entries.
func warmDisk(t testing.TB, dir string, cold, hot []string, size int) (*storage.Store, int64) {
	t.Helper()
	d, err := storage.Open(storage.Options{Dir: dir, Fsync: storage.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	var hotCost int64
	for i, key := range append(append([]string(nil), cold...), hot...) {
		body := bytes.Repeat([]byte{byte(i)}, size)
		e := diskEntry(t, d, key, body)
		if i >= len(cold) {
			hotCost += e.cost()
		}
	}
	d.WaitRecovery()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = storage.Open(storage.Options{Dir: dir, Fsync: storage.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.WaitRecovery(); d.Close() })
	return d, hotCost
}

// diskEntry stores body under key on disk and returns the entry the
// memory tier would hold for it.
func diskEntry(t testing.TB, d *storage.Store, key string, body []byte) *Entry {
	t.Helper()
	now := time.Now()
	e := &Entry{Key: key, Primary: key, Status: 200, Header: http.Header{"Content-Type": {"text/plain"}},
		Lifetime: time.Hour, Tags: []string{"t1"}, Timing: rfc.Timing{RequestTime: now, ResponseTime: now}}
	w, err := d.Create(key)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(body)
	if err := w.Commit(storage.Meta{Header: encodeEntry(e), Size: int64(len(body)), Tags: e.Tags}); err != nil {
		t.Fatal(err)
	}
	dec, err := decodeEntry(encodeEntry(e))
	if err != nil {
		t.Fatal(err)
	}
	dec.Key, dec.Body = key, body
	return dec
}

func keys(prefix string, n int) []string {
	var ks []string
	for i := range n {
		ks = append(ks, fmt.Sprintf("http://example.com/%s/%d", prefix, i))
	}
	return ks
}

// The hottest objects are in memory once the warm start reports, the cold
// ones beyond its byte budget are not, and the disk tier's recency order
// is as it was.
func TestWarmStartPromotesHottest(t *testing.T) {
	cold, hot := keys("cold", 20), keys("hot", 10)
	d, hotCost := warmDisk(t, t.TempDir(), cold, hot, 4096)
	c, err := New(Config{Disk: d, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := d.Hottest(1<<30, 1<<30, 100)
	res := <-c.WarmStart(WarmOptions{Budget: hotCost, Rate: -1})
	// The store lists by its own size, which is under an entry's memory
	// cost (the heap its header takes): it lists a cold object too, and
	// the copy stops at the budget.
	if res.Objects != int64(len(hot)) || res.Bytes != hotCost || res.Stopped != "budget" {
		t.Fatalf("warm start: %+v, want %d objects, %d bytes, stopped at the budget (the cold ones are past it)", res, len(hot), hotCost)
	}
	for _, k := range hot {
		r, ok := c.Hit(k, "")
		if !ok || r.Tier != 0 {
			t.Errorf("%s: hit %v in tier %d, want a memory hit", k, ok, r.Tier)
		}
		if ok {
			r.Body.Close()
		}
	}
	for _, k := range cold {
		if _, ok := c.mem.get(k); ok {
			t.Errorf("%s: cold, but promoted", k)
		}
	}
	if after := d.Hottest(1<<30, 1<<30, 100); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the warm start changed the disk recency order:\n%q\n%q", before, after)
	}
	if again := <-c.WarmStart(WarmOptions{}); again.Stopped != "already" {
		t.Errorf("a second warm start: %+v, want stopped \"already\"", again)
	}
}

// The timeout stops a warm start that the read rate slows down; Close
// stops one at once.
func TestWarmStartBounds(t *testing.T) {
	d, cost := warmDisk(t, t.TempDir(), nil, keys("hot", 20), 4096)
	c, err := New(Config{Disk: d})
	if err != nil {
		t.Fatal(err)
	}
	// The budget counts memory cost (headers too), not body bytes alone.
	if res := <-c.WarmStart(WarmOptions{Budget: cost - 1, Rate: -1}); res.Stopped != "budget" || res.Objects != 19 {
		t.Errorf("warm start one byte short of the budget: %+v, want 19 objects, stopped by the budget", res)
	}
	c.Close()

	c, err = New(Config{Disk: d})
	if err != nil {
		t.Fatal(err)
	}
	// 4 KiB objects at 16 KiB/s: about 4 a second; 300 ms allows 2.
	res := <-c.WarmStart(WarmOptions{Rate: 16 << 10, Timeout: 300 * time.Millisecond})
	if res.Stopped != "timeout" || res.Objects > 3 || res.Duration > 5*time.Second {
		t.Errorf("rate-limited warm start with a timeout: %+v, want at most 3 objects, stopped by the timeout", res)
	}
	c.Close()

	c, err = New(Config{Disk: d})
	if err != nil {
		t.Fatal(err)
	}
	ch := c.WarmStart(WarmOptions{Rate: 1 << 10, Timeout: time.Hour})
	c.Close()
	if res := <-ch; res.Stopped != "closed" {
		t.Errorf("warm start during Close: %+v, want stopped \"closed\"", res)
	}
}

// A purge between the warm start's disk read and its copy into memory
// is not undone; a fill stored meanwhile is not overwritten by the older
// disk copy.
func TestWarmStartRaces(t *testing.T) {
	hot := keys("hot", 5)
	for _, tc := range []struct {
		name   string
		during func(t *testing.T, c *Cache, key string)
		check  func(t *testing.T, c *Cache, d *storage.Store, key string)
	}{
		{"purge", func(t *testing.T, c *Cache, key string) {
			if _, err := c.Purge(context.Background(), selector.Selector{URLs: []string{key}}); err != nil {
				t.Error(err)
			}
		}, func(t *testing.T, c *Cache, d *storage.Store, key string) {
			if _, ok := c.mem.get(key); ok {
				t.Error("the purged object is back in memory")
			}
			if _, err := d.Get(key); err == nil {
				t.Error("the purged object is still on disk")
			}
		}},
		{"fill", func(t *testing.T, c *Cache, key string) {
			now := time.Now()
			e := &Entry{Key: key, Primary: key, Status: 200, Header: http.Header{"Content-Type": {"text/plain"}},
				Lifetime: time.Hour, Body: []byte("newer"), Memo: new(Memo), Timing: rfc.Timing{RequestTime: now, ResponseTime: now}}
			if !c.storeFilled(e, c.inval.begin(), nil) {
				t.Error("the fill was not stored")
			}
		}, func(t *testing.T, c *Cache, d *storage.Store, key string) {
			e, ok := c.mem.get(key)
			if !ok || string(e.Body) != "newer" {
				t.Errorf("memory holds %q (found %v), want the fill's body", e.Body, ok)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := warmDisk(t, t.TempDir(), nil, hot, 100)
			c, err := New(Config{Disk: d, FillTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			target := hot[len(hot)-1] // the hottest: read first
			ran := false
			c.beforePromote = func() {
				if !ran {
					ran = true
					tc.during(t, c, target)
				}
			}
			res := <-c.WarmStart(WarmOptions{Rate: -1})
			if !ran {
				t.Fatal("the promotion hook did not run")
			}
			if res.Objects != int64(len(hot)-1) {
				t.Errorf("warm start: %+v, want the %d others promoted", res, len(hot)-1)
			}
			tc.check(t, c, d, target)
		})
	}
}

// A Vary marker is warmed with its variants, so a request for a variant
// is a memory hit.
func TestWarmStartVary(t *testing.T) {
	const primary = "http://example.com/v"
	d, err := storage.Open(storage.Options{Dir: t.TempDir(), Fsync: storage.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.WaitRecovery(); d.Close() }()
	marker := &Entry{Key: primary, Primary: primary, Status: http.StatusOK, Header: http.Header{}, // as fill.go makes one
		Marker: true, MarkerID: 7, Vary: []string{"Accept-Language"}}
	if err := (diskTier{s: d}).writeMarker(marker); err != nil {
		t.Fatal(err)
	}
	req := httptestRequest(primary, "Accept-Language", "fr")
	vkey := variantKey(marker, req.Header)
	diskEntry(t, d, vkey, []byte("bonjour")).Vary = marker.Vary

	c, err := New(Config{Disk: d})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if res := <-c.WarmStart(WarmOptions{Rate: -1}); res.Objects != 2 {
		t.Fatalf("warm start: %+v, want the marker and the variant", res)
	}
	if m, ok := c.mem.get(primary); !ok || !m.Marker {
		t.Fatalf("memory holds %+v under the primary key, want the marker", m)
	}
	if v, ok := c.mem.get(vkey); !ok || v.Primary != primary || string(v.Body) != "bonjour" {
		t.Fatalf("memory holds %+v under the variant key", v)
	}
	res, err := c.Get(context.Background(), &Request{Key: primary, In: req, RangeStart: -1})
	if err != nil || !res.Hit || res.Tier != 0 {
		t.Fatalf("a request for the variant: hit %v in tier %d, err %v; want a memory hit", res.Hit, res.Tier, err)
	}
	res.Body.Close()
}

func httptestRequest(url, name, value string) *http.Request {
	r, _ := http.NewRequest("GET", url, nil)
	r.Header.Set(name, value)
	return r
}
