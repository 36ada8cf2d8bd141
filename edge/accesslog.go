package edge

import (
	"io"
	"net/url"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// accessLine appends one access-log record for s as a JSON object and a
// newline. It writes the same fields slog's JSON handler would, without
// reflection or per-field allocations: it runs once per request.
func accessLine(b []byte, s *Session, now time.Time, d time.Duration) []byte {
	site := ""
	if s.Site != nil {
		site = s.Site.Name
	}
	b = append(b, `{"time":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"access","method":`...)
	if fr := &s.fast; s.Req == nil {
		b = appendJSONString(b, fr.method)
		b = append(b, `,"host":`...)
		b = appendJSONString(b, fr.host)
		b = append(b, `,"path":`...)
		b = appendJSONString(b, fr.target) // origin-form, as RequestURI renders it
	} else {
		b = appendJSONString(b, s.Req.Method)
		b = append(b, `,"host":`...)
		b = appendJSONString(b, s.Req.Host)
		b = append(b, `,"path":`...)
		b = appendRequestURI(b, s.Req.URL)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(s.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, s.Bytes, 10)
	b = append(b, `,"cache":`...)
	b = appendJSONString(b, string(s.CacheResult))
	b = append(b, `,"site":`...)
	b = appendJSONString(b, site)
	b = append(b, `,"shard":`...)
	b = appendJSONString(b, s.Shard)
	b = append(b, `,"client":`...)
	b = appendJSONString(b, s.ClientIP)
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, d)
	if s.Err != nil {
		b = append(b, `,"err":`...)
		b = appendJSONString(b, s.Err.Error())
	}
	return append(b, "}\n"...)
}

// appendMillis appends d in milliseconds with microsecond precision and no
// trailing zeros ("0.244", "1.5", "12"), as strconv.AppendFloat of
// d.Microseconds()/1000 with 'f', -1 would, without the float formatting.
func appendMillis(b []byte, d time.Duration) []byte {
	us := d.Microseconds()
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	if frac == 0 {
		return b
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

const hexDigits = "0123456789abcdef"

// appendRequestURI appends u.RequestURI() as a JSON string without
// building it (a request with a query would allocate the joined string).
func appendRequestURI(b []byte, u *url.URL) []byte {
	if u.Opaque != "" || u.Scheme != "" {
		return appendJSONString(b, u.RequestURI()) // rare forms: as net/url renders them
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	b = append(b, '"')
	b = appendJSONChars(b, path)
	if u.ForceQuery || u.RawQuery != "" {
		b = append(b, '?')
		b = appendJSONChars(b, u.RawQuery)
	}
	return append(b, '"')
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONChars(b, s)
	return append(b, '"')
}

// appendJSONChars appends the characters of s escaped for a JSON string.
func appendJSONChars(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeAccess writes s's access-log line to w in one Write.
func writeAccess(w io.Writer, s *Session, now time.Time, d time.Duration) {
	bp := lineBufs.Get().(*[]byte)
	*bp = accessLine((*bp)[:0], s, now, d)
	w.Write(*bp)
	lineBufs.Put(bp)
}
