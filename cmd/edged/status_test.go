package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// statusConfig is a daemon with what the status page shows: a site of two
// shards (one refusing connections), the disk tier, a TLS listener, a purge
// token.
func statusConfig(t *testing.T, originURL, certFile, keyFile string) string {
	dead := "http://" + freeAddr(t)
	return writeConfig(t, fmt.Sprintf(`log:
  access: false
tls:
  listen: 127.0.0.1:0
  certificates:
    - cert: %s
      key: %s
purge:
  tokens:
    - name: ops
      token: %s
sites:
  - name: shop
    hosts: ["cdn.example"]
    origins:
      - url: %s
      - url: %s
`, certFile, keyFile, testToken, originURL, dead))
}

// statusJSON fetches GET /status.json.
func statusJSON(t *testing.T, admin string) statusData {
	t.Helper()
	resp, body := fetch(t, "http://"+admin+"/status.json")
	var d statusData
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("GET /status.json: %d %s", resp.StatusCode, body)
	}
	return d
}

// /status.json agrees with /metrics: requests and hit ratio by site, the
// shards, the tiers, the purge receipts, the certificate.
func TestStatusJSON(t *testing.T) {
	o := newSizedOrigin(t)
	certFile, keyFile, cert := selfSigned(t, "cdn.example")
	l, _ := startDaemon(t, "-config", statusConfig(t, o.URL, certFile, keyFile))
	hits, misses := trafficForStatus(t, l)
	code, res := postPurge(t, l.Admin, testToken, `{"urls":["http://cdn.example/obj/s0-1000"]}`)
	if code != 200 {
		t.Fatalf("purge: %d %v", code, res)
	}
	d := statusJSON(t, l.Admin)
	if len(d.Sites) != 1 || d.Sites[0].Name != "shop" || d.Sites[0].Hits != float64(hits) || d.Sites[0].Lookups != float64(hits+misses) ||
		d.Sites[0].Requests != float64(hits+misses) {
		t.Errorf("sites %+v, want shop with %d hits of %d", d.Sites, hits, hits+misses)
	}
	if len(d.Shards) != 2 {
		t.Errorf("shards %+v, want 2", d.Shards)
	}
	if len(d.Purges) != 1 || d.Purges[0].ID != res["id"] || d.Purges[0].Nodes != 1 {
		t.Errorf("purges %+v, want the one with id %v", d.Purges, res["id"])
	}
	if len(d.Certificates) != 1 || d.Certificates[0].Name != "cdn.example" || int64(d.Certificates[0].Expires) != cert.NotAfter.Unix() {
		t.Errorf("certificates %+v, want cdn.example expiring %v", d.Certificates, cert.NotAfter)
	}
	if d.Disk == nil || d.Disk.MaxBytes != 10<<30 || d.Memory.MaxBytes != 256<<20 || d.Memory.Objects == 0 {
		t.Errorf("tiers: memory %+v, disk %+v", d.Memory, d.Disk)
	}
	if d.Cluster != nil || d.UptimeSeconds <= 0 || d.Version == "" || d.Node == "" {
		t.Errorf("cluster %+v, uptime %v, version %q, node %q", d.Cluster, d.UptimeSeconds, d.Version, d.Node)
	}
}

// trafficForStatus sends misses then hits to site shop and waits until
// /metrics counts them all; it returns how many of each.
func trafficForStatus(t *testing.T, l listening) (hits, misses int) {
	t.Helper()
	misses, hits = 3, 5
	for i := range misses {
		fetchHost(t, "http://"+l.Edge+fmt.Sprintf("/obj/s%d-1000", i), "cdn.example")
	}
	for i := range hits {
		fetchHost(t, "http://"+l.Edge+fmt.Sprintf("/obj/s%d-1000", i%misses), "cdn.example")
	}
	want := fmt.Sprintf(`edged_requests_total{cache="hit",code="2xx",site="shop"} %d`, hits)
	testkit.Eventually(t, 10*time.Second, func() bool {
		_, m := fetch(t, "http://"+l.Admin+"/metrics")
		return strings.Contains(m, want)
	}, want)
	return hits, misses
}

// siteFromMetrics sums a site's edged_requests_total and its hits and
// lookups (cache hit, miss, stale, pass, error) in the /metrics text.
func siteFromMetrics(metrics, site string) (requests, hits, lookups float64) {
	re := regexp.MustCompile(`(?m)^edged_requests_total\{cache="([a-z]+)",code="[0-9x]+",site="` + regexp.QuoteMeta(site) + `"\} ([0-9.e+]+)$`)
	for _, m := range re.FindAllStringSubmatch(metrics, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		requests += v
		switch m[1] {
		case "hit":
			hits += v
			lookups += v
		case "miss", "stale", "pass", "error":
			lookups += v
		}
	}
	return requests, hits, lookups
}

