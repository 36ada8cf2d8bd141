package h1_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge/h1"
)

// Shutdown closes the listener and the idle connections at once, lets a
// request in progress finish with Connection: close, and returns when it
// has; Serve returns http.ErrServerClosed.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	srv := &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "ok")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, bufio.NewReader(c)
	}
	idle, idleR := dial()
	io.WriteString(idle, "GET /fast HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, err := http.ReadResponse(idleR, nil)
	if err != nil || resp.Close {
		t.Fatalf("first response: %v (close=%v)", err, resp != nil && resp.Close)
	}
	io.ReadAll(resp.Body)
	busy, busyR := dial()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-started

	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	if _, err := idleR.ReadByte(); err == nil {
		t.Error("the idle connection was not closed")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a request was in progress", err)
	default:
	}
	close(release)
	resp, err = http.ReadResponse(busyR, nil)
	if err != nil {
		t.Fatalf("the request in progress: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "ok" || !resp.Close {
		t.Errorf("the request in progress got %q, close=%v; want ok and Connection: close", b, resp.Close)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
	}
}
