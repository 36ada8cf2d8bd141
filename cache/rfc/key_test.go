package rfc

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestKeyFor(t *testing.T) {
	tests := []struct {
		name, scheme, host, target, want string
	}{
		{"plain", "http", "example.com", "/a/b", "http://example.com/a/b"},
		{"empty path", "http", "example.com", "/", "http://example.com/"},
		{"host case and default port", "http", "EXAMPLE.com:80", "/", "http://example.com/"},
		{"https default port", "https", "example.com:443", "/", "https://example.com/"},
		{"non-default port kept", "http", "example.com:8080", "/", "http://example.com:8080/"},
		{"https on port 80 kept", "https", "example.com:80", "/", "https://example.com:80/"},
		{"trailing dot", "http", "example.com.", "/", "http://example.com/"},
		{"ipv6 literal", "http", "[::1]:80", "/", "http://[::1]/"},
		{"unreserved decoded", "http", "h", "/%7Euser/%61", "http://h/~user/a"},
		{"reserved kept, hex uppercased", "http", "h", "/a%2fb%3f", "http://h/a%2Fb%3F"},
		{"dot segments", "http", "h", "/a/./b/../c", "http://h/a/c"},
		{"dot-dot above root", "http", "h", "/../a", "http://h/a"},
		{"trailing dot segment", "http", "h", "/a/b/..", "http://h/a/"},
		{"double slash kept", "http", "h", "//a//b", "http://h//a//b"},
		// The query is the origin's: kept as sent, never sorted or decoded.
		{"query order kept", "http", "h", "/?b=2&a=1", "http://h/?b=2&a=1"},
		{"same-name order kept", "http", "h", "/?a=2&b=0&a=1", "http://h/?a=2&b=0&a=1"},
		{"empty params kept", "http", "h", "/?&a=1&&", "http://h/?&a=1&&"},
		{"empty query dropped", "http", "h", "/p?", "http://h/p"},
		{"query escapes kept", "http", "h", "/?q=%7e%2f", "http://h/?q=%7e%2f"},
		{"malformed escape kept", "http", "h", "/?q=%zz%4", "http://h/?q=%zz%4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			r.Host = tt.host
			if got := KeyFor(r, tt.scheme); got != tt.want {
				t.Errorf("KeyFor(%s %s%s) = %q, want %q", tt.scheme, tt.host, tt.target, got, tt.want)
			}
		})
	}
}

func TestNormalizeHost(t *testing.T) {
	tests := []struct{ scheme, host, want string }{
		{"http", "example.com", "example.com"},
		{"http", "EXAMPLE.com", "example.com"},
		{"http", "example.com:80", "example.com"},
		{"http", "example.com.:80", "example.com"},
		{"http", "example.com.", "example.com"},
		{"https", "example.com:443", "example.com"},
		{"https", "example.com:80", "example.com:80"},
		{"http", "Example.com.:8080", "example.com:8080"},
		{"http", "[::1]", "[::1]"},
		{"http", "[::1]:80", "[::1]"},
		{"http", "[::1]:81", "[::1]:81"},
	}
	for _, tt := range tests {
		if got := NormalizeHost(tt.scheme, tt.host); got != tt.want {
			t.Errorf("NormalizeHost(%q, %q) = %q, want %q", tt.scheme, tt.host, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { NormalizeHost("https", "www.example.com:8443") }); n != 0 {
		t.Errorf("NormalizeHost of a normal host allocates %v times", n)
	}
}

func FuzzNormalizeKey(f *testing.F) {
	for _, s := range []string{"/a/../b", "/%7e%zz", "/?b=1&a=2&&", "/./.././", "//x//"} {
		f.Add("example.com:80", s, "a=1&b")
	}
	f.Fuzz(func(t *testing.T, host, path, query string) {
		if strings.Contains(path, "?") {
			t.Skip("an escaped request path never holds a raw '?'")
		}
		k := NormalizeKey("http", host, path, query)
		if !strings.HasPrefix(k, "http://") {
			t.Fatalf("key %q lacks scheme", k)
		}
		// Normalizing is idempotent on the path and query.
		rest := k[len("http://"+NormalizeHost("http", host)):]
		p, q, _ := strings.Cut(rest, "?")
		if k2 := NormalizeKey("http", host, p, q); k2 != k {
			t.Fatalf("not idempotent: %q then %q", k, k2)
		}
	})
}

func BenchmarkKeyFor(b *testing.B) {
	r := httptest.NewRequest("GET", "/static/app.js?v=123&lang=en", nil)
	r.Host = "www.example.com"
	b.ReportAllocs()
	for b.Loop() {
		KeyFor(r, "https")
	}
}
