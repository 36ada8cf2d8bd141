package strict

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/internal/testkit"
)

func TestParseHead(t *testing.T) {
	for _, tt := range []struct {
		name   string
		in     string
		err    error // ErrIncomplete, ErrPreface, or nil
		status int   // a *HeadError's status
		want   Head  // Method, Target, Minor, ContentLength, Chunked, Len (fields: wantF)
		wantF  []string
	}{
		{name: "get", in: "GET /a?b HTTP/1.1\r\nHost: h\r\nX-A:  v \r\n\r\n",
			want: Head{Method: []byte("GET"), Target: []byte("/a?b"), Minor: 1, ContentLength: 0, Len: 40}, wantF: []string{"Host=h", "X-A=v"}},
		{name: "body after head", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
			want: Head{Method: []byte("POST"), Target: []byte("/"), Minor: 1, ContentLength: 3, Len: 47}, wantF: []string{"Host=h", "Content-Length=3"}},
		{name: "chunked", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
			want: Head{Method: []byte("POST"), Target: []byte("/"), Minor: 1, ContentLength: -1, Chunked: true, Len: 56}, wantF: []string{"Host=h", "Transfer-Encoding=chunked"}},
		{name: "http/1.0 without host", in: "GET / HTTP/1.0\r\n\r\n",
			want: Head{Method: []byte("GET"), Target: []byte("/"), Minor: 0, ContentLength: 0, Len: 18}},
		{name: "two leading empty lines", in: "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
			want: Head{Method: []byte("GET"), Target: []byte("/"), Minor: 1, ContentLength: 0, Len: 31}, wantF: []string{"Host=h"}},
		{name: "incomplete", in: "GET / HTTP/1.1\r\nHost: h\r\n", err: ErrIncomplete},
		{name: "incomplete line", in: "GET / HTT", err: ErrIncomplete},
		{name: "empty", in: "", err: ErrIncomplete},
		{name: "preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", err: ErrPreface},
		{name: "three leading empty lines", in: "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", status: 400},
		{name: "bare LF", in: "GET / HTTP/1.1\nHost: h\r\n\r\n", status: 400},
		{name: "duplicate host", in: "GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", status: 400},
		{name: "no host on 1.1", in: "GET / HTTP/1.1\r\n\r\n", status: 400},
		{name: "cl and te", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "gzip coding", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", status: 501},
		{name: "http/2.0 request line", in: "GET / HTTP/2.0\r\nHost: h\r\n\r\n", status: 505},
		{name: "target too long", in: "GET /" + strings.Repeat("a", 70000), status: 414},
		{name: "head too large", in: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 70000), status: 431},
		{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", status: 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h Head
			err := ParseHead([]byte(tt.in), Config{}, &h)
			var he *HeadError
			switch {
			case tt.status != 0:
				if !errors.As(err, &he) || he.Status != tt.status {
					t.Fatalf("err = %v, want a %d", err, tt.status)
				}
				return
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			case err != nil:
				t.Fatalf("err = %v", err)
			}
			got := h
			got.Fields = nil
			if !headEqual(got, tt.want) {
				t.Errorf("head = %s %s 1.%d cl=%d chunked=%v len=%d, want %s %s 1.%d cl=%d chunked=%v len=%d",
					got.Method, got.Target, got.Minor, got.ContentLength, got.Chunked, got.Len,
					tt.want.Method, tt.want.Target, tt.want.Minor, tt.want.ContentLength, tt.want.Chunked, tt.want.Len)
			}
			var fs []string
			for _, f := range h.Fields {
				fs = append(fs, string(f.Name)+"="+string(f.Value))
			}
			if !slices.Equal(fs, tt.wantF) {
				t.Errorf("fields = %q, want %q", fs, tt.wantF)
			}
		})
	}
}

func headEqual(a, b Head) bool {
	return bytes.Equal(a.Method, b.Method) && bytes.Equal(a.Target, b.Target) && a.Minor == b.Minor &&
		a.ContentLength == b.ContentLength && a.Chunked == b.Chunked && a.Len == b.Len
}

func TestHeadGet(t *testing.T) {
	var h Head
	if err := ParseHead([]byte("GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\"\r\nif-none-match: \"b\"\r\n\r\n"), Config{}, &h); err != nil {
		t.Fatal(err)
	}
	if got := string(h.Get("IF-NONE-MATCH")); got != `"a"` {
		t.Errorf("Get = %q, want the first value", got)
	}
	if h.Get("Range") != nil {
		t.Error("Get of an absent field is not nil")
	}
}

