package strict_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/edge/strict"
	"github.com/edged-proxy/edged/internal/testkit"
)

// decoded is what a ChunkDecoder made of an input.
type decoded struct {
	data, trailer []byte
	used          int // bytes of the input the body took
	done          bool
	err           error
}

// decode runs a ChunkDecoder over in as a reader would: the input arrives
// step bytes at a time into a buffer, each call takes at most max bytes of
// data, and with direct a chunk's data is taken straight from the input
// (Remaining, Skip) when the buffer is empty.
func decode(t testing.TB, in []byte, cfg strict.Config, step, max int, direct bool) decoded {
	var d strict.ChunkDecoder
	d.Reset(cfg)
	var out decoded
	var buf []byte
	fed := 0
	for {
		if len(buf) == 0 {
			if fed == len(in) {
				return out // the body needs more input
			}
			if k := d.Remaining(); direct && k > 0 {
				k = min(k, int64(step), int64(len(in)-fed))
				out.data = append(out.data, in[fed:fed+int(k)]...)
				fed += int(k)
				out.used += int(k)
				d.Skip(int(k))
				continue
			}
			k := min(step, len(in)-fed)
			buf = append(buf, in[fed:fed+k]...)
			fed += k
		}
		tr := d.InTrailer()
		n, data, done, err := d.Decode(buf, max)
		if len(data) > max || (len(data) > 0 && &data[len(data)-1] != &buf[n-1]) {
			t.Fatalf("Decode(%q, %d) = %d, data %q: not at most max bytes ending at b[n]", buf, max, n, data)
		}
		if tr && len(data) > 0 {
			t.Fatalf("chunk data %q in the trailer section", data)
		}
		out.data = append(out.data, data...)
		if tr {
			out.trailer = append(out.trailer, buf[:n]...)
		}
		buf = buf[n:]
		out.used += n
		if err != nil || done {
			out.done, out.err = done, err
			if n2, _, done2, err2 := d.Decode(buf, max); n2 != 0 || done2 != done || err2 != err {
				t.Fatalf("after the end, Decode took %d and said %v, %v", n2, done2, err2)
			}
			return out
		}
		if n == 0 && len(buf) > 0 {
			t.Fatalf("Decode(%q, %d) made no progress", buf, max)
		}
	}
}

// trailerFields reads a trailer section as the decoder passed it.
func trailerFields(b []byte) http.Header {
	h := http.Header{}
	for line := range strings.SplitSeq(string(b), "\r\n") {
		if name, val, ok := strings.Cut(line, ":"); ok {
			name = http.CanonicalHeaderKey(name)
			h[name] = append(h[name], strings.Trim(val, " \t"))
		}
	}
	return h
}

func TestChunkDecoder(t *testing.T) {
	const next = "GET / HTTP/1.1\r\n"
	for _, tc := range []struct {
		name, in, data string
		trailer        string // the trailer section, through the final CRLF
	}{
		{"empty", "0\r\n\r\n", "", "\r\n"},
		{"two chunks", "3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n", "abc0123456789abcdef", "\r\n"},
		{"upper-case hex, leading zeros", "0000A\r\n0123456789\r\n00\r\n\r\n", "0123456789", "\r\n"},
		{"extensions", "3;a;b=c;d=\"q \\\" r\"\r\nabc\r\n0;last\r\n\r\n", "abc", "\r\n"},
		{"trailers", "2\r\nhi\r\n0\r\nX-Sum: 42\r\nX-Empty:\r\nX-Sum:  7 \r\n\r\n", "hi", "X-Sum: 42\r\nX-Empty:\r\nX-Sum:  7 \r\n\r\n"},
		{"CRLF inside data", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in + next)
			for step := 1; step <= len(in); step++ {
				for _, max := range []int{1, 3, 1 << 20} {
					for _, direct := range []bool{false, true} {
						got := decode(t, in, strict.Config{}, step, max, direct)
						if got.err != nil || !got.done || string(got.data) != tc.data || string(got.trailer) != tc.trailer || got.used != len(tc.in) {
							t.Fatalf("step %d max %d direct %v: %+v, want data %q trailer %q used %d",
								step, max, direct, got, tc.data, tc.trailer, len(tc.in))
						}
					}
				}
			}
		})
	}
}

