package edge_test

import (
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge"
)

func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	ln := edge.LimitListener(inner, edge.ConnLimits{MaxConnsPerIP: 2, OnRefuse: func(string) { refused.Add(1) }})
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := dial(), dial()
	sa, sb := <-accepted, <-accepted
	c := dial() // the third from one address is refused with a 503
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(got), "HTTP/1.1 503") || refused.Load() != 1 {
		t.Fatalf("third connection got %q (refused %d)", got, refused.Load())
	}
	// Closing one makes room again.
	sa.Close()
	a.Close()
	d := dial()
	select {
	case sd := <-accepted:
		sd.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("a connection within the limit was not accepted")
	}
	for _, x := range []net.Conn{b, sb, c, d} {
		x.Close()
	}
}
