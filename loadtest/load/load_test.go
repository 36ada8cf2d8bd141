package load_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged-proxy/edged/loadtest/load"
	"github.com/edged-proxy/edged/loadtest/origin"
	"github.com/edged-proxy/edged/loadtest/sizemix"
)

func startOrigin(t *testing.T) *httptest.Server {
	t.Helper()
	o, err := origin.New(origin.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	return srv
}

func originStats(t *testing.T, base string) origin.Stats {
	t.Helper()
	resp, err := http.Get(base + "/__stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s origin.Stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEndToEnd drives the origin simulator directly and checks that what the
// load generator counted matches what the origin counted.
func TestEndToEnd(t *testing.T) {
	srv := startOrigin(t)
	mix, err := sizemix.Parse("1KiB:70,10KiB:25,33000:5")
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := load.Run(context.Background(), load.Config{
		URL:           srv.URL + "/obj/{id}?size={size}",
		Concurrency:   8,
		Requests:      300,
		Duration:      20 * time.Second,
		Keys:          50,
		Zipf:          1.1,
		Sizes:         mix,
		Seed:          1,
		Verify:        true,
		Progress:      &progress,
		ProgressEvery: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 300 || res.OK != 300 || res.ErrorCount() != 0 {
		t.Fatalf("requests %d, ok %d, errors %v; want 300 clean", res.Requests, res.OK, res.Errors)
	}
	st := originStats(t, srv.URL)
	var perPath int64
	for p, n := range st.Paths {
		if !strings.HasPrefix(p, "/obj/") {
			t.Errorf("unexpected path %q", p)
		}
		perPath += n
	}
	if st.Requests != 300 || perPath != 300 || st.Bytes != res.Bytes {
		t.Errorf("origin saw %d requests (%d by path), %d bytes; load sent 300 and read %d bytes", st.Requests, perPath, st.Bytes, res.Bytes)
	}
	if res.HitRatio != nil || res.Unknown != 300 {
		t.Errorf("origin sends no cache headers, yet hit ratio %v, unknown %d", res.HitRatio, res.Unknown)
	}
	if res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
		t.Errorf("latency summary out of order: %+v", res.Latency)
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil || !strings.Contains(table.String(), "p99") {
		t.Errorf("table: %v\n%s", err, table.String())
	}
	if _, err := json.Marshal(res); err != nil {
		t.Error(err)
	}
}

func TestOpenLoopAndErrorKinds(t *testing.T) {
	srv := startOrigin(t)
	// 200 req/s for 0.25s: about 50 requests, half of them injected 503s.
	res, err := load.Run(context.Background(), load.Config{
		URL:         srv.URL + "/obj/{id}?size=100&status={size}",
		Rate:        200,
		Duration:    250 * time.Millisecond,
		Concurrency: 4,
		Keys:        2,
		Sizes:       mustMix(t, "200:1,503:1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != "open" || res.Requests < 40 || res.Requests > 51 {
		t.Fatalf("open loop sent %d requests (mode %s), want about 50", res.Requests, res.Mode)
	}
	if res.Errors["status_5xx"] == 0 || res.OK == 0 || res.Errors["status_5xx"]+res.OK != res.Requests {
		t.Errorf("ok %d, errors %v, of %d", res.OK, res.Errors, res.Requests)
	}

	// Resets mid-body and a refused connection.
	res, err = load.Run(context.Background(), load.Config{
		URL: srv.URL + "/obj/{id}?size=64KiB&reset=after:100", Requests: 5, Concurrency: 1,
	})
	if err != nil || res.Errors["reset"] != 5 {
		t.Errorf("reset run: %v, errors %v", err, res.Errors)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	res, err = load.Run(context.Background(), load.Config{URL: closed.URL + "/obj/{id}", Requests: 3, Concurrency: 1})
	if err != nil || res.Errors["connect"] != 3 {
		t.Errorf("refused run: %v, errors %v", err, res.Errors)
	}
}

func TestVerifyCatchesMismatch(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 1024))
	}))
	defer bad.Close()
	res, err := load.Run(context.Background(), load.Config{URL: bad.URL + "/obj/{id}?size={size}", Requests: 4, Concurrency: 2, Verify: true})
	if err != nil || res.Errors["mismatch"] != 4 {
		t.Errorf("verify: %v, errors %v", err, res.Errors)
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{
		"http://10.0.0.1/obj/{id}",
		"http://192.168.1.1:8080/obj/{id}",
		"http://example.com/obj/{id}",
		"http://[2001:db8::1]/obj/{id}",
	} {
		_, err := load.Run(context.Background(), load.Config{URL: u, Requests: 1})
		if !errors.Is(err, load.ErrNotLoopback) {
			t.Errorf("%s: err = %v, want ErrNotLoopback", u, err)
		}
	}
	for _, h := range []string{"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"} {
		if err := load.CheckLoopback(h); err != nil {
			t.Errorf("CheckLoopback(%q) = %v", h, err)
		}
	}
	for _, cfg := range []load.Config{
		{URL: "https://127.0.0.1/x"},
		{URL: "http://127.0.0.1/{nope}"},
		{URL: "http://127.0.0.1/x", Duration: time.Hour},
		{URL: "http://127.0.0.1/x", Concurrency: -1},
		{URL: "http://127.0.0.1/x", Zipf: 0.9},
	} {
		if _, err := load.Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) accepted", cfg)
		}
	}
}

func mustMix(t *testing.T, s string) sizemix.Mix {
	t.Helper()
	m, err := sizemix.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHostClassAndErrorTimes checks Config.Host, the per-class latencies of
// Config.Class and the times of the first and last failure.
func TestHostClassAndErrorTimes(t *testing.T) {
	var hosts sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host, true)
		id := strings.TrimPrefix(r.URL.Path, "/obj/")
		if id == "3" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Status", "node-"+id+"; hit")
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	start := time.Now()
	res, err := load.Run(context.Background(), load.Config{
		URL:         srv.URL + "/obj/{id}",
		Host:        "pop.test",
		Keys:        4,
		Requests:    200,
		Concurrency: 2,
		Class: func(r *http.Response) string {
			if r.StatusCode != http.StatusOK {
				return ""
			}
			if strings.HasPrefix(r.Header.Get("Cache-Status"), "node-0") {
				return "zero"
			}
			return "other"
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	hosts.Range(func(k, _ any) bool {
		if k != "pop.test" {
			t.Errorf("request with Host %q, want pop.test", k)
		}
		return true
	})
	zero, other := res.Classes["zero"], res.Classes["other"]
	if len(res.Classes) != 2 || zero.Responses == 0 || other.Responses == 0 ||
		zero.Responses+other.Responses+res.Errors["status_5xx"] != res.Requests {
		t.Errorf("classes %+v, 5xx %d, of %d requests", res.Classes, res.Errors["status_5xx"], res.Requests)
	}
	if zero.Latency.P50 <= 0 || zero.Latency.P50 > zero.Latency.Max {
		t.Errorf("class latency out of order: %+v", zero.Latency)
	}
	if res.FirstError.Before(start) || res.LastError.Before(res.FirstError) || res.LastError.After(end) {
		t.Errorf("errors from %v to %v, run from %v to %v", res.FirstError, res.LastError, start, end)
	}
	var table bytes.Buffer
	res.WriteTable(&table)
	if !strings.Contains(table.String(), "class zero") {
		t.Errorf("table lacks the classes:\n%s", table.String())
	}

	// Without failures the error times stay zero, and absent from JSON.
	res, err = load.Run(context.Background(), load.Config{URL: srv.URL + "/obj/0", Requests: 3, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	if !res.FirstError.IsZero() || bytes.Contains(b, []byte("first_error")) || res.Classes != nil {
		t.Errorf("clean run: first error %v, classes %v, JSON %s", res.FirstError, res.Classes, b)
	}
}
