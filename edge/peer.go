package edge

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/internal/httpx"
)

// The peer hop of a PoP (Config.Cluster). A node that misses a key
// another peer owns sends the peer a fill request built from the client's
// request (peerRequest): the client's method (GET, or HEAD for a HEAD
// revalidation), target, Host and fields, less the hop-by-hop ones and the
// client's Range and conditional fields (a fill asks for the whole
// representation), with the validators of a revalidation, and these
// fields, which only a peer listener (ServerConfig.Peer) reads and every
// other request loses before it reaches an origin:
const (
	// PeerField names the asking node: the request is a peer fetch, which
	// the owner answers from its cache or its origin and never forwards.
	PeerField = "Edged-Peer"
	// peerProtoField is the scheme the client used ("http", "https"): part
	// of the cache key.
	peerProtoField = "Edged-Peer-Proto"
	// peerAddrField is the client connection's address as the asking node
	// saw it (Request.RemoteAddr), so that the owner resolves the same
	// client address and forwards the same X-Forwarded-For.
	peerAddrField = "Edged-Peer-Addr"
	// peerTokenField carries Config.PeerToken, when set.
	peerTokenField = "Edged-Peer-Token"
	// peerAgeField, on the owner's answer, is how long ago (milliseconds)
	// the owner's copy was requested from the origin: the asking node
	// refuses a copy older than a purge it has applied (PurgedSince).
	peerAgeField = "Edged-Peer-Age"
)

// peerRefused is PeerField's value on a peer listener's refusal (no
// PeerField, a wrong token): the asking node then asks the origin.
const peerRefused = "refused"

var peerFields = [...]string{PeerField, peerProtoField, peerAddrField, peerTokenField, peerAgeField}

// deletePeerFields removes the peer hop's fields from hd.
func deletePeerFields(hd http.Header) {
	for _, f := range peerFields {
		delete(hd, f)
	}
}

// peerFill is the cache.Origin of a fill whose key a peer owns: it asks
// the owner, and the site's origin when the owner cannot be reached or
// answers with a copy a purge applied here has overtaken.
//
// On a sliced site each slice has an owner of its own (sliceOwnerKey), so
// the slices of one large object spread over the PoP as nginx's slice
// module behind a consistent hash spreads them: peerFill is then the
// origin of every fill of the request, and a slice this node owns goes to
// the site's origin.
type peerFill struct {
	st     *requestState
	owner  string // the key's owner; "" when this node owns it
	sliced bool
	origin cache.Origin
}

// sliceOwnerKey is the key whose owner fills the slice of key asked with
// Range rng ("bytes=A-B", the same on every node for a given slice size).
func sliceOwnerKey(key, rng string) string { return key + "\x00" + rng }

// Send implements cache.Origin.
func (p *peerFill) Send(out *http.Request, routeKey string) (*http.Response, string, error) {
	st := p.st
	h := st.h
	owner := p.owner
	if p.sliced && st.fetch.Range != "" {
		owner, _ = h.cluster.Owner(sliceOwnerKey(st.s.Key, st.fetch.Range))
	}
	if owner == "" {
		return p.origin.Send(out, routeKey) // this node's own key or slice
	}
	req := h.peerRequest(out.Context(), &st.s, &st.fetch)
	start := h.now()
	resp, err := h.cluster.Fetch(owner, req)
	if err != nil {
		h.peerFallback("unreachable")
		h.log.Debug("peer fetch failed; asking the origin", "peer", owner, "key", st.s.Key, "err", err)
		return p.origin.Send(out, routeKey)
	}
	if resp.Header.Get(PeerField) == peerRefused {
		// Misconfigured (a token differs): the owner took nothing.
		resp.Body.Close()
		h.peerFallback("refused")
		h.log.Warn("peer refused a peer fetch; asking the origin", "peer", owner, "status", resp.StatusCode)
		return p.origin.Send(out, routeKey)
	}
	age, _ := strconv.ParseInt(resp.Header.Get(peerAgeField), 10, 64)
	// The owner's copy was requested from the origin no earlier than
	// this (its age is rounded up to the millisecond; one more covers
	// this node's clock reading).
	fetched := start.Add(-time.Duration(age+1) * time.Millisecond)
	if h.cache.PurgedSince(st.s.Key, resp.Header, fetched) {
		// The owner's copy was fetched before a purge applied here, which
		// the owner may not have applied yet.
		resp.Body.Close()
		h.peerFallback("purged")
		return p.origin.Send(out, routeKey)
	}
	deletePeerFields(resp.Header)
	dropLastVia(resp.Header) // the owner's: this node adds its own, as if it had filled
	return resp, cache.PeerPrefix + owner, nil
}

