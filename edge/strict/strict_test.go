package strict_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge/strict"
)

type seen struct {
	Method, URI, Host, Body string
	Trailer                 http.Header
	BodyErr                 error
}

type recorder struct {
	mu   sync.Mutex
	reqs []seen
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/hijack" {
		hijackEcho(w)
		return
	}
	body, err := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Body: string(body), Trailer: r.Trailer, BodyErr: err})
	rec.mu.Unlock()
	fmt.Fprintf(w, "ok %s %s %d", r.Method, r.RequestURI, len(body))
}

func (rec *recorder) seen() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]seen(nil), rec.reqs...)
}

// hijackEcho switches protocols and echoes one line of raw bytes.
func hijackEcho(w http.ResponseWriter) {
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	brw.Flush()
	line, _ := brw.ReadBytes('!')
	brw.Write(line)
	brw.Flush()
}

// oneByteListener delivers every connection's input one byte per Read.
type oneByteListener struct{ net.Listener }

func (l oneByteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return oneByteConn{c}, nil
}

type oneByteConn struct{ net.Conn }

func (c oneByteConn) Read(p []byte) (int, error) { return c.Conn.Read(p[:min(len(p), 1)]) }

type serverOpts struct {
	cfg      strict.Config
	oneByte  bool
	noStrict bool
}

func startServer(t testing.TB, o serverOpts) (string, *recorder) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if o.oneByte {
		ln = oneByteListener{ln}
	}
	if !o.noStrict {
		ln = strict.NewListener(ln, o.cfg)
	}
	rec := &recorder{}
	srv := &http.Server{Handler: rec, ConnState: strict.ConnState(nil), ReadHeaderTimeout: 30 * time.Second}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return addr, rec
}

// exchange writes raw and reads until the server closes the connection.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) // failure guard only
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("connection not closed by server: %v (got %q)", err, b)
	}
	return string(b)
}

const host = "Host: example.com\r\n"

