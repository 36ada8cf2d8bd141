package edge

import (
	"crypto/tls"
	"errors"
	"net/http/httptest"
	"testing"
	"time"
)

// fixedSessions are a general-path miss (with TLS, a client request ID,
// and the origin's timings) and a fast-path hit (a generated request ID).
func fixedSessions() (miss, hit *Session) {
	r := httptest.NewRequest("GET", "/a/b?x=1", nil)
	r.Host = "www.example.com"
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13}
	r.Header.Set("User-Agent", `curl/8.5 "quoted"`)
	r.Header.Set("Referer", "https://ref.example/")
	miss = &Session{Req: r, Site: &Site{Name: "www"}, Status: 200, Bytes: 5120, CacheResult: OutcomeMiss,
		Shard: "10.0.0.7:8080", ClientIP: "192.0.2.10", Peer: "edged-b"}
	miss.id.set("req-42", nil)
	miss.up.status.Store(200)
	miss.up.header.Store(1500)
	miss.up.total.Store(int64(3250 * time.Microsecond))

	gen := &idGen{prefix: "00ff00ff00ff00ff-"}
	gen.n.Store(0x1a1)
	hit = &Session{Site: &Site{Name: "www"}, Status: 304, CacheResult: OutcomeHit, ClientIP: "2001:db8::1",
		fast: fastLine{method: "HEAD", host: "img.example.com", target: "/i.png", rule: "images", minor: 0}}
	hit.id.set("not sane", gen)
	return miss, hit
}

