// Package purge is edged's purge service: the admin API (POST /purge,
// GET /purge/{id}) and the conventional PURGE method for the edge listener.
// The selector grammar lives in purge/selector, fleet-wide propagation over
// NATS JetStream in purge/fleet (behind the Fleet seam declared here), and
// the `edged purge` command line in cmd/edged.
//
// Of edged's packages it imports only purge/selector. The cache tiers do the
// actual work behind the one-method Invalidator interface declared here;
// cmd/edged adapts (*cache.Cache).Purge to it with an InvalidatorFunc.
//
// A purge is applied locally first, through the Invalidator, which must be
// durable when it returns nil; only then is it answered and, with a fleet,
// handed to the Fleet. See docs/purge.md for the operator's view.
package purge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/purge/selector"
)

// Matched counts the objects each selector kind matched (removed, or marked
// stale for a soft purge).
type Matched struct {
	URLs     int `json:"urls"`
	Prefixes int `json:"prefixes"`
	Tags     int `json:"tags"`
	Hosts    int `json:"hosts"`
}

// Total is the sum of all kinds.
func (m Matched) Total() int { return m.URLs + m.Prefixes + m.Tags + m.Hosts }

// Invalidator applies a purge to the local cache tiers. It must be durable
// when it returns nil: a purge it reported as done is never undone by a
// restart or crash. It may be called concurrently.
type Invalidator interface {
	Purge(ctx context.Context, sel Selector) (Matched, error)
}

// InvalidatorFunc adapts a function to Invalidator.
type InvalidatorFunc func(ctx context.Context, sel Selector) (Matched, error)

// Purge calls f(ctx, sel).
func (f InvalidatorFunc) Purge(ctx context.Context, sel Selector) (Matched, error) {
	return f(ctx, sel)
}

var _ Invalidator = InvalidatorFunc(nil)

// Token is one bearer token accepted by the admin API and the PURGE method.
type Token struct {
	// Value is the secret the client sends as "Authorization: Bearer Value".
	// Required, no whitespace, unique among Tokens.
	Value string
	// Sites limits the token to these site names (as Config.SiteOf returns
	// them). Empty means every site. A site-limited token may not purge by tag,
	// since a tag cannot be mapped to a site.
	Sites []string
	// Name identifies the token in logs; never the value. Default "token-N"
	// (N its index in Config.Tokens).
	Name string
}

