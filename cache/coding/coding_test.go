package coding_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/edged-proxy/edged/cache/coding"
)

const all = coding.Set(coding.Br | coding.Zstd | coding.Gzip)

func TestNegotiate(t *testing.T) {
	tests := []struct {
		ae   string
		have coding.Set
		want coding.Coding
	}{
		{"", all, coding.Identity},
		{"gzip", all, coding.Gzip},
		{"GZIP", all, coding.Gzip},
		{"x-gzip", all, coding.Gzip},
		{"gzip, deflate, br, zstd", all, coding.Br},
		{"gzip, deflate, br, zstd", coding.Set(coding.Zstd | coding.Gzip), coding.Zstd},
		{"gzip, deflate, br", coding.Set(coding.Gzip), coding.Gzip},
		{"deflate", all, coding.Identity},
		{"br;q=0.5, gzip", all, coding.Gzip},
		{"br;q=0.5, gzip;q=0.8, zstd;q=0.9", all, coding.Zstd},
		{"br;q=1.0, gzip;q=1", all, coding.Br},
		{"br;q=0, gzip;q=0", all, coding.Identity},
		{"*", all, coding.Br},
		{"*;q=0.1, gzip", all, coding.Gzip},
		{"*;q=0", all, coding.Identity},               // nothing acceptable: identity, never 406
		{"identity;q=0, *;q=0", all, coding.Identity}, // likewise
		{"identity;q=0", all, coding.Identity},        // no coding named: identity is all we have
		{"identity;q=0, gzip;q=0.1", all, coding.Gzip},
		{"identity, gzip;q=0.5", all, coding.Identity},   // identity preferred outright
		{"identity;q=0.5, gzip;q=0.5", all, coding.Gzip}, // ties go to the coding
		{"*;q=0.3, br;q=0.2", all, coding.Zstd},          // zstd and gzip take *'s 0.3
		{"gzip;q=2", all, coding.Identity},               // invalid qvalue: member ignored
		{"gzip;q=0.1234", all, coding.Identity},          // too many digits
		{"gzip;q=1.001", all, coding.Identity},
		{"gzip ; q = 0.5 , br ; Q=0.4", all, coding.Gzip},  // whitespace, case of q
		{"gzip;level=1;q=0.2, br;q=0.1", all, coding.Gzip}, // other parameters ignored
		{" , ,gzip,", all, coding.Gzip},
		{"br", 0, coding.Identity},
		{"zstd", coding.Set(coding.Br | coding.Gzip), coding.Identity},
		{"gzip;q=0, gzip", all, coding.Gzip}, // a coding named twice: its best q-value
	}
	for _, tt := range tests {
		if got := coding.Negotiate(tt.ae, tt.have); got != tt.want {
			t.Errorf("Negotiate(%q, %b) = %v, want %v", tt.ae, tt.have, got, tt.want)
		}
	}
}

func TestNegotiateAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { coding.Negotiate("gzip, deflate, br;q=0.9, zstd;q=0.8, *;q=0.1", all) }); n != 0 {
		t.Errorf("Negotiate allocates %v times, want 0", n)
	}
}

// qRE is the qvalue grammar of RFC 9110 §12.4.2.
var qRE = regexp.MustCompile(`^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$`)

// reference is a slow, obvious Negotiate: split, trim, ParseFloat.
func reference(ae string, have coding.Set) coding.Coding {
	qs := map[string]float64{}
	for _, m := range strings.Split(ae, ",") {
		parts := strings.Split(m, ";")
		name := strings.ToLower(strings.Trim(parts[0], " \t"))
		if name == "" {
			continue
		}
		q, ok := 1.0, true
		for _, p := range parts[1:] {
			k, v, _ := strings.Cut(p, "=")
			if strings.ToLower(strings.Trim(k, " \t")) != "q" {
				continue
			}
			v = strings.Trim(v, " \t")
			if !qRE.MatchString(v) {
				ok = false
				break
			}
			q, _ = strconv.ParseFloat(v, 64)
		}
		if !ok {
			continue
		}
		if name == "x-gzip" {
			name = "gzip"
		}
		if old, seen := qs[name]; !seen || q > old {
			qs[name] = q
		}
	}
	get := func(name string, def float64) float64 {
		if q, ok := qs[name]; ok {
			return q
		}
		if q, ok := qs["*"]; ok {
			return q
		}
		return def
	}
	best, bestQ := coding.Identity, 0.0
	for _, c := range []coding.Coding{coding.Br, coding.Zstd, coding.Gzip} {
		if have.Has(c) {
			if q := get(c.String(), 0); q > bestQ+1e-9 {
				best, bestQ = c, q
			}
		}
	}
	if best != coding.Identity && bestQ+1e-9 >= get("identity", 0) {
		return best
	}
	return coding.Identity
}

