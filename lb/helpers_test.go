package lb_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/lb"
)

// Headers set by testOrigin on every response.
const (
	hdrOrigin = "X-Origin" // the origin's name
	hdrHost   = "X-Got-Host"
	hdrURI    = "X-Got-URI"
	hdrMethod = "X-Got-Method"
)

// testOrigin starts an origin that names itself in hdrOrigin, reports the Host
// and request URI it received, and echoes the request body.
func testOrigin(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(hdrOrigin, name)
		w.Header().Set(hdrHost, r.Host)
		w.Header().Set(hdrURI, r.RequestURI)
		w.Header().Set(hdrMethod, r.Method)
		io.Copy(w, r.Body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// deadURL returns the URL of a loopback port that refuses connections
// for the rest of the test (testkit.RefusedAddr: held, so an origin the
// test starts next cannot be given it).
func deadURL(t *testing.T) string {
	t.Helper()
	return "http://" + testkit.RefusedAddr(t)
}

func newPool(t *testing.T, cfg lb.Config) *lb.Pool {
	t.Helper()
	p, err := lb.NewPool(cfg)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() { p.Close() }) // runs before the origins' Close
	return p
}

// keyOwnedBy returns a key the pool's ring assigns to shard.
func keyOwnedBy(t *testing.T, p *lb.Pool, shard string) string {
	t.Helper()
	for i := range 10000 {
		k := "key-" + strconv.Itoa(i)
		if p.Pick(k) == shard {
			return k
		}
	}
	t.Fatalf("no key maps to shard %q", shard)
	return ""
}

// send issues one request through p with a Route keyed by key and returns the
// response (body read and closed) and the filled Route.
func send(t *testing.T, p *lb.Pool, req *http.Request, key string) (*http.Response, []byte, lb.Route, error) {
	t.Helper()
	resp, route, err := p.Do(req, key)
	if err != nil {
		return nil, nil, route, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	return resp, body, route, nil
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// fakeClock is a settable clock for Config.Now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// metricValue returns the value of the series name{labels} in g: a
// counter's or gauge's value, or a histogram's sample count. It returns -1
// if there is no such series.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	pairs := make([]string, 0, 2*len(labels))
	for k, v := range labels {
		pairs = append(pairs, k, v)
	}
	v, found := testkit.Metric(t, g, name, pairs...)
	if !found {
		return -1
	}
	return v
}