// The decoder refuses what a Conn refuses, with the Conn's status and
// reason, and the bytes before the fault are the ones the Conn passed.
func TestChunkDecoderRefusesAsConn(t *testing.T) {
	cfg := smallLimits()
	for _, tc := range []struct{ name, body string }{
		{"size not hex", "zz\r\nhello\r\n0\r\n\r\n"},
		{"size with plus", "+5\r\nhello\r\n0\r\n\r\n"},
		{"size 0x", "0x5\r\nhello\r\n0\r\n\r\n"},
		{"size overflow", "10000000000000000\r\nhello\r\n0\r\n\r\n"},
		{"size 2^63", "8000000000000000\r\nhello\r\n0\r\n\r\n"},
		{"size too many digits", "00000000000000005\r\nhello\r\n0\r\n\r\n"},
		{"size then space", "5 \r\nhello\r\n0\r\n\r\n"},
		{"size LF only", "5\nhello\r\n0\r\n\r\n"},
		{"size CR only", "5\rhello\r\n0\r\n\r\n"},
		{"empty size line", "\r\nhello\r\n0\r\n\r\n"},
		{"data without CRLF", "5\r\nhelloX\r\n0\r\n\r\n"},
		{"data then LF", "5\r\nhello\n0\r\n\r\n"},
		{"data longer than size", "3\r\nhello\r\n0\r\n\r\n"},
		{"ext too long", "5;" + strings.Repeat("a", 40) + "\r\nhello\r\n0\r\n\r\n"},
		{"ext with CTL", "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n"},
		{"ext with space", "5; a=b\r\nhello\r\n0\r\n\r\n"},
		{"ext bare LF", "5;a=b\nhello\r\n0\r\n\r\n"},
		{"ext empty value", "5;a=\r\nhello\r\n0\r\n\r\n"},
		{"trailer obs-fold", "0\r\nX-T: a\r\n b\r\n\r\n"},
		{"trailer Content-Length", "0\r\nContent-Length: 5\r\n\r\n"},
		{"trailer Host", "0\r\nhost: h\r\n\r\n"},
		{"trailer NUL", "0\r\nX-T: a\x00\r\n\r\n"},
		{"trailer LF", "0\r\nX-T: a\n\r\n"},
		{"trailer space before colon", "0\r\nX-T : a\r\n\r\n"},
		{"trailer too many fields", "0\r\n" + strings.Repeat("X-T: a\r\n", 9) + "\r\n"},
		{"trailer section too large", "0\r\nX-T: " + strings.Repeat("a", 1100) + "\r\n\r\n"},
		{"final LF", "0\r\n\n"},
		{"final CR", "0\r\n\rX"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reason string
			var status int
			c := cfg
			c.OnReject = func(r string, s int, _ net.Addr) { reason, status = r, s }
			head := "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
			mc := &testkit.Conn{In: []byte(head + tc.body)}
			passed, _ := io.ReadAll(strict.WrapConn(mc, c))
			if status == 0 {
				t.Fatalf("the Conn passed %q", tc.body)
			}
			for _, step := range []int{1, 7, len(tc.body)} {
				got := decode(t, []byte(tc.body), cfg, step, 4, step == 7)
				var ce *strict.ChunkError
				if !errors.As(got.err, &ce) || ce.Status != status || ce.Reason != reason {
					t.Fatalf("step %d: decoder said %v, the Conn %d %q", step, got.err, status, reason)
				}
				if got.used != len(passed)-len(head) {
					t.Errorf("step %d: the fault is at %d, the Conn's at %d", step, got.used, len(passed)-len(head))
				}
			}
		})
	}
}

