package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Gossip configures membership over hashicorp/memberlist (SWIM: random
// probes, indirect probes through other members, suspicion, gossip of
// state changes). Its defaults detect a crashed node within about 2s on a
// LAN.
type Gossip struct {
	// BindAddr is the host:port memberlist listens on, UDP and TCP. Port 0
	// picks a free one (Cluster.GossipAddr reports it).
	BindAddr string
	// AdvertiseAddr is the host:port the others reach this node's gossip
	// on. "" means BindAddr.
	AdvertiseAddr string
	// Join lists seed gossip addresses. New tries them; if none answers
	// it retries every second in the background until one does, or until
	// Leave or Close: the first node of a PoP has no one to join.
	Join []string
	// SecretKey, 16, 24 or 32 bytes, encrypts gossip (AES-GCM). nil means
	// none.
	SecretKey []byte
	// ProbeInterval is how often a random member is probed. 0 means 500ms.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for its ack before probing
	// indirectly. 0 means 250ms.
	ProbeTimeout time.Duration
	// GossipInterval is how often state changes are gossiped. 0 means
	// 100ms.
	GossipInterval time.Duration
	// SuspicionMult scales how long a suspect member has to refute before
	// it is declared dead (SuspicionMult × log10(members+1) ×
	// ProbeInterval, at least). 0 means 2.
	SuspicionMult int
}

// Gossip defaults: a crashed node is suspected at its first failed probe
// and dead about a second later.
const (
	defaultProbeInterval  = 500 * time.Millisecond
	defaultProbeTimeout   = 250 * time.Millisecond
	defaultGossipInterval = 100 * time.Millisecond
	defaultSuspicionMult  = 2

	// deadNodeReclaimTime lets a node restarted under the same name at a
	// new address back in at once: names are unique within a PoP, so a
	// new address for a dead name is that node's restart.
	deadNodeReclaimTime = time.Nanosecond

	// joinRetry is the pause between background join attempts.
	joinRetry = time.Second
)

// check validates g, with addr the node's peer HTTP address.
func (g *Gossip) check(addr string) error {
	if addr == "" {
		return errors.New("cluster: Config.Addr (the peer HTTP address to advertise) is required with Gossip")
	}
	if _, _, err := splitHostPort(g.BindAddr); err != nil {
		return fmt.Errorf("cluster: Gossip.BindAddr: %w", err)
	}
	if g.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(g.AdvertiseAddr); err != nil {
			return fmt.Errorf("cluster: Gossip.AdvertiseAddr: %w", err)
		}
	}
	switch len(g.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("cluster: Gossip.SecretKey is %d bytes: want 16, 24 or 32", len(g.SecretKey))
	}
	return nil
}

// splitHostPort splits a host:port with a numeric port.
func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", port, err)
	}
	return host, int(p), nil
}

// gossip is a running memberlist and its background joiner.
type gossip struct {
	ml       *memberlist.Memberlist
	addr     string // the bound gossip address
	stop     context.CancelFunc
	joinDone chan struct{}
	once     sync.Once
	err      error // of the first leave or shutdown
}

// startGossip creates c's memberlist and starts joining g.Join.
func startGossip(c *Cluster, g *Gossip) (*gossip, error) {
	mc := memberlistConfig(c, g)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: start memberlist: %w", err)
	}
	gs := &gossip{ml: ml, addr: ml.LocalNode().Address(), joinDone: make(chan struct{})}
	ctx, stop := context.WithCancel(context.Background())
	gs.stop = stop
	if len(g.Join) == 0 {
		close(gs.joinDone)
		return gs, nil
	}
	if n, err := ml.Join(g.Join); n > 0 {
		close(gs.joinDone)
		return gs, nil
	} else {
		c.log.Info("cluster: no seed answered, retrying in the background", "seeds", g.Join, "err", err)
	}
	go gs.joinLoop(ctx, c.log, g.Join)
	return gs, nil
}

