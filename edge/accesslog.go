package edge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// AccessFormats are the values of Config.AccessFormat.
const (
	// AccessJSON writes one JSON object per line (the default): every
	// field of AccessFields, or all of them.
	AccessJSON = "json"
	// AccessCombined writes nginx's default "combined" format, byte for
	// byte: $remote_addr - - [$time_local] "$request" $status
	// $body_bytes_sent "$http_referer" "$http_user_agent".
	AccessCombined = "combined"
)

// logField is one field of the access log.
type logField uint8

const (
	fTime     logField = iota
	fLevelMsg          // "level":"INFO","msg":"access": the default JSON line only (slog's shape)
	fClient
	fProto
	fTLS
	fMethod
	fHost
	fPath
	fStatus
	fBytes
	fDuration
	fUserAgent
	fReferer
	fRequestID
	fCache
	fSite
	fRule
	fShard
	fUpstreamStatus
	fUpstreamTTFB
	fUpstreamTime
	fPeer
	fErr
	numFields
)

// fieldKeys are the fields' JSON keys, which are also their names in
// Config.AccessFields.
var fieldKeys = [numFields]string{
	fTime: "time", fLevelMsg: "", fClient: "client", fProto: "proto", fTLS: "tls", fMethod: "method",
	fHost: "host", fPath: "path", fStatus: "status", fBytes: "bytes", fDuration: "duration_ms",
	fUserAgent: "user_agent", fReferer: "referer", fRequestID: "request_id", fCache: "cache",
	fSite: "site", fRule: "rule", fShard: "shard", fUpstreamStatus: "upstream_status",
	fUpstreamTTFB: "upstream_ttfb_ms", fUpstreamTime: "upstream_ms", fPeer: "peer", fErr: "err",
}

// defaultFields are the default JSON line's fields: the fields logged
// before the formats existed, in their order, then the newer ones.
var defaultFields = []logField{
	fTime, fLevelMsg, fMethod, fHost, fPath, fStatus, fBytes, fCache, fSite, fShard, fClient, fDuration,
	fProto, fTLS, fUserAgent, fReferer, fRequestID, fUpstreamStatus, fUpstreamTTFB, fUpstreamTime,
	fRule, fPeer, fErr,
}

// AccessFieldNames lists the names Config.AccessFields accepts.
func AccessFieldNames() []string {
	var names []string
	for _, k := range fieldKeys {
		if k != "" {
			names = append(names, k)
		}
	}
	return names
}

// accessFormat renders access-log lines: combined, or JSON with fields.
type accessFormat struct {
	combined bool
	fields   []logField
	keys     [numFields]string // `"key":` per field
}

// newAccessFormat is the format of Config.AccessFormat and
// Config.AccessFields (which only the JSON format takes).
func newAccessFormat(format string, names []string) (*accessFormat, error) {
	f := &accessFormat{}
	for i, k := range fieldKeys {
		if k != "" {
			f.keys[i] = `"` + k + `":`
		}
	}
	switch format {
	case "", AccessJSON:
	case AccessCombined:
		if len(names) > 0 {
			return nil, errors.New("edge: AccessFields apply to the json access-log format only")
		}
		f.combined = true
		return f, nil
	default:
		return nil, fmt.Errorf("edge: AccessFormat must be %s or %s, got %q", AccessJSON, AccessCombined, format)
	}
	if len(names) == 0 {
		f.fields = defaultFields
		return f, nil
	}
	seen := map[logField]bool{}
	for _, n := range names {
		i := slices.Index(fieldKeys[:], n)
		if n == "" || i < 0 {
			return nil, &AccessFieldError{Name: n}
		}
		if !seen[logField(i)] {
			seen[logField(i)] = true
			f.fields = append(f.fields, logField(i))
		}
	}
	return f, nil
}

// AccessFieldError reports a name in Config.AccessFields that is no field.
type AccessFieldError struct{ Name string }

