package origin

import (
	"net"
	"net/http"
	"time"
)

// objectWriter wraps the ResponseWriter of an object response: it counts body
// bytes, throttles them to rate bytes per second, and resets the connection
// after resetAfter bytes (when resetAfter >= 0).
type objectWriter struct {
	http.ResponseWriter
	o          *Origin
	rate       int64
	resetAfter int64
	start      time.Time
	written    int64
	reset      bool
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *objectWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *objectWriter) Write(p []byte) (int, error) {
	if w.reset {
		return 0, net.ErrClosed
	}
	total := 0
	for len(p) > 0 {
		chunk := p
		if w.rate > 0 {
			// Send about 20 slices a second, at least 1 KiB each.
			chunk = p[:min(int64(len(p)), max(w.rate/20, 1024))]
		}
		if w.resetAfter >= 0 && w.written+int64(len(chunk)) >= w.resetAfter {
			chunk = chunk[:w.resetAfter-w.written]
		}
		if w.rate > 0 {
			due := w.start.Add(time.Duration(float64(w.written+int64(len(chunk))) / float64(w.rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		n, err := w.ResponseWriter.Write(chunk)
		w.written += int64(n)
		w.o.bytes.Add(int64(n))
		total += n
		if err != nil {
			return total, err
		}
		if w.rate > 0 {
			http.NewResponseController(w.ResponseWriter).Flush()
		}
		p = p[n:]
		if w.resetAfter >= 0 && w.written >= w.resetAfter {
			w.abort()
			return total, net.ErrClosed
		}
	}
	return total, nil
}

// finish resets the connection when a reset was asked for but the body ended
// before its reset point: reset=after:N with N at or past the body's size
// sends the whole body, then resets.
func (w *objectWriter) finish() {
	if w.resetAfter >= 0 && !w.reset {
		w.abort()
	}
}

// abort flushes what was written and resets the connection (TCP RST through
// SO_LINGER 0). Where the connection cannot be hijacked (HTTP/2) it aborts the
// handler with http.ErrAbortHandler instead.
func (w *objectWriter) abort() {
	w.reset = true
	rc := http.NewResponseController(w.ResponseWriter)
	rc.Flush()
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
