package edge_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/edge/strict"
)

// limitRig is a LimitListener with its accepted connections and clients
// dialled from chosen loopback addresses.
type limitRig struct {
	t        *testing.T
	addr     string
	accepted chan net.Conn
	mu       sync.Mutex
	refused  []string
	evicted  int
}

func newLimitRig(t *testing.T, lim edge.ConnLimits) *limitRig {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &limitRig{t: t, addr: inner.Addr().String(), accepted: make(chan net.Conn, 16)}
	lim.OnRefuse = func(reason string) { r.mu.Lock(); r.refused = append(r.refused, reason); r.mu.Unlock() }
	lim.OnEvict = func() { r.mu.Lock(); r.evicted++; r.mu.Unlock() }
	ln := edge.LimitListener(inner, lim)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.accepted <- c
		}
	}()
	return r
}

// dial connects from 127.0.0.<from>.
func (r *limitRig) dial(from byte) net.Conn {
	r.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, from)}}
	c, err := d.Dial("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	return c
}

// admitted dials from 127.0.0.<from> and returns the client end and the
// listener's end of the connection.
func (r *limitRig) admitted(from byte) (client, server net.Conn) {
	r.t.Helper()
	c := r.dial(from)
	select {
	case s := <-r.accepted:
		r.t.Cleanup(func() { s.Close() })
		return c, s
	case <-time.After(10 * time.Second):
		r.t.Fatal("a connection within the limits was not accepted")
	}
	return nil, nil
}

// closedByServer reports whether the server closed c (with nothing sent
// or with the refusal) and what it sent.
func closedByServer(c net.Conn) (bool, string) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) // failure guard only
	b, err := io.ReadAll(c)
	return err == nil, string(b)
}

// stillOpen reports whether c is open: nothing to read and no EOF within
// a short wait (a closed connection answers at once).
func stillOpen(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	c.SetReadDeadline(time.Time{})
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func (r *limitRig) counts() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.refused...), r.evicted
}

// At max_conns_per_ip, a new connection from the address takes the place
// of the address's oldest connection that has sent no request head; with
// none left it is refused with the fixed 503. Other addresses and the
// total limit are unaffected.
func TestLimitListener(t *testing.T) {
	mark := func(s net.Conn) {
		m := strict.HeadMarkerOf(s)
		if m == nil {
			t.Fatalf("%T: the limited connection takes no head mark", s)
		}
		m.MarkHead()
	}
	t.Run("evicts the oldest without a head", func(t *testing.T) {
		r := newLimitRig(t, edge.ConnLimits{MaxConnsPerIP: 3})
		a, sa := r.admitted(2)
		b, _ := r.admitted(2)
		c, _ := r.admitted(2)
		mark(sa) // a sent a head: b is the oldest without one
		d, _ := r.admitted(2)
		if closed, got := closedByServer(b); !closed || got != "" {
			t.Errorf("b: closed %v, got %q; want closed silently", closed, got)
		}
		for name, x := range map[string]net.Conn{"a": a, "c": c, "d": d} {
			if !stillOpen(x) {
				t.Errorf("%s was closed", name)
			}
		}
		if refused, evicted := r.counts(); len(refused) != 0 || evicted != 1 {
			t.Errorf("refused %v, evicted %d; want none and 1", refused, evicted)
		}
	})
	t.Run("refuses when every connection sent a head", func(t *testing.T) {
		r := newLimitRig(t, edge.ConnLimits{MaxConnsPerIP: 2})
		_, sa := r.admitted(2)
		_, sb := r.admitted(2)
		mark(sa)
		mark(sb)
		c := r.dial(2)
		if closed, got := closedByServer(c); !closed || !strings.HasPrefix(got, "HTTP/1.1 503 ") {
			t.Errorf("third connection: closed %v, got %q; want the 503", closed, got)
		}
		b3, _ := r.admitted(3) // another address is not affected
		if !stillOpen(b3) {
			t.Error("a connection from another address was closed")
		}
		if refused, evicted := r.counts(); len(refused) != 1 || refused[0] != "per_ip" || evicted != 0 {
			t.Errorf("refused %v, evicted %d; want [per_ip] and 0", refused, evicted)
		}
	})
	t.Run("an evicted place is given back once", func(t *testing.T) {
		r := newLimitRig(t, edge.ConnLimits{MaxConnsPerIP: 2})
		a, sa := r.admitted(2)
		_, sb := r.admitted(2)
		_, sc := r.admitted(2) // evicts a
		if closed, _ := closedByServer(a); !closed {
			t.Fatal("a was not evicted")
		}
		sa.Close() // its server closes it too: no second release
		sa.Close()
		mark(sb)
		mark(sc)
		d := r.dial(2)
		if closed, got := closedByServer(d); !closed || !strings.HasPrefix(got, "HTTP/1.1 503 ") {
			t.Errorf("with b and c holding the address's places: closed %v, got %q; want the 503", closed, got)
		}
		sb.Close() // a place comes free
		_, se := r.admitted(2)
		se.Close()
	})
	t.Run("the total limit is not an eviction", func(t *testing.T) {
		r := newLimitRig(t, edge.ConnLimits{MaxConns: 2, MaxConnsPerIP: 2})
		a, _ := r.admitted(2)
		b, _ := r.admitted(3)
		c := r.dial(4)
		if closed, got := closedByServer(c); !closed || !strings.HasPrefix(got, "HTTP/1.1 503 ") {
			t.Errorf("over the total: closed %v, got %q; want the 503", closed, got)
		}
		if !stillOpen(a) || !stillOpen(b) {
			t.Error("a connection was closed for another address's")
		}
		if refused, evicted := r.counts(); len(refused) != 1 || refused[0] != "total" || evicted != 0 {
			t.Errorf("refused %v, evicted %d; want [total] and 0", refused, evicted)
		}
	})
}