// The status page in a real browser: headless Chromium loads GET /, whose
// script polls /status.json; the numbers it shows match /metrics, and a
// screenshot is kept.
func TestStatusPageInChromium(t *testing.T) {
	chromium := lookChromium(t)
	o := newSizedOrigin(t)
	certFile, keyFile, _ := selfSigned(t, "cdn.example")
	l, _ := startDaemon(t, "-config", statusConfig(t, o.URL, certFile, keyFile))
	trafficForStatus(t, l)
	code, res := postPurge(t, l.Admin, testToken, `{"tags":["promo"]}`)
	if code != 200 {
		t.Fatalf("purge: %d %v", code, res)
	}
	_, metrics := fetch(t, "http://"+l.Admin+"/metrics")
	requests, hits, lookups := siteFromMetrics(metrics, "shop")
	if requests == 0 {
		t.Fatalf("no requests for shop in /metrics:\n%s", metrics)
	}

	dom := runChromium(t, chromium, "--dump-dom", "http://"+l.Admin+"/")
	row := regexp.MustCompile(`<tr data-site="shop">(.*?)</tr>`).FindStringSubmatch(dom)
	if row == nil {
		t.Fatalf("no row for site shop in the page:\n%s", dom)
	}
	cell := func(class string) string {
		m := regexp.MustCompile(`<td class="num ` + class + `">([^<]*)</td>`).FindStringSubmatch(row[1])
		if m == nil {
			t.Fatalf("no %s cell in the shop row: %s", class, row[1])
		}
		return m[1]
	}
	if got, want := cell("requests"), strconv.Itoa(int(requests)); got != want {
		t.Errorf("page shows %s requests, /metrics %s", got, want)
	}
	if got, want := cell("hit-ratio"), fmt.Sprintf("%.1f%%", 100*hits/lookups); got != want {
		t.Errorf("page shows hit ratio %s, /metrics gives %s (%v of %v)", got, want, hits, lookups)
	}
	for _, want := range []string{
		`data-purge="` + res["id"].(string) + `"`, // the receipt
		`data-cert="cdn.example"`,
		`<span class="badge ok">up</span>`, // the live shard
		`data-tier="disk"`,
		"this node runs alone",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q", want)
		}
	}

	// The screenshot: a few polls in (virtual time), so the chart has lines.
	dir := artifactDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "status-page.png")
	stop := make(chan struct{})
	defer close(stop)
	go func() { // traffic while the page samples, for the chart
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			fetchOrIgnore("http://"+l.Edge+fmt.Sprintf("/obj/s%d-1000", i%4), "cdn.example")
		}
	}()
	runChromium(t, chromium, "--screenshot="+shot, "--window-size=1280,900", "http://"+l.Admin+"/")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10<<10 {
		t.Fatalf("screenshot %s: %v (%d bytes)", shot, err, sizeOf(fi))
	}
	t.Logf("status page screenshot: %s", shot)
}

// artifactDir is where a test keeps files for people to look at:
// $EDGED_ARTIFACTS (.ci/run sets it), else go test's own artefact directory
// with -artifacts, else $TMPDIR/edged-artifacts: a stable path, kept after
// the test.
func artifactDir(t *testing.T) string {
	if dir := os.Getenv("EDGED_ARTIFACTS"); dir != "" {
		return dir
	}
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return t.ArtifactDir()
	}
	return filepath.Join(os.TempDir(), "edged-artifacts")
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return 0
	}
	return fi.Size()
}

// lookChromium finds Debian's chromium, or skips loudly.
func lookChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "SKIP: no chromium binary (install Debian's package: apt-get install -y --no-install-recommends chromium); the status page is not tested in a browser"
	fmt.Fprintln(os.Stderr, msg)
	t.Skip(msg)
	return ""
}

// runChromium runs headless Chromium on a page with a virtual-time budget
// of 7 s (three polls of /status.json and more) and returns its standard
// output.
func runChromium(t *testing.T, chromium string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	base := []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=7000"}
	cmd := exec.CommandContext(ctx, chromium, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// fetchOrIgnore sends a GET for background traffic, ignoring failures
// (the daemon may be stopping when the test ends).
func fetchOrIgnore(url, host string) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	if resp, err := http.DefaultClient.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// In a PoP, /status.json lists the live members.
func TestStatusJSONInPoP(t *testing.T) {
	o := newSizedOrigin(t)
	nodes := startPoP(t, 2, o.URL, "")
	for _, nd := range nodes {
		d := statusJSON(t, nd.l.Admin)
		if d.Cluster == nil || d.Cluster.Node != nd.name || fmt.Sprint(d.Cluster.Members) != "[pop-a pop-b]" {
			t.Errorf("%s: cluster %+v, want node %s of [pop-a pop-b]", nd.name, d.Cluster, nd.name)
		}
	}
}
