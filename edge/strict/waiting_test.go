package strict_test

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge/strict"
)

// markedConn counts the head marks its server gives it.
type markedConn struct {
	net.Conn
	marks atomic.Int32
}

func (c *markedConn) MarkHead()         { c.marks.Add(1) }
func (c *markedConn) NetConn() net.Conn { return c.Conn }

// loopbackPair returns both ends of a loopback TCP connection.
func loopbackPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// A Conn marks the connection it wraps once, when its first head is
// complete (a head split over reads included), and CloseWaiting closes it
// only while no head has come, once ShutdownGrace has passed: a head that
// completes afterwards is never delivered.
func TestHeadMarkAndCloseWaiting(t *testing.T) {
	defer func(g time.Duration) { strict.ShutdownGrace = g }(strict.ShutdownGrace)
	strict.ShutdownGrace = time.Millisecond
	const head = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
	for _, c := range []struct {
		name        string
		before      string // sent before CloseWaiting; read first when it holds a whole head
		wantClosed  bool   // CloseWaiting's answer
		wantMarks   int32
		readsBefore bool
	}{
		{"nothing sent", "", true, 0, false},
		{"half a head", "GET / HTTP/1.1\r\n", true, 0, false},
		{"a head read", head, false, 1, true},
		{"two heads read", head + head, false, 1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, server := loopbackPair(t)
			mc := &markedConn{Conn: server}
			sc := strict.WrapConn(mc, strict.Config{})
			io.WriteString(client, c.before)
			if c.readsBefore {
				buf := make([]byte, len(c.before))
				if _, err := io.ReadFull(sc, buf); err != nil {
					t.Fatal(err)
				}
			}
			if got := sc.CloseWaiting(); got != c.wantClosed {
				t.Errorf("CloseWaiting = %v, want %v", got, c.wantClosed)
			}
			if got := mc.marks.Load(); got != c.wantMarks {
				t.Errorf("%d head marks, want %d", got, c.wantMarks)
			}
			if !c.wantClosed {
				return
			}
			// The grace passes: the socket is closed (the client sees it).
			client.SetReadDeadline(time.Now().Add(10 * time.Second)) // failure guard only
			if _, err := client.Read(make([]byte, 1)); err == nil {
				t.Fatal("the client read something; want the close")
			}
			io.WriteString(client, head[len(c.before):])         // the head completes: too late
			sc.SetReadDeadline(time.Now().Add(10 * time.Second)) // failure guard only
			if n, err := sc.Read(make([]byte, 100)); n != 0 || err == nil {
				t.Errorf("after CloseWaiting, Read = %d, %v; want nothing and an error", n, err)
			}
			if mc.marks.Load() != 0 {
				t.Error("a head that came after CloseWaiting was marked")
			}
		})
	}
}

// A head that completes within ShutdownGrace after CloseWaiting is
// delivered and marked: a request on its way as a server shuts down is
// served, not reset.
func TestCloseWaitingGraceDeliversHead(t *testing.T) {
	defer func(g time.Duration) { strict.ShutdownGrace = g }(strict.ShutdownGrace)
	strict.ShutdownGrace = time.Minute
	const head = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
	client, server := loopbackPair(t)
	mc := &markedConn{Conn: server}
	sc := strict.WrapConn(mc, strict.Config{})
	if !sc.CloseWaiting() {
		t.Fatal("CloseWaiting = false on a connection that sent nothing")
	}
	io.WriteString(client, head)
	buf := make([]byte, len(head))
	sc.SetReadDeadline(time.Now().Add(10 * time.Second)) // failure guard only
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != head {
		t.Fatalf("Read = %q, %v; want the head", buf, err)
	}
	if mc.marks.Load() != 1 {
		t.Errorf("%d head marks, want 1", mc.marks.Load())
	}
}
