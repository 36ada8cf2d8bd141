// Package cluster makes the edged nodes of a PoP one cache: it implements
// edge.Cluster over a membership (hashicorp/memberlist gossip, or a static
// list), a ketama ring of the live members, a keep-alive pool per peer and a
// replica admission sketch.
//
// # Ownership
//
// Every cache key has one owner: the member owning it on a ketama ring
// (package lb/ketama, weight 1 each) over the live members' names, rebuilt
// on every membership change and swapped in atomically. Owner reads the
// ring without locks or allocations. Because ketama gives each member
// points independent of the others, a member leaving moves only its own
// keys, and its return moves exactly those back. Members are named, not
// addressed, so every node that sees the same members computes the same
// owners.
//
// With Config.BalanceFactor c, ownership has bounded loads, as package lb's
// ketama policy: an owner whose in-flight fetches from this node, this one
// included, would exceed ceil(c × (in-flight fetches over all peers + 1) /
// live members) gives the key to the owner of the key's first jump point
// (ketama.JumpPoint) with room; a jump onto this node, or no room within
// as many jumps as members, means this node fills the key itself.
//
// # Membership
//
// With Config.Gossip, memberlist runs SWIM over UDP and TCP with LAN
// defaults tuned for fast detection (probe every 500ms, 250ms probe
// timeout, suspicion multiplier 2, gossip every 100ms): a crashed node is
// declared dead within about 2s (TestGossipFailover measures it). A node's
// peer HTTP address travels in its node meta. A node restarted under the
// same name at a new address is let back in at once. Joining retries in
// the background every second until a seed answers. With Config.Static the
// list is the membership.
//
// Either way, a peer this node cannot reach (Fetch gets no response head)
// is ejected from this node's ring for Config.EjectFor; it comes back when
// that passes, or sooner when membership reports it joined or updated.
//
// # Fetch
//
// Each peer has its own http.Transport: HTTP/1.1 only, no transparent
// compression (the caller's headers go as they are, bodies come back as
// sent), a keep-alive pool of Config.MaxIdleConnsPerPeer, kept across ring
// rebuilds while the peer stays and closed when it leaves.
//
// # Replicas
//
// Admit counts misses of peer-owned keys in a count-min sketch (4 rows of
// saturating 8-bit counters, width the next power of two at or above
// Config.HotWindow) whose counters are halved every HotWindow misses
// (TinyLFU aging). A key is hot, and worth a local replica, when its
// estimate reaches Config.HotThreshold.
//
// # Metrics
//
// With Config.Registerer set, the series are:
//
//	edged_cluster_members                                gauge: live members, this node included
//	edged_cluster_membership_changes_total{event}        counter: membership events, event="join"/"leave"/"update"
//	edged_cluster_owner_share                            gauge: fraction of the ring's hash space this node owns (1 when alone)
//	edged_cluster_lookups_total{owner}                   counter: Owner calls, owner="self"/"peer"
//	edged_cluster_peer_fetches_total{peer,result}        counter: fetches to a peer, result="ok"/"error" (any response is ok)
//	edged_cluster_peer_fetch_duration_seconds{peer}      histogram: time to a peer's response head, from 0.1ms
//	edged_cluster_peer_ejections_total{peer}             counter: passive ejections of an unreachable peer
//	edged_cluster_replica_admissions_total{result}       counter: Admit calls, result="admitted"/"rejected"
//	edged_cluster_balance_overflows_total                counter: lookups whose owner was over its bounded load
//
// The peer label is the member's name.
package cluster
