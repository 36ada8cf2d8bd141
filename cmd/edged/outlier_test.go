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
// failures and stays out for the test (eject_for 30s). With retry_on_status
// the few 503s before the ejection are retried on the next shard too: at
// most 0.1%.
func TestOutlierEjectionKeeps5xxUnderOnePercent(t *testing.T) {
	for _, tc := range []struct {
		name, upstream string
		max            float64
		metric         string
	}{
		{"default", "", 0.01, ""},
		{"retry_on_status", "    upstream:\n      retry_on_status: true\n", 0.001,
			`edged_upstream_retries_total{pool="site",reason="status_503"} `},
	} {
		t.Run(tc.name, func(t *testing.T) { outlier5xx(t, tc.upstream, tc.max, tc.metric) })
	}
}

// outlier5xx runs the 503-shard load with the site's upstream YAML
// (indented for sites[0]) and checks the 5xx share is at most max and that
// /metrics holds metric with a positive value (if metric is not empty).
func outlier5xx(t *testing.T, upstream string, max float64, metric string) {
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
	cfg := writeConfig(t, "log:\n  access: false\nsites:\n  - name: site\n    hosts: [\"*\"]\n"+upstream+"    origins:\n"+
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
	if share > max {
		t.Errorf("%.3f%% of requests failed, want ≤ %.1f%%", 100*share, 100*max)
	}
	_, metrics := fetch(t, "http://"+l.Admin+"/metrics")
	wants := []string{
		`edged_upstream_ejections_total{pool="site",reason="status_503",shard="s1"} 1`,
		`edged_upstream_ejected{pool="site",shard="s1"} 1`,
		`edged_upstream_ejected{pool="site",shard="s0"} 0`,
	}
	if elapsed >= 30*time.Second {
		// A machine too loaded to keep the rate stretched the run past the
		// first ejection (eject_for, 30s): the shard came back and was
		// ejected again, maybe is between ejections at this moment. The
		// share above still holds; of the metrics, only that s1 was
		// ejected and s0 never was.
		wants = []string{`edged_upstream_ejections_total{pool="site",reason="status_503",shard="s1"} `,
			`edged_upstream_ejected{pool="site",shard="s0"} 0`}
		if strings.Contains(metrics, wants[0]+"0\n") {
			t.Errorf("s1 was never ejected")
		}
	}
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if metric != "" && (!strings.Contains(metrics, metric) || strings.Contains(metrics, metric+"0\n")) {
		t.Errorf("/metrics has no positive %q", metric)
	}
}
