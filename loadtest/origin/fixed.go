package origin

import (
	"net/http"
	"strconv"
)

// Fixed returns a handler that answers every request with the same 200
// response: body, Content-Length and Cache-Control cc (none if empty). It does
// no counting and no allocation beyond net/http's own, so it measures the
// ceiling of a Go net/http server on this machine.
func Fixed(body []byte, cc string) http.Handler {
	h := http.Header{
		"Content-Type":   {"application/octet-stream"},
		"Content-Length": {strconv.Itoa(len(body))},
	}
	if cc != "" {
		h["Cache-Control"] = []string{cc}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dst := w.Header()
		for k, v := range h {
			dst[k] = v
		}
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})
}
