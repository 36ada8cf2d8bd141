package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/internal/sketch"
	"github.com/edged-proxy/edged/lb/ketama"
)

// Member is one node of the PoP.
type Member struct {
	// Name identifies the node; it must be unique within the PoP.
	Name string
	// Addr is the host:port of the node's peer HTTP listener.
	Addr string
}

// Config configures a Cluster. Exactly one of Static and Gossip is set.
type Config struct {
	// Name is this node's name; required.
	Name string
	// Addr is this node's peer HTTP listener (host:port), advertised to
	// the others in its gossip node meta. Required with Gossip; with Static
	// the list's entry for Name is used.
	Addr string
	// Static is a fixed member list, which must contain Name. Every member
	// is live unless this node has ejected it (EjectFor); nothing gossips.
	Static []Member
	// Gossip runs membership over hashicorp/memberlist (SWIM).
	Gossip *Gossip

	// BalanceFactor turns on bounded loads: a peer owning a key takes the
	// fetch only if its in-flight fetches from this node, this one
	// included, stay within ceil(BalanceFactor × (the in-flight fetches
	// over all peers + 1) / live members); otherwise the key overflows as
	// in package lb (ketama.JumpPoint). 0 means off (pure ketama
	// ownership); otherwise it must be at least 1.
	BalanceFactor float64
	// HotWindow is the number of misses Admit counts between halvings of
	// its counters (TinyLFU aging). 0 means 10000.
	HotWindow int
	// HotThreshold is the estimated miss count at which Admit admits a
	// key. 0 means 4.
	HotThreshold int

	// ConnectTimeout bounds dialing a peer. 0 means 1s.
	ConnectTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a peer's response head
	// once the request is sent. 0 means 30s: the owner may be filling
	// from a slow origin.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes a peer connection idle this long. 0 means 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerPeer caps each peer's keep-alive pool. 0 means 256.
	MaxIdleConnsPerPeer int
	// EjectFor is how long a peer that could not be reached stays out of
	// this node's ring (passive ejection). 0 means 2s.
	EjectFor time.Duration

	// Registerer receives the metrics (see the package doc). nil leaves
	// them unregistered.
	Registerer prometheus.Registerer
	// Logger receives membership events and memberlist's log. nil
	// discards them.
	Logger *slog.Logger
	// OnChange, if set, is called with Live() after every membership
	// change, one call at a time and in order, outside the Cluster's
	// locks (but on memberlist's event path: it must not block).
	OnChange func(live []Member)
	// Now is the clock for ejections. nil means time.Now.
	Now func() time.Time
}

// Defaults of the zero Config fields.
const (
	defaultHotWindow             = 10000
	defaultHotThreshold          = 4
	defaultConnectTimeout        = time.Second
	defaultResponseHeaderTimeout = 30 * time.Second
	defaultIdleConnTimeout       = 90 * time.Second
	defaultMaxIdleConnsPerPeer   = 256
	defaultEjectFor              = 2 * time.Second
)

// Cluster is this node's view of the PoP: who owns a key, the peers'
// connection pools and the replica admission sketch. It implements
// edge.Cluster. Its methods are safe for concurrent use.
type Cluster struct {
	cfg     Config
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics
	sketch  *sketch.Sketch

	view atomic.Pointer[view] // the ring Owner reads; rebuilt under mu

	notifyMu sync.Mutex        // serializes membership changes with their OnChange calls
	mu       sync.Mutex        // guards members, peers, left
	members  map[string]string // live members (self included): name → peer HTTP address
	peers    map[string]*peer  // every live member but self, with its transport
	left     bool              // Leave or Close was called: own nothing, know no one

	gossip *gossip // nil in static mode
}

// view is an immutable snapshot of ownership: the ring over the live,
// non-ejected members, and what Owner and Fetch need to answer from it.
type view struct {
	ring    *ketama.Ring
	byIndex []*peer          // by ring member index; nil at self
	byName  map[string]*peer // every live peer, ejected ones too (Fetch)
	recheck int64            // Unix ns when the earliest ejection ends; 0 when none
	share   float64          // this node's fraction of the ring's hash space
}

// ErrUnknownPeer is returned by Fetch for a name that is not a live peer.
var ErrUnknownPeer = errors.New("cluster: unknown peer")

// New validates cfg and starts the Cluster: with Gossip it binds
// memberlist's listeners and tries to join cfg.Gossip.Join (retrying in the
// background if no seed answers). Close releases it.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg:     cfg,
		now:     cfg.Now,
		log:     cfg.Logger,
		metrics: newMetrics(cfg.Registerer),
		sketch:  sketch.New(cfg.HotWindow),
		members: map[string]string{},
		peers:   map[string]*peer{},
	}
	if cfg.Gossip == nil {
		for _, m := range cfg.Static {
			c.members[m.Name] = m.Addr
		}
		c.applyLocked(c.now())
		c.notify()
		return c, nil
	}
	c.members[cfg.Name] = cfg.Addr
	c.applyLocked(c.now())
	g, err := startGossip(c, cfg.Gossip)
	if err != nil {
		return nil, err
	}
	c.gossip = g
	return c, nil
}

