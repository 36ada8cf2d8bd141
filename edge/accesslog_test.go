package edge

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// defaultFormat is the default JSON access-log format.
var defaultFormat, _ = newAccessFormat("", nil)

func accessLine(b []byte, s *Session, now time.Time, d time.Duration) []byte {
	return defaultFormat.line(b, s, now, d)
}

func TestAccessLineIsJSON(t *testing.T) {
	r := httptest.NewRequest("GET", "/p?q=\"x\"&y=%00", nil)
	r.Host = "ex\x01ample.com\xff"
	s := &Session{Req: r, Site: &Site{Name: "s\\1"}, Status: 200, Bytes: 42, CacheResult: "hit",
		Shard: "o1", ClientIP: "127.0.0.1", Err: errors.New("bad \"thing\"\n")}
	line := accessLine(nil, s, time.Unix(1700000000, 5).UTC(), 1500*time.Microsecond)
	if line[len(line)-1] != '\n' {
		t.Fatal("no newline")
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	want := map[string]any{
		"time": "2023-11-14T22:13:20.000000005Z", "level": "INFO", "msg": "access", "method": "GET",
		"host": "ex\x01ample.com\ufffd", "path": "/p?q=\"x\"&y=%00", "status": 200.0, "bytes": 42.0,
		"cache": "hit", "site": "s\\1", "shard": "o1", "client": "127.0.0.1", "duration_ms": 1.5,
		"err": "bad \"thing\"\n", "proto": "HTTP/1.1", "user_agent": "", "referer": "", "request_id": "",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("fields %v", got)
	}
}

func FuzzAccessLine(f *testing.F) {
	f.Add("GET", "example.com", "/a?b=c", "err")
	f.Fuzz(func(t *testing.T, method, host, path, msg string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Method, r.Host, r.URL.Path = method, host, path
		s := &Session{Req: r, Status: 200, Err: errors.New(msg)}
		var got map[string]any
		if err := json.Unmarshal(accessLine(nil, s, time.Now(), time.Millisecond), &got); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
	})
}

func TestAppendMillisMatchesFloatFormatting(t *testing.T) {
	for _, us := range []int64{0, 1, 10, 100, 244, 999, 1000, 1001, 1500, 12000, 123456, 987654321, -1500, -7} {
		d := time.Duration(us) * time.Microsecond
		want := strconv.FormatFloat(float64(us)/1000, 'f', -1, 64)
		if got := string(appendMillis(nil, d)); got != want {
			t.Errorf("%d µs: got %q, want %q", us, got, want)
		}
	}
}

// BenchmarkAccessLine measures rendering one access-log record (once per
// request on the hit path).
func BenchmarkAccessLine(b *testing.B) {
	r := httptest.NewRequest("GET", "/obj/hot1k?size=1024", nil)
	r.Host = "127.0.0.1:8080"
	s := &Session{Req: r, Site: &Site{Name: "default"}, Status: 200, Bytes: 1024, CacheResult: "hit", ClientIP: "127.0.0.1"}
	now := time.Now()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = accessLine(buf[:0], s, now, 244*time.Microsecond)
	}
}

func TestAppendRequestURIMatchesURL(t *testing.T) {
	for _, target := range []string{"/", "/a/b", "/obj/hot1k?size=1024", "/p%20q?x=%22y%22&z", "/a?", "http://example.com/abs?q=1", "*"} {
		r := httptest.NewRequest("GET", "http://example.com/", nil)
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatal(err)
		}
		r.URL = u
		want := string(appendJSONString(nil, u.RequestURI()))
		if got := string(appendRequestURI(nil, u)); got != want {
			t.Errorf("%q: got %s, want %s", target, got, want)
		}
	}
}
