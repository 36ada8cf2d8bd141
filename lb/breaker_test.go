package lb_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/lb"
)

// heldOrigin is an origin that names itself and answers only when released:
// each request signals arrived, then waits for release (or the client).
type heldOrigin struct {
	*httptest.Server
	arrived chan struct{}
	release chan struct{}
}

func newHeldOrigin(t *testing.T, name string) *heldOrigin {
	t.Helper()
	o := &heldOrigin{arrived: make(chan struct{}, 100), release: make(chan struct{})}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.arrived <- struct{}{}
		select {
		case <-o.release:
		case <-r.Context().Done():
		}
		w.Header().Set(hdrOrigin, name)
	}))
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(o.release) })
		o.Close()
	})
	return o
}

// hold sends one request for key through p in the background, waits until
// the origin has it, and returns a channel closed when its answer is read.
func hold(t *testing.T, p *lb.Pool, o *heldOrigin, key string) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, _, err := p.Do(newRequest(t, "GET", "http://site.test/held", nil), key)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	select {
	case <-o.arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the held request did not reach its origin")
	}
	return done
}

// A shard at its in-flight limit is skipped without being sent to: the
// request goes to the next shard in ring order, whatever its method (it
// reached no origin), and the trip is counted.
func TestInFlightLimitMovesToNextShard(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			slow := newHeldOrigin(t, "slow")
			fast := testOrigin(t, "fast")
			reg := prometheus.NewRegistry()
			p := newPool(t, lb.Config{Name: "site", MaxInFlightPerShard: 1, Metrics: lb.NewMetrics(reg),
				Shards: []lb.Shard{{Name: "slow", URL: slow.URL}, {Name: "fast", URL: fast.URL}}})
			key := keyOwnedBy(t, p, "slow")
			hold(t, p, slow, key)

			// A body the pool cannot replay: skipping a full shard must
			// not need GetBody.
			req := newRequest(t, method, "http://site.test/x", nil)
			req.Body = io.NopCloser(strings.NewReader("payload"))
			resp, body, rt, err := send(t, p, req, key)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if got := resp.Header.Get(hdrOrigin); got != "fast" || rt.Shard != "fast" || rt.Attempts != 1 {
				t.Errorf("answered by %q, route %+v; want fast after 1 attempt", got, rt)
			}
			if string(body) != "payload" {
				t.Errorf("body %q, want the request's", body)
			}
			trips := metricValue(t, reg, "edged_upstream_breaker_trips_total",
				map[string]string{"pool": "site", "shard": "slow", "limit": "in_flight"})
			if trips != 1 {
				t.Errorf("in_flight trips of slow = %v, want 1", trips)
			}
			if v := metricValue(t, reg, "edged_upstream_in_flight", map[string]string{"pool": "site", "shard": "slow"}); v != 1 {
				t.Errorf("edged_upstream_in_flight{shard=slow} = %v, want 1", v)
			}
		})
	}
}

// When every shard is over its limits the pool fails at once with
// ErrOverloaded, sending nothing, instead of queueing.
func TestAllShardsOverLimitFailFast(t *testing.T) {
	a, b := newHeldOrigin(t, "a"), newHeldOrigin(t, "b")
	p := newPool(t, lb.Config{Name: "site", MaxInFlightPerShard: 1,
		Shards: []lb.Shard{{Name: "a", URL: a.URL}, {Name: "b", URL: b.URL}}})
	hold(t, p, a, keyOwnedBy(t, p, "a"))
	hold(t, p, b, keyOwnedBy(t, p, "b"))

	start := time.Now()
	_, rt, err := p.Do(newRequest(t, "GET", "http://site.test/x", nil), "any")
	if !errors.Is(err, lb.ErrOverloaded) {
		t.Fatalf("Do error %v, want ErrOverloaded", err)
	}
	var o interface{ Overloaded() bool }
	if !errors.As(err, &o) || !o.Overloaded() {
		t.Errorf("%v has no Overloaded method reporting true", err)
	}
	if rt.Attempts != 0 {
		t.Errorf("Attempts = %d, want 0 (nothing sent)", rt.Attempts)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("failing took %v, want at once", d)
	}
	select {
	case <-a.arrived:
		t.Error("an over-limit request reached shard a")
	case <-b.arrived:
		t.Error("an over-limit request reached shard b")
	default:
	}
}

