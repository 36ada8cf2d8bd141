package edge

import (
	"net/http"
)

// Cluster makes the edged nodes of a PoP one cache: every cache key has an
// owner among the live nodes (peers), a node that misses a key another
// peer owns asks that peer instead of the origin, and keeps a copy (a
// replica) only of what is hot at that node. Package lb/cluster implements
// it over hashicorp/memberlist or a static peer list; the edge declares it
// so that it need not import lb.
//
// The owner answers a peer fetch from its cache or fills it from the
// origin (coalesced with every other request for the key), and never
// forwards it again: a peer request ends at the first peer, whatever that
// peer believes about ownership, so there are no loops and no storms while
// membership converges.
type Cluster interface {
	// Self is this node's name: its Cache-Status identity, and the name
	// the other peers know it by.
	Self() string
	// Owner returns the name of the live peer that owns key, and false
	// when this node owns it, or knows no other live peer.
	Owner(key string) (peer string, ok bool)
	// Fetch sends req to peer over that peer's keep-alive connection pool
	// and returns its response (the caller closes the body). req.URL
	// carries the path and query only; Fetch sets its scheme and host to
	// the peer's address. An error means the peer was not reached or did
	// not answer with a response head: the caller falls back to the
	// origin. A peer that cannot be reached is taken out of ownership at
	// this node until it answers again or membership says it is back.
	Fetch(peer string, req *http.Request) (*http.Response, error)
	// Admit records a miss at this node for key, which a peer owns, and
	// reports whether key is hot here: a response for it fetched from its
	// owner is then stored as a local replica. It is asked once per fill
	// that goes to a peer.
	Admit(key string) bool
}
