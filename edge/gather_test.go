package edge_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/edged-proxy/edged/edge"
)

// opConn records how a response reaches the TCP connection: "w N" for a
// Write, "v N+M..." for one vectored write.
type opConn struct {
	*net.TCPConn
	mu  *sync.Mutex
	ops *[]string
}

func (c opConn) Write(p []byte) (int, error) {
	c.record(fmt.Sprintf("w %d", len(p)))
	return c.TCPConn.Write(p)
}

func (c opConn) WriteBuffers(b *net.Buffers) (int64, error) {
	parts := make([]string, len(*b))
	for i, p := range *b {
		parts[i] = fmt.Sprint(len(p))
	}
	c.record("v " + strings.Join(parts, "+"))
	return b.WriteTo(c.TCPConn)
}

func (c opConn) NetConn() net.Conn { return c.TCPConn }

func (c opConn) record(op string) {
	c.mu.Lock()
	*c.ops = append(*c.ops, op)
	c.mu.Unlock()
}

type opListener struct {
	net.Listener
	mu  sync.Mutex
	ops []string
}

func (l *opListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return opConn{TCPConn: c.(*net.TCPConn), mu: &l.mu, ops: &l.ops}, nil
}

// take returns the writes recorded since the last take.
func (l *opListener) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ops := l.ops
	l.ops = nil
	return ops
}

// A large memory hit leaves as one vectored write of head and body through
// the daemon's listener stack; net/http alone would send its 4 KiB buffer
// (head and the start of the body) and then the rest in two writes, which
// cost about a fifth of the 1 MiB hit throughput. Small hits are one
// plain write as before.
func TestLargeHitHeadAndBodyInOneWrite(t *testing.T) {
	big, small := bytes.Repeat([]byte("0123456789abcdef"), 1<<16), strings.Repeat("s", 1024)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		if r.URL.Path == "/small" {
			io.WriteString(w, small)
			return
		}
		w.Write(big)
	})
	_, h, _ := buildEdge(t, edgeOpts{}, o.URL)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &opListener{Listener: inner}
	ln := edge.LimitListener(rec, edge.ConnLimits{MaxConns: 10, MaxConnsPerIP: 10})
	// Gathering is the strict reader's, in front of net/http.
	serveTest(t, h, ln, edge.ServerConfig{HTTP1: edge.HTTP1NetHTTP})
	base := "http://" + ln.Addr().String()

	fetch := func(path string) (string, []byte) {
		resp, body := get(t, base, "GET", "www.example.com", path)
		return resp.Header.Get("Cache-Status"), []byte(body)
	}
	for _, tt := range []struct {
		path string
		body []byte
		vec  bool
	}{{"/big", big, true}, {"/small", []byte(small), false}} {
		fetch(tt.path) // the miss fills the cache
		rec.take()
		status, body := fetch(tt.path)
		ops := rec.take()
		if !strings.Contains(status, "hit") || !bytes.Equal(body, tt.body) {
			t.Fatalf("%s: Cache-Status %q, body %d bytes; want a hit of %d", tt.path, status, len(body), len(tt.body))
		}
		if len(ops) != 1 || strings.HasPrefix(ops[0], "v ") != tt.vec {
			t.Errorf("%s: hit written as %v, want one %s", tt.path, ops, map[bool]string{true: "vectored write", false: "plain write"}[tt.vec])
		} else if tt.vec && strings.Count(ops[0], "+") != 1 {
			t.Errorf("%s: vectored write %q, want head buffer and body", tt.path, ops[0])
		}
	}
}

// Every shape of a large hit, from memory (one writev) and from disk
// (corked sendfile), arrives whole and byte-exact through the gathering
// listener stack, twice over one keep-alive connection and over HTTP/1.0.
func TestLargeHitShapesThroughGather(t *testing.T) {
	for _, tier := range []struct {
		name string
		opts edgeOpts
	}{{"memory", edgeOpts{}}, {"disk", edgeOpts{disk: true, maxObject: 64 << 10}}} {
		t.Run(tier.name, func(t *testing.T) { testLargeHitShapes(t, tier.opts) })
	}
}

func testLargeHitShapes(t *testing.T, opts edgeOpts) {
	big := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz012345"), 10000) // 320,000 bytes
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("ETag", `"big"`)
		w.Write(big)
	})
	base, _ := newEdge(t, opts, o)
	get(t, base, "GET", "www.example.com", "/big") // fill
	waitFor(t, func() bool {
		resp, _ := get(t, base, "GET", "www.example.com", "/big")
		return strings.Contains(resp.Header.Get("Cache-Status"), "hit")
	})
	tests := []struct {
		name   string
		method string
		hdr    []string
		status int
		body   []byte
	}{
		{"whole", "GET", nil, 200, big},
		{"range in the middle", "GET", []string{"Range", "bytes=1000-99999"}, 206, big[1000:100000]},
		{"suffix range", "GET", []string{"Range", "bytes=-20000"}, 206, big[len(big)-20000:]},
		{"small range", "GET", []string{"Range", "bytes=5-9"}, 206, big[5:10]},
		{"HEAD", "HEAD", nil, 200, nil},
		{"not modified", "GET", []string{"If-None-Match", `"big"`}, 304, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 { // the second on the same keep-alive connection
				resp, body := get(t, base, tt.method, "www.example.com", "/big", tt.hdr...)
				if resp.StatusCode != tt.status || !bytes.Equal([]byte(body), tt.body) {
					t.Fatalf("status %d, body %d bytes; want %d with %d bytes", resp.StatusCode, len(body), tt.status, len(tt.body))
				}
			}
		})
	}
	t.Run("HTTP/1.0", func(t *testing.T) {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /big HTTP/1.0\r\nHost: www.example.com\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, big) {
			t.Fatalf("status %d, %d bytes, %v", resp.StatusCode, len(body), err)
		}
	})
}
