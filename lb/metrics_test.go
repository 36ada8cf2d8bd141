package lb_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edged-proxy/edged/lb"
)

func TestConnectionReuseMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := newPool(t, lb.Config{
		Name:    "site",
		Shards:  []lb.Shard{{Name: "a", URL: testOrigin(t, "a").URL}},
		Metrics: lb.NewMetrics(reg),
	})
	for range 2 {
		// send reads the body to EOF and closes it, returning the
		// connection to the idle pool before the next request.
		if _, _, _, err := send(t, p, newRequest(t, "GET", "http://site.example/", nil), ""); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP edged_upstream_connections_total Connections obtained for origin requests, by whether an idle connection was reused.
# TYPE edged_upstream_connections_total counter
edged_upstream_connections_total{pool="site",reused="false",shard="a"} 1
edged_upstream_connections_total{pool="site",reused="true",shard="a"} 1
# HELP edged_upstream_requests_total Requests sent to origin shards, by status code ("error" when no response was received).
# TYPE edged_upstream_requests_total counter
edged_upstream_requests_total{code="200",pool="site",shard="a"} 2
edged_upstream_requests_total{code="error",pool="site",shard="a"} 0
# HELP edged_upstream_shard_up Whether the shard is eligible for picks (1) or marked down after a dial failure (0).
# TYPE edged_upstream_shard_up gauge
edged_upstream_shard_up{pool="site",shard="a"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"edged_upstream_connections_total", "edged_upstream_requests_total", "edged_upstream_shard_up"); err != nil {
		t.Error(err)
	}
	if got := metricValue(t, reg, "edged_upstream_duration_seconds", map[string]string{"pool": "site", "shard": "a"}); got != 2 {
		t.Errorf("duration histogram count = %v, want 2", got)
	}
}

func TestMetricsSharedByPools(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := lb.NewMetrics(reg)
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	for _, name := range []string{"one", "two"} {
		p := newPool(t, lb.Config{Name: name, Shards: []lb.Shard{{Name: "s", URL: notFound.URL}}, Metrics: m})
		resp, err := p.RoundTrip(newRequest(t, "GET", "http://"+name+".example/", nil))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for _, name := range []string{"one", "two"} {
		labels := map[string]string{"pool": name, "shard": "s", "code": "404"}
		if got := metricValue(t, reg, "edged_upstream_requests_total", labels); got != 1 {
			t.Errorf("requests_total%v = %v, want 1", labels, got)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "edged_upstream_shard_up"); err != nil || n != 2 {
		t.Errorf("shard_up series = %d, %v; want 2", n, err)
	}
}

func TestMetricsWithoutRegisterer(t *testing.T) {
	// No global registration: any number of unregistered Metrics coexist.
	for range 2 {
		m := lb.NewMetrics(nil)
		p := newPool(t, lb.Config{Shards: []lb.Shard{{URL: testOrigin(t, "a").URL}}, Metrics: m})
		if _, _, _, err := send(t, p, newRequest(t, "GET", "http://site.example/", nil), ""); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := newPool(t, lb.Config{Name: "site", Shards: []lb.Shard{{URL: testOrigin(t, "a").URL}}, Metrics: lb.NewMetrics(reg)})
	if _, _, _, err := send(t, p, newRequest(t, "GET", "http://site.example/", nil), ""); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("lint: %s: %s", pr.Metric, pr.Text)
	}
}