// memberlistConfig is memberlist's LAN configuration tuned by g.
func memberlistConfig(c *Cluster, g *Gossip) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.cfg.Name
	mc.BindAddr, mc.BindPort, _ = splitHostPort(g.BindAddr) // checked by New
	if g.AdvertiseAddr != "" {
		mc.AdvertiseAddr, mc.AdvertisePort, _ = splitHostPort(g.AdvertiseAddr)
	} else {
		mc.AdvertisePort = mc.BindPort
	}
	mc.ProbeInterval = orDuration(g.ProbeInterval, defaultProbeInterval)
	mc.ProbeTimeout = orDuration(g.ProbeTimeout, defaultProbeTimeout)
	mc.GossipInterval = orDuration(g.GossipInterval, defaultGossipInterval)
	mc.SuspicionMult = defaultSuspicionMult
	if g.SuspicionMult > 0 {
		mc.SuspicionMult = g.SuspicionMult
	}
	mc.DeadNodeReclaimTime = deadNodeReclaimTime
	mc.SecretKey = g.SecretKey
	mc.Delegate = metaDelegate(c.cfg.Addr)
	mc.Events = events{c}
	mc.LogOutput = nil
	mc.Logger = log.New(logWriter{c.log}, "", 0)
	return mc
}

// orDuration is d, or def when d is zero or negative.
func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// joinLoop retries joining seeds every joinRetry until one answers or ctx
// ends.
func (g *gossip) joinLoop(ctx context.Context, logger *slog.Logger, seeds []string) {
	defer close(g.joinDone)
	t := time.NewTicker(joinRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := g.ml.Join(seeds); n > 0 {
			logger.Info("cluster: joined", "seeds", seeds, "answered", n)
			return
		} else {
			logger.Debug("cluster: join retry failed", "seeds", seeds, "err", err)
		}
	}
}

// leave broadcasts this node's leave, waiting up to timeout, then shuts
// memberlist down.
func (g *gossip) leave(timeout time.Duration) error {
	g.once.Do(func() {
		g.stop()
		<-g.joinDone
		err := g.ml.Leave(timeout)
		g.err = errors.Join(err, g.ml.Shutdown())
	})
	return g.err
}

// shutdown stops memberlist without a leave.
func (g *gossip) shutdown() error {
	g.once.Do(func() {
		g.stop()
		<-g.joinDone
		g.err = g.ml.Shutdown()
	})
	return g.err
}

// GossipAddr returns the host:port this node's gossip is advertised at,
// with the port memberlist chose for port 0: the address another node
// passes in Gossip.Join. It is "" in static mode.
func (c *Cluster) GossipAddr() string {
	if c.gossip == nil {
		return ""
	}
	return c.gossip.addr
}

// metaDelegate is memberlist's Delegate: the node meta is this node's peer
// HTTP address; no user messages or state.
type metaDelegate string

func (d metaDelegate) NodeMeta(limit int) []byte {
	if len(d) > limit {
		return nil
	}
	return []byte(d)
}
func (metaDelegate) NotifyMsg([]byte)                           {}
func (metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (metaDelegate) LocalState(join bool) []byte                { return nil }
func (metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// events applies memberlist's membership events to the cluster. A join or
// update of a peer also ends its ejection at this node: membership says it
// is alive again.
type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node)   { e.set(eventJoin, n) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.set(eventUpdate, n) }

func (e events) NotifyLeave(n *memberlist.Node) {
	if n.Name == e.c.cfg.Name {
		return
	}
	e.c.log.Info("cluster: member left", "member", n.Name)
	e.c.change(eventLeave, func(members map[string]string) { delete(members, n.Name) })
}

func (e events) set(event string, n *memberlist.Node) {
	m := memberlistNode(n)
	if m.Name != e.c.cfg.Name {
		e.c.log.Info("cluster: member "+event, "member", m.Name, "addr", m.Addr)
	}
	e.c.change(event, func(members map[string]string) {
		members[m.Name] = m.Addr
		if p := e.c.peers[m.Name]; p != nil {
			p.ejectedUntil.Store(0)
		}
	})
}

// logWriter turns memberlist's log lines ("[LEVEL] memberlist: ...") into
// slog records: DEBUG dropped, INFO, WARN and ERR at their levels, anything
// else at Info.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	line := bytes.TrimRight(p, "\n")
	level := slog.LevelInfo
	if rest, ok := bytes.CutPrefix(line, []byte("[")); ok {
		if tag, msg, ok := bytes.Cut(rest, []byte("] ")); ok {
			switch string(tag) {
			case "DEBUG":
				return len(p), nil
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			line = msg
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	w.log.Log(context.Background(), level, "memberlist: "+string(line))
	return len(p), nil
}

var _ io.Writer = logWriter{}
