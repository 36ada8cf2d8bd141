package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// watchServer serves h on 127.0.0.1 and counts the watchers started, which
// start without delay; reads (if not nil) receives the byte count of every
// watcher read.
func watchServer(t *testing.T, h http.HandlerFunc, reads chan int) (addr string, watchers *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	watchers = new(atomic.Int32)
	srv := &Server{Handler: h, onWatch: func() { watchers.Add(1) }, watchAfter: -1}
	if reads != nil {
		srv.onWatchRead = func(n int, _ error) { reads <- n }
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return ln.Addr().String(), watchers
}

// serveOn serves srv on a new loopback listener until the test ends and
// returns a connection to it.
func serveOn(t *testing.T, srv *Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return dial(t, ln.Addr().String())
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readBody reads one response from br and returns its status and body.
func readBody(t *testing.T, br *bufio.Reader) (int, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// A handler waiting on its request's context learns that the client
// closed the connection, once the body is read (or there is none),
// however it came to watch: Done itself or a context derived from it.
func TestContextCancelledWhenClientCloses(t *testing.T) {
	for _, tc := range []struct{ name, req string }{
		{"no body", "GET /wait HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"derived context", "GET /derived HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"body by length", "POST /wait HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"},
		{"chunked body", "POST /wait HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"},
		{"last request", "POST /wait HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			waiting := make(chan struct{})
			got := make(chan error, 1)
			addr, watchers := watchServer(t, func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				ctx := r.Context()
				if r.URL.Path == "/derived" {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Hour)
					defer cancel()
				}
				done := ctx.Done()
				close(waiting)
				select {
				case <-done:
					got <- ctx.Err()
				case <-time.After(10 * time.Second):
					got <- errors.New("not cancelled")
				}
			}, nil)
			c, _ := dial(t, addr)
			io.WriteString(c, tc.req)
			<-waiting
			c.Close()
			if err := <-got; !errors.Is(err, context.Canceled) {
				t.Fatalf("the handler's context: %v", err)
			}
			if n := watchers.Load(); n != 1 {
				t.Errorf("%d watchers started, want 1", n)
			}
		})
	}
}

// A handler that never looks at Done (a cache hit) starts no watcher, with
// or without a body; one that does starts one, and only after its body.
func TestNoWatcherUnlessAsked(t *testing.T) {
	addr, watchers := watchServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/asks" {
			r.Context().Done()
		}
		w.Write(b)
	}, nil)
	c, br := dial(t, addr)
	reqs := []string{
		"GET /hit HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /hit HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok",
		"POST /hit HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	}
	for range 3 {
		for _, req := range reqs {
			io.WriteString(c, req)
			if st, _ := readBody(t, br); st != 200 {
				t.Fatalf("status %d", st)
			}
		}
	}
	if n := watchers.Load(); n != 0 {
		t.Fatalf("%d watchers started for requests that never called Done", n)
	}
	// The control: the hook counts, so the zero above means something.
	for _, req := range reqs {
		io.WriteString(c, strings.Replace(req, "/hit", "/asks", 1))
		readBody(t, br)
	}
	if n := watchers.Load(); n != 3 {
		t.Fatalf("%d watchers started for 3 requests that called Done", n)
	}
}

// A request pipelined behind one whose handler watches its context is
// read by the watcher, kept, and served next; the first handler's context
// is not cancelled by it.
func TestPipelinedWhileWatching(t *testing.T) {
	watching := make(chan struct{})
	reads := make(chan int, 4)
	addr, _ := watchServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			done := r.Context().Done()
			close(watching)
			if n := <-reads; n == 0 {
				t.Error("the watcher read nothing")
			}
			select {
			case <-done:
				t.Error("a pipelined request cancelled the context")
			default:
			}
		}
		io.WriteString(w, r.URL.Path)
	}, reads)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
	<-watching
	io.WriteString(c, "GET /second HTTP/1.1\r\nHost: h\r\n\r\nGET /third HTTP/1.1\r\nHost: h\r\n\r\n")
	for _, want := range []string{"/first", "/second", "/third"} {
		if st, body := readBody(t, br); st != 200 || body != want {
			t.Fatalf("got %d %q, want %s", st, body, want)
		}
	}
}