var badCases = []struct {
	name, raw string
	status    int
}{
	{"CL.TE", "POST / HTTP/1.1\r\n" + host + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", 400},
	{"TE.CL", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400},
	{"TE.TE xchunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
	{"TE space before colon", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE folded", "POST / HTTP/1.1\r\n" + host + "Content-Length: 4\r\nTransfer-Encoding:\r\n\tchunked\r\n\r\n0\r\n\r\n", 400},
	{"TE tab value with CL", "POST / HTTP/1.1\r\n" + host + "Content-Length: 4\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n", 400},
	{"TE obs-fold continuation", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE chunked, identity", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400},
	{"TE chunked twice in list", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE chunked twice in fields", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE gzip, chunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
	{"TE with params", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", 400},
	{"TE empty element", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: , chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE line LF-terminated", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\n\r\n0\r\n\r\n", 400},
	{"LF-only head", "GET / HTTP/1.1\nHost: example.com\n\n", 400},
	{"LF-only request-line", "GET / HTTP/1.1\n" + host + "\r\n", 400},
	{"CL plus sign", "POST / HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\nhello", 400},
	{"CL minus sign", "POST / HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", 400},
	{"CL list disagree", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5, 6\r\n\r\nhello!", 400},
	{"CL list agree", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5, 5\r\n\r\nhello", 400},
	{"CL duplicate fields", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
	{"CL duplicate differ", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 0\r\n\r\nhello", 400},
	{"CL space inside", "POST / HTTP/1.1\r\n" + host + "Content-Length: 1 0\r\n\r\n0123456789", 400},
	{"CL hex", "POST / HTTP/1.1\r\n" + host + "Content-Length: 0x5\r\n\r\nhello", 400},
	{"CL overflow", "POST / HTTP/1.1\r\n" + host + "Content-Length: 99999999999999999999\r\n\r\n", 400},
	{"CL empty", "POST / HTTP/1.1\r\n" + host + "Content-Length:\r\n\r\n", 400},
	{"CL space before colon", "POST / HTTP/1.1\r\n" + host + "Content-Length : 5\r\n\r\nhello", 400},
	{"obs-fold", "GET / HTTP/1.1\r\n" + host + "X-A: b\r\n c\r\n\r\n", 400},
	{"obs-fold first line", "GET / HTTP/1.1\r\n X-A: b\r\n" + host + "\r\n", 400},
	{"NUL in value", "GET / HTTP/1.1\r\n" + host + "X-A: a\x00b\r\n\r\n", 400},
	{"CR in value", "GET / HTTP/1.1\r\n" + host + "X-A: a\rb\r\n\r\n", 400},
	{"DEL in value", "GET / HTTP/1.1\r\n" + host + "X-A: a\x7fb\r\n\r\n", 400},
	{"VT in value", "GET / HTTP/1.1\r\n" + host + "X-A: a\x0bb\r\n\r\n", 400},
	{"invalid field name", "GET / HTTP/1.1\r\n" + host + "X(A): b\r\n\r\n", 400},
	{"field without colon", "GET / HTTP/1.1\r\n" + host + "X-A b\r\n\r\n", 400},
	{"empty field name", "GET / HTTP/1.1\r\n" + host + ": b\r\n\r\n", 400},
	{"invalid method", "G@T / HTTP/1.1\r\n" + host + "\r\n", 400},
	{"method with tab", "GET\t/ HTTP/1.1\r\n" + host + "\r\n", 400},
	{"double space", "GET  / HTTP/1.1\r\n" + host + "\r\n", 400},
	{"space in target", "GET /a b HTTP/1.1\r\n" + host + "\r\n", 400},
	{"CTL in target", "GET /a\x01b HTTP/1.1\r\n" + host + "\r\n", 400},
	{"fragment in target", "GET /a#b HTTP/1.1\r\n" + host + "\r\n", 400},
	{"bad pct-encoding", "GET /a%zz HTTP/1.1\r\n" + host + "\r\n", 400},
	{"non-ASCII target", "GET /\xc3\xa9 HTTP/1.1\r\n" + host + "\r\n", 400},
	{"HTTP/1.2", "GET / HTTP/1.2\r\n" + host + "\r\n", 505},
	{"HTTP/2.0", "GET / HTTP/2.0\r\n" + host + "\r\n", 505},
	{"HTTP/0.9 style", "GET /\r\n\r\n", 400},
	{"lowercase version", "GET / http/1.1\r\n" + host + "\r\n", 400},
	{"trailing space after version", "GET / HTTP/1.1 \r\n" + host + "\r\n", 400},
	{"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
	{"two Host", "GET / HTTP/1.1\r\n" + host + "Host: evil.com\r\n\r\n", 400},
	{"Host disagrees with absolute-form", "GET http://example.com/ HTTP/1.1\r\nHost: evil.com\r\n\r\n", 400},
	{"Host port disagrees", "GET http://example.com/ HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", 400},
	{"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
	{"Host with userinfo", "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400},
	{"Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
	{"Host empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400},
	{"Host bad port", "GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400},
	{"absolute-form userinfo", "GET http://u@example.com/ HTTP/1.1\r\n" + host + "\r\n", 400},
	{"absolute-form ftp", "GET ftp://example.com/ HTTP/1.1\r\n" + host + "\r\n", 400},
	{"asterisk on GET", "GET * HTTP/1.1\r\n" + host + "\r\n", 400},
	{"CONNECT without port", "CONNECT example.com HTTP/1.1\r\n" + host + "\r\n", 400},
	{"three leading CRLF", "\r\n\r\n\r\nGET / HTTP/1.1\r\n" + host + "\r\n", 400},
	{"leading bare LF", "\nGET / HTTP/1.1\r\n" + host + "\r\n", 400},
	{"h2c prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
	{"too many fields", "GET / HTTP/1.1\r\n" + host + strings.Repeat("X-A: b\r\n", 10) + "\r\n", 431},
	{"head too large", "GET / HTTP/1.1\r\n" + host + "X-A: " + strings.Repeat("b", 2000) + "\r\n\r\n", 431},
	{"URI too long", "GET /" + strings.Repeat("a", 600) + " HTTP/1.1\r\n" + host + "\r\n", 414},
	{"URI too long, huge line", "GET /" + strings.Repeat("a", 3000) + " HTTP/1.1\r\n" + host + "\r\n", 414},
}

func smallLimits() strict.Config {
	return strict.Config{MaxHeaderBytes: 1024, MaxHeaderCount: 8, MaxURILength: 512, MaxChunkExtBytes: 32}
}

func TestRejectHead(t *testing.T) {
	rejects := make(chan string, 2*len(badCases))
	var overflow atomic.Int32 // calls beyond the channel's room: surely too many
	cfg := smallLimits()
	cfg.OnReject = func(reason string, status int, _ net.Addr) {
		select {
		case rejects <- fmt.Sprint(status, " ", reason):
		default:
			overflow.Add(1)
		}
	}
	addr, rec := startServer(t, serverOpts{cfg: cfg})
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			got := exchange(t, addr, tc.raw)
			want := fmt.Sprintf("HTTP/1.1 %d ", tc.status)
			if !strings.HasPrefix(got, want) {
				t.Fatalf("got %q, want status line %q", got, want)
			}
			if !strings.Contains(got, "\r\nConnection: close\r\n") {
				t.Errorf("no Connection: close in %q", got)
			}
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
			if err != nil {
				t.Fatalf("unparsable rejection %q: %v", got, err)
			}
			b, _ := io.ReadAll(resp.Body)
			t.Logf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
			if n := len(rec.seen()); n != 0 {
				t.Fatalf("handler saw %d requests: %+v", n, rec.seen())
			}
		})
	}
	// The hook may run just after the client has read the rejection: wait
	// for each call, then for any extra one already made.
	timeout := time.After(5 * time.Second)
	n := 0
wait:
	for n < len(badCases) {
		select {
		case <-rejects:
			n++
		case <-timeout:
			break wait
		}
	}
	n += len(rejects) + int(overflow.Load())
	if n != len(badCases) {
		t.Errorf("OnReject called %d times for %d cases", n, len(badCases))
	}
}

func chunkedPost(body string) string {
	return "POST /up HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" + body
}

func TestRejectBody(t *testing.T) {
	cases := []struct{ name, raw string }{
		{"size not hex", chunkedPost("zz\r\nhello\r\n0\r\n\r\n")},
		{"size with plus", chunkedPost("+5\r\nhello\r\n0\r\n\r\n")},
		{"size 0x", chunkedPost("0x5\r\nhello\r\n0\r\n\r\n")},
		{"size negative", chunkedPost("-1\r\nhello\r\n0\r\n\r\n")},
		{"size overflow", chunkedPost("10000000000000000\r\nhello\r\n0\r\n\r\n")},
		{"size 2^63", chunkedPost("8000000000000000\r\nhello\r\n0\r\n\r\n")},
		{"size too many digits", chunkedPost("00000000000000005\r\nhello\r\n0\r\n\r\n")},
		{"size then space", chunkedPost("5 \r\nhello\r\n0\r\n\r\n")},
		{"size LF only", chunkedPost("5\nhello\r\n0\r\n\r\n")},
		{"empty size line", chunkedPost("\r\nhello\r\n0\r\n\r\n")},
		{"data without CRLF", chunkedPost("5\r\nhelloX\r\n0\r\n\r\n")},
		{"data then LF", chunkedPost("5\r\nhello\n0\r\n\r\n")},
		{"data longer than size", chunkedPost("3\r\nhello\r\n0\r\n\r\n")},
		{"ext too long", chunkedPost("5;" + strings.Repeat("a", 40) + "\r\nhello\r\n0\r\n\r\n")},
		{"ext with CTL", chunkedPost("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n")},
		{"ext with space", chunkedPost("5; a=b\r\nhello\r\n0\r\n\r\n")},
		{"ext bare LF", chunkedPost("5;a=b\nhello\r\n0\r\n\r\n")},
		{"trailer obs-fold", chunkedPost("0\r\nX-T: a\r\n b\r\n\r\n")},
		{"trailer Content-Length", chunkedPost("0\r\nContent-Length: 5\r\n\r\n")},
		{"trailer Transfer-Encoding", chunkedPost("0\r\ntransfer-encoding: chunked\r\n\r\n")},
		{"trailer NUL", chunkedPost("0\r\nX-T: a\x00\r\n\r\n")},
		{"trailer LF", chunkedPost("0\r\nX-T: a\n\r\n")},
		{"final LF", chunkedPost("0\r\n\n")},
	}
	addr, rec := startServer(t, serverOpts{cfg: smallLimits()})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := exchange(t, addr, tc.raw)
			if !strings.HasPrefix(got, "HTTP/1.1 400 ") || strings.Count(got, "HTTP/1.1") != 1 {
				t.Fatalf("got %q, want a lone 400", got)
			}
		})
	}
	for _, s := range rec.seen() {
		if s.BodyErr == nil {
			t.Errorf("handler read a bad body without error: %+v", s)
		}
	}
}

// readResponses reads n responses from br and returns their bodies.
func readResponses(t *testing.T, br *bufio.Reader, n int) []string {
	t.Helper()
	var out []string
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", len(out), err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d %s", resp.StatusCode, b))
	}
	return out
}

var goodRequests = []struct{ raw, want string }{
	{"GET /a?x=1&y=[2]|{3}%zz HTTP/1.1\r\n" + host + "Accept: */*\r\nX-Obs: caf\xc3\xa9\r\n\r\n", "200 ok GET /a?x=1&y=[2]|{3}%zz 0"},
	{"POST /p HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello", "200 ok POST /p 5"},
	{"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: Chunked\r\nTrailer: X-Sum\r\n\r\n5;name=\"v a\\\"l\";x\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n", "200 ok POST /c 11"},
	{"\r\nGET /lead HTTP/1.1\r\n" + host + "\r\n", "200 ok GET /lead 0"},
	{"GET http://Example.COM:80/abs HTTP/1.1\r\nHost: example.com\r\n\r\n", "200 ok GET http://Example.COM:80/abs 0"},
	{"OPTIONS * HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "200 "}, // answered by net/http itself
	{"GET /big HTTP/1.1\r\n" + host + strings.Repeat("X-Big: "+strings.Repeat("v", 500)+"\r\n", 60) + "\r\n", "200 ok GET /big 0"},
	{"DELETE /d HTTP/1.1\r\n" + host + "Content-Length: 000\r\n\r\n", "200 ok DELETE /d 0"},
}

func TestAccept(t *testing.T) {
	for _, mode := range []struct {
		name    string
		oneByte bool
	}{{"bulk", false}, {"one-byte", true}} {
		t.Run(mode.name, func(t *testing.T) {
			addr, rec := startServer(t, serverOpts{oneByte: mode.oneByte})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			// keep-alive, one at a time
			for _, g := range goodRequests {
				io.WriteString(c, g.raw)
				if got := readResponses(t, br, 1)[0]; got != g.want {
					t.Errorf("got %q, want %q", got, g.want)
				}
			}
			// pipelined in one write
			var all strings.Builder
			for _, g := range goodRequests {
				all.WriteString(g.raw)
			}
			io.WriteString(c, all.String())
			got := readResponses(t, br, len(goodRequests))
			for i, g := range goodRequests {
				if got[i] != g.want {
					t.Errorf("pipelined %d: got %q, want %q", i, got[i], g.want)
				}
			}
			// HTTP/1.0 without Host, then the server closes.
			io.WriteString(c, "GET /old HTTP/1.0\r\n\r\n")
			if got := readResponses(t, br, 1)[0]; got != "200 ok GET /old 0" {
				t.Errorf("HTTP/1.0: got %q", got)
			}
			seen := rec.seen()
			if len(seen) != 2*(len(goodRequests)-1)+1 {
				t.Fatalf("handler saw %d requests", len(seen))
			}
			chunked := seen[2]
			if chunked.Body != "hello world" || chunked.Trailer.Get("X-Sum") != "42" {
				t.Errorf("chunked request arrived as %+v", chunked)
			}
			if seen[1].Body != "hello" {
				t.Errorf("CL body arrived as %q", seen[1].Body)
			}
		})
	}
}

func TestPipelinedBadAfterGood(t *testing.T) {
	addr, rec := startServer(t, serverOpts{})
	got := exchange(t, addr, "GET /1 HTTP/1.1\r\n"+host+"\r\n"+
		"POST /2 HTTP/1.1\r\n"+host+"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	br := bufio.NewReader(strings.NewReader(got))
	if r := readResponses(t, br, 2); r[0] != "200 ok GET /1 0" || !strings.HasPrefix(r[1], "400 ") {
		t.Fatalf("got %q", r)
	}
	if n := len(rec.seen()); n != 1 {
		t.Fatalf("handler saw %d requests, want 1", n)
	}
}

func TestKeepAliveThenBad(t *testing.T) {
	addr, rec := startServer(t, serverOpts{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /1 HTTP/1.1\r\n"+host+"\r\n")
	readResponses(t, br, 1)
	io.WriteString(c, "GET /2 HTTP/1.1\r\n"+host+"X: a\r\n b\r\n\r\n")
	if r := readResponses(t, br, 1); !strings.HasPrefix(r[0], "400 obs-fold") {
		t.Fatalf("got %q", r)
	}
	if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
		t.Fatalf("after rejection: %q, %v", b, err)
	}
	if n := len(rec.seen()); n != 1 {
		t.Fatalf("handler saw %d requests, want 1", n)
	}
}

func TestHijackPassthrough(t *testing.T) {
	addr, _ := startServer(t, serverOpts{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /hijack HTTP/1.1\r\n"+host+"Upgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("got %v, %v", resp, err)
	}
	const raw = "\x00\nnot http\r\n\r\nContent-Length: +1\n!"
	io.WriteString(c, raw)
	b, err := io.ReadAll(br)
	if err != nil || string(b) != raw {
		t.Fatalf("echo %q, %v; want %q", b, err, raw)
	}
}

func BenchmarkStrictVsPlainHit(b *testing.B) {
	for _, mode := range []struct {
		name  string
		plain bool
	}{{"plain", true}, {"strict", false}} {
		b.Run(mode.name, func(b *testing.B) {
			addr, _ := startServer(b, serverOpts{noStrict: mode.plain})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte("GET /assets/app.js?v=12 HTTP/1.1\r\nHost: cdn.example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip, br\r\n\r\n")
			br := bufio.NewReader(c)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
