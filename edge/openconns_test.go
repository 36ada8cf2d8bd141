package edge_test

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/edge/strict"
)

// CountConns counts a connection from accept to its first Close, and its
// connections keep the socket's abilities the stack above looks for.
func TestCountConns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var open atomic.Int64
	cln := edge.CountConns(ln, &open)
	defer cln.Close()
	var clients, servers []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		s, err := cln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	if got := open.Load(); got != 3 {
		t.Fatalf("open = %d after 3 accepts", got)
	}
	s := servers[0]
	if _, ok := s.(io.ReaderFrom); !ok {
		t.Error("no ReadFrom: sendfile lost")
	}
	if _, ok := s.(syscall.Conn); !ok {
		t.Error("no SyscallConn: corking lost")
	}
	if _, ok := s.(strict.BuffersWriter); !ok {
		t.Error("no WriteBuffers: vectored writes lost")
	}
	bufs := net.Buffers{[]byte("ab"), []byte("cd")}
	if n, err := strict.WriteBuffers(s, &bufs); n != 4 || err != nil {
		t.Fatalf("WriteBuffers = %d, %v", n, err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(clients[0], got); err != nil || string(got) != "abcd" {
		t.Fatalf("client read %q, %v", got, err)
	}
	s.Close()
	s.Close() // a second Close does not count again
	servers[1].Close()
	if got := open.Load(); got != 1 {
		t.Fatalf("open = %d after closing 2 of 3 (one twice)", got)
	}
	servers[2].Close()
	if got := open.Load(); got != 0 {
		t.Fatalf("open = %d after closing all", got)
	}
}
