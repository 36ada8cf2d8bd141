package edge_test

import (
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/edge/strict"
)

// The daemon's listener stack (connection limits, then the strict reader)
// must keep every layer an io.ReaderFrom down to the TCP connection, or
// net/http's response ReadFrom falls back to copying disk hits through a
// user buffer instead of sendfile. (Regression: the connection-limit
// wrapper once hid the TCP connection's ReadFrom, and disk hits in the
// daemon were sent with 32 KiB writes.)
func TestListenerStackKeepsSendfile(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := edge.Listen(edge.LimitListener(inner, edge.ConnLimits{MaxConns: 10, MaxConnsPerIP: 10}), edge.StrictConfig{})
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for layer := net.Conn(c); ; {
		if _, ok := layer.(io.ReaderFrom); !ok {
			t.Fatalf("%T does not implement io.ReaderFrom", layer)
		}
		// Below the strict reader, every layer passes on vectored writes
		// and the socket, or the reader cannot gather a response head with
		// its body (one writev for memory hits, TCP_CORK around sendfile).
		if _, isStrict := layer.(*strict.Conn); !isStrict {
			if _, ok := layer.(syscall.Conn); !ok {
				t.Fatalf("%T hides the socket (no SyscallConn)", layer)
			}
			_, bw := layer.(strict.BuffersWriter)
			if _, tcp := layer.(*net.TCPConn); !bw && !tcp {
				t.Fatalf("%T does not pass on vectored writes (no WriteBuffers)", layer)
			}
		}
		if _, ok := layer.(*net.TCPConn); ok {
			return
		}
		u, ok := layer.(interface{ NetConn() net.Conn })
		if !ok {
			t.Fatalf("%T hides the connection it wraps (no NetConn)", layer)
		}
		layer = u.NetConn()
	}
}
