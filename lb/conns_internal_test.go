package lb

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// countingOrigin answers "ok" and counts the connections open at its end.
func countingOrigin(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var open atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &open
}

// load sends n requests through p at concurrency c and returns how many
// failed.
func load(t *testing.T, p *Pool, n, c int) int64 {
	t.Helper()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://site.example/", nil)
				resp, _, err := p.Do(req, "k"+strconv.FormatInt(i, 10))
				if err != nil {
					failed.Add(1)
					continue
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	return failed.Load()
}

func autoPool(t *testing.T, url string) *Pool {
	t.Helper()
	p, err := NewPool(Config{Name: "site", Shards: []Shard{{Name: "a", URL: url}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// checkQuiet checks the accounting of a shard with no request in flight:
// nothing active, every tracked connection idle, and as many open as the
// origin sees.
func checkQuiet(t *testing.T, cs *connStats, originOpen *atomic.Int64) {
	t.Helper()
	cs.mu.Lock()
	tracked := int64(len(cs.conns))
	cs.mu.Unlock()
	if a, i, o := cs.active.Load(), cs.idle.Load(), cs.open.Load(); a != 0 || i != o || tracked != o {
		t.Errorf("quiet shard: active %d, idle %d, open %d, tracked %d; want 0 active and the rest equal", a, i, o, tracked)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return originOpen.Load() == cs.open.Load() },
		"the origin to see as many connections open as the shard counts")
}

// After a burst, the trimmer closes the idle connections above the peak
// use of the window (plus a quarter), least recently used first, and not
// before the burst's peak has left the window.
func TestTrimmerFollowsPeakUse(t *testing.T) {
	srv, originOpen := countingOrigin(t)
	p := autoPool(t, srv.URL)
	cs := p.shards[0].conns
	if f := load(t, p, 800, 16); f > 0 {
		t.Fatalf("%d requests failed", f)
	}
	burst := cs.open.Load()
	if burst < 8 {
		t.Fatalf("the burst opened %d connections; the test needs more", burst)
	}
	// On a loaded machine the transport may dial more connections than
	// were ever in use at once (dials that lose the race to a released
	// connection): those are surplus from the start. What the window must
	// keep is the burst's peak use.
	peakUse := cs.peak.Load()
	now := time.Now()
	for i := range idleSlots + 1 {
		now = now.Add(idleTick)
		if f := load(t, p, 50, 2); f > 0 {
			t.Fatalf("%d requests failed", f)
		}
		n := cs.trim(now)
		switch {
		case i < idleSlots && cs.open.Load() < peakUse:
			t.Fatalf("tick %d: trimmed %d connections, leaving %d open while the burst's peak use of %d is in the window", i, n, cs.open.Load(), peakUse)
		case i == idleSlots && n == 0:
			t.Fatalf("tick %d: nothing trimmed once the burst left the window", i)
		}
	}
	// The burst's tick has left the window: 2 in use at most, need 3.
	if open := cs.open.Load(); open > 3 || open < 1 {
		t.Errorf("after the window: %d connections open (burst %d), want 1 to 3", open, burst)
	}
	if f := load(t, p, 200, 2); f > 0 {
		t.Fatalf("%d requests failed after trimming", f)
	}
	checkQuiet(t, cs, originOpen)
}

// Trimming races with requests taking idle connections: a request that
// took a connection the trimmer closed writes nothing on it, and the
// transport retries it on another connection. No request fails, and the
// accounting agrees with the origin afterwards.
func TestTrimRacesWithRequests(t *testing.T) {
	srv, originOpen := countingOrigin(t)
	p := autoPool(t, srv.URL)
	cs := p.shards[0].conns
	stop := make(chan struct{})
	var trimmed atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			cs.mu.Lock()
			var idle []*trackedConn
			for c := range cs.conns {
				idle = append(idle, c)
			}
			cs.mu.Unlock()
			for _, c := range idle {
				if c.trim(time.Now()) {
					trimmed.Add(1)
				}
			}
			runtime.Gosched()
		}
	}()
	failed := load(t, p, 3000, 16)
	close(stop)
	<-done
	if failed > 0 {
		t.Errorf("%d of 3000 requests failed while idle connections were being closed", failed)
	}
	if trimmed.Load() == 0 {
		t.Errorf("no connection was trimmed: the race was not exercised")
	}
	checkQuiet(t, cs, originOpen)
}
