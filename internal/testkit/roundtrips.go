package testkit

import (
	"bufio"
	"bytes"
	"net"
	"testing"
)

// RoundTrips sends req b.N times on c, one at a time, reading each
// response (framed by Content-Length, which it must carry) to its end
// from br, c's reader. It allocates nothing, so allocs/op are the other
// side's: the least a client on a kept-alive connection can do, for
// benchmarks of servers and as the ceiling of clients.
func RoundTrips(b *testing.B, c net.Conn, br *bufio.Reader, req []byte) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) <= 2 {
				break
			}
			if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
				n = 0
				for _, d := range bytes.TrimSpace(v) {
					n = n*10 + int(d-'0')
				}
			}
		}
		if _, err := br.Discard(n); err != nil || n < 0 {
			b.Fatalf("body of %d: %v", n, err)
		}
	}
}
