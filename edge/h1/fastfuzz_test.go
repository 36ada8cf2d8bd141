package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/internal/testkit"
)

// fastEcho answers requests for paths under /f on the fast path (HEAD
// without a body), declining everything else.
type fastEcho struct{ methods *[]string }

func (f fastEcho) ServeFast(w *FastWriter) bool {
	h := w.Head()
	if !bytes.HasPrefix(h.Target, []byte("/f")) {
		return false
	}
	body := append([]byte("fast "), h.Target...)
	b := w.Buffer()
	b = append(b, "HTTP/1."...)
	b = append(b, byte('0'+h.Minor))
	b = append(b, " 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n"...)
	*f.methods = append(*f.methods, string(h.Method))
	if string(h.Method) == http.MethodHead {
		body = nil
	}
	w.Write(b, body)
	return true
}

// FuzzFastConn is FuzzConn with a fast path that answers some requests:
// the loop's two paths interleave on one connection, and every response
// is still well framed and in order.
func FuzzFastConn(f *testing.F) {
	for _, s := range []string{
		"GET /f1 HTTP/1.1\r\nHost: h\r\n\r\nGET /g HTTP/1.1\r\nHost: h\r\n\r\nHEAD /f2 HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /f HTTP/1.0\r\n\r\n",
		"GET /f HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /f HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /f HTTP/1.1\r\n\r\n",
		"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /f HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /f HTTP/1.1\r\nConnection: x, Close\r\nConnection: keep-alive\r\n\r\nGET /f HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var methods []string
		general := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			methods = append(methods, r.Method)
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
			io.WriteString(w, "general "+r.RequestURI)
		})
		mc := &testkit.Conn{In: in}
		(&Server{Handler: general, Fast: fastEcho{&methods}}).serveConn(mc)
		out := mc.Out.Bytes()
		br := bufio.NewReader(bytes.NewReader(out))
		for i := 0; ; i++ {
			if _, err := br.Peek(1); err == io.EOF {
				return
			}
			req := &http.Request{Method: http.MethodGet}
			if i < len(methods) {
				req.Method = methods[i]
			}
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatalf("unreadable response: %v\ninput %q\noutput %q", err, in, out)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("badly framed body: %v\ninput %q\noutput %q", err, in, out)
			}
			if resp.StatusCode == 200 && req.Method != http.MethodHead && !strings.HasPrefix(string(b), "fast /") && !strings.HasPrefix(string(b), "general ") && !bytes.Contains(b, []byte("general ")) {
				t.Fatalf("response %d is not its request's: %q\ninput %q", i, b, in)
			}
		}
	})
}
