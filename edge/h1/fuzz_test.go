package h1

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/edge/strict"
	"github.com/edged-proxy/edged/internal/testkit"
)

// FuzzConn drives the loop with random request bytes and a handler that
// reads the body and echoes it: no panic, and every response written is
// well framed (http.ReadResponse reads each, body and all, to the end of
// the output).
func FuzzConn(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\nHost: h\n\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3;a=\"b\"\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" + strings.Repeat("x", 4096) + "\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var methods []string // of the requests answered, in order (HEAD responses have no body)
		echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			methods = append(methods, r.Method)
			b, _ := io.ReadAll(r.Body)
			if len(b) > 100 {
				w.(http.Flusher).Flush() // and then a chunked (or close-delimited) body
			}
			w.Write(b)
			io.WriteString(w, r.Method+" "+r.RequestURI)
		})
		mc := &testkit.Conn{In: in}
		(&Server{Handler: echo}).serveConn(mc)
		br := bufio.NewReader(bytes.NewReader(mc.Out.Bytes()))
		for i := 0; ; {
			if _, err := br.Peek(1); err == io.EOF {
				return
			}
			req := &http.Request{Method: http.MethodGet} // a refusal answers no handler call
			if i < len(methods) {
				req.Method = methods[i]
			}
			resp, err := http.ReadResponse(br, req)
			if resp != nil && resp.StatusCode >= 200 {
				i++
			}
			if err != nil {
				t.Fatalf("unreadable response: %v\ninput %q\noutput %q", err, in, mc.Out.Bytes())
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Fatalf("badly framed body: %v\ninput %q\noutput %q", err, in, mc.Out.Bytes())
			}
		}
	})
}

// A body, chunked or not, reads the same however its bytes arrive: a byte
// at a time, in odd pieces, or at once; read with a small buffer or with
// one large enough to take data straight from the connection.
func TestBodyInPieces(t *testing.T) {
	in := "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
		"3;e=\"v\"\r\nabc\r\n2710\r\n" + strings.Repeat("0123456789", 1000) + "\r\n0\r\nX-Sum: 42\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" +
		"POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 10000\r\n\r\n" + strings.Repeat("9876543210", 1000) +
		"GET /d HTTP/1.1\r\nHost: h\r\n\r\n"
	for _, bufSize := range []int{1, 100, 16 << 10} {
		var want string
		for _, step := range []int{0, 1, 2, 5, 4095, 4097} {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var got bytes.Buffer
				n, err := io.CopyBuffer(struct{ io.Writer }{&got}, struct{ io.Reader }{r.Body}, make([]byte, bufSize))
				fmt.Fprintf(w, "%s %d %v sum=%q %x", r.URL.Path, n, err, r.Trailer.Get("X-Sum"), sha256.Sum256(got.Bytes()))
			})
			mc := &testkit.Conn{In: []byte(in), Step: step}
			(&Server{Handler: h}).serveConn(mc)
			got := mc.Out.String()
			if want == "" {
				want = got
				if n := strings.Count(got, "HTTP/1.1 200 OK"); n != 4 || !strings.Contains(got, "/a 10003 <nil> sum=\"42\"") ||
					!strings.Contains(got, "/c 10000 <nil>") {
					t.Fatalf("buffer %d: %d answers:\n%s", bufSize, n, got)
				}
			}
			if dateless(got) != dateless(want) {
				t.Fatalf("buffer %d, step %d:\n%s\nwant\n%s", bufSize, step, got, want)
			}
		}
	}
}

// dateless drops the Date fields of responses, for comparison.
func dateless(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(s, "\r\n") {
		if !strings.HasPrefix(line, "Date: ") {
			b.WriteString(line + "\r\n")
		}
	}
	return b.String()
}

// What a handler reads from a body that is cut short or malformed, and
// what the client gets: the handler's answer, then the connection closes.
func TestBodyErrors(t *testing.T) {
	const chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
	const next = "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"
	for _, tc := range []struct {
		name, in string
		read     string // what the handler read and the error it got
		status   int
	}{
		{"chunked cut in data", chunked + "\r\n5\r\nhel", `"hel" unexpected EOF`, 200},
		{"chunked cut in size line", chunked + "\r\n5\r\nhello\r\n1", `"hello" unexpected EOF`, 200},
		{"length cut", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhel", `"hel" unexpected EOF`, 200},
		{"chunk size not hex", chunked + "\r\nzz\r\n" + next, `"" strict: invalid chunk size (400)`, 200},
		{"trailer too large", chunked + "\r\n0\r\nX: " + strings.Repeat("a", 70<<10) + "\r\n\r\n" + next, `"" strict: trailer section too large (431)`, 200},
		{"bad trailer key", chunked + "Trailer: Content-Length\r\n\r\n0\r\n\r\n" + next, "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var read string
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, err := io.ReadAll(r.Body)
				read = fmt.Sprintf("%q %v", b, err)
				if ce := (*strict.ChunkError)(nil); errors.As(err, &ce) {
					read += fmt.Sprintf(" (%d)", ce.Status)
				}
				io.WriteString(w, "answered")
			})
			mc := &testkit.Conn{In: []byte(tc.in)}
			(&Server{Handler: h}).serveConn(mc)
			out := mc.Out.String()
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
			if err != nil {
				t.Fatalf("%v: %q", err, out)
			}
			if read != tc.read || resp.StatusCode != tc.status || !resp.Close || strings.Count(out, "HTTP/1.1") != 1 {
				t.Errorf("handler read %s, client got\n%s\nwant %s and one %d with Connection: close", read, out, tc.read, tc.status)
			}
		})
	}
}