// FuzzNegotiate holds Negotiate to the reference, and to its contract:
// it picks identity or a coding it has.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "gzip", "gzip, deflate, br, zstd", "br;q=0.5, gzip;q=0.8", "*;q=0", "identity;q=0, *;q=0",
		"identity;q=0.5, gzip;q=0.5", "gzip;q=1.001", "x-gzip;Q=0.2", "*;q=0.3, br;q=0.2", "gzip ; q = 0.5 , br ; Q=0.4", "br;q=0.", "zstd;q=1.000"} {
		f.Add(s, uint8(all))
		f.Add(s, uint8(coding.Gzip))
	}
	f.Fuzz(func(t *testing.T, ae string, have uint8) {
		h := coding.Set(have) & all
		got := coding.Negotiate(ae, h)
		if got != coding.Identity && !h.Has(got) {
			t.Fatalf("Negotiate(%q, %b) = %v, not in the set", ae, h, got)
		}
		if want := reference(ae, h); got != want {
			t.Fatalf("Negotiate(%q, %b) = %v, reference says %v", ae, h, got, want)
		}
	})
}

func TestApplies(t *testing.T) {
	c, err := coding.New(coding.Config{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		hdr  http.Header
		size int64
		want bool
	}{
		{"html", http.Header{"Content-Type": {"text/html; charset=utf-8"}}, 2000, true},
		{"json", http.Header{"Content-Type": {"application/json"}}, 2000, true},
		{"svg upper case", http.Header{"Content-Type": {"Image/SVG+XML"}}, 2000, true},
		{"small", http.Header{"Content-Type": {"text/html"}}, 1023, false},
		{"exactly the minimum", http.Header{"Content-Type": {"text/html"}}, 1024, true},
		{"png", http.Header{"Content-Type": {"image/png"}}, 20000, false},
		{"woff2", http.Header{"Content-Type": {"font/woff2"}}, 20000, false},
		{"no type", http.Header{}, 20000, false},
		{"bad type", http.Header{"Content-Type": {"text/html; ="}}, 20000, false},
		{"already gzip", http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"gzip"}}, 20000, false},
		{"identity encoding", http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"identity"}}, 20000, true},
		{"no-transform", http.Header{"Content-Type": {"text/html"}, "Cache-Control": {"max-age=60, No-Transform"}}, 20000, false},
	}
	for _, tt := range tests {
		if got := c.Applies(tt.hdr, tt.size); got != tt.want {
			t.Errorf("%s: Applies = %v, want %v", tt.name, got, tt.want)
		}
	}
	var none *coding.Compressor
	if none.Applies(http.Header{"Content-Type": {"text/html"}}, 1<<20) || none.Codings() != 0 {
		t.Error("a nil Compressor compresses")
	}
	wild, err := coding.New(coding.Config{Enabled: true, Types: []string{"text/*"}, MinBytes: -1, Codings: []string{"gzip"}})
	if err != nil {
		t.Fatal(err)
	}
	if !wild.Applies(http.Header{"Content-Type": {"text/x-anything"}}, 1) || wild.Applies(http.Header{"Content-Type": {"application/json"}}, 1) {
		t.Error("text/* does not match text types only")
	}
	if wild.Codings() != coding.Set(coding.Gzip) {
		t.Errorf("Codings = %b, want gzip only", wild.Codings())
	}
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []coding.Config{
		{Enabled: true, BrotliLevel: 12},
		{Enabled: true, GzipLevel: 10},
		{Enabled: true, ZstdLevel: 23},
		{Enabled: true, Codings: []string{"deflate"}},
		{Enabled: true, Types: []string{"html"}},
		{Enabled: true, Types: []string{"text/html; charset=utf-8"}},
	} {
		if _, err := coding.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted it", cfg)
		}
	}
	if c, err := coding.New(coding.Config{}); c != nil || err != nil {
		t.Errorf("New of a disabled Config = %v, %v; want nil, nil", c, err)
	}
}

// decode decompresses b as coding cd with the libraries' own readers.
func decode(t testing.TB, cd coding.Coding, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch cd {
	case coding.Br:
		r = brotli.NewReader(bytes.NewReader(b))
	case coding.Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case coding.Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%v: %v", cd, err)
	}
	return out
}

