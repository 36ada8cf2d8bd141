package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A request that arrives while Shutdown is under way, on a keep-alive
// connection that was waiting for one or on a new connection's first
// request, is answered with Connection: close, not reset. (Regression:
// Shutdown closed waiting connections at once, and a request already on
// its way met a reset the client could not retry: the daemon's upgrade
// test lost one request in a few thousand.)
func TestShutdownAnswersRequestOnItsWay(t *testing.T) {
	defer func(g time.Duration) { shutdownGrace = g }(shutdownGrace)
	shutdownGrace = 3 * time.Second // room for the test to send after Shutdown began
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	const req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
	keep, fresh := dial(), dial()
	kr := bufio.NewReader(keep)
	io.WriteString(keep, req)
	if resp, err := http.ReadResponse(kr, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v", err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	// Both connections are now waiting for a request.
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	for { // Shutdown has begun once the listener refuses connections
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(time.Millisecond) // polling a state with no event to wait on
	}
	for name, c := range map[string]net.Conn{"keep-alive": keep, "new": fresh} {
		br := bufio.NewReader(c)
		if c == keep {
			br = kr
		}
		io.WriteString(c, req)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s connection: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "ok" || !resp.Close {
			t.Errorf("%s connection: %d %q close=%v; want 200 ok, closing", name, resp.StatusCode, b, resp.Close)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
