package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"

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
