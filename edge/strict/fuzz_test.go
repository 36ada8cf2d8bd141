package strict

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/internal/testkit"
)

type tracedHead struct {
	method, target string
	cl             int64
	chunked        bool
}

// pump reads c to EOF with reads of varying size and returns the output.
func pump(c *Conn, sizes []int) []byte {
	var out []byte
	buf := make([]byte, 8192)
	for i := 0; ; i++ {
		n, err := c.Read(buf[:sizes[i%len(sizes)]])
		out = append(out, buf[:n]...)
		if err != nil {
			return out
		}
	}
}

func TestByteForByte(t *testing.T) {
	stream := "GET /a HTTP/1.1\r\nHost: h\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world" +
		"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n" +
		"GET http://h/d HTTP/1.1\r\nHost: h\r\n\r\n"
	for _, step := range []int{1, 2, 3, 7, 64, 4096} {
		for _, sizes := range [][]int{{1}, {1, 4096}, {3, 5, 7}, {4096}} {
			mc := &testkit.Conn{In: []byte(stream), Step: step}
			c := WrapConn(mc, Config{})
			var heads int
			c.trace = func(*headInfo) { heads++ }
			if got := string(pump(c, sizes)); got != stream {
				t.Fatalf("step %d sizes %v: got %q", step, sizes, got)
			}
			if heads != 4 || mc.Out.Len() != 0 {
				t.Fatalf("step %d: %d heads, wrote %q", step, heads, mc.Out.String())
			}
		}
	}
}

func TestH2CPassthrough(t *testing.T) {
	const stream = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"
	mc := &testkit.Conn{In: []byte(stream), Step: 5}
	c := WrapConn(mc, Config{AllowH2C: true})
	if got := string(pump(c, []int{3})); got != stream {
		t.Fatalf("got %q", got)
	}
	mc = &testkit.Conn{In: []byte(stream), Step: 5}
	c = WrapConn(mc, Config{})
	if got := pump(c, []int{3}); len(got) != 0 || !strings.HasPrefix(mc.Out.String(), "HTTP/1.1 505 ") {
		t.Fatalf("got %q, wrote %q", got, mc.Out.String())
	}
}

func FuzzStrictReader(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint8(0))
	f.Add([]byte("POST /x?y HTTP/1.1\r\nHost: a:80\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n"), uint8(2))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e=\"q\"\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint8(1))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), uint8(3))
	f.Add([]byte("\r\nGET http://a/b HTTP/1.1\r\nHost: A:80\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: [::1]\r\n\r\n"), uint8(5))
	f.Add([]byte("GET / HTTP/1.1\nHost: a\n\n"), uint8(0))
	f.Add([]byte("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), uint8(4))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		mc := &testkit.Conn{In: in, Step: int(step%13) + 1}
		c := WrapConn(mc, Config{MaxHeaderBytes: 4096, MaxHeaderCount: 20, MaxURILength: 1024, MaxChunkExtBytes: 32})
		var heads []tracedHead
		c.trace = func(h *headInfo) {
			heads = append(heads, tracedHead{string(h.method), string(h.target), h.contentLength, h.chunked})
		}
		out := pump(c, []int{int(step%5)*97 + 1, 4096})
		br := bufio.NewReader(bytes.NewReader(out))
		for i, h := range heads {
			req, err := http.ReadRequest(br)
			if err != nil {
				t.Fatalf("head %d %+v accepted by strict, rejected by net/http: %v\n%q", i, h, err, out)
			}
			if req.Method != h.method || req.RequestURI != h.target {
				t.Fatalf("head %d: net/http saw %s %s, strict %s %s", i, req.Method, req.RequestURI, h.method, h.target)
			}
			if h.chunked != (len(req.TransferEncoding) == 1 && req.TransferEncoding[0] == "chunked") ||
				(!h.chunked && req.ContentLength != h.cl) {
				t.Fatalf("head %d: framing differs: net/http CL %d TE %q, strict %+v", i, req.ContentLength, req.TransferEncoding, h)
			}
			_, err = io.Copy(io.Discard, req.Body)
			if err != nil && i < len(heads)-1 {
				t.Fatalf("body %d: %v", i, err)
			}
		}
		if len(heads) > 0 {
			return
		}
		if len(out) != 0 && !bytes.Equal(out, bytes.TrimLeft(in, "\r\n")[:len(out)]) {
			t.Fatalf("released %q without a head", out)
		}
	})
}

func BenchmarkStrictHead(b *testing.B) {
	head := []byte("GET /static/js/app.3f9a1c.js?v=20240101 HTTP/1.1\r\n" +
		"Host: cdn.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n" +
		"Accept: */*\r\n" +
		"Accept-Encoding: gzip, deflate, br\r\n" +
		"Accept-Language: en-US,en;q=0.9\r\n" +
		"Referer: https://www.example.com/products/list?page=2\r\n" +
		"Cookie: session=abcdef0123456789; theme=dark\r\n" +
		"Cache-Control: no-cache\r\n" +
		"Connection: keep-alive\r\n\r\n")
	src := &loopConn{data: head}
	c := WrapConn(src, Config{})
	p := make([]byte, 4096)
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	b.ReportMetric(float64(len(head)), "headbytes")
	for b.Loop() {
		n, err := c.Read(p)
		if err != nil || n != len(head) {
			b.Fatalf("read %d, %v", n, err)
		}
	}
}

// loopConn delivers data again on every Read.
type loopConn struct {
	testkit.Conn
	data []byte
}

func (c *loopConn) Read(p []byte) (int, error) { return copy(p, c.data), nil }
