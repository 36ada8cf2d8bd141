package h1_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge/h1"
)

// handler answers by path, covering the framing choices a server makes.
func handler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/small": // short body, no length: Content-Length computed
		io.WriteString(w, "<html>hello</html>")
	case "/large": // past the framing buffer: chunked (or close on 1.0)
		w.Header().Set("Content-Type", "application/octet-stream")
		for i := range 5 {
			w.Write(bytes.Repeat([]byte{byte('a' + i)}, 1000))
		}
	case "/one-large-write": // past the framing buffer at once: sniffed all the same
		io.WriteString(w, "<html>"+strings.Repeat("a", 3000))
	case "/small-then-large": // sniffed from both writes
		io.WriteString(w, "<ht")
		io.WriteString(w, "ml>"+strings.Repeat("a", 3000))
	case "/length": // declared length
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "12345")
	case "/flush": // flushed before the end: chunked
		io.WriteString(w, "part1")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part2")
	case "/nocontent":
		w.WriteHeader(http.StatusNoContent)
	case "/notmodified":
		w.Header().Set("Etag", `"x"`)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotModified)
	case "/status":
		w.Header().Set("X-A", "b")
		w.Header().Add("X-A", "c")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "short and stout")
	case "/echo": // reads the request body
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d %q host=%s", r.Method, r.RequestURI, r.ContentLength, b, r.Host)
	case "/headers":
		var keys []string
		for k := range r.Header {
			keys = append(keys, k+"="+strings.Join(r.Header[k], "|"))
		}
		slices.Sort(keys)
		io.WriteString(w, strings.Join(keys, ";"))
	case "/close":
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	case "/trailer": // announced trailer: chunked, the field after the body
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
	case "/trailer-prefix":
		io.WriteString(w, "body")
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	case "/hijack": // a handler that takes the connection over
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		brw.Flush()
		conn.Close()
	case "/file": // a file through ReadFrom (sendfile where the server can)
		f, err := os.Open(filePath)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		st, _ := f.Stat()
		w.Header().Set("Content-Length", strconv.FormatInt(st.Size(), 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, &io.LimitedReader{R: f, N: st.Size()})
	case "/empty":
	default:
		http.NotFound(w, r)
	}
}

// filePath is the file /file serves, written by servers.
var filePath string

// servers starts the handler behind net/http and behind h1.
func servers(t *testing.T) (netHTTP, ours string) {
	t.Helper()
	filePath = filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(filePath, bytes.Repeat([]byte("0123456789abcdef"), 20000), 0o600); err != nil {
		t.Fatal(err)
	}
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(handler)}
	go srv.Serve(ln1)
	t.Cleanup(func() { srv.Close() })
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go (&h1.Server{Handler: http.HandlerFunc(handler)}).Serve(ln2)
	t.Cleanup(func() { ln2.Close() })
	return ln1.Addr().String(), ln2.Addr().String()
}

// exchange sends raw on a fresh connection and reads want responses (for
// methods in order), then whether the server closed the connection.
func exchange(t *testing.T, addr, raw string, methods []string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []string
	for _, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			out = append(out, "error: "+err.Error())
			break
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, describe(resp, b, err))
		if resp.Close {
			break
		}
	}
	return out
}

// describe renders a response for comparison: status, proto, framing,
// every header field but Date, and the body.
func describe(resp *http.Response, body []byte, err error) string {
	var keys []string
	for k, vv := range resp.Header {
		if k != "Date" {
			keys = append(keys, k+": "+strings.Join(vv, ", "))
		}
	}
	slices.Sort(keys)
	if _, ok := resp.Header["Date"]; !ok {
		keys = append(keys, "(no Date)")
	}
	var trailers []string
	for k, vv := range resp.Trailer {
		trailers = append(trailers, k+": "+strings.Join(vv, ", "))
	}
	slices.Sort(trailers)
	return fmt.Sprintf("%s %d cl=%d te=%v close=%v\n%s\nbody=%q err=%v\ntrailers %s", resp.Proto, resp.StatusCode,
		resp.ContentLength, resp.TransferEncoding, resp.Close, strings.Join(keys, "\n"), body, err, strings.Join(trailers, "; "))
}

// The differential test: one corpus through net/http's server and h1,
// every response compared field by field (Date ignored) and byte for byte.
func TestSameAnswersAsNetHTTP(t *testing.T) {
	ref, ours := servers(t)
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n" }
	for _, tc := range []struct {
		name    string
		raw     string
		methods []string
	}{
		{"small", get("/small"), []string{"GET"}},
		{"large chunked", get("/large"), []string{"GET"}},
		{"one large write", get("/one-large-write"), []string{"GET"}},
		{"small then large write", get("/small-then-large"), []string{"GET"}},
		{"declared length", get("/length"), []string{"GET"}},
		{"flushed", get("/flush"), []string{"GET"}},
		{"204", get("/nocontent"), []string{"GET"}},
		{"304", get("/notmodified"), []string{"GET"}},
		{"status and repeated fields", get("/status"), []string{"GET"}},
		{"empty", get("/empty"), []string{"GET"}},
		{"404", get("/nowhere"), []string{"GET"}},
		{"HEAD small", "HEAD /small HTTP/1.1\r\nHost: h\r\n\r\n", []string{"HEAD"}},
		{"HEAD large", "HEAD /large HTTP/1.1\r\nHost: h\r\n\r\n", []string{"HEAD"}},
		{"HEAD empty", "HEAD /empty HTTP/1.1\r\nHost: h\r\n\r\n", []string{"HEAD"}},
		{"http/1.0 small", "GET /small HTTP/1.0\r\n\r\n", []string{"GET"}},
		{"http/1.0 large", "GET /large HTTP/1.0\r\n\r\n", []string{"GET"}},
		{"http/1.0 keep-alive", "GET /small HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /length HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", []string{"GET", "GET"}},
		{"connection close", "GET /small HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + get("/small"), []string{"GET", "GET"}},
		{"handler closes", get("/close") + get("/small"), []string{"GET", "GET"}},
		{"pipelined", get("/small") + get("/length") + get("/large") + get("/nocontent"), []string{"GET", "GET", "GET", "GET"}},
		{"body by length", "POST /echo?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" + get("/small"), []string{"POST", "GET"}},
		{"chunked body", "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" + get("/small"), []string{"POST", "GET"}},
		{"unread body", "POST /small HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" + get("/length"), []string{"POST", "GET"}},
		{"expect 100-continue", "POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok", []string{"POST"}},
		{"request fields", "GET /headers HTTP/1.1\r\nHost: h\r\nx-lower: a\r\nX-Lower: b\r\nAccept: */*\r\n\r\n", []string{"GET"}},
		{"absolute form", "GET http://h/echo HTTP/1.1\r\nHost: h\r\n\r\n", []string{"GET"}},
		{"trailer", get("/trailer") + get("/small"), []string{"GET", "GET"}},
		{"trailer prefix", get("/trailer-prefix"), []string{"GET"}},
		{"hijack", get("/hijack"), []string{"GET"}},
		{"file by ReadFrom", get("/file") + get("/small"), []string{"GET", "GET"}},
		{"HEAD file", "HEAD /file HTTP/1.1\r\nHost: h\r\n\r\n", []string{"HEAD"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := exchange(t, ref, tc.raw, tc.methods)
			got := exchange(t, ours, tc.raw, tc.methods)
			if !slices.Equal(got, want) {
				t.Errorf("h1 answered\n%s\n\nnet/http answered\n%s", strings.Join(got, "\n--\n"), strings.Join(want, "\n--\n"))
			}
		})
	}
}