// Hijack stops the watcher: the bytes it read come first from the
// hijacked reader, the connection has no read deadline left, and the
// context is not cancelled by the stop.
func TestHijackWhileWatching(t *testing.T) {
	for _, early := range []bool{true, false} {
		name := "watcher blocked"
		if early {
			name = "watcher read bytes"
		}
		t.Run(name, func(t *testing.T) {
			watching := make(chan struct{})
			reads := make(chan int, 1)
			addr, _ := watchServer(t, func(w http.ResponseWriter, r *http.Request) {
				done := r.Context().Done()
				close(watching)
				if early {
					<-reads // the client's "ping" is in the watcher's buffer
				}
				nc, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer nc.Close()
				select {
				case <-done:
					t.Error("stopping the watcher cancelled the context")
				default:
				}
				brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
				brw.Flush()
				line, err := brw.ReadString('\n')
				if err != nil {
					t.Errorf("reading the hijacked connection: %v", err)
				}
				brw.WriteString("echo " + line)
				brw.Flush()
			}, reads)
			c, br := dial(t, addr)
			io.WriteString(c, "GET /upgrade HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			<-watching
			if early {
				io.WriteString(c, "ping\n")
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("%v %v", resp, err)
			}
			if !early {
				io.WriteString(c, "ping\n")
			}
			if line, err := br.ReadString('\n'); line != "echo ping\n" {
				t.Fatalf("got %q, %v", line, err)
			}
		})
	}
}

// The context ends when the handler returns, and asking for Done after
// that starts no watcher; a write to a connection the client closed
// cancels it too, watched or not.
func TestContextEnds(t *testing.T) {
	kept := make(chan context.Context, 1)
	writeErr := make(chan error, 1)
	addr, watchers := watchServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/keep":
			kept <- r.Context()
		case "/stream":
			w.Write([]byte("start"))
			w.(http.Flusher).Flush()
			for range 1000 {
				if _, err := w.Write(make([]byte, 64<<10)); err != nil {
					break
				}
			}
			writeErr <- r.Context().Err()
		}
	}, nil)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /keep HTTP/1.1\r\nHost: h\r\n\r\n")
	readBody(t, br)
	ctx := <-kept
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the context outlived its request")
	}
	if n := watchers.Load(); n != 0 {
		t.Errorf("Done after the handler returned started %d watchers", n)
	}

	c, br = dial(t, addr)
	io.WriteString(c, "GET /stream HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	if err := <-writeErr; !errors.Is(err, context.Canceled) {
		t.Errorf("after a failed write the context says %v", err)
	}
}

type connKey struct{}

// The request's context is under the connection's: it has its values
// before and after Done, and ends when it does.
func TestContextUnderConnContext(t *testing.T) {
	connCtx, cancelConn := context.WithCancel(context.Background())
	defer cancelConn()
	got := make(chan string, 1)
	srv := &Server{
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(connCtx, connKey{}, "conn")
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			before, _ := ctx.Value(connKey{}).(string)
			done := ctx.Done()
			after, _ := ctx.Value(connKey{}).(string)
			cancelConn()
			select {
			case <-done:
				got <- before + " " + after + " " + ctx.Err().Error()
			case <-time.After(10 * time.Second):
				got <- "not cancelled with the connection's context"
			}
		}),
	}
	c, _ := serveOn(t, srv)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if s := <-got; s != "conn conn context canceled" {
		t.Errorf("got %q", s)
	}
}

// A watcher starts only once its request waited watchDelay: a request
// answered sooner starts none, one that waits longer gets one and learns
// that its client left.
func TestWatcherDelayed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		delay    time.Duration
		wait     bool // the handler waits for its context to end
		watchers int32
	}{
		{"answered within the delay", time.Hour, false, 0},
		{"waits past the delay", time.Millisecond, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var watchers atomic.Int32
			waiting := make(chan struct{}, 1)
			got := make(chan error, 1)
			srv := &Server{watchAfter: tc.delay, onWatch: func() { watchers.Add(1) },
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					done := r.Context().Done()
					if !tc.wait {
						io.WriteString(w, "quick")
						return
					}
					waiting <- struct{}{}
					select {
					case <-done:
						got <- r.Context().Err()
					case <-time.After(10 * time.Second):
						got <- errors.New("not cancelled")
					}
				})}
			c, br := serveOn(t, srv)
			if !tc.wait {
				for range 3 {
					io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
					if st, body := readBody(t, br); st != 200 || body != "quick" {
						t.Fatalf("got %d %q", st, body)
					}
				}
			} else {
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
				<-waiting
				c.Close()
				if err := <-got; !errors.Is(err, context.Canceled) {
					t.Fatalf("the handler's context: %v", err)
				}
			}
			if n := watchers.Load(); n != tc.watchers {
				t.Errorf("%d watchers started, want %d", n, tc.watchers)
			}
		})
	}
}

// The response's last bytes reach the client before a running watcher is
// stopped: stopping it is not on the client's path. The watcher's stop
// waits here until the client has the whole response.
func TestResponseSentBeforeWatcherStops(t *testing.T) {
	received := make(chan struct{})
	srv := &Server{watchAfter: -1,
		onWatchRead: func(n int, err error) {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			select {
			case <-received:
			case <-time.After(5 * time.Second):
				t.Error("the watcher was stopped before the response was sent")
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Context().Done()
			io.WriteString(w, "body")
		})}
	c, br := serveOn(t, srv)
	for range 2 {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		if st, body := readBody(t, br); st != 200 || body != "body" {
			t.Fatalf("got %d %q", st, body)
		}
		select {
		case received <- struct{}{}:
		case <-time.After(5 * time.Second):
			t.Fatal("the watcher never stopped")
		}
	}
}
