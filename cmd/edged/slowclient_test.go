package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// One address holds 1000 slow connections, twice its max_conns_per_ip
// (512, the default): half send nothing, half trickle a request head. Its
// normal clients, opening a new connection per request while the crowd
// is still arriving, see no errors: each new connection takes the place
// of the address's oldest one without a request head, nothing is refused,
// and the evictions are counted.
func TestCrowdedAddressServesNormalClients(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1000 connections")
	}
	const slow, normal, perIP, firstByte = 1000, 200, 512, 5 * time.Second
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "fast")
	}))
	defer o.Close()
	cfg := writeConfig(t, fmt.Sprintf("server:\n  max_conns_per_ip: %d\n  first_byte_timeout: %v\nlog:\n  access: false\n", perIP, firstByte))
	l, _ := startDaemon(t, "-config", cfg, "-origin", o.URL)
	from := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 7)}} // the crowded address

	var wg sync.WaitGroup
	var evictedSeen atomic.Int32 // closed by edged before any timeout could
	stop := make(chan struct{})  // the test is over: the crowd leaves
	openSlow := func(i int) {
		start := time.Now()
		c, err := from.Dial("tcp", l.Edge)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			go func() { <-stop; c.Close() }()
			if i%2 == 1 { // trickle a head, a byte every 100 ms (a slow peer, not a wait)
				io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: ")
				go func() {
					tick := time.NewTicker(100 * time.Millisecond)
					defer tick.Stop()
					for range tick.C {
						if _, err := c.Write([]byte{'a'}); err != nil {
							return
						}
					}
				}()
			}
			b, err := io.ReadAll(c)
			if len(b) > 0 {
				t.Errorf("a slow connection got %q; want it closed without an answer", b)
			}
			if !errors.Is(err, net.ErrClosed) && time.Since(start) < firstByte-100*time.Millisecond {
				evictedSeen.Add(1)
			}
		})
	}
	for i := range slow / 2 { // more than the address may hold
		openSlow(i)
	}
	normalDone := make(chan []error, 1)
	go func() {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: from.DialContext, DisableKeepAlives: true}}
		var errs []error
		for range normal {
			resp, err := client.Get("http://" + l.Edge + "/hot")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		normalDone <- errs
	}()
	for i := slow / 2; i < slow; i++ { // the rest of the crowd, during the normal requests
		openSlow(i)
	}
	errs := <-normalDone
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("%d of %d normal requests failed; first: %v", len(errs), normal, errs[0])
	}
	_, metrics := fetch(t, "http://"+l.Admin+"/metrics")
	if strings.Contains(metrics, "edged_refused_connections_total{") {
		t.Error("connections were refused; want the slow ones evicted instead")
	}
	n := metricValue(t, metrics, "edged_evicted_connections_total")
	if seen := evictedSeen.Load(); seen == 0 || n < float64(seen) {
		t.Errorf("%v evictions counted, %d slow connections seen closed before any timeout", n, seen)
	}
	t.Logf("%v evictions; %d slow connections seen evicted", n, evictedSeen.Load())
}
