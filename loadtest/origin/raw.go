package origin

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"
)

// RawServer answers every request on its connections with one fixed 200
// response from a hand-written HTTP/1.1 keep-alive loop: no net/http, the
// response header pre-encoded once (only Date is rendered per response),
// header and body written with one writev. It is a ceiling reference, not a
// server: it measures what a custom serve loop on Go's netpoller reaches on
// this machine, for comparison with Fixed (net/http's ceiling). It reads
// request heads only (a request body is not supported), closes a
// connection whose head exceeds 8 KiB (or has a line over 4 KiB) or that
// stays idle for 2 minutes, and
// answers HTTP/1.0 requests and "Connection: close" with a close.
//
// The header has the ten fields of a typical edged hit (Accept-Ranges,
// Age, Cache-Control, Cache-Status, Content-Length, Content-Type, Date,
// ETag, Last-Modified, Via), so that its figure compares with edged's
// rather than with a three-field response.
type RawServer struct {
	head, tail []byte // response header around the Date value
	body       []byte

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	done  bool
}

// NewRawServer returns a RawServer sending body.
func NewRawServer(body []byte) *RawServer {
	head := "HTTP/1.1 200 OK\r\n" +
		"Accept-Ranges: bytes\r\n" +
		"Age: 0\r\n" +
		"Cache-Control: " + DefaultCacheControl + "\r\n" +
		"Cache-Status: raw; hit\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"Content-Type: application/octet-stream\r\n" +
		"Date: "
	tail := "\r\nEtag: \"raw\"\r\n" +
		"Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\n" +
		"Via: 1.1 raw\r\n\r\n"
	return &RawServer{head: []byte(head), tail: []byte(tail), body: body, conns: map[net.Conn]struct{}{}}
}

// Serve accepts connections on ln until Close, one goroutine each.
func (s *RawServer) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			done := s.done
			s.mu.Unlock()
			if done {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// Close stops Serve and closes every connection.
func (s *RawServer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	for c := range s.conns {
		c.Close()
	}
	if s.ln != nil {
		return s.ln.Close()
	}
	return nil
}

const rawMaxHead = 8 << 10

func (s *RawServer) serveConn(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReaderSize(c, 4096)
	hdr := make([]byte, 0, len(s.head)+len(s.tail)+40)
	for {
		c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		keep, ok := readHead(r)
		if !ok {
			return
		}
		hdr = append(hdr[:0], s.head...)
		hdr = time.Now().UTC().AppendFormat(hdr, "Mon, 02 Jan 2006 15:04:05 GMT")
		if !keep {
			hdr = append(hdr, "\r\nConnection: close"...)
		}
		hdr = append(hdr, s.tail...)
		bufs := net.Buffers{hdr, s.body}
		if _, err := bufs.WriteTo(c); err != nil || !keep {
			return
		}
	}
}

// readHead consumes one request head and reports whether the connection
// stays open after the response (HTTP/1.1 without "Connection: close").
func readHead(r *bufio.Reader) (keep, ok bool) {
	n := 0
	first := true
	for {
		line, err := r.ReadSlice('\n')
		n += len(line)
		if err != nil || n > rawMaxHead {
			return false, false
		}
		if first {
			first = false
			keep = len(line) >= 10 && string(line[len(line)-10:len(line)-2]) == "HTTP/1.1"
			continue
		}
		if len(line) <= 2 {
			return keep, true
		}
		if len(line) > len(connectionColon) && bytes.EqualFold(line[:len(connectionColon)], connectionColon) && hasClose(line[len(connectionColon):]) {
			keep = false
		}
	}
}

var (
	connectionColon = []byte("connection:")
	closeToken      = []byte("close")
)

// hasClose reports whether a Connection field value lists "close".
func hasClose(v []byte) bool {
	for i := 0; i+len(closeToken) <= len(v); i++ {
		if bytes.EqualFold(v[i:i+len(closeToken)], closeToken) {
			return true
		}
	}
	return false
}