// peerRequest builds the request a fill sends to the peer owning its key
// (see the peer fields above).
func (h *Handler) peerRequest(ctx context.Context, s *Session, f *cache.Fetch) *http.Request {
	in := s.Req
	method := http.MethodGet
	if f.Head {
		method = http.MethodHead
	}
	hd := in.Header.Clone()
	httpx.RemoveHopByHop(hd)
	deletePeerFields(hd)
	setFetchFields(hd, f)
	hd[PeerField] = []string{h.cluster.Self()}
	hd[peerProtoField] = []string{s.Scheme}
	hd[peerAddrField] = []string{in.RemoteAddr}
	if h.peerToken != "" {
		hd[peerTokenField] = []string{h.peerToken}
	}
	if h.tracer != nil {
		injectTrace(ctx, hd) // the owner continues the trace
	}
	if _, ok := hd["User-Agent"]; !ok {
		hd["User-Agent"] = []string{""} // keep Go's default User-Agent off
	}
	out := &http.Request{
		Method:     method,
		URL:        &url.URL{Path: in.URL.Path, RawPath: in.URL.RawPath, RawQuery: in.URL.RawQuery},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hd,
		Host:       in.Host,
	}
	return out.WithContext(ctx)
}

// peerIn accepts a request that arrived on the peer listener: it must
// name the asking node (PeerField) and carry the peer token when one is
// set. The request then looks to the rest of the lifecycle as it did at
// the asking node: the client connection's address, and the scheme
// returned. It answers a request it refuses (400, 403) and returns false.
func (h *Handler) peerIn(w http.ResponseWriter, r *http.Request) (scheme string, ok bool) {
	from := r.Header.Get(PeerField)
	if from == "" {
		w.Header().Set(PeerField, peerRefused)
		http.Error(w, "this listener takes peer fetches only", http.StatusBadRequest)
		return "", false
	}
	if h.peerToken != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get(peerTokenField)), []byte(h.peerToken)) != 1 {
		w.Header().Set(PeerField, peerRefused)
		http.Error(w, "peer token missing or wrong", http.StatusForbidden)
		return "", false
	}
	scheme = r.Header.Get(peerProtoField)
	if scheme != "https" {
		scheme = "http"
	}
	if addr := r.Header.Get(peerAddrField); addr != "" {
		if _, _, err := net.SplitHostPort(addr); err == nil {
			r.RemoteAddr = addr
		}
	}
	deletePeerFields(r.Header)
	return scheme, true
}

// dropLastVia removes the last member of hd's Via field.
func dropLastVia(hd http.Header) {
	vv := hd["Via"]
	if len(vv) == 0 {
		return
	}
	last := vv[len(vv)-1]
	i := strings.LastIndexByte(last, ',')
	switch {
	case i >= 0:
		hd["Via"] = append(vv[:len(vv)-1:len(vv)-1], strings.TrimRight(last[:i], " \t"))
	case len(vv) == 1:
		delete(hd, "Via")
	default:
		hd["Via"] = vv[: len(vv)-1 : len(vv)-1]
	}
}

// peerFallback counts a peer fetch answered by the origin instead.
func (h *Handler) peerFallback(reason string) {
	if h.metrics != nil {
		h.metrics.peerFallbacks.WithLabelValues(reason).Inc()
	}
}

// peerAge is the Edged-Peer-Age value of e on an owner's answer: the
// milliseconds since its fill asked the origin, rounded up.
func peerAge(e *cache.Entry, now time.Time) string {
	t := e.Timing.RequestTime
	if t.IsZero() {
		t = e.Timing.ResponseTime
	}
	return strconv.FormatInt(int64(max(0, (now.Sub(t)+time.Millisecond-1)/time.Millisecond)), 10) // rounded up
}