// Both HTTP/1 servers tell the limiter when a connection has sent a
// request head, over every protocol the edge serves, so that at
// max_conns_per_ip the connection evicted is a silent one, never an older
// one that carried a request.
func TestServersMarkRequestHeads(t *testing.T) {
	tlsCfg, roots := testTLS(t, "h2", "http/1.1")
	clientTLS := &tls.Config{RootCAs: roots, ServerName: "example.com"}
	var h2c, h2, h11 http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	h2.SetHTTP2(true)
	h11.SetHTTP1(true)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })

	for _, mode := range []string{edge.HTTP1Edged, edge.HTTP1NetHTTP} {
		t.Run(strings.ReplaceAll(mode, "/", ""), func(t *testing.T) {
			srv, err := edge.NewServer(h, edge.ServerConfig{HTTP1: mode, H2C: true})
			if err != nil {
				t.Fatal(err)
			}
			lim := edge.ConnLimits{MaxConnsPerIP: 2}
			plain, tlsLn := listen(t), listen(t)
			go srv.Serve(edge.LimitListener(plain, lim))
			go srv.ServeTLS(edge.LimitListener(tlsLn, lim), tlsCfg)
			t.Cleanup(func() { srv.Close() })

			for i, c := range []struct {
				name   string
				protos *http.Protocols
				tls    bool
			}{
				{"http/1.1", &h11, false},
				{"h2c", &h2c, false},
				{"tls http/1.1", &h11, true},
				{"tls h2", &h2, true},
			} {
				from := net.IPv4(127, 0, 0, byte(10+i)) // an address per case
				addr, scheme := plain.Addr().String(), "http://"
				if c.tls {
					addr, scheme = tlsLn.Addr().String(), "https://"
				}
				dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: from}}
				tr := &http.Transport{Protocols: c.protos, TLSClientConfig: clientTLS, DialContext: dialer.DialContext}
				defer tr.CloseIdleConnections()
				// The oldest connection carries a request and stays open.
				resp, err := (&http.Client{Transport: tr}).Get(scheme + addr + "/")
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				silent, err := dialer.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer silent.Close()
				newest, err := dialer.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer newest.Close()
				if closed, _ := closedByServer(silent); !closed {
					t.Errorf("%s: the silent connection was not evicted", c.name)
				}
				if !stillOpen(newest) {
					t.Errorf("%s: the newest connection was closed", c.name)
				}
			}
		})
	}
}