func (e *AccessFieldError) Error() string {
	return fmt.Sprintf("edge: unknown access-log field %q (fields: %s)", e.Name, strings.Join(AccessFieldNames(), ", "))
}

// CheckAccessLog reports whether format and fields make an access-log
// format (Config.AccessFormat and Config.AccessFields); a bad field name
// is an *AccessFieldError.
func CheckAccessLog(format string, fields []string) error {
	_, err := newAccessFormat(format, fields)
	return err
}

// line appends one access-log record for s, and a newline. It runs once
// per request: no reflection, no allocation.
func (f *accessFormat) line(b []byte, s *Session, now time.Time, d time.Duration) []byte {
	if f.combined {
		return appendCombined(b, s, now)
	}
	b = append(b, '{')
	open := len(b)
	for _, fd := range f.fields {
		at := len(b)
		if at > open {
			b = append(b, ',')
		}
		if fd != fLevelMsg {
			b = append(b, f.keys[fd]...)
		}
		var ok bool
		if b, ok = appendLogField(b, fd, s, now, d); !ok {
			b = b[:at] // an empty optional field is left out
		}
	}
	return append(b, "}\n"...)
}

// appendLogField appends the JSON value of field fd of s; false when the
// field is optional and has no value for s.
func appendLogField(b []byte, fd logField, s *Session, now time.Time, d time.Duration) ([]byte, bool) {
	fr := &s.fast
	switch fd {
	case fTime:
		b = append(b, '"')
		b = now.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	case fLevelMsg:
		b = append(b, `"level":"INFO","msg":"access"`...)
	case fClient:
		b = appendJSONString(b, s.ClientIP)
	case fProto:
		b = appendJSONString(b, s.proto())
	case fTLS:
		v := tlsVersionName(s.tlsVersion())
		if v == "" {
			return b, false
		}
		b = appendJSONString(b, v)
	case fMethod:
		if s.Req == nil {
			b = appendJSONString(b, fr.method)
		} else {
			b = appendJSONString(b, s.Req.Method)
		}
	case fHost:
		if s.Req == nil {
			b = appendJSONString(b, fr.host)
		} else {
			b = appendJSONString(b, s.Req.Host)
		}
	case fPath:
		if s.Req == nil {
			b = appendJSONString(b, fr.target) // origin-form, as RequestURI renders it
		} else {
			b = appendRequestURI(b, s.Req.URL)
		}
	case fStatus:
		b = strconv.AppendInt(b, int64(s.Status), 10)
	case fBytes:
		b = strconv.AppendInt(b, s.Bytes, 10)
	case fDuration:
		b = appendMillis(b, d)
	case fUserAgent:
		b = appendJSONString(b, s.requestField(fieldUserAgent))
	case fReferer:
		b = appendJSONString(b, s.requestField(fieldReferer))
	case fRequestID:
		b = append(b, '"')
		b = s.id.append(b) // a sane token: nothing to escape
		b = append(b, '"')
	case fCache:
		b = appendJSONString(b, string(s.CacheResult))
	case fSite:
		b = appendJSONString(b, s.siteName())
	case fRule:
		r := s.rule()
		if r == "" {
			return b, false
		}
		b = appendJSONString(b, r)
	case fShard:
		b = appendJSONString(b, s.Shard)
	case fUpstreamStatus:
		st := s.up.status.Load()
		if st == 0 {
			return b, false
		}
		b = strconv.AppendInt(b, int64(st), 10)
	case fUpstreamTTFB:
		if s.up.status.Load() == 0 {
			return b, false
		}
		b = appendMillis(b, time.Duration(s.up.header.Load())*time.Microsecond)
	case fUpstreamTime:
		t := s.up.total.Load()
		if t == 0 {
			return b, false // not contacted, or the body not read by the time of the log
		}
		b = appendMillis(b, time.Duration(t))
	case fPeer:
		if s.Peer == "" {
			return b, false
		}
		b = appendJSONString(b, s.Peer)
	case fErr:
		if s.Err == nil {
			return b, false
		}
		b = appendJSONString(b, s.Err.Error())
	}
	return b, true
}

