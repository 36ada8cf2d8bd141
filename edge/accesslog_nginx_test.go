package edge_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startNginx runs nginx on a loopback port answering every request with
// body, its access log in nginx's default combined format; it returns
// the address and the log's path. It skips, loudly, when nginx is not
// installed.
func startNginx(t *testing.T, body string) (addr, logPath string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	if bin == "" {
		fmt.Println("SKIP: nginx is not installed (apt-get install nginx): the combined format is not compared with nginx's")
		t.Skip("nginx is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close() // nginx binds it; a race with another binder fails the start, not the comparison
	dir := t.TempDir()
	logPath = filepath.Join(dir, "access.log")
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	access_log %[1]s/access.log combined;
	server {
		listen %[2]s;
		location / { default_type text/plain; return 200 %[3]q; }
	}
}
`, dir, addr, body)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", cf, "-e", filepath.Join(dir, "error.log"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %v\n%s", err, b)
		}
		time.Sleep(10 * time.Millisecond) // nginx says nothing when it is ready
	}
	return addr, logPath
}

// rawExchange sends one raw request on a new connection and reads the
// response.
func rawExchange(t *testing.T, addr, raw string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, raw)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

var localTime = regexp.MustCompile(`\[\d\d/[A-Z][a-z][a-z]/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]`)

// The combined format matches nginx's, byte for byte but for the time: the
// same requests through nginx and edged (a miss, then a hit on the fast
// path) log the same lines, escaping included.
func TestCombinedMatchesNginx(t *testing.T) {
	const body = "hello, combined"
	nginxAddr, nginxLog := startNginx(t, body)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	})
	log := &syncBuffer{}
	base, _ := newEdge(t, edgeOpts{access: log, accessFmt: "combined"}, o)
	edgeAddr := strings.TrimPrefix(base, "http://")
	reqs := []string{
		"GET /a?q=%22x%22&y=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; \"quoted\" back\\slash \xc3\xa9)\r\nReferer: https://ref.example/p?a=b\r\nConnection: close\r\n\r\n",
		"GET /a?q=%22x%22&y=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; \"quoted\" back\\slash \xc3\xa9)\r\nReferer: https://ref.example/p?a=b\r\nConnection: close\r\n\r\n",
		"GET /plain HTTP/1.0\r\nHost: example.com\r\n\r\n",
		"HEAD /plain HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nConnection: close\r\n\r\n",
	}
	for _, raw := range reqs {
		rawExchange(t, nginxAddr, raw)
		rawExchange(t, edgeAddr, raw)
	}
	waitFor(t, func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return strings.Count(log.b.String(), "\n") == len(reqs)
	})
	// nginx writes its line before closing the connection; it is there.
	nb, err := os.ReadFile(nginxLog)
	if err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	eb := log.b.String()
	log.mu.Unlock()
	nl, el := strings.SplitAfter(string(nb), "\n"), strings.SplitAfter(eb, "\n")
	if len(nl) != len(el) {
		t.Fatalf("nginx logged\n%s\nedged logged\n%s", nb, eb)
	}
	for i := range nl {
		n, e := localTime.ReplaceAllString(nl[i], "[TIME]"), localTime.ReplaceAllString(el[i], "[TIME]")
		if n != e {
			t.Errorf("line %d:\nnginx %q\nedged %q", i, nl[i], el[i])
		}
		if i < len(reqs) && !localTime.MatchString(el[i]) {
			t.Errorf("line %d: no [$time_local]: %q", i, el[i])
		}
	}
	t.Logf("nginx and edged agree:\n%s", eb)
}
