package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// With every shard at max_in_flight_per_shard, a request is answered at
// once with 503 and a Cache-Status detail saying why, through the cache
// (a miss) and the pass-through path alike, instead of waiting in a queue.
func TestOverloadedShardsAnswer503(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	cfg := writeConfig(t, "log:\n  access: false\nsites:\n  - name: site\n    hosts: [\"*\"]\n"+
		"    upstream:\n      max_in_flight_per_shard: 1\n    origins:\n      - url: "+srv.URL+"\n        name: s0\n")
	l, _ := startDaemon(t, "-config", cfg)
	t.Cleanup(func() { close(release) }) // before the daemon's shutdown waits for the held request

	go http.Get("http://" + l.Edge + "/held") // holds the shard's one slot
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request did not reach the origin")
	}
	for _, tc := range []struct{ method, path, cs string }{
		{"GET", "/miss", "edged; fwd=uri-miss; detail=origin-overloaded"},
		{"POST", "/pass", "edged; fwd=bypass; detail=origin-overloaded"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://"+l.Edge+tc.path, strings.NewReader("body"))
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			d := time.Since(start)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Cache-Status") != tc.cs {
				t.Errorf("got %d, Cache-Status %q; want 503, %q", resp.StatusCode, resp.Header.Get("Cache-Status"), tc.cs)
			}
			if d > 2*time.Second {
				t.Errorf("answered after %v, want at once", d)
			}
		})
	}
	_, metrics := fetch(t, "http://"+l.Admin+"/metrics")
	for _, want := range []string{
		`edged_upstream_breaker_trips_total{limit="in_flight",pool="site",shard="s0"} 2`,
		`edged_upstream_in_flight{pool="site",shard="s0"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// hangingShard listens, accepts connections and reads requests, and never
// answers. It returns its URL and the paths it was sent.
func hangingShard(t *testing.T) (string, func() []string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var paths []string
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return // the client gave up and closed
					}
					if f := strings.Fields(line); len(f) == 3 && strings.HasPrefix(f[2], "HTTP/") {
						mu.Lock()
						paths = append(paths, f[1])
						mu.Unlock()
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(paths)
	}
}

// The hang-shard target: three shards, one accepting connections
// and never answering, distinct cacheable misses at a steady rate through
// the daemon with the default configuration but for a 1s
// response_header_timeout (the per-try timeout, scaled down from 15s so the
// test is short). Misses sent to the hanging shard are retried on the next
// shard once their try times out, so they are answered within the per-try
// timeout plus normal latency; after eject_after (5) timeouts the shard is
// ejected and its keys go straight to the next shard; and no request that
// was not sent to it waits on it: each is answered well under the per-try
// timeout. No client sees an error.
//
// Under the race detector the daemon is an order of magnitude slower, so
// the rate drops to 20/s and the per-try timeout rises to 3s, to stay well
// above normal latency there.
func TestHangingShardTarget(t *testing.T) {
	perTry, rate, dur := time.Second, 100, 5*time.Second
	if raceEnabled {
		perTry, rate, dur = 3*time.Second, 20, 10*time.Second
	}
	if testing.Short() {
		dur = 4 * perTry
	}
	good := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "ok "+r.URL.Path)
	}
	hangURL, hung := hangingShard(t)
	var origins []string
	for i := range 3 {
		u := hangURL
		if i != 1 {
			srv := httptest.NewServer(http.HandlerFunc(good))
			t.Cleanup(srv.Close)
			u = srv.URL
		}
		origins = append(origins, fmt.Sprintf("      - url: %s\n        name: s%d\n", u, i))
	}
	cfg := writeConfig(t, "log:\n  access: false\nsites:\n  - name: site\n    hosts: [\"*\"]\n"+
		"    upstream:\n      response_header_timeout: "+perTry.String()+"\n    origins:\n"+strings.Join(origins, ""))
	l, _ := startDaemon(t, "-config", cfg)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	n := rate * int(dur/time.Second)
	lat := make([]time.Duration, n)
	status := make([]int, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range work {
				start := time.Now()
				resp, err := client.Get(fmt.Sprintf("http://%s/obj/%d", l.Edge, i))
				if err != nil {
					status[i] = -1
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[i], status[i] = time.Since(start), resp.StatusCode
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

	sentToHang := make(map[string]bool)
	for _, p := range hung() {
		sentToHang[p] = true
	}
	var viaHang, others []time.Duration
	failed, first, last := 0, -1, -1
	for i := range n {
		if status[i] != http.StatusOK {
			failed++
			continue
		}
		if sentToHang[fmt.Sprintf("/obj/%d", i)] {
			if first < 0 {
				first = i
			}
			last = i
			viaHang = append(viaHang, lat[i])
		} else {
			others = append(others, lat[i])
		}
	}
	slices.Sort(viaHang)
	slices.Sort(others)
	pct := func(d []time.Duration, p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		return d[min(len(d)-1, int(float64(len(d))*p))]
	}
	t.Logf("per-try %v, %d misses at %d/s: %d failed; %d sent to the hanging shard (requests %d to %d): min %v, p50 %v, max %v; %d others: p50 %v, p99 %v, max %v",
		perTry, n, rate, failed, len(viaHang), first, last, pct(viaHang, 0), pct(viaHang, 0.5), pct(viaHang, 1),
		len(others), pct(others, 0.5), pct(others, 0.99), pct(others, 1))
	if failed > 0 {
		t.Errorf("%d of %d requests failed, want none", failed, n)
	}
	// Requests start every 1/rate: once the first try to the hanging
	// shard timed out, the ejection (5 timeouts) follows within a per-try
	// timeout or so, and then nothing is sent there.
	if window := time.Duration(last-first) * time.Second / time.Duration(rate); first < 0 || window > 2*perTry {
		t.Errorf("requests were sent to the hanging shard over %v (requests %d to %d), want some, and none after its ejection (within 2 per-try timeouts)", window, first, last)
	}
	if m := pct(viaHang, 1); m > perTry+perTry/2 {
		t.Errorf("a request sent to the hanging shard took %v, want within the per-try timeout %v plus normal latency", m, perTry)
	}
	if m := pct(others, 1); m >= perTry {
		t.Errorf("a request not sent to the hanging shard took %v: it waited on it (per-try timeout %v)", m, perTry)
	}
	_, metrics := fetch(t, "http://"+l.Admin+"/metrics")
	for _, want := range []string{
		`edged_upstream_ejections_total{pool="site",reason="timeout",shard="s1"} 1`,
		`edged_upstream_ejected{pool="site",shard="s1"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// An origin that stalls mid-body is cut off after body_idle_timeout: the
// client's response is aborted (never presented as complete) well before
// the fill timeout, and the truncated body is not stored, so the next
// request goes to the origin again.
func TestBodyIdleTimeoutNotStored(t *testing.T) {
	const idle = 300 * time.Millisecond
	var hits atomic.Int64
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
		w.(http.Flusher).Flush()
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	cfg := writeConfig(t, "log:\n  access: false\nsites:\n  - name: site\n    hosts: [\"*\"]\n"+
		"    upstream:\n      body_idle_timeout: "+idle.String()+"\n    origins:\n      - url: "+srv.URL+"\n")
	l, _ := startDaemon(t, "-config", cfg)

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 2 {
		start := time.Now()
		resp, err := client.Get("http://" + l.Edge + "/stall")
		if err == nil {
			var b []byte
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				t.Fatalf("request %d: a %d-byte body (%q) was presented as complete", i, len(b), b)
			}
		}
		if d := time.Since(start); d < idle || d > idle+10*time.Second {
			t.Errorf("request %d ended after %v, want about body_idle_timeout %v", i, d, idle)
		}
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("the origin was asked %d times, want 2 (the truncated body must not be stored)", n)
	}
}