func TestCompressRoundTrip(t *testing.T) {
	c, err := coding.New(coding.Config{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	src := bytes.Repeat([]byte("<p>edged compresses this once at fill time.</p>\n"), 400)
	for _, cd := range []coding.Coding{coding.Br, coding.Zstd, coding.Gzip} {
		for range 2 { // the second run reuses a pooled writer
			out, err := c.Compress(cd, src)
			if err != nil {
				t.Fatalf("%v: %v", cd, err)
			}
			if len(out) >= len(src)/4 {
				t.Errorf("%v: %d bytes from %d", cd, len(out), len(src))
			}
			if got := decode(t, cd, out); !bytes.Equal(got, src) {
				t.Fatalf("%v: round trip differs", cd)
			}
		}
	}
	noise := make([]byte, 64<<10) // incompressible, as compressed data is
	for i, r := 0, rand.New(rand.NewPCG(1, 2)); i < len(noise); i++ {
		noise[i] = byte(r.Uint32())
	}
	for _, cd := range []coding.Coding{coding.Br, coding.Zstd, coding.Gzip} {
		if _, err := c.Compress(cd, noise); err != coding.ErrNoGain {
			t.Errorf("%v of random bytes: err = %v, want ErrNoGain", cd, err)
		}
	}
}

// corpus is a text corpus from GOROOT: HTML, CSS, JavaScript and JSON.
var corpus = []struct{ kind, path string }{
	{"html", "doc/go_spec.html"},
	{"html", "doc/go_mem.html"},
	{"css", "src/cmd/vendor/github.com/google/pprof/internal/driver/html/common.css"},
	{"css", "src/cmd/vendor/github.com/google/pprof/internal/driver/html/stacks.css"},
	{"js", "lib/wasm/wasm_exec.js"},
	{"js", "src/cmd/vendor/github.com/google/pprof/internal/driver/html/stacks.js"},
	{"js", "src/internal/trace/traceviewer/static/webcomponents.min.js"},
	{"json", "src/crypto/hpke/testdata/rfc9180.json"},
}

// BenchmarkCompressCorpus measures fill-time compression of the corpus,
// per kind and coding at the default levels: MB/s of input (the CPU cost
// of a fill) and the ratio compressed/identity.
//
//	go test ./cache/coding -run '^$' -bench CompressCorpus -count 6
func BenchmarkCompressCorpus(b *testing.B) {
	kinds := map[string][]byte{}
	order := []string{}
	for _, f := range corpus {
		data, err := os.ReadFile(filepath.Join(runtime.GOROOT(), f.path))
		if err != nil {
			continue
		}
		if _, ok := kinds[f.kind]; !ok {
			order = append(order, f.kind)
		}
		kinds[f.kind] = append(kinds[f.kind], data...)
	}
	if len(kinds) == 0 {
		b.Skip("no corpus files in GOROOT")
	}
	c, err := coding.New(coding.Config{Enabled: true})
	if err != nil {
		b.Fatal(err)
	}
	for _, kind := range order {
		src := kinds[kind]
		for _, cd := range []coding.Coding{coding.Br, coding.Zstd, coding.Gzip} {
			b.Run(kind+"/"+cd.String(), func(b *testing.B) {
				b.SetBytes(int64(len(src)))
				var out []byte
				for b.Loop() {
					out, _ = c.Compress(cd, src)
				}
				b.ReportMetric(float64(len(out))/float64(len(src)), "ratio")
				b.ReportMetric(float64(len(src)), "in-bytes")
			})
		}
	}
}

// BenchmarkDecompress is what storing only the compressed body would cost
// each identity hit: decompressing the corpus's 27 KiB HTML page per
// request, with a decoder reused across requests (the cheapest way).
//
//	go test ./cache/coding -run '^$' -bench Decompress -count 6
func BenchmarkDecompress(b *testing.B) {
	src, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "doc/go_mem.html"))
	if err != nil {
		b.Skip("no corpus file in GOROOT")
	}
	c, err := coding.New(coding.Config{Enabled: true})
	if err != nil {
		b.Fatal(err)
	}
	out := make([]byte, 0, len(src))
	for _, cd := range []coding.Coding{coding.Br, coding.Zstd, coding.Gzip} {
		z, err := c.Compress(cd, src)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(cd.String(), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			br := brotli.NewReader(nil)
			gz := new(gzip.Reader)
			zd, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
			defer zd.Close()
			for b.Loop() {
				var got []byte
				switch cd {
				case coding.Br:
					br.Reset(bytes.NewReader(z))
					got, err = readInto(out, br)
				case coding.Gzip:
					if err = gz.Reset(bytes.NewReader(z)); err == nil {
						got, err = readInto(out, gz)
					}
				case coding.Zstd:
					got, err = zd.DecodeAll(z, out[:0])
				}
				if err != nil || len(got) != len(src) {
					b.Fatalf("%v: %d bytes, %v", cd, len(got), err)
				}
			}
		})
	}
}

// readInto reads r to its end into buf's storage.
func readInto(buf []byte, r io.Reader) ([]byte, error) {
	buf = buf[:0]
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}