// setDefaults validates cfg and fills in its zero fields.
func (cfg *Config) setDefaults() error {
	if cfg.Name == "" {
		return errors.New("cluster: Config.Name is required")
	}
	if (cfg.Static == nil) == (cfg.Gossip == nil) {
		return errors.New("cluster: set exactly one of Config.Static and Config.Gossip")
	}
	if cfg.BalanceFactor != 0 && (cfg.BalanceFactor < 1 || math.IsNaN(cfg.BalanceFactor) || math.IsInf(cfg.BalanceFactor, 0)) {
		return fmt.Errorf("cluster: BalanceFactor %v: want 0 (off) or at least 1", cfg.BalanceFactor)
	}
	if cfg.Static != nil {
		if err := checkStatic(cfg.Name, cfg.Static); err != nil {
			return err
		}
	} else if err := cfg.Gossip.check(cfg.Addr); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{{"HotWindow", &cfg.HotWindow, defaultHotWindow}, {"HotThreshold", &cfg.HotThreshold, defaultHotThreshold}, {"MaxIdleConnsPerPeer", &cfg.MaxIdleConnsPerPeer, defaultMaxIdleConnsPerPeer}} {
		if *f.v < 0 {
			return fmt.Errorf("cluster: %s is negative", f.name)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	setDuration(&cfg.ConnectTimeout, defaultConnectTimeout)
	setDuration(&cfg.ResponseHeaderTimeout, defaultResponseHeaderTimeout)
	setDuration(&cfg.IdleConnTimeout, defaultIdleConnTimeout)
	setDuration(&cfg.EjectFor, defaultEjectFor)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// setDuration sets *d to def when it is zero or negative.
func setDuration(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// checkStatic validates a static member list that must contain self.
func checkStatic(self string, members []Member) error {
	seen := map[string]bool{}
	for _, m := range members {
		if m.Name == "" {
			return errors.New("cluster: a Static member has no name")
		}
		if seen[m.Name] {
			return fmt.Errorf("cluster: Static member %q listed twice", m.Name)
		}
		seen[m.Name] = true
		if m.Addr == "" && m.Name != self {
			return fmt.Errorf("cluster: Static member %q has no Addr", m.Name)
		}
	}
	if !seen[self] {
		return fmt.Errorf("cluster: Static does not list this node, %q", self)
	}
	return nil
}

// Self returns this node's name.
func (c *Cluster) Self() string { return c.cfg.Name }

// Owner returns the live peer owning key, and false when this node owns it
// or knows no other live peer (alone, or after Leave). With bounded loads
// an owner over its bound gives way to the owner of the key's first jump
// point with room; a jump onto this node, or no room anywhere, answers
// false. It allocates nothing.
func (c *Cluster) Owner(key string) (string, bool) {
	v := c.view.Load()
	if v.recheck != 0 && c.now().UnixNano() >= v.recheck {
		v = c.refresh()
	}
	var buf [1]int
	o := v.ring.AppendOrder(buf[:0], ketama.Point(key), 1)
	if len(o) == 0 || v.byIndex[o[0]] == nil {
		c.metrics.lookupSelf.Inc()
		return "", false
	}
	p := v.byIndex[o[0]]
	if c.cfg.BalanceFactor > 0 {
		p = c.bounded(v, key, p)
		if p == nil {
			c.metrics.lookupSelf.Inc()
			return "", false
		}
	}
	c.metrics.lookupPeer.Inc()
	return p.name, true
}

// bounded returns the peer that takes key under bounded loads: owner if its
// in-flight fetches with this one stay within the bound, else the owner of
// the first of the key's jump points (lb's rule, ketama.JumpPoint) that has
// room, or nil when a jump lands on this node or no peer has room within
// as many jumps as members: this node then fills the key itself.
func (c *Cluster) bounded(v *view, key string, owner *peer) *peer {
	total := int64(1) // this fetch
	for _, p := range v.byIndex {
		if p != nil {
			total += p.inflight.Load()
		}
	}
	bound := int64(math.Ceil(c.cfg.BalanceFactor*float64(total)/float64(len(v.byIndex)) - 1e-9))
	if owner.inflight.Load()+1 <= bound {
		return owner
	}
	c.metrics.overflows.Inc()
	h := ketama.KeyHash(key)
	var buf [1]int
	for attempt := 1; attempt <= len(v.byIndex); attempt++ {
		j := v.ring.AppendOrder(buf[:0], ketama.JumpPoint(h, attempt), 1)
		p := v.byIndex[j[0]]
		if p == nil {
			return nil
		}
		if p.inflight.Load()+1 <= bound {
			return p
		}
	}
	return nil
}

// Live returns the live members, this node included, sorted by name:
// membership's view, peers ejected at this node included. After Leave or
// Close it is empty.
func (c *Cluster) Live() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.liveLocked()
}

// liveLocked is Live with c.mu held.
func (c *Cluster) liveLocked() []Member {
	out := make([]Member, 0, len(c.members))
	for name, addr := range c.members {
		out = append(out, Member{Name: name, Addr: addr})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// refresh rebuilds the view if an ejection it holds has ended, and returns
// the current view.
func (c *Cluster) refresh() *view {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if v := c.view.Load(); v.recheck == 0 || now.UnixNano() < v.recheck {
		return v // another caller rebuilt it
	}
	return c.applyLocked(now)
}

// applyLocked brings peers in line with members (new peers get a transport
// and bound metrics; departed ones have their idle connections closed and
// are dropped) and swaps in a view whose ring leaves out the peers ejected
// at now. c.mu is held (or c is not yet shared).
func (c *Cluster) applyLocked(now time.Time) *view {
	for name, p := range c.peers {
		if addr, ok := c.members[name]; !ok || addr != p.addr {
			p.close()
			delete(c.peers, name)
		}
	}
	v := &view{byName: make(map[string]*peer, len(c.members))}
	ringMembers := make([]ketama.Member, 0, len(c.members))
	var selfIndex = -1
	for _, m := range c.liveLocked() {
		if m.Name == c.cfg.Name {
			selfIndex = len(ringMembers)
			ringMembers = append(ringMembers, ketama.Member{Name: m.Name})
			v.byIndex = append(v.byIndex, nil)
			continue
		}
		p := c.peers[m.Name]
		if p == nil {
			p = c.newPeer(m)
			c.peers[m.Name] = p
		}
		v.byName[m.Name] = p
		if until := p.ejectedUntil.Load(); until > now.UnixNano() {
			if v.recheck == 0 || until < v.recheck {
				v.recheck = until
			}
			continue
		}
		ringMembers = append(ringMembers, ketama.Member{Name: m.Name})
		v.byIndex = append(v.byIndex, p)
	}
	ring, err := ketama.New(ringMembers)
	if err != nil { // names are unique and non-empty: cannot happen
		panic(err)
	}
	v.ring = ring
	c.view.Store(v)
	c.metrics.members.Set(float64(len(c.members)))
	share := 0.0
	if selfIndex >= 0 {
		share = ring.Shares()[selfIndex]
	}
	v.share = share
	c.metrics.ownerShare.Set(share)
	return v
}

// OwnerShare is the fraction of the key space this node owns now (1 when
// alone, 0 after Leave).
func (c *Cluster) OwnerShare() float64 { return c.view.Load().share }

// change applies a membership change: f edits c.members under c.mu, the
// view is rebuilt, and OnChange sees the result.
func (c *Cluster) change(event string, f func(members map[string]string)) {
	c.notifyMu.Lock()
	defer c.notifyMu.Unlock()
	c.mu.Lock()
	if c.left {
		c.mu.Unlock()
		return
	}
	f(c.members)
	c.applyLocked(c.now())
	c.mu.Unlock()
	c.metrics.changes.WithLabelValues(event).Inc()
	c.notifyLocked()
}

// notify calls OnChange with the live members.
func (c *Cluster) notify() {
	c.notifyMu.Lock()
	defer c.notifyMu.Unlock()
	c.notifyLocked()
}

// notifyLocked is notify with c.notifyMu held.
func (c *Cluster) notifyLocked() {
	if c.cfg.OnChange != nil {
		c.cfg.OnChange(c.Live())
	}
}

// forget drops every member, self included: after Leave and Close this
// node owns nothing and knows no peer. It closes the peers' idle
// connections.
func (c *Cluster) forget() {
	c.notifyMu.Lock()
	defer c.notifyMu.Unlock()
	c.mu.Lock()
	if c.left {
		c.mu.Unlock()
		return
	}
	c.left = true
	clear(c.members)
	c.applyLocked(c.now())
	c.mu.Unlock()
	c.notifyLocked()
}

// Leave leaves the PoP gracefully: with gossip it broadcasts the leave
// (waiting up to timeout for it to go out) so the others drop this node at
// once, then stops memberlist. From then on Owner answers false for every
// key. In static mode only the latter.
func (c *Cluster) Leave(timeout time.Duration) error {
	var err error
	if c.gossip != nil {
		err = c.gossip.leave(timeout)
	}
	c.forget()
	return err
}

// Close stops memberlist without a leave (the others detect the failure),
// stops retrying joins and closes the idle peer connections. It is safe to
// call after Leave and more than once.
func (c *Cluster) Close() error {
	var err error
	if c.gossip != nil {
		err = c.gossip.shutdown()
	}
	c.forget()
	return err
}

// memberlistNode is the member a memberlist node stands for.
func memberlistNode(n *memberlist.Node) Member {
	return Member{Name: n.Name, Addr: string(n.Meta)}
}
