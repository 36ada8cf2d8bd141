package edge

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edged-proxy/edged/cache"
)

// RequestIDField is the request field that carries a request's ID: taken
// from the client when it is a sane token (SaneRequestID), otherwise
// generated, and sent to the origin with every fill and pass-through.
const RequestIDField = "X-Request-Id"

// MaxRequestIDLen is the longest client request ID kept.
const MaxRequestIDLen = 128

// SaneRequestID reports whether a client's request ID is kept: 1 to
// MaxRequestIDLen bytes of printable ASCII other than space, '"' and '\'
// (so it needs no escaping in any log format and no quoting in a field).
func SaneRequestID(v string) bool {
	if len(v) == 0 || len(v) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// idGen generates request IDs: a per-process random prefix and a
// counter, in hex ("6f1c0e9a2b7d4c15-1a2"). Unique across processes with
// overwhelming likelihood, without a random read per request.
type idGen struct {
	prefix string
	n      atomic.Uint64
}

func newIDGen() *idGen {
	var b [8]byte
	rand.Read(b[:])
	return &idGen{prefix: hex.EncodeToString(b[:]) + "-"}
}

// requestID is a request's ID: the client's, or a generated one, kept as
// its number until it is needed as a string (a hit's log line appends it).
type requestID struct {
	client string // the client's sane ID; "" when generated
	gen    *idGen
	n      uint64
}

// set takes the client's ID v when sane, else numbers a generated one.
func (id *requestID) set(v string, gen *idGen) {
	if SaneRequestID(v) {
		id.client = v
		return
	}
	id.gen, id.n = gen, gen.n.Add(1)
}

// append appends the ID to b.
func (id *requestID) append(b []byte) []byte {
	if id.gen == nil {
		return append(b, id.client...)
	}
	b = append(b, id.gen.prefix...)
	return strconv.AppendUint(b, id.n, 16)
}

// RequestID returns the request's ID: the client's X-Request-ID when it
// is a sane token (SaneRequestID), else the one edged generated; "" for a
// Session edged did not start. A generated ID is built on each call.
func (s *Session) RequestID() string {
	if s.id.gen == nil {
		return s.id.client
	}
	var buf [48]byte
	return string(s.id.append(buf[:0]))
}

// upstreamTiming is what the access log says of this request's own
// origin exchange. A fill may run past the request (it is detached from
// the client), so the fields are atomic.
type upstreamTiming struct {
	status atomic.Int32 // the origin's status; 0: not contacted (a hit, a joined fill)
	header atomic.Int32 // time to response headers, in µs (up to 35 minutes)
	total  atomic.Int64 // time to the body's last byte read so far, in ns
}

// send sends out through o, timing it into t; the response body, when
// there is one to read, records when its bytes arrive.
func (t *upstreamTiming) send(o cache.Origin, out *http.Request, routeKey string) (*http.Response, string, error) {
	start := time.Now()
	resp, upstream, err := o.Send(out, routeKey)
	if err != nil || resp == nil {
		return resp, upstream, err
	}
	d := time.Since(start)
	t.header.Store(int32(min(d.Microseconds(), math.MaxInt32)))
	t.total.Store(int64(d))
	t.status.Store(int32(resp.StatusCode))
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil && resp.Body != http.NoBody {
		resp.Body = &timedBody{ReadCloser: resp.Body, t: t, start: start} // a 101's body is the connection (upgrade.go)
	}
	return resp, upstream, nil
}

// timedBody records in t when its reads return.
type timedBody struct {
	io.ReadCloser
	t     *upstreamTiming
	start time.Time
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.t.total.Store(int64(time.Since(b.start)))
	return n, err
}

// timedOrigin is the origin of a request's fill, timing the exchange into
// the request's Session.
type timedOrigin struct {
	o cache.Origin
	t *upstreamTiming
}

func (o *timedOrigin) Send(out *http.Request, routeKey string) (*http.Response, string, error) {
	return o.t.send(o.o, out, routeKey)
}