// A head parsed into a Head with room for its fields allocates nothing:
// the serve loop parses every request with it.
func TestParseHeadAllocs(t *testing.T) {
	in := []byte("GET /obj/hot1k?size=1024 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: wrk\r\nAccept: */*\r\nIf-None-Match: \"x\"\r\n\r\n")
	h := Head{Fields: make([]Field, 0, 16)}
	allocs := testing.AllocsPerRun(100, func() {
		if err := ParseHead(in, Config{}, &h); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ParseHead allocates %.0f times per head, want 0", allocs)
	}
}

func BenchmarkParseHead(b *testing.B) {
	in := []byte("GET /obj/hot1k?size=1024 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n")
	h := Head{Fields: make([]Field, 0, 16)}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if err := ParseHead(in, Config{}, &h); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseHead is ParseHead's referee: whatever the bytes, it does not
// panic; it accepts a first head exactly when a Conn passes it (the same
// rules, two front ends); and what it accepts, net/http's own parser
// (http.ReadRequest) reads the same way: method, target, version, body
// framing and every field value in order.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"\r\nGET /a?b=%20 HTTP/1.0\r\nX:  y \r\nX: z\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h:80\r\nContent-Length: 5\r\n\r\nhello",
		"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
		"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var h Head
		err := ParseHead(in, Config{}, &h)
		if errors.Is(err, ErrIncomplete) {
			return
		}
		agreeWithConn(t, in, &h, err)
		if err != nil {
			return
		}
		agreeWithNetHTTP(t, in, &h)
	})
}

// agreeWithConn checks that a Conn reading in accepts its first head when
// ParseHead did, with the same request-line and framing.
func agreeWithConn(t *testing.T, in []byte, h *Head, err error) {
	t.Helper()
	c := WrapConn(&testkit.Conn{In: in, Step: len(in) + 1}, Config{AllowH2C: true})
	var first *tracedHead
	c.trace = func(i *headInfo) {
		if first == nil {
			first = &tracedHead{string(i.method), string(i.target), i.contentLength, i.chunked}
		}
	}
	pump(c, []int{4096})
	switch {
	case errors.Is(err, ErrPreface):
		return // the Conn passes a preface through (AllowH2C) without tracing it
	case err != nil && first != nil:
		t.Fatalf("ParseHead refused (%v) a head the Conn passed: %q", err, in)
	case err == nil && first == nil:
		t.Fatalf("ParseHead accepted a head the Conn refused: %q", in)
	case err == nil && (first.method != string(h.Method) || first.target != string(h.Target) ||
		first.cl != h.ContentLength || first.chunked != h.Chunked):
		t.Fatalf("Conn traced %+v, ParseHead %s %s cl=%d chunked=%v", *first, h.Method, h.Target, h.ContentLength, h.Chunked)
	}
}

// agreeWithNetHTTP checks that net/http reads an accepted head the same way.
func agreeWithNetHTTP(t *testing.T, in []byte, h *Head) {
	t.Helper()
	start := h.Len - headLen(in[:h.Len])
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in[start:h.Len])))
	if err != nil {
		if string(h.Method) == "CONNECT" || !strings.HasPrefix(string(h.Target), "/") && string(h.Target) != "*" {
			return // net/http's reader is stricter on these forms; the edge answers them itself
		}
		t.Fatalf("net/http refused a head ParseHead accepted: %v: %q", err, in[start:h.Len])
	}
	if req.Method != string(h.Method) || req.RequestURI != string(h.Target) || req.ProtoMinor != h.Minor {
		t.Fatalf("net/http read %s %s 1.%d, ParseHead %s %s 1.%d", req.Method, req.RequestURI, req.ProtoMinor, h.Method, h.Target, h.Minor)
	}
	if h.Chunked != (len(req.TransferEncoding) > 0) || (!h.Chunked && h.ContentLength >= 0 && req.ContentLength != h.ContentLength) {
		t.Fatalf("framing: net/http cl=%d te=%v, ParseHead cl=%d chunked=%v", req.ContentLength, req.TransferEncoding, h.ContentLength, h.Chunked)
	}
	want := map[string][]string{}
	for _, f := range h.Fields {
		name := http.CanonicalHeaderKey(string(f.Name))
		if name == "Host" || name == "Transfer-Encoding" {
			continue // net/http moves these out of Header (Request.Host, TransferEncoding)
		}
		want[name] = append(want[name], string(f.Value))
	}
	for name, vv := range want {
		if !slices.Equal(req.Header[name], vv) {
			t.Fatalf("field %s: net/http %q, ParseHead %q", name, req.Header[name], vv)
		}
	}
	if len(req.Header) != len(want) {
		t.Fatalf("net/http has %d field names, ParseHead %d", len(req.Header), len(want))
	}
}

// headLen is the length of the head in b without its leading empty lines.
func headLen(b []byte) int {
	for len(b) >= 2 && b[0] == '\r' && b[1] == '\n' {
		b = b[2:]
	}
	return len(b)
}
