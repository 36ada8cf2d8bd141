package edge_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/edge"
)

// Request fields that could change the origin's answer without being part
// of the cache key never reach the origin.
func TestUnkeyedHeadersStripped(t *testing.T) {
	o := newOrigin(t, cacheable("x"))
	base, _ := newEdge(t, edgeOpts{}, o)
	hdr := []string{"X-Forwarded-Host", "evil.example", "X-Original-URL", "/admin", "X-Rewrite-URL", "/admin",
		"X-HTTP-Method-Override", "DELETE", "X-Forwarded-Scheme", "nothttp", "X-Forwarded-Proto", "gopher"}
	get(t, base, "GET", "example.com", "/p", hdr...)
	r := o.lastRequest()
	for i := 0; i < len(hdr); i += 2 {
		if got := r.Header.Get(hdr[i]); got != "" && !(hdr[i] == "X-Forwarded-Proto" && got == "http") {
			t.Errorf("%s reached the origin: %q", hdr[i], got)
		}
	}
	if got := r.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto = %q, want the edge's own http", got)
	}
}

// The origin receives the path the cache key was built from.
func TestOriginPathNormalizedLikeTheKey(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "path="+r.URL.EscapedPath())
	})
	base, _ := newEdge(t, edgeOpts{}, o)
	for _, tt := range []struct{ target, want string }{
		{"/a/../b", "path=/b"},
		{"/%61%2Fb", "path=/a%2Fb"},
		{"/x/./y", "path=/x/y"},
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "GET "+tt.target+" HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
		raw, _ := io.ReadAll(conn)
		conn.Close()
		if !strings.HasSuffix(string(raw), tt.want) {
			t.Errorf("%s: origin saw %q", tt.target, raw[strings.LastIndex(string(raw), "\n")+1:])
		}
	}
}

// A GET with a body has the body dropped: it never reaches the origin and
// cannot make one client's cached answer depend on it.
func TestGetBodyDropped(t *testing.T) {
	var sawBody string
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sawBody = string(b)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "ok")
	})
	base, _ := newEdge(t, edgeOpts{}, o)
	req, _ := http.NewRequest("GET", base+"/g", strings.NewReader("payload"))
	req.Host = "example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if sawBody != "" {
		t.Errorf("the origin received the GET body %q", sawBody)
	}
}

func TestRequestBodyLimit(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "accepted")
	})
	base, _ := newEdge(t, edgeOpts{site: func(s *edge.Site) { s.MaxBodyBytes = 10 }}, o)
	for _, chunked := range []bool{false, true} {
		body := io.Reader(strings.NewReader(strings.Repeat("x", 100)))
		if chunked {
			body = io.MultiReader(body) // unknown length: sent chunked
		}
		req, _ := http.NewRequest("POST", base+"/upload", body)
		req.Host = "example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked=%v: %d, want 413", chunked, resp.StatusCode)
		}
	}
	resp, body := get(t, base, "POST", "example.com", "/upload")
	if resp.StatusCode != 200 || body != "accepted" {
		t.Errorf("small POST: %d %q", resp.StatusCode, body)
	}
}
