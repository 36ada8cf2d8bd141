package h1_test

import (
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

	"github.com/edged-proxy/edged/edge/h1"
	"github.com/edged-proxy/edged/internal/testkit"
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
		io.WriteString(w, fields(r.Header))
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
	case "/upload": // reads the body to its end and tells what it got
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "n=%d %q failed=%v cl=%d te=%v trailer=%s header-trailer=%q",
			len(b), b, err != nil, r.ContentLength, r.TransferEncoding, fields(r.Trailer), r.Header["Trailer"])
	case "/empty":
	default:
		http.NotFound(w, r)
	}
}

// fields renders h sorted, for comparison.
func fields(h http.Header) string {
	var keys []string
	for k := range h {
		keys = append(keys, k+"="+strings.Join(h[k], "|"))
	}
	slices.Sort(keys)
	return strings.Join(keys, ";")
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

		// Chunked uploads, read by the strict decoder: where the strict
		// rules and net/http agree, the same answers.
		{"chunked extensions", upload("", "3;a=b\r\nabc\r\n2;q=\"x \\\" y\";r\r\nde\r\n0;last=1\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		{"chunked hex digits", upload("", "0000A\r\n0123456789\r\nf\r\n0123456789ABCDE\r\n00\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		{"chunked large", upload("", "2710\r\n"+strings.Repeat("q", 10000)+"\r\n0\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		{"chunked trailers", upload("", "2\r\nhi\r\n0\r\nX-Sum: 42\r\nX-Sum: 7\r\nX-Empty:\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		{"chunked announced trailers", upload("Trailer: x-sum, X-Later\r\n", "2\r\nhi\r\n0\r\nX-Sum:  42 \r\nX-Other: o\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		{"chunked empty", upload("", "0\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		{"chunked unread", "POST /small HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get("/length"), []string{"POST", "GET"}},
		{"chunked expect 100-continue", upload("Expect: 100-continue\r\n", "3\r\nabc\r\n0\r\n\r\n"), []string{"POST"}},
		{"chunked size not hex", upload("", "zz\r\nabc\r\n0\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		{"chunked size bare LF", upload("", "3\nabc\r\n0\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		{"chunked size 17 digits", upload("", "00000000000000003\r\nabc\r\n0\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		{"chunked size then space", upload("", "3 ;a=b\r\nabc\r\n0\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		{"chunked data longer than size", upload("", "3\r\nabcd\r\n0\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		{"chunked second size bad", upload("", "3\r\nabc\r\n-1\r\nx\r\n0\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := testkit.Exchange(t, ref, tc.raw, tc.methods)
			got := testkit.Exchange(t, ours, tc.raw, tc.methods)
			if !slices.Equal(got, want) {
				t.Errorf("h1 answered\n%s\n\nnet/http answered\n%s", strings.Join(got, "\n--\n"), strings.Join(want, "\n--\n"))
			}
		})
	}
}

// upload is a chunked POST to /upload with extra head fields and the body.
func upload(fields, body string) string {
	return "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n" + fields + "\r\n" + body
}

// Chunked bodies the strict rules refuse and net/http takes: the handler's
// read fails where net/http's would succeed, and the connection closes
// after its answer, as net/http's does after a body it refuses.
func TestChunkedStricterThanNetHTTP(t *testing.T) {
	_, ours := servers(t)
	for _, tc := range []struct{ name, body, want string }{
		{"space after semicolon", "3; a=b\r\nabc\r\n0\r\n\r\n", `n=0 "" failed=true`},
		{"extension too long", "3;" + strings.Repeat("e", 300) + "\r\nabc\r\n0\r\n\r\n", `n=0 "" failed=true`},
		{"extension empty value", "3;a=\r\nabc\r\n0\r\n\r\n", `n=0 "" failed=true`},
		{"data then bare LF", "3\r\nabc\n0\r\n\r\n", `n=3 "abc" failed=true`},
		{"size 2^63", "8000000000000000\r\nabc\r\n0\r\n\r\n", `n=0 "" failed=true`},
		{"trailer bare LF", "3\r\nabc\r\n0\r\nX-T: 1\nY: 2\r\n\r\n", `n=3 "abc" failed=true`},
		{"trailer Content-Length", "3\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n", `n=3 "abc" failed=true`},
		{"trailer obs-fold", "3\r\nabc\r\n0\r\nX-T: a\r\n b\r\n\r\n", `n=3 "abc" failed=true`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := testkit.Exchange(t, ours, upload("", tc.body)+"GET /small HTTP/1.1\r\nHost: h\r\n\r\n", []string{"POST", "GET"})
			if len(got) != 1 || !strings.HasPrefix(got[0], "HTTP/1.1 200 ") || !strings.Contains(got[0], "close=true") ||
				!strings.Contains(got[0], "body="+strings.TrimSuffix(strconv.Quote(tc.want), `"`)) {
				t.Errorf("got\n%s\nwant one 200 with Connection: close and a body starting %s", strings.Join(got, "\n--\n"), tc.want)
			}
		})
	}
}
