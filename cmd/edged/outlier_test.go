package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The target for passive outlier detection: three shards, one
// answering 503 to everything, 500 requests a second of distinct cacheable
// misses for 10s through the edge with the default configuration. Clients
// see at most 1% 5xx: the failing shard is ejected after eject_after (5)
// failures and stays out for the test (eject_for 30s).
func TestOutlierEjectionKeeps5xxUnderOnePercent(t *testing.T) {
	rate, dur := 500, 10*time.Second
	if testing.Short() {
		dur = 2 * time.Second
	}
	good := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "ok "+r.URL.Path)
	}
	var origins []string
	for i, h := range []http.HandlerFunc{good, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}, good} {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		origins = append(origins, fmt.Sprintf("      - url: %s\n        name: s%d\n", srv.URL, i))
	}
	cfg := writeConfig(t, "log:\n  access: false\nsites:\n  - name: site\n    hosts: [\"*\"]\n    origins:\n"+
		strings.Join(origins, ""))
	l, _ := startDaemon(t, "-config", cfg)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	n := rate * int(dur/time.Second)
	work := make(chan int)
	var total, fivexx, errs atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range work {
				resp, err := client.Get(fmt.Sprintf("http://%s/obj/%d", l.Edge, i))
				total.Add(1)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					fivexx.Add(1)
				}
			}
		})
	}
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		work <- i
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	share := float64(fivexx.Load()+errs.Load()) / float64(total.Load())
	t.Logf("%d distinct misses in %v (%.0f/s): %d 5xx, %d errors: %.3f%% failed",
		total.Load(), elapsed.Round(time.Millisecond), float64(total.Load())/elapsed.Seconds(),
		fivexx.Load(), errs.Load(), 100*share)
	if share > 0.01 {
		t.Errorf("%.3f%% of requests failed, want ≤ 1%%", 100*share)
	}
	_, metrics := fetch(t, "http://"+l.Admin+"/metrics")
	for _, want := range []string{
		`edged_upstream_ejections_total{pool="site",reason="status_503",shard="s1"} 1`,
		`edged_upstream_ejected{pool="site",shard="s1"} 1`,
		`edged_upstream_ejected{pool="site",shard="s0"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
