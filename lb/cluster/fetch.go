package cluster

import (
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// peer is a live member other than this node: its address, its keep-alive
// pool and its state at this node. A peer keeps its transport across ring
// rebuilds for as long as it stays a member at the same address.
type peer struct {
	name, addr   string
	tr           *http.Transport
	inflight     atomic.Int64 // fetches sent and waiting for a response head
	ejectedUntil atomic.Int64 // Unix ns; 0 or past: not ejected

	fetchOK, fetchErr, ejections prometheus.Counter
	duration                     prometheus.Observer
}

// newPeer returns the peer for m, with its transport and its metrics bound.
func (c *Cluster) newPeer(m Member) *peer {
	dialer := &net.Dialer{Timeout: c.cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	return &peer{
		name: m.Name,
		addr: m.Addr,
		tr: &http.Transport{
			DialContext:           dialer.DialContext,
			Protocols:             &protocols,
			DisableCompression:    true,
			MaxIdleConnsPerHost:   c.cfg.MaxIdleConnsPerPeer,
			IdleConnTimeout:       c.cfg.IdleConnTimeout,
			ResponseHeaderTimeout: c.cfg.ResponseHeaderTimeout,
		},
		fetchOK:   c.metrics.fetches.WithLabelValues(m.Name, "ok"),
		fetchErr:  c.metrics.fetches.WithLabelValues(m.Name, "error"),
		ejections: c.metrics.ejections.WithLabelValues(m.Name),
		duration:  c.metrics.duration.WithLabelValues(m.Name),
	}
}

// close closes the peer's idle connections; in-flight fetches finish on
// theirs.
func (p *peer) close() { p.tr.CloseIdleConnections() }

// Fetch sends req to peer over its keep-alive pool, HTTP/1.1, and returns
// the response head with its body unread (the caller closes it). It sets
// req.URL's scheme and host to the peer's address and leaves everything
// else as the caller set it: req.Host (the client's host), the headers
// (no Accept-Encoding is added, nothing is decompressed). Any response,
// whatever its status, is a success. A failure to get a response head
// (dial error, refused or reset connection, EOF, timeout), unless req's
// context ended, ejects the peer from this node's ring for
// Config.EjectFor; a membership join or update of the peer readmits it
// sooner. An unknown peer name returns ErrUnknownPeer.
func (c *Cluster) Fetch(peerName string, req *http.Request) (*http.Response, error) {
	p := c.view.Load().byName[peerName]
	if p == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownPeer, peerName)
	}
	req.URL.Scheme = "http"
	req.URL.Host = p.addr
	p.inflight.Add(1)
	start := time.Now()
	resp, err := p.tr.RoundTrip(req)
	p.inflight.Add(-1)
	if err != nil {
		p.fetchErr.Inc()
		if req.Context().Err() == nil {
			c.eject(p)
		}
		return nil, fmt.Errorf("cluster: fetch from peer %s (%s): %w", p.name, p.addr, err)
	}
	p.duration.Observe(time.Since(start).Seconds())
	p.fetchOK.Inc()
	return resp, nil
}

// eject takes p out of this node's ring for EjectFor.
func (c *Cluster) eject(p *peer) {
	now := c.now()
	p.ejectedUntil.Store(now.Add(c.cfg.EjectFor).UnixNano())
	p.ejections.Inc()
	c.log.Warn("cluster: peer unreachable, ejected", "peer", p.name, "addr", p.addr, "for", c.cfg.EjectFor)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peers[p.name] == p {
		c.applyLocked(now)
	}
}