// Config configures a Purger. The zero value is not usable: Invalidator is
// required. Every other field has a default, given in its doc.
type Config struct {
	// Node is this node's name: the durable consumer's name and the key of its
	// receipts. Only letters, digits, '-' and '_'. Default: os.Hostname() with
	// every other character replaced by '_'. Set it explicitly with a fleet, so
	// that a restarted node resumes where it stopped.
	Node string

	// Invalidator applies purges to the local cache tiers. Required.
	Invalidator Invalidator

	// Tokens are the accepted bearer tokens. With none, POST /purge and
	// GET /purge/{id} answer 403 (the API is closed, not open), and the PURGE
	// method works only from AllowCIDRs.
	Tokens []Token

	// SiteOf maps a host named by a purge (as written: "host" or "host:port")
	// to the name of the site serving it, to enforce Token.Sites; "" means no
	// site. Default: the host lower-cased, without its port.
	SiteOf func(host string) string

	// AllowCIDRs are the client networks allowed to use the PURGE method on the
	// edge listener without a token. Default none. The client address is the
	// connection's (Request.RemoteAddr), never a forwarded header.
	AllowCIDRs []netip.Prefix

	// JoinFleet makes this node part of a fleet. New calls it once, last,
	// with this node's Local side; the Purger then hands every purge it
	// applies to the returned Fleet, merges the Fleet's receipts into its
	// own, and closes it in Close. Nil (default) means a single node:
	// nothing is published or consumed. purge/fleet provides one over NATS
	// JetStream (fleet.Config.Join).
	JoinFleet func(Local) (Fleet, error)

	// MaxBodyBytes limits a POST /purge body. Default 1 MiB.
	MaxBodyBytes int64
	// MaxItems limits the URLs, prefixes, tags and hosts of one purge, added
	// up. Default 1000 (DefaultMaxItems).
	MaxItems int
	// ApplyTimeout bounds one local application of a purge through the
	// Invalidator. The purge is not cancelled when the client goes away.
	// Default 60s.
	ApplyTimeout time.Duration
	// Receipts is how many purges this node remembers (for GET /purge/{id}
	// and to apply each fleet purge once). Default 10000.
	Receipts int

	// Logger receives one line per purge and per refusal. Nil discards them.
	Logger *slog.Logger
	// Registerer registers the edged_purge* metrics. Nil: not registered.
	Registerer prometheus.Registerer
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Defaults for Config fields left zero.
const (
	DefaultMaxItems     = selector.DefaultMaxItems
	DefaultMaxBodyBytes = 1 << 20
	DefaultApplyTimeout = 60 * time.Second
	DefaultReceipts     = 10000
)

// TokenEnv is the environment variable the `edged purge` command line (and,
// by convention, the daemon) reads a purge token from.
const TokenEnv = "EDGED_PURGE_TOKEN"

// Result is the answer to an accepted purge.
type Result struct {
	ID      string      `json:"id"`
	Matched Matched     `json:"matched"`
	Soft    bool        `json:"soft"`
	Fleet   FleetStatus `json:"fleet"`
}

// NodeReceipt says when one node applied a purge.
type NodeReceipt struct {
	Node      string    `json:"node"`
	AppliedAt time.Time `json:"applied_at"`
	Matched   Matched   `json:"matched"`
}

// Receipt is what GET /purge/{id} answers.
type Receipt struct {
	ID         string        `json:"id"`
	Selector   Selector      `json:"selector"`
	Origin     string        `json:"origin"`
	AcceptedAt time.Time     `json:"accepted_at"`
	Fleet      FleetStatus   `json:"fleet"`
	Nodes      []NodeReceipt `json:"nodes"` // sorted by node name
}

// ErrClosed is returned by Purge after Close.
var ErrClosed = errors.New("purge: purger closed")

// Purger accepts, applies, records and propagates purges. It is an
// http.Handler for the admin listener (POST /purge, GET /purge/{id});
// MethodHandler serves the PURGE method on the edge listener. Create it with
// New and stop it with Close.
type Purger struct {
	node     string
	inv      Invalidator
	tokens   []tokenEntry
	siteOf   func(string) string
	cidrs    []netip.Prefix
	maxBody  int64
	maxItems int
	applyTO  time.Duration
	log      *slog.Logger
	now      func() time.Time
	met      *metrics
	store    *store
	mux      *http.ServeMux
	fleet    Fleet        // nil: single node
	pending  atomic.Int64 // the fleet's publish queue, as last reported

	closeOnce sync.Once
	closed    chan struct{}
}

var _ http.Handler = (*Purger)(nil)

// New checks cfg and returns a Purger. With cfg.JoinFleet set it joins the
// fleet last; purge/fleet's Join does not fail when NATS is unreachable:
// purges are then applied locally and queued ("pending") until it is.
func New(cfg Config) (*Purger, error) {
	if cfg.Invalidator == nil {
		return nil, errors.New("purge: Config.Invalidator is required")
	}
	p := &Purger{
		inv:      cfg.Invalidator,
		siteOf:   cfg.SiteOf,
		cidrs:    append([]netip.Prefix(nil), cfg.AllowCIDRs...),
		maxBody:  cfg.MaxBodyBytes,
		maxItems: cfg.MaxItems,
		applyTO:  cfg.ApplyTimeout,
		log:      cfg.Logger,
		now:      cfg.Now,
		closed:   make(chan struct{}),
	}
	if p.siteOf == nil {
		p.siteOf = defaultSiteOf
	}
	if p.maxBody <= 0 {
		p.maxBody = DefaultMaxBodyBytes
	}
	if p.maxItems <= 0 {
		p.maxItems = DefaultMaxItems
	}
	if p.applyTO <= 0 {
		p.applyTO = DefaultApplyTimeout
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	for i, c := range p.cidrs {
		if !c.IsValid() {
			return nil, fmt.Errorf("purge: AllowCIDRs[%d] is not a valid prefix", i)
		}
		p.cidrs[i] = c.Masked()
	}
	toks, err := compileTokens(cfg.Tokens)
	if err != nil {
		return nil, err
	}
	p.tokens = toks

	p.node = cfg.Node
	if p.node == "" {
		if cfg.JoinFleet != nil {
			return nil, errors.New("purge: Config.Node is required with a fleet (NATS), so that a restarted node resumes its durable consumer")
		}
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "edged"
		}
		p.node = sanitizeNode(h)
	} else if err := validNode(p.node); err != nil {
		return nil, err
	}

	n := cfg.Receipts
	if n <= 0 {
		n = DefaultReceipts
	}
	p.store = newStore(n)

	p.met, err = newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}

	p.mux = http.NewServeMux()
	p.mux.HandleFunc("POST /purge", p.servePost)
	p.mux.HandleFunc("GET /purge/{id}", p.serveReceipt)

	if cfg.JoinFleet != nil {
		f, err := cfg.JoinFleet(p.local())
		if err != nil {
			return nil, err
		}
		p.fleet = f
	}
	return p, nil
}

// Node returns this node's name.
func (p *Purger) Node() string { return p.node }

// Close closes the Fleet, if any (purge/fleet's stops consuming, tries once
// more to publish pending purges and reports those lost to the fleet).
// Close is idempotent; later purges fail with ErrClosed.
func (p *Purger) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closed)
		if p.fleet != nil {
			err = p.fleet.Close()
		}
	})
	return err
}