func TestChunkDecoderAllocs(t *testing.T) {
	body := []byte("5;a=b\r\nhello\r\n" + strings.Repeat("10\r\n0123456789abcdef\r\n", 20) + "0\r\nX-Sum: 1\r\n\r\n")
	var d strict.ChunkDecoder
	allocs := testing.AllocsPerRun(100, func() {
		d.Reset(strict.Config{})
		for b := body; ; {
			n, _, done, err := d.Decode(b, 7)
			if err != nil || done {
				break
			}
			b = b[n:]
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations a body", allocs)
	}
}

// FuzzChunkDecoder holds the decoder to three referees: itself fed in
// other pieces, a Conn (the same verdict, status and reason), and, for
// every body it accepts, net/http's chunked reader (httputil's for the
// data, http.ReadRequest's for the data, the trailer fields and where the
// body ends).
func FuzzChunkDecoder(f *testing.F) {
	for _, s := range []string{
		"3\r\nabc\r\n0\r\n\r\n",
		"3;a=b;c=\"d\\\"e\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Sum: 42\r\nX-B:\r\n\r\n",
		"5\nhello\r\n0\r\n\r\n",
		"00000000000000005\r\nhello\r\n0\r\n\r\n",
		"0\r\nContent-Length: 5\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(3), uint8(5))
	}
	cfg := strict.Config{MaxHeaderBytes: 512, MaxHeaderCount: 8, MaxChunkExtBytes: 32}
	const head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	f.Fuzz(func(t *testing.T, in []byte, step, max uint8) {
		whole := decode(t, in, cfg, len(in)+1, 1<<30, false)
		pieces := decode(t, in, cfg, int(step%17)+1, int(max%9)+1, step&1 == 1)
		if !bytes.Equal(whole.data, pieces.data) || !bytes.Equal(whole.trailer, pieces.trailer) ||
			whole.used != pieces.used || whole.done != pieces.done || !sameError(whole.err, pieces.err) {
			t.Fatalf("whole %+v, in pieces %+v", whole, pieces)
		}

		var reason string
		c := cfg
		c.OnReject = func(r string, _ int, _ net.Addr) { reason = r }
		conn := []byte(head)
		if whole.done {
			conn = append(conn, in[:whole.used]...)
		} else {
			conn = append(conn, in...)
		}
		passed, _ := io.ReadAll(strict.WrapConn(&testkit.Conn{In: conn}, c))
		var ce *strict.ChunkError
		switch {
		case errors.As(whole.err, &ce):
			if ce.Reason != reason || len(passed) != len(head)+whole.used {
				t.Fatalf("decoder: %v at %d; Conn: %q after %d bytes", whole.err, whole.used, reason, len(passed)-len(head))
			}
		case reason != "":
			t.Fatalf("the decoder took %+v, the Conn refused it: %s", whole, reason)
		}
		if !whole.done {
			return
		}

		body := in[:whole.used]
		data, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(body)))
		if tooMuchNonData(err) {
			return
		}
		if err != nil || !bytes.Equal(data, whole.data) {
			t.Fatalf("httputil read %q, %v; the decoder %q", data, err, whole.data)
		}
		br := bufio.NewReader(io.MultiReader(strings.NewReader(head), bytes.NewReader(body), strings.NewReader("GET /next HTTP/1.1\r\nHost: h\r\n\r\n")))
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatal(err)
		}
		data, err = io.ReadAll(req.Body)
		if err != nil || !bytes.Equal(data, whole.data) {
			t.Fatalf("net/http read %q, %v; the decoder %q", data, err, whole.data)
		}
		if want, got := req.Trailer, trailerFields(whole.trailer); len(want)+len(got) > 0 && !equalHeader(want, got) {
			t.Fatalf("trailers: net/http %v, the decoder %v", want, got)
		}
		if next, err := http.ReadRequest(br); err != nil || next.URL.Path != "/next" {
			t.Fatalf("the body did not end where the decoder said: next request %v", err)
		}
	})
}

func sameError(a, b error) bool {
	var ca, cb *strict.ChunkError
	if errors.As(a, &ca) && errors.As(b, &cb) {
		return *ca == *cb
	}
	return a == b
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// tooMuchNonData reports net/http's refusal of a body with more framing
// than data (many chunks with long extensions), a limit the strict rules
// do not have.
func tooMuchNonData(err error) bool {
	return err != nil && strings.Contains(err.Error(), "too much non-data")
}