func TestAccessFormats(t *testing.T) {
	now := time.Date(2026, 12, 5, 15, 4, 5, 120000000, time.FixedZone("CET", 3600))
	d := 4*time.Millisecond + 125*time.Microsecond
	miss, hit := fixedSessions()
	errored, _ := fixedSessions()
	errored.Status, errored.CacheResult, errored.Err = 502, OutcomeError, errors.New(`dial "x": refused`)
	errored.up.status.Store(0)
	errored.up.total.Store(0)
	for _, tc := range []struct {
		name, format string
		fields       []string
		s            *Session
		want         string
	}{
		{"json miss", "", nil, miss, `{"time":"2026-12-05T14:04:05.12Z","level":"INFO","msg":"access","method":"GET","host":"www.example.com","path":"/a/b?x=1","status":200,"bytes":5120,"cache":"miss","site":"www","shard":"10.0.0.7:8080","client":"192.0.2.10","duration_ms":4.125,"proto":"HTTP/2.0","tls":"TLSv1.3","user_agent":"curl/8.5 \"quoted\"","referer":"https://ref.example/","request_id":"req-42","upstream_status":200,"upstream_ttfb_ms":1.5,"upstream_ms":3.25,"peer":"edged-b"}` + "\n"},
		{"json hit", "json", nil, hit, `{"time":"2026-12-05T14:04:05.12Z","level":"INFO","msg":"access","method":"HEAD","host":"img.example.com","path":"/i.png","status":304,"bytes":0,"cache":"hit","site":"www","shard":"","client":"2001:db8::1","duration_ms":4.125,"proto":"HTTP/1.0","user_agent":"","referer":"","request_id":"00ff00ff00ff00ff-1a2","rule":"images"}` + "\n"},
		{"json error", "", nil, errored, `{"time":"2026-12-05T14:04:05.12Z","level":"INFO","msg":"access","method":"GET","host":"www.example.com","path":"/a/b?x=1","status":502,"bytes":5120,"cache":"error","site":"www","shard":"10.0.0.7:8080","client":"192.0.2.10","duration_ms":4.125,"proto":"HTTP/2.0","tls":"TLSv1.3","user_agent":"curl/8.5 \"quoted\"","referer":"https://ref.example/","request_id":"req-42","peer":"edged-b","err":"dial \"x\": refused"}` + "\n"},
		{"fields miss", "json", []string{"time", "client", "method", "path", "status", "upstream_ms", "request_id"}, miss,
			`{"time":"2026-12-05T14:04:05.12Z","client":"192.0.2.10","method":"GET","path":"/a/b?x=1","status":200,"upstream_ms":3.25,"request_id":"req-42"}` + "\n"},
		{"fields hit, optional first", "json", []string{"upstream_status", "tls", "err", "status", "rule", "peer"}, hit,
			`{"status":304,"rule":"images"}` + "\n"},
		{"fields none present", "json", []string{"err"}, hit, "{}\n"},
		{"combined miss", "combined", nil, miss,
			`192.0.2.10 - - [05/Dec/2026:15:04:05 +0100] "GET /a/b?x=1 HTTP/2.0" 200 5120 "https://ref.example/" "curl/8.5 \x22quoted\x22"` + "\n"},
		{"combined hit", "combined", nil, hit,
			`2001:db8::1 - - [05/Dec/2026:15:04:05 +0100] "HEAD /i.png HTTP/1.0" 304 0 "-" "-"` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := newAccessFormat(tc.format, tc.fields)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(f.line(nil, tc.s, now, d)); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestAccessFormatErrors(t *testing.T) {
	for _, tc := range []struct {
		format string
		fields []string
	}{
		{"xml", nil},
		{"combined", []string{"time"}},
		{"json", []string{"time", "nope"}},
		{"json", []string{""}},
		{"json", []string{"level"}},
	} {
		if _, err := newAccessFormat(tc.format, tc.fields); err == nil {
			t.Errorf("%q %q: no error", tc.format, tc.fields)
		}
	}
	var fe *AccessFieldError
	if err := CheckAccessLog("json", []string{"nope"}); !errors.As(err, &fe) || fe.Name != "nope" {
		t.Errorf("got %v, want an AccessFieldError for nope", err)
	}
}

func TestNginxEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "-",
		"plain/1.0 (x; y)": "plain/1.0 (x; y)",
		"a\"b\\c":          `a\x22b\x5Cc`,
		"tab\there\x7f":    `tab\x09here\x7F`,
		"é":                `\xC3\xA9`,
	} {
		if got := string(appendNginxEscaped(nil, in, "-")); got != want {
			t.Errorf("%q: got %s, want %s", in, got, want)
		}
	}
}

func TestSaneRequestID(t *testing.T) {
	long := make([]byte, MaxRequestIDLen+1)
	for i := range long {
		long[i] = 'a'
	}
	for v, want := range map[string]bool{
		"abc-123":                              true,
		"f81d4fae-7dec-11d0-a765-00a0c91e6bf6": true,
		string(long[:MaxRequestIDLen]):         true,
		string(long):                           false,
		"":                                     false,
		"has space":                            false,
		"quote\"":                              false,
		"back\\slash":                          false,
		"ctl\x01":                              false,
		"nonascii\xc3\xa9":                     false,
	} {
		if got := SaneRequestID(v); got != want {
			t.Errorf("%q: got %v, want %v", v, got, want)
		}
	}
}

// FuzzRequestID holds the sanitizer to its contract: what it keeps is
// logged unescaped (valid inside a JSON string and nginx's quotes as is)
// and comes back from RequestID unchanged; what it refuses is replaced by
// a generated ID.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"abc-123", "", "a b", "\"", "\xff", string(make([]byte, 200))} {
		f.Add(s)
	}
	gen := newIDGen()
	f.Fuzz(func(t *testing.T, v string) {
		s := &Session{}
		s.id.set(v, gen)
		id := s.RequestID()
		if SaneRequestID(v) {
			if id != v {
				t.Fatalf("kept %q as %q", v, id)
			}
		} else if !SaneRequestID(id) || id == v {
			t.Fatalf("refused %q, generated %q", v, id)
		}
		if got := string(appendJSONChars(nil, id)); got != id {
			t.Fatalf("%q needs JSON escaping", id)
		}
		if got := string(appendNginxEscaped(nil, id, "-")); got != id {
			t.Fatalf("%q needs nginx escaping", id)
		}
	})
}

// BenchmarkAccessFormat measures rendering one hit's line in each format.
func BenchmarkAccessFormat(b *testing.B) {
	miss, hit := fixedSessions()
	_ = miss
	now := time.Now()
	for _, tc := range []struct {
		name, format string
		fields       []string
	}{
		{"json", "", nil},
		{"combined", "combined", nil},
		{"fields", "json", []string{"time", "client", "method", "path", "status", "bytes", "duration_ms", "request_id"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f, err := newAccessFormat(tc.format, tc.fields)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				buf = f.line(buf[:0], hit, now, 244*time.Microsecond)
			}
		})
	}
}
