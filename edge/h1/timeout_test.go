package h1_test

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge/h1"
)

// A client trickling its head one byte at a time is cut off once
// ReadHeaderTimeout has passed since the head began, however steadily it
// sends. (Regression: each read re-armed the deadline, so a trickle of a
// byte per interval kept the connection open for ever.)
func TestTrickledHeadCutOff(t *testing.T) {
	const limit = 300 * time.Millisecond
	srv := &h1.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: limit}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX: ")
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c) // returns when the server closes
		close(closed)
	}()
	tick := time.NewTicker(limit / 10)
	defer tick.Stop()
	for sent := 0; ; sent++ {
		select {
		case <-closed:
			return
		case <-tick.C:
			if sent > 100 { // ten times the limit
				t.Fatalf("the connection is still open after %d trickled bytes", sent)
			}
			c.Write([]byte{'a'})
		}
	}
}
