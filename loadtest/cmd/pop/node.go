package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// errNoPoP reports an edged without PoP mode: it started with a cluster
// section but announced no peer listener.
var errNoPoP = errors.New("this edged has no PoP mode (no peer listener announced); merge the daemon wiring and rebuild")

// nodeConfig is what differs between the nodes a scenario starts.
type nodeConfig struct {
	Name      string
	MemBytes  int64
	OriginURL string
	// Cluster turns the PoP on; Join is the gossip address of a node
	// already running ("" for the first). HotThreshold 0 leaves the default.
	Cluster      bool
	Join         string
	HotThreshold int
}

// yaml renders c as an edged configuration file.
func (c nodeConfig) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\n")
	fmt.Fprintf(&b, "admin: {listen: 127.0.0.1:0}\n")
	fmt.Fprintf(&b, "log: {level: info, access: false}\n")
	fmt.Fprintf(&b, "cache:\n  memory: {max_bytes: %dB, max_object_bytes: 1MiB}\n  disk: {enabled: false}\n", c.MemBytes)
	if c.Cluster {
		fmt.Fprintf(&b, "cluster:\n  listen: 127.0.0.1:0\n  node: %s\n", c.Name)
		join := ""
		if c.Join != "" {
			join = fmt.Sprintf(", join: [%q]", c.Join)
		}
		fmt.Fprintf(&b, "  gossip: {listen: 127.0.0.1:0%s}\n", join)
		if c.HotThreshold > 0 {
			fmt.Fprintf(&b, "  hot_threshold: %d\n", c.HotThreshold)
		}
	}
	fmt.Fprintf(&b, "sites:\n  - name: origin\n    hosts: [\"*\"]\n    origins: [{url: %q}]\n", c.OriginURL)
	return b.String()
}

// node is one running edged process.
type node struct {
	name                      string
	cmd                       *exec.Cmd
	edge, admin, peer, gossip string
	waited                    chan struct{} // closed when the process has exited
	logMu                     sync.Mutex
	logTail                   []string
}

// startNode writes c's configuration into dir and starts bin on it,
// returning once edged has announced its listeners.
func startNode(ctx context.Context, bin, dir string, c nodeConfig) (*node, error) {
	file := filepath.Join(dir, c.Name+".yaml")
	if err := os.WriteFile(file, []byte(c.yaml()), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-config", file)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n := &node{name: c.Name, cmd: cmd, waited: make(chan struct{})}
	type listening struct {
		Msg                       string `json:"msg"`
		Edge, Admin, Peer, Gossip string
	}
	ready := make(chan listening, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			n.logLine(sc.Text())
			var l listening
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "edged listening" {
				select {
				case ready <- l:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
		close(n.waited)
	}()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case l := <-ready:
		n.edge, n.admin, n.peer, n.gossip = l.Edge, l.Admin, l.Peer, l.Gossip
	case <-n.waited:
		return nil, fmt.Errorf("node %s exited before listening: %s", c.Name, n.tail())
	case <-t.C:
		n.kill()
		return nil, fmt.Errorf("node %s did not listen within 15s: %s", c.Name, n.tail())
	case <-ctx.Done():
		n.kill()
		return nil, ctx.Err()
	}
	if c.Cluster && (n.peer == "" || n.gossip == "") {
		n.kill()
		return nil, fmt.Errorf("node %s: %w", c.Name, errNoPoP)
	}
	return n, nil
}

func (n *node) logLine(s string) {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	if len(n.logTail) == 20 {
		n.logTail = n.logTail[1:]
	}
	n.logTail = append(n.logTail, s)
}

// tail is the node's last log lines, for error messages.
func (n *node) tail() string {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	return strings.Join(n.logTail, "\n")
}

// kill sends SIGKILL and waits for the process to be reaped.
func (n *node) kill() {
	n.cmd.Process.Kill()
	<-n.waited
}

// stop ends the node gracefully (SIGTERM), killing it after 5s.
func (n *node) stop() {
	n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.waited:
	case <-time.After(5 * time.Second):
		n.kill()
	}
}

// clusterView is the admin listener's GET /cluster.
type clusterView struct {
	Node    string `json:"node"`
	Members []struct {
		Name string `json:"name"`
		Addr string `json:"addr"`
	} `json:"members"`
	OwnerShare float64 `json:"owner_share"`
	Owner      string  `json:"owner"`
}

var adminClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}

// cluster asks the node's admin listener for its view, and the owner of
// key when key is not "".
func (n *node) cluster(key string) (clusterView, error) {
	u := "http://" + n.admin + "/cluster"
	if key != "" {
		u += "?key=" + url.QueryEscape(key)
	}
	var v clusterView
	resp, err := adminClient.Get(u)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("%s: %s", u, resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// metrics sums, per metric name with its labels, the samples of the
// node's GET /metrics whose name starts with prefix.
func (n *node) metrics(prefix string) (map[string]float64, error) {
	resp, err := adminClient.Get("http://" + n.admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] += v
	}
	return m, sc.Err()
}

// waitMembers polls every node's /cluster until each lists want members,
// for at most d; it returns how long that took.
func waitMembers(ctx context.Context, nodes []*node, want int, d time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		ok := true
		for _, n := range nodes {
			v, err := n.cluster("")
			if err != nil || len(v.Members) != want {
				ok = false
				break
			}
		}
		if ok {
			return time.Since(start), nil
		}
		if time.Since(start) > d {
			return time.Since(start), fmt.Errorf("members did not settle at %d within %v", want, d)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// pop is a set of running nodes, stopped together.
type pop struct {
	nodes []*node
}

// startPoP starts n nodes named pop-a, pop-b, ...; with cluster on, each
// after the first joins the first's gossip, and startPoP returns once every
// node sees all n members.
func startPoP(ctx context.Context, bin, dir string, n int, base nodeConfig) (*pop, error) {
	p := &pop{}
	for i := range n {
		c := base
		c.Name = "pop-" + string(rune('a'+i))
		if base.Cluster && i > 0 {
			c.Join = p.nodes[0].gossip
		}
		nd, err := startNode(ctx, bin, dir, c)
		if err != nil {
			p.stop()
			return nil, err
		}
		p.nodes = append(p.nodes, nd)
	}
	if base.Cluster {
		if _, err := waitMembers(ctx, p.nodes, n, 10*time.Second); err != nil {
			p.stop()
			return nil, err
		}
	}
	return p, nil
}

func (p *pop) edges() []string {
	var a []string
	for _, n := range p.nodes {
		a = append(a, n.edge)
	}
	return a
}

// stop ends every node still running.
func (p *pop) stop() {
	var wg sync.WaitGroup
	for _, n := range p.nodes {
		wg.Go(n.stop)
	}
	wg.Wait()
}
