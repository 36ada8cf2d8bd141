package edge

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/edged-proxy/edged/cache"
	"github.com/edged-proxy/edged/internal/httpx"
)

// isWebSocket reports whether r asks to switch to the WebSocket protocol
// (RFC 6455 §4.1): a GET with Upgrade: websocket and Connection: upgrade.
// Every other Upgrade (h2c included) is removed with the hop-by-hop fields
// and never tunnelled.
func isWebSocket(r *http.Request) bool {
	if r.Method != http.MethodGet || r.ProtoMajor != 1 || !headerHasToken(r.Header, "Connection", "upgrade") {
		return false
	}
	up := r.Header["Upgrade"]
	return len(up) == 1 && strings.EqualFold(strings.TrimSpace(up[0]), "websocket")
}

// headerHasToken reports whether the list field name (in canonical form)
// of h has token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// serveWebSocket forwards a WebSocket upgrade to the origin shard and, when
// the origin switches protocols, joins the two connections until either
// side closes or stays silent for the idle timeout. Nothing is cached.
func (h *Handler) serveWebSocket(rw *responseWriter, s *Session) {
	s.CacheResult = OutcomeBypass
	s.Key = h.hooks.CacheKey(s)
	s.RouteKey = h.hooks.UpstreamSelect(s)
	resp, err := h.forward(s.Req.Context(), s, http.MethodGet, func(out *http.Request) {
		out.Header.Set("Connection", "Upgrade")
		out.Header.Set("Upgrade", "websocket")
	})
	if err != nil {
		h.fail(rw, s, err, "edged; fwd=bypass")
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		rw.writeLive(resp, cache.LiveBody(resp), "edged; fwd=bypass; fwd-status="+itoa(resp.StatusCode))
		return
	}
	upstream, ok := resp.Body.(io.ReadWriteCloser)
	if !ok || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		resp.Body.Close()
		rw.plainError(http.StatusBadGateway, "edged; fwd=bypass; detail=bad-upgrade", "the origin switched to another protocol")
		return
	}
	defer upstream.Close()
	conn, brw, err := http.NewResponseController(rw.ResponseWriter).Hijack()
	if err != nil {
		rw.plainError(http.StatusInternalServerError, "edged; fwd=bypass; detail=no-hijack", "this connection cannot switch protocols")
		return
	}
	defer conn.Close()
	// The 101 the client gets: the origin's, minus hop-by-hop fields other
	// than the two that make the switch.
	hdr := resp.Header.Clone()
	httpx.RemoveHopByHop(hdr)
	hdr.Set("Connection", "Upgrade")
	hdr.Set("Upgrade", "websocket")
	hdr.Set("Via", httpx.Via(resp.ProtoMajor, resp.ProtoMinor))
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	hdr.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		return
	}
	s.Status = http.StatusSwitchingProtocols
	if h.metrics != nil {
		h.metrics.websockets.Inc()
		h.metrics.websocketsOpen.Inc()
		defer h.metrics.websocketsOpen.Dec()
	}
	// Bytes the client sent after its request, already buffered.
	var client io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		client = io.MultiReader(io.LimitReader(brw.Reader, int64(n)), conn)
	}
	s.Bytes = h.splice(conn, client, upstream)
}

// splice copies both ways until one side ends or both stay silent for the
// idle timeout, and returns the bytes sent to the client.
func (h *Handler) splice(conn net.Conn, client io.Reader, upstream io.ReadWriteCloser) int64 {
	idle := h.wsIdle
	var last sync.Mutex
	lastActive := time.Now()
	touch := func() {
		last.Lock()
		lastActive = time.Now()
		last.Unlock()
	}
	done := make(chan struct{}, 2)
	var toClient int64
	go func() { // origin → client
		toClient, _ = io.Copy(conn, &activity{r: upstream, touch: touch})
		conn.Close()
		done <- struct{}{}
	}()
	go func() { // client → origin
		io.Copy(upstream, &activity{r: client, touch: touch})
		upstream.Close()
		done <- struct{}{}
	}()
	tick := time.NewTicker(min(idle/4, time.Second))
	defer tick.Stop()
	for finished := 0; finished < 2; {
		select {
		case <-done:
			finished++
			conn.Close()
			upstream.Close()
		case <-tick.C:
			last.Lock()
			quiet := time.Since(lastActive)
			last.Unlock()
			if quiet > idle {
				conn.Close()
				upstream.Close()
			}
		}
	}
	return toClient
}

// activity marks its reader's progress for the idle timeout.
type activity struct {
	r     io.Reader
	touch func()
}

func (a *activity) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.touch()
	}
	return n, err
}
