package purge

import (
	"context"
	"log/slog"
	"time"
)

// Fleet propagates the purges this node accepts to the other nodes of a
// fleet, and applies theirs here through the Local side it was joined with
// (Config.JoinFleet). purge/fleet implements it over NATS JetStream.
type Fleet interface {
	// Submit propagates a purge this node has applied and recorded (with
	// state FleetPending) and returns its fleet state. Later changes of that
	// state go to Local.SetStatus. It must not block beyond its own
	// timeouts when the fleet is unreachable.
	Submit(ctx context.Context, c Command) FleetStatus
	// Receipt returns what the fleet knows of purge id: ok false when
	// nothing; Nodes in any order, possibly naming a node twice (the first
	// wins). An error means the fleet could not be asked.
	Receipt(ctx context.Context, id string) (rc Receipt, ok bool, err error)
	// Ready reports whether purges can be propagated now.
	Ready() bool
	// Close stops propagation. Its error reports purges that were applied
	// here but never reached the fleet.
	Close() error
}

// Command is one accepted purge as the fleet carries it and the Purger
// remembers it. Its JSON form is the fleet's message.
type Command struct {
	ID         string    `json:"id"`
	Selector   Selector  `json:"selector"`
	Origin     string    `json:"origin"`
	AcceptedAt time.Time `json:"accepted_at"`
	// AppliedAt and Matched are the origin node's own application.
	AppliedAt time.Time `json:"applied_at"`
	Matched   Matched   `json:"matched"`
}

// Fleet states of a purge, as reported in FleetStatus.State.
const (
	FleetDisabled  = "disabled"  // no fleet configured: single node
	FleetPublished = "published" // stored in the JetStream stream
	FleetPending   = "pending"   // applied locally, queued for publishing (NATS unreachable)
	FleetFailed    = "failed"    // applied locally, never published (queue full or shutdown)
)

// FleetStatus is the propagation state of one purge on the node that accepted it.
type FleetStatus struct {
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// Stages of a fleet failure, the stage label of
// edged_purge_propagation_failures_total (Local.Failed).
const (
	StageConnect = "connect" // stream, bucket or consumer setup
	StagePublish = "publish" // publishing a purge (it stays pending)
	StageQueue   = "queue"   // pending queue full or shut down: never published
	StageDecode  = "decode"  // a malformed fleet message (terminated)
	StageApply   = "apply"   // applying a fleet purge locally (redelivered)
	StageReceipt = "receipt" // storing a receipt in the fleet
)

// Local is what a Purger hands to Config.JoinFleet: this node's identity
// and settings, and the operations a Fleet drives on it. Every field is
// set; the functions may be called concurrently until Fleet.Close returns.
type Local struct {
	// Node is this node's name (Config.Node).
	Node string
	// ApplyTimeout bounds one local application (Config.ApplyTimeout).
	ApplyTimeout time.Duration
	// Logger is the Purger's logger (never nil).
	Logger *slog.Logger
	// Now is the Purger's clock.
	Now func() time.Time

	// Apply applies a purge another node accepted, at most once per ID: for
	// a purge this node accepted or has already applied it returns
	// applied false and does nothing. Otherwise it calls the Invalidator
	// (detached from ctx's cancellation, bounded by ApplyTimeout), records
	// and logs the application and returns this node's receipt. On error
	// nothing is recorded and the purge may be applied again.
	Apply func(ctx context.Context, c Command) (nr NodeReceipt, applied bool, err error)
	// SetStatus records a new fleet state for a purge this node accepted.
	SetStatus func(id string, fs FleetStatus)
	// Failed counts n fleet failures at stage (one of the Stage constants).
	Failed func(stage string, n int)
	// SetPending reports how many purges wait to be published
	// (edged_purge_pending, Purger.Pending).
	SetPending func(n int)
}

// local returns p's side of a fleet.
func (p *Purger) local() Local {
	return Local{
		Node:         p.node,
		ApplyTimeout: p.applyTO,
		Logger:       p.log,
		Now:          p.now,
		Apply:        p.applyFleet,
		SetStatus:    p.store.setFleet,
		Failed:       func(stage string, n int) { p.met.failures.WithLabelValues(stage).Add(float64(n)) },
		SetPending: func(n int) {
			p.pending.Store(int64(n))
			p.met.pending.Set(float64(n))
		},
	}
}

// applyFleet is Local.Apply.
func (p *Purger) applyFleet(ctx context.Context, c Command) (NodeReceipt, bool, error) {
	if c.Origin == p.node || p.store.has(c.ID) {
		return NodeReceipt{}, false, nil
	}
	m, dur, err := p.invalidate(ctx, c.Selector)
	if err != nil {
		return NodeReceipt{}, false, err
	}
	now := p.now()
	lag := max(now.Sub(c.AcceptedAt), 0)
	p.met.lag.Observe(lag.Seconds())
	p.met.applied.Inc()
	nr := NodeReceipt{Node: p.node, AppliedAt: now, Matched: m}
	p.store.put(c, FleetStatus{State: FleetPublished}, nr)
	p.log.Info("fleet purge applied", "id", c.ID, "origin", c.Origin, "selector", c.Selector, "soft", c.Selector.Soft,
		"matched", m.Total(), "duration", dur, "lag", lag)
	return nr, true, nil
}