// appendCombined appends s as nginx's "combined" format writes it, with
// nginx's default escaping (appendNginxEscaped).
func appendCombined(b []byte, s *Session, now time.Time) []byte {
	b = appendNginxEscaped(b, s.ClientIP, "-")
	b = append(b, " - - ["...)
	b = now.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, `] "`...)
	if fr := &s.fast; s.Req == nil {
		b = appendNginxEscaped(b, fr.method, "")
		b = append(b, ' ')
		b = appendNginxEscaped(b, fr.target, "")
	} else {
		b = appendNginxEscaped(b, s.Req.Method, "")
		b = append(b, ' ')
		b = appendNginxEscaped(b, s.Req.RequestURI, "")
		if s.Req.RequestURI == "" { // a request built in-process, not read off a connection
			b = appendNginxEscaped(b, s.Req.URL.RequestURI(), "")
		}
	}
	b = append(b, ' ')
	b = append(b, s.proto()...)
	b = append(b, `" `...)
	b = strconv.AppendInt(b, int64(s.Status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, s.Bytes, 10)
	b = append(b, ` "`...)
	b = appendNginxEscaped(b, s.requestField(fieldReferer), "-")
	b = append(b, `" "`...)
	b = appendNginxEscaped(b, s.requestField(fieldUserAgent), "-")
	return append(b, "\"\n"...)
}

// appendNginxEscaped appends v as nginx's access log does by default
// (escape=default): '"', '\\', control characters and bytes from 0x7f up
// as \xHH; empty as none.
func appendNginxEscaped(b []byte, v, none string) []byte {
	if v == "" {
		return append(b, none...)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			b = append(b, '\\', 'x', upperHex[c>>4], upperHex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}

const upperHex = "0123456789ABCDEF"

// tlsVersionName names a TLS version as nginx's $ssl_protocol does; ""
// for none.
func tlsVersionName(v uint16) string {
	switch v {
	case 0:
		return ""
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return "unknown"
}

// The request fields the access log takes.
const (
	fieldUserAgent = iota
	fieldReferer
)

var fieldNames = [...]string{fieldUserAgent: "User-Agent", fieldReferer: "Referer"}

// requestField is the first value of the request's field i (fieldUserAgent,
// fieldReferer), or "".
func (s *Session) requestField(i int) string {
	if s.Req == nil {
		if s.fast.head == nil {
			return ""
		}
		return unsafeString(s.fast.head.Get(fieldNames[i]))
	}
	if v := s.Req.Header[fieldNames[i]]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// proto is the request's protocol as nginx's $server_protocol: "HTTP/1.1",
// "HTTP/2.0".
func (s *Session) proto() string {
	if s.Req != nil {
		return s.Req.Proto
	}
	if s.fast.minor == 0 {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// tlsVersion is the TLS version of the request's connection; 0 for none.
func (s *Session) tlsVersion() uint16 {
	if s.Req == nil {
		return s.fast.tls
	}
	if s.Req.TLS != nil {
		return s.Req.TLS.Version
	}
	return 0
}

func (s *Session) siteName() string {
	if s.Site == nil {
		return ""
	}
	return s.Site.Name
}

// rule is the rule the log names: the one Cache-Status names (ruleDetail),
// or on the fast path the rule that set the hit's caching.
func (s *Session) rule() string {
	if s.Req == nil {
		return s.fast.rule
	}
	return s.ruleDetail()
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
func (f *accessFormat) write(w io.Writer, s *Session, now time.Time, d time.Duration) {
	bp := lineBufs.Get().(*[]byte)
	*bp = f.line((*bp)[:0], s, now, d)
	w.Write(*bp)
	lineBufs.Put(bp)
}
