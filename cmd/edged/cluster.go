package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/internal/config"
	"github.com/edged-proxy/edged/lb/cluster"
)

// clusterRef is the edge's Cluster (edge.Cluster): this node's name from
// the start, and the PoP's membership once the node has joined it. Until
// then (the first moments of a process that took over from another, which
// holds the gossip port until it exits) this node owns every key.
type clusterRef struct {
	name string
	c    atomic.Pointer[cluster.Cluster]
}

var _ edge.Cluster = (*clusterRef)(nil)

// errNotJoined is Fetch's error before the node has joined: never seen in
// practice, since Owner names no peer until then.
var errNotJoined = errors.New("cluster: this node has not joined its PoP yet")

func (r *clusterRef) Self() string { return r.name }

func (r *clusterRef) Owner(key string) (string, bool) {
	if c := r.c.Load(); c != nil {
		return c.Owner(key)
	}
	return "", false
}

func (r *clusterRef) Fetch(peer string, req *http.Request) (*http.Response, error) {
	if c := r.c.Load(); c != nil {
		return c.Fetch(peer, req)
	}
	return nil, errNotJoined
}

func (r *clusterRef) Admit(key string) bool {
	c := r.c.Load()
	return c != nil && c.Admit(key)
}

// nodeName is this node's name in its PoP: cluster.node, else purge.node,
// else "edged-" and the host name.
func nodeName(cfg *config.Config) string {
	if cfg.Cluster.Node != "" {
		return cfg.Cluster.Node
	}
	if cfg.Purge.Node != "" {
		return cfg.Purge.Node
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return "edged-" + strings.ToLower(host)
}

// readClusterSecret reads cluster.secret_file: a base64 key of 16, 24 or
// 32 bytes (nil when the key is not set).
func readClusterSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: not base64: %v", path, err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("%s: the key is %d bytes, want 16, 24 or 32 (head -c 32 /dev/urandom | base64)", path, len(key))
}

// peerToken derives the peer fetches' token from the cluster key, so that
// the gossip key itself never travels in a request.
func peerToken(secret []byte) string {
	if secret == nil {
		return ""
	}
	sum := sha256.Sum256(append([]byte("edged peer token\x00"), secret...))
	return hex.EncodeToString(sum[:])
}

// clusterChecks reports a cluster.secret_file that cannot be used, for
// startupChecks.
func clusterChecks(cfg *config.Config) []*config.Error {
	if cfg.Cluster.Listen == "" {
		return nil
	}
	if _, err := readClusterSecret(cfg.Cluster.SecretFile); err != nil {
		return []*config.Error{{Path: "cluster.secret_file", Msg: err.Error()}}
	}
	return nil
}

// clusterConfig is the lb/cluster configuration of cfg.Cluster, for the
// peer listener advertised at peerAddr.
func clusterConfig(cfg *config.Config, name, peerAddr string, secret []byte, reg prometheus.Registerer, d *daemon) cluster.Config {
	cc := cfg.Cluster
	out := cluster.Config{
		Name:           name,
		Addr:           peerAddr,
		BalanceFactor:  cc.BalanceFactor,
		HotWindow:      cc.HotWindow,
		HotThreshold:   cc.HotThreshold,
		ConnectTimeout: cc.ConnectTimeout.Std(),
		// A peer's answer may wait on its origin fill: as long as a fill.
		ResponseHeaderTimeout: cfg.Cache.FillTimeout.Std(),
		EjectFor:              cc.EjectFor.Std(),
		Registerer:            reg,
		Logger:                d.log.With("component", "cluster"),
		OnChange: func(live []cluster.Member) {
			names := make([]string, len(live))
			for i, m := range live {
				names[i] = m.Name
			}
			d.log.Info("PoP membership changed", "members", names)
		},
	}
	if len(cc.Peers) > 0 {
		for _, p := range cc.Peers {
			out.Static = append(out.Static, cluster.Member{Name: p.Name, Addr: p.Address})
		}
		return out
	}
	out.Gossip = &cluster.Gossip{
		BindAddr:       cc.Gossip.Listen,
		AdvertiseAddr:  cc.Gossip.Advertise,
		Join:           cc.Gossip.Join,
		SecretKey:      secret,
		ProbeInterval:  cc.Gossip.ProbeInterval.Std(),
		ProbeTimeout:   cc.Gossip.ProbeTimeout.Std(),
		GossipInterval: cc.Gossip.GossipInterval.Std(),
		SuspicionMult:  cc.Gossip.SuspicionMult,
	}
	return out
}

