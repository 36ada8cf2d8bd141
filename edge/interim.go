package edge

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"

	"github.com/edged-proxy/edged/internal/httpx"
)

// maxInterimBytes bounds the interim (1xx) heads of one origin exchange,
// status lines and fields together; past it the exchange fails (502). Go's
// client stops counting 1xx heads against the response header limit once a
// ClientTrace takes them, so this stands in for upstream's
// max_response_header_bytes (64 KiB by default) for them.
const maxInterimBytes = 64 << 10

// errInterimFlood fails an origin exchange that sent more than
// maxInterimBytes of 1xx heads.
var errInterimFlood = errors.New("edge: the origin's 1xx responses exceed 64 KiB")

// interim forwards the origin's interim responses (102 Processing, 103
// Early Hints, ...) to the client while its request waits for the final
// response: a proxy must forward them (RFC 9110 §15.2). They are never
// stored and their fields never reach the final response.
//
// The origin's response is read by the transport's goroutine (for a fill,
// on behalf of every request waiting on it), so that goroutine only queues
// a 1xx; a goroutine of the request's own writes it. A client that reads
// nothing then stalls that goroutine and, once its final response is
// ready, its own handler, never the fill.
//
// The gate opens when an origin request is built for this client and
// closes, for good, when the handler has its answer and before it touches
// the response header (endInterim): 1xx heads still queued are written
// then, in order, and later ones are dropped.
type interim struct {
	state   atomic.Int32 // gateIdle, gateOpen, gateClosed
	mu      sync.Mutex   // guards queue and draining
	queue   []interimHead
	running bool       // a goroutine is draining queue
	wmu     sync.Mutex // held while a 1xx is written to the client
}

// The states of interim.state.
const (
	gateIdle   = iota // no origin request asked for 1xx yet
	gateOpen          // 1xx are forwarded
	gateClosed        // the final response has begun: no more 1xx
)

// interimHead is one 1xx response to forward.
type interimHead struct {
	code int
	hdr  http.Header
}

// armInterim returns ctx with a ClientTrace that forwards the 1xx
// responses of the origin request made with it to w's client, or ctx
// itself when none may be forwarded: to an HTTP/1.0 client (RFC 9110
// §15.2), to a request with Expect (the server writes its own 100
// Continue, which must not interleave with ours), or once the final
// response has begun (a background revalidation after a stale answer).
func (w *responseWriter) armInterim(ctx context.Context) context.Context {
	r := w.s.Req
	if !r.ProtoAtLeast(1, 1) || r.Header["Expect"] != nil {
		return ctx
	}
	if !w.im.state.CompareAndSwap(gateIdle, gateOpen) && w.im.state.Load() != gateOpen {
		return ctx
	}
	size := 0 // read by one transport goroutine at a time
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
			size += len("HTTP/1.1 100 \r\n\r\n") + len(http.StatusText(code))
			for k, vv := range hdr {
				for _, v := range vv {
					size += len(k) + len(v) + len(": \r\n")
				}
			}
			if size > maxInterimBytes {
				return errInterimFlood
			}
			w.queueInterim(code, http.Header(hdr))
			return nil
		},
	})
}

// queueInterim queues a 1xx for w's client, unless the gate has closed. A
// 100 Continue is never forwarded: edged's own server answers a client's
// Expect, and the origin's 100 answers edged.
func (w *responseWriter) queueInterim(code int, hdr http.Header) {
	if code == http.StatusContinue {
		return
	}
	hd := hdr.Clone()
	httpx.RemoveHopByHop(hd)
	delete(hd, "Content-Length")
	w.dropFields(hd)
	w.im.mu.Lock()
	defer w.im.mu.Unlock()
	if w.im.state.Load() == gateClosed {
		return
	}
	w.im.queue = append(w.im.queue, interimHead{code, hd})
	if !w.im.running {
		w.im.running = true
		go w.drainInterim()
	}
}

// drainInterim writes queued 1xx responses until the queue is empty or
// the gate closes.
func (w *responseWriter) drainInterim() {
	for {
		w.im.wmu.Lock()
		w.im.mu.Lock()
		if w.im.state.Load() == gateClosed || len(w.im.queue) == 0 {
			w.im.running = false
			w.im.mu.Unlock()
			w.im.wmu.Unlock()
			return
		}
		ih := w.im.queue[0]
		w.im.queue = w.im.queue[1:]
		w.im.mu.Unlock()
		w.writeInterim(ih)
		w.im.wmu.Unlock()
	}
}

// endInterim closes the gate: the handler has its answer and is about to
// build the final response. It waits for a 1xx being written, writes the
// ones still queued (unless the client has gone), and lets no other
// through. Without an origin request that forwards 1xx it costs one
// atomic swap.
func (w *responseWriter) endInterim() {
	if w.im.state.Swap(gateClosed) != gateOpen {
		return
	}
	w.im.wmu.Lock()
	defer w.im.wmu.Unlock()
	w.im.mu.Lock()
	q := w.im.queue
	w.im.queue = nil
	w.im.mu.Unlock()
	if w.s.Req.Context().Err() != nil {
		return
	}
	for _, ih := range q {
		w.writeInterim(ih)
	}
}

// writeInterim sends one 1xx with its own fields: the ResponseWriter sends
// a 1xx with the header map as it stands and keeps it for the final
// response (RFC 8297 lets a server repeat fields), so the map holds the
// 1xx's fields alone for the write and its own ones again after.
func (w *responseWriter) writeInterim(ih interimHead) {
	hd := w.ResponseWriter.Header()
	var saved http.Header
	if len(hd) > 0 {
		saved = maps.Clone(hd)
		clear(hd)
	}
	maps.Copy(hd, ih.hdr)
	w.armWriteDeadline()
	w.ResponseWriter.WriteHeader(ih.code)
	clear(hd)
	maps.Copy(hd, saved)
}