// ServeHTTP serves POST /purge and GET /purge/{id}. Mount it on the admin
// listener for both "/purge" and "/purge/".
func (p *Purger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mux.ServeHTTP(w, r)
}

// Purge validates sel, applies it locally through the Invalidator and, with a
// fleet, publishes it. who names the requester in the log. It does no
// authorization: the HTTP handlers do that before calling it. A *RequestError
// reports an invalid selector.
func (p *Purger) Purge(ctx context.Context, sel Selector, who string) (Result, error) {
	if err := sel.Validate(p.maxItems); err != nil {
		return Result{}, err
	}
	return p.apply(ctx, sel, who)
}

// apply runs a validated purge; the caller has authorized it.
func (p *Purger) apply(ctx context.Context, sel Selector, who string) (Result, error) {
	select {
	case <-p.closed:
		return Result{}, ErrClosed
	default:
	}
	id, err := newID()
	if err != nil {
		return Result{}, err
	}
	kind := sel.Kind()
	accepted := p.now()
	m, dur, err := p.invalidate(ctx, sel)
	if err != nil {
		p.met.purges.WithLabelValues(kind, outcomeError).Inc()
		p.log.Error("purge failed", "id", id, "who", who, "selector", sel, "duration", dur, "error", err)
		return Result{}, fmt.Errorf("purge: applying locally: %w", err)
	}
	p.met.purges.WithLabelValues(kind, outcomeOK).Inc()

	cmd := Command{ID: id, Selector: sel, Origin: p.node, AcceptedAt: accepted, AppliedAt: p.now(), Matched: m}
	fs := FleetStatus{State: FleetDisabled}
	if p.fleet != nil {
		p.store.add(cmd, FleetStatus{State: FleetPending})
		fs = p.fleet.Submit(ctx, cmd)
	} else {
		p.store.add(cmd, fs)
	}
	p.log.Info("purge", "id", id, "who", who, "selector", sel, "kind", kind, "soft", sel.Soft,
		"matched", m.Total(), "matched_by_kind", m, "duration", dur, "fleet", fs.State)
	return Result{ID: id, Matched: m, Soft: sel.Soft, Fleet: fs}, nil
}

// invalidate calls the Invalidator detached from the caller's cancellation
// (a half-applied purge helps nobody) but bounded by ApplyTimeout.
func (p *Purger) invalidate(ctx context.Context, sel Selector) (Matched, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.applyTO)
	defer cancel()
	start := time.Now()
	m, err := p.inv.Purge(ctx, sel)
	dur := time.Since(start)
	p.met.duration.Observe(dur.Seconds())
	if err == nil {
		p.met.objects.Add(float64(m.Total()))
	}
	return m, dur, err
}

// Receipt returns what this node knows of purge id, merged with the fleet's
// receipts when a fleet is configured. ok is false for an unknown id.
func (p *Purger) Receipt(ctx context.Context, id string) (rc Receipt, ok bool, err error) {
	rc, ok = p.store.receipt(id)
	if p.fleet == nil || !ValidID(id) {
		return rc, ok, nil
	}
	frc, fok, ferr := p.fleet.Receipt(ctx, id)
	if ferr != nil {
		if ok {
			rc.Fleet.Error = joinMsg(rc.Fleet.Error, "fleet receipts unavailable: "+ferr.Error())
			return rc, true, nil
		}
		return rc, false, ferr
	}
	if !fok {
		return rc, ok, nil
	}
	if !ok {
		frc.Nodes = mergeNodes(nil, frc.Nodes)
		return frc, true, nil
	}
	rc.Nodes = mergeNodes(rc.Nodes, frc.Nodes)
	return rc, true, nil
}

func joinMsg(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("purge: id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ValidID reports whether id may name a purge: ids as Purge makes them and
// anything else safe as a NATS subject token, 1-64 of [A-Za-z0-9_-].
func ValidID(id string) bool {
	return len(id) > 0 && len(id) <= 64 && strings.IndexFunc(id, notNameRune) < 0
}

func notNameRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
}

func validNode(n string) error {
	if len(n) > 64 || strings.IndexFunc(n, notNameRune) >= 0 {
		return fmt.Errorf("purge: Config.Node %q: use 1-64 letters, digits, '-' or '_'", n)
	}
	return nil
}

func sanitizeNode(h string) string {
	b := []byte(h)
	for i, c := range b {
		if notNameRune(rune(c)) {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// Ready reports whether the Purger can propagate purges: always true for a
// single node; with a fleet, what its Ready reports. Purges are accepted
// either way.
func (p *Purger) Ready() bool {
	if p.fleet == nil {
		return true
	}
	return p.fleet.Ready()
}

// Pending is the number of purges waiting to be published to the fleet, as
// the Fleet last reported it (Local.SetPending); 0 for a single node.
func (p *Purger) Pending() int { return int(p.pending.Load()) }
