package testkit

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Exchange sends raw on a fresh connection to addr and reads one response
// per method (HEAD responses have no body), stopping early when a response
// closes the connection. Each is rendered by Describe; a response that
// cannot be read becomes "error: timeout", "error: EOF" or "error: other"
// (the kind only: messages name addresses). It is the differential tests'
// client: two servers agree when their Exchange results are equal.
func Exchange(t testing.TB, addr, raw string, methods []string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []string
	for _, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				out = append(out, "error: timeout")
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				out = append(out, "error: EOF")
			default:
				out = append(out, "error: other")
			}
			break
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, Describe(resp, b, err))
		if resp.Close {
			break
		}
	}
	return out
}

// Describe renders a response for comparison: protocol, status and reason, framing,
// every header field but Date (whose presence is noted), the body (quoted
// up to 256 bytes, else its length and digest), the error that ended it,
// and the trailers.
func Describe(resp *http.Response, body []byte, err error) string {
	var keys []string
	for k, vv := range resp.Header {
		if k != "Date" {
			keys = append(keys, k+": "+strings.Join(vv, ", "))
		}
	}
	slices.Sort(keys)
	if _, ok := resp.Header["Date"]; !ok {
		keys = append(keys, "(no Date)")
	}
	var trailers []string
	for k, vv := range resp.Trailer {
		trailers = append(trailers, k+": "+strings.Join(vv, ", "))
	}
	slices.Sort(trailers)
	b := fmt.Sprintf("%q", body)
	if len(body) > 256 {
		b = fmt.Sprintf("%d bytes sha256:%x", len(body), sha256.Sum256(body))
	}
	return fmt.Sprintf("%s %s cl=%d te=%v close=%v\n%s\nbody=%s err=%v\ntrailers %s", resp.Proto, resp.Status,
		resp.ContentLength, resp.TransferEncoding, resp.Close, strings.Join(keys, "\n"), b, err, strings.Join(trailers, "; "))
}