// startCluster joins the PoP with the peer listener advertised at
// peerAddr. A process that took over from another waits until that one
// has exited: it holds the gossip port and the same node name.
func (d *daemon) startCluster(ctx context.Context, peerAddr string) error {
	if d.upg != nil && d.upg.HasParent() {
		go func() {
			if err := d.upg.WaitForParent(ctx); err != nil {
				d.log.Warn("upgrade: the previous process did not exit cleanly", "err", err)
			}
			if err := d.joinCluster(peerAddr); err != nil {
				d.log.Error("upgrade: could not join the PoP; filling every miss from the origin", "err", err)
			}
		}()
		return nil
	}
	return d.joinCluster(peerAddr)
}

// joinCluster starts this node's membership and hands it to the edge.
func (d *daemon) joinCluster(peerAddr string) error {
	cc := &d.cfg.Cluster
	if cc.Advertise != "" {
		peerAddr = cc.Advertise
	}
	secret, err := readClusterSecret(cc.SecretFile)
	if err != nil {
		return fmt.Errorf("cluster.secret_file: %w", err)
	}
	c, err := cluster.New(clusterConfig(d.cfg, d.cluster.name, peerAddr, secret, d.reg, d))
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		c.Close()
		return nil
	}
	d.cluster.c.Store(c)
	d.log.Info("joined the PoP", "node", d.cluster.name, "peer", peerAddr, "gossip", c.GossipAddr(), "static_peers", len(cc.Peers))
	return nil
}

// leaveCluster tells the PoP this node is going (the others stop asking
// it at once, before its listeners close).
func (d *daemon) leaveCluster() {
	if d.cluster == nil {
		return
	}
	if c := d.cluster.c.Load(); c != nil {
		if err := c.Leave(time.Second); err != nil {
			d.log.Warn("leaving the PoP", "err", err)
		}
	}
}

// closeCluster shuts the membership down and closes peer connections.
func (d *daemon) closeCluster() {
	if d.cluster == nil {
		return
	}
	if c := d.cluster.c.Swap(nil); c != nil {
		if err := c.Close(); err != nil {
			d.log.Warn("closing the PoP membership", "err", err)
		}
	}
}

// clusterStatus answers GET /cluster on the admin listener: this node,
// the live members and its share of the key space, and with ?key=K the
// node that owns cache key K.
func (d *daemon) clusterStatus(w http.ResponseWriter, r *http.Request) {
	type member struct {
		Name string `json:"name"`
		Addr string `json:"addr"`
	}
	out := struct {
		Node       string   `json:"node"`
		Joined     bool     `json:"joined"`
		Members    []member `json:"members"`
		OwnerShare float64  `json:"owner_share"`
		Owner      string   `json:"owner,omitempty"`
	}{Members: []member{}}
	if d.cluster == nil {
		http.Error(w, "this node runs alone (cluster.listen is not set)", http.StatusNotFound)
		return
	}
	out.Node = d.cluster.name
	if c := d.cluster.c.Load(); c != nil {
		out.Joined = true
		for _, m := range c.Live() {
			out.Members = append(out.Members, member{m.Name, m.Addr})
		}
		out.OwnerShare = c.OwnerShare()
		if key := r.URL.Query().Get("key"); key != "" {
			out.Owner = d.cluster.name
			if p, ok := c.Owner(key); ok {
				out.Owner = p
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}

// listenPeer opens the peer listener (inherited across upgrades like the
// others); nil when the node runs alone.
func (d *daemon) listenPeer(listen listenFunc) (net.Listener, error) {
	if d.peerSrv == nil {
		return nil, nil
	}
	ln, err := listen("peer", d.cfg.Cluster.Listen)
	if err != nil {
		return nil, fmt.Errorf("peer listener: %w", err)
	}
	return ln, nil
}
