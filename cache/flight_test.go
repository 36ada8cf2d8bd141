package cache

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/internal/testkit"
)

// trackedBody is an origin body that reports its Close.
type trackedBody struct {
	io.Reader
	closed chan struct{}
	once   sync.Once
}

func (b *trackedBody) Close() error { b.once.Do(func() { close(b.closed) }); return nil }

// fakeOrigin answers every request with cc as Cache-Control, after gate
// (when set) opens, and keeps every body it handed out.
type fakeOrigin struct {
	cc    string
	gate  chan struct{}
	sent  atomic.Int32
	mu    sync.Mutex
	bodys []*trackedBody
}

func (o *fakeOrigin) Send(out *http.Request, _ string) (*http.Response, string, error) {
	o.sent.Add(1)
	if o.gate != nil {
		select {
		case <-o.gate:
		case <-out.Context().Done():
			return nil, "o", out.Context().Err()
		}
	}
	b := &trackedBody{Reader: strings.NewReader("body"), closed: make(chan struct{})}
	o.mu.Lock()
	o.bodys = append(o.bodys, b)
	o.mu.Unlock()
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Cache-Control": {o.cc}}, Body: b, ContentLength: 4, Request: out}, "o", nil
}

// answered is how many bodies the origin has handed out.
func (o *fakeOrigin) answered() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.bodys)
}

// allClosed waits until every request the origin took has its answer and
// every body it handed out is closed.
func (o *fakeOrigin) allClosed(t *testing.T) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() bool { return o.answered() == int(o.sent.Load()) }, "the origin answering every request")
	o.mu.Lock()
	bs := append([]*trackedBody(nil), o.bodys...)
	o.mu.Unlock()
	for i, b := range bs {
		select {
		case <-b.closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("origin body %d of %d never closed", i+1, len(bs))
		}
	}
}

func flightRequest(o Origin, path string) *Request {
	in := httptest.NewRequest("GET", "http://example.com"+path, nil)
	return &Request{
		Key: "http://example.com" + path, In: in, Origin: o, RangeStart: -1,
		Policy: rfc.Policy{},
		Out: OutBuilderFunc(func(ctx context.Context, _ Fetch) (*http.Request, error) {
			return in.Clone(ctx), nil
		}),
	}
}

// tableEmpty reports whether no flight is joinable any more.
func (c *Cache) tableEmpty() bool {
	c.flights.mu.Lock()
	defer c.flights.mu.Unlock()
	return len(c.flights.m) == 0
}

// Every flight releases what it holds: coalesced or not, shared or live,
// read or abandoned, every origin body is closed and the table empties.
func TestFlightsReleaseEverything(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cc      string
		clients int
		wantOut int32 // origin requests
	}{
		{"shared fill, one fetch", "max-age=60", 8, 1},
		{"private, every waiter fetches", "private", 8, 8},
		{"no-store", "no-store", 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{FillTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			o := &fakeOrigin{cc: tc.cc, gate: make(chan struct{})}
			var wg sync.WaitGroup
			joined := make(chan struct{}, tc.clients)
			for range tc.clients {
				wg.Go(func() {
					joined <- struct{}{}
					res, err := c.Get(context.Background(), flightRequest(o, "/f"))
					if err != nil {
						t.Error(err)
						return
					}
					b, _ := io.ReadAll(res.Body.NewReader(0, -1))
					res.Body.Close()
					if string(b) != "body" {
						t.Errorf("body %q", b)
					}
				})
			}
			for range tc.clients {
				<-joined
			}
			close(o.gate)
			wg.Wait()
			if got := o.sent.Load(); got != tc.wantOut {
				t.Errorf("origin requests = %d, want %d", got, tc.wantOut)
			}
			o.allClosed(t)
			if !c.tableEmpty() {
				t.Error("a flight is still in the table")
			}
		})
	}
}

// A leader that leaves before an unshareable answer arrives does not
// leak it: nobody will read it, so the body is closed when it comes.
func TestAbandonedLiveBodyIsClosed(t *testing.T) {
	c, err := New(Config{FillTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := &fakeOrigin{cc: "private", gate: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, flightRequest(o, "/p"))
		done <- err
	}()
	testkit.Eventually(t, 10*time.Second, func() bool { return o.sent.Load() == 1 }, "the fill reaching the origin")
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the leader's Get succeeded after its context was cancelled")
	}
	close(o.gate) // the fill goes on, detached, and gets the live answer
	o.allClosed(t)
	if !c.tableEmpty() {
		t.Error("a flight is still in the table")
	}
}

// A background revalidation's unshareable answer has no reader at all.
func TestBackgroundRevalidationClosesLiveBody(t *testing.T) {
	c, err := New(Config{FillTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := &fakeOrigin{cc: "private"}
	r := flightRequest(o, "/r")
	stale := &Entry{Key: r.Key, Primary: r.Key, Status: 200, Header: http.Header{}, Body: []byte("old"),
		Timing: rfc.Timing{RequestTime: time.Now(), ResponseTime: time.Now()}}
	c.revalidateAsync(context.Background(), r, r.Key, stale)
	testkit.Eventually(t, 10*time.Second, func() bool { return o.sent.Load() == 1 }, "the revalidation reaching the origin")
	o.allClosed(t) // the flight left the table before it published, so before the close
	if !c.tableEmpty() {
		t.Error("a flight is still in the table")
	}
}

// A qualified no-cache="X-A" response is stored; its fields are withheld
// (Result.Strip) from every reuse but the request the origin answered,
// and the fast path's Hit leaves such entries to Get (RFC 9111 §5.2.2.4).
func TestQualifiedNoCacheStrip(t *testing.T) {
	c, err := New(Config{FillTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := &fakeOrigin{cc: `max-age=60, no-cache="x-a"`}
	for i, want := range [][]string{nil, {"X-A"}, {"X-A"}} {
		res, err := c.Get(context.Background(), flightRequest(o, "/s"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if !slices.Equal(res.Strip, want) || (i > 0) != res.Hit {
			t.Errorf("request %d: Strip %q, hit %v; want %q", i+1, res.Strip, res.Hit, want)
		}
	}
	if res, ok := c.Hit("http://example.com/s", ""); ok {
		res.Body.Close()
		t.Error("Hit served an entry with no-cache fields")
	}
	o.allClosed(t)
}
