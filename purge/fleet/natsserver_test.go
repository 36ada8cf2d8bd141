package fleet_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

// minimalConfig is the JetStream server configuration docs/purge.md
// shows, read from it so that the documented one is the tested one.
func minimalConfig(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/purge.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- nats-server.conf -->\n```\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/purge.md has no block after <!-- nats-server.conf -->")
	}
	return string(m[1])
}

// A fleet of two nodes on the nats-server binary Debian packages (2.9.10
// in bookworm), run with the configuration docs/purge.md shows: the
// oldest server the docs say works, checked rather than assumed.
func TestPackagedNATSServer(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		fmt.Println("TestPackagedNATSServer SKIPPED: no nats-server binary (apt-get install nats-server): the documented configuration was not run")
		t.Skip("nats-server not installed")
	}
	out, _ := exec.Command(bin, "--version").CombinedOutput()
	t.Logf("%s", strings.TrimSpace(string(out)))

	dir := t.TempDir()
	conf := minimalConfig(t)
	// The documented file with this test's ports and store.
	conf = strings.Replace(conf, "port: 4222", "port: -1", 1)
	conf = strings.Replace(conf, "/var/lib/nats/jetstream", filepath.Join(dir, "js"), 1)
	conf += "ports_file_dir: " + dir + "\n"
	cfgFile := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(cfgFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cfgFile)
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// The server writes its listening URLs to the ports file once ready.
	portsFile := filepath.Join(dir, fmt.Sprintf("nats-server_%d.ports", cmd.Process.Pid))
	var ports struct{ Nats []string }
	testkit.Eventually(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(portsFile)
		return err == nil && json.Unmarshal(b, &ports) == nil && len(ports.Nats) > 0
	}, "nats-server's ports file:\n"+logs.String())
	url := ports.Nats[0]

	a, b := startNode(t, "node-a", url), startNode(t, "node-b", url)
	for _, n := range []*node{a, b} {
		eventually(t, n.name+" ready", n.p.Ready)
	}
	const u = "https://a.example/packaged"
	r := a.purge(t, `{"urls":["`+u+`"]}`)
	eventually(t, "B applies the purge", func() bool { return b.rec.Count(u) == 1 })
	eventually(t, "the receipt names both nodes", func() bool { return nodesOf(b.receipt(t, r.ID)) == "node-a,node-b" })
}