// With MaxConnsPerShard 1 and the one connection held, a second request
// waits for a connection (pending); a third is over MaxPendingPerShard 1
// and fails at once; the waiter itself gives up after the connection wait
// bound (DialTimeout + TLSHandshakeTimeout) rather than queueing forever.
func TestPendingLimitAndConnectionWait(t *testing.T) {
	o := newHeldOrigin(t, "o")
	reg := prometheus.NewRegistry()
	const wait = time.Second
	p := newPool(t, lb.Config{Name: "site", MaxConnsPerShard: 1, MaxPendingPerShard: 1, Metrics: lb.NewMetrics(reg),
		DialTimeout: wait / 2, TLSHandshakeTimeout: wait / 2,
		Shards: []lb.Shard{{Name: "o", URL: o.URL}}})
	hold(t, p, o, "k")

	waiter := make(chan error, 1)
	start := time.Now()
	go func() {
		_, _, err := p.Do(newRequest(t, "GET", "http://site.test/w", nil), "k")
		waiter <- err
	}()
	labels := map[string]string{"pool": "site", "shard": "o"}
	for metricValue(t, reg, "edged_upstream_pending", labels) != 1 {
		select {
		case err := <-waiter:
			t.Fatalf("the waiter ended early: %v", err)
		case <-time.After(time.Millisecond):
		}
	}

	_, _, err := p.Do(newRequest(t, "GET", "http://site.test/third", nil), "k")
	if !errors.Is(err, lb.ErrOverloaded) {
		t.Fatalf("third request: %v, want ErrOverloaded", err)
	}
	limit := func(l string) float64 {
		return metricValue(t, reg, "edged_upstream_breaker_trips_total", map[string]string{"pool": "site", "shard": "o", "limit": l})
	}
	if got := limit("pending"); got != 1 {
		t.Errorf("pending trips = %v, want 1", got)
	}

	err = <-waiter
	d := time.Since(start)
	if !errors.Is(err, lb.ErrOverloaded) {
		t.Errorf("waiter: %v, want ErrOverloaded", err)
	}
	if d < wait || d > wait+5*time.Second {
		t.Errorf("waiter gave up after %v, want about %v", d, wait)
	}
	if got := limit("connections"); got != 1 {
		t.Errorf("connections trips = %v, want 1", got)
	}
	if v := metricValue(t, reg, "edged_upstream_pending", labels); v != 0 {
		t.Errorf("pending after the waiter left = %v, want 0", v)
	}
	select {
	case <-o.arrived:
		t.Error("a request over a limit reached the origin")
	default:
	}
}

// A request whose earlier try failed and whose other shards are all over
// their limits fails with ErrOverloaded, still carrying the earlier
// failure.
func TestOverloadedAfterDialFailure(t *testing.T) {
	full := newHeldOrigin(t, "full")
	p := newPool(t, lb.Config{Name: "site", MaxInFlightPerShard: 1,
		Shards: []lb.Shard{{Name: "dead", URL: deadURL(t)}, {Name: "full", URL: full.URL}}})
	hold(t, p, full, keyOwnedBy(t, p, "full"))
	_, rt, err := p.Do(newRequest(t, "GET", "http://site.test/x", nil), keyOwnedBy(t, p, "dead"))
	var de *lb.DialError
	if !errors.Is(err, lb.ErrOverloaded) || !errors.As(err, &de) || de.Shard != "dead" {
		t.Fatalf("Do error %v, want ErrOverloaded wrapping the DialError of dead", err)
	}
	if rt.Attempts != 1 || rt.Shard != "full" {
		t.Errorf("route %+v, want 1 attempt, last shard full", rt)
	}
}
