package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Slow clients trickling their headers are cut off at the header-read
// limit, and normal clients are served meanwhile without errors. The
// latency figures are logged, not asserted (speed is for benchmarks); the
// manual run with 1000 connections is in docs/security.md.
func TestSlowClientsCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a few seconds")
	}
	slow := 200 // EDGED_SLOW_CLIENTS=1000 for the manual run
	if n, err := strconv.Atoi(os.Getenv("EDGED_SLOW_CLIENTS")); err == nil && n > 0 {
		slow = n
	}
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "fast")
	}))
	defer o.Close()
	cfg := writeConfig(t, "server:\n  read_header_timeout: 2s\n  max_conns_per_ip: 0\nlog:\n  access: false\n")
	l, _ := startDaemon(t, "-config", cfg, "-origin", o.URL)

	client := &http.Client{Timeout: 5 * time.Second}
	measure := func(n int) []time.Duration {
		var lat []time.Duration
		for range n {
			t0 := time.Now()
			resp, err := client.Get("http://" + l.Edge + "/hot")
			if err != nil {
				t.Errorf("normal client: %v", err)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("normal client: %d", resp.StatusCode)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		return lat
	}
	base := measure(300)

	var wg sync.WaitGroup
	closedAfter := make(chan time.Duration, slow)
	start := time.Now()
	for range slow {
		c, err := net.Dial("tcp", l.Edge)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer c.Close()
			io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n")
			done := make(chan struct{})
			go func() { // trickle a header byte every 100 ms until cut off (a slow peer, not a wait)
				defer close(done)
				for i := 0; ; i++ {
					if _, err := c.Write([]byte{'X' + byte(i%2)}); err != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
			c.SetReadDeadline(time.Now().Add(15 * time.Second))
			io.Copy(io.Discard, c) // returns when the server closes the connection
			closedAfter <- time.Since(start)
			c.Close()
			<-done
		})
	}
	during := measure(300)
	wg.Wait()
	close(closedAfter)
	var worst time.Duration
	for d := range closedAfter {
		worst = max(worst, d)
	}
	if worst > 6*time.Second {
		t.Errorf("a slow connection was still open %v after it began (header-read limit 2s)", worst)
	}
	_, metrics := fetch(t, "http://"+l.Admin+"/metrics")
	if metricValue(t, metrics, "edged_client_connections_unused_total") < float64(slow) {
		t.Errorf("the cut-off slow connections were not counted")
	}
	p := func(lat []time.Duration, q int) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[len(lat)*q/100]
	}
	t.Logf("normal clients: p50 %v p99 %v alone; p50 %v p99 %v with %d slow connections; slowest cut off after %v",
		p(base, 50), p(base, 99), p(during, 50), p(during, 99), slow, worst)
}
