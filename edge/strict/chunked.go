package strict

import (
	"math"
	"net/http"
)

// Chunked body states (RFC 9112 §7.1).
const (
	csSizeStart     = iota // first hex digit of chunk-size
	csSize                 // more hex digits, ";" or CR
	csExtName0             // first tchar of chunk-ext-name
	csExtName              // chunk-ext-name: tchar, "=", ";" or CR
	csExtVal0              // first byte of chunk-ext-val: tchar or DQUOTE
	csExtTok               // token chunk-ext-val
	csExtQuoted            // inside quoted-string
	csExtEscape            // after backslash in quoted-string
	csExtAfterQuote        // after closing DQUOTE: ";" or CR
	csSizeLF               // LF ending the chunk-size line
	csData                 // chunk-data
	csDataCR               // CR after chunk-data
	csDataLF               // LF after chunk-data
	csTrStart              // start of a trailer line or final CRLF
	csTrName               // trailer field-name
	csTrValue              // trailer field-value
	csTrLF                 // LF ending a trailer line
	csEndLF                // LF ending the chunked body
)

const maxChunkDigits = 16

// chunkState validates a chunked body as it streams. The zero value expects
// the first chunk-size.
type chunkState struct {
	st      uint8
	digits  int
	size    uint64
	remain  uint64
	ext     int
	trBytes int
	trCount int
	nameLen int
	name    [len("transfer-encoding")]byte
}

func bodyFault(status int, reason string) fault {
	return fault{status: status, reason: reason, body: true}
}

func badBody(reason string) fault { return bodyFault(http.StatusBadRequest, reason) }

// step validates b and returns how many bytes are valid, whether the body
// ended (after n bytes), and the violation found at b[n], if any. With
// split it stops where chunk data begins and after the last-chunk line, so
// a decoder can tell data, framing and trailer section apart.
func (s *chunkState) step(b []byte, cfg *Config, split bool) (n int, done bool, f fault) {
	for n < len(b) {
		c := b[n]
		switch s.st {
		case csData:
			if split {
				return n, false, fault{}
			}
			k := uint64(len(b) - n)
			if k > s.remain {
				k = s.remain
			}
			n += int(k)
			s.remain -= k
			if s.remain == 0 {
				s.st = csDataCR
			}
			continue
		case csSizeStart:
			v := unhex(c)
			if v < 0 {
				return n, false, s.lineFault(c, "invalid chunk size")
			}
			s.size, s.digits, s.ext, s.st = uint64(v), 1, 0, csSize
		case csSize:
			if v := unhex(c); v >= 0 {
				s.digits++
				if s.digits > maxChunkDigits || s.size > math.MaxInt64>>4 {
					return n, false, badBody("chunk size too large")
				}
				s.size = s.size<<4 | uint64(v)
				if s.size > math.MaxInt64 {
					return n, false, badBody("chunk size too large")
				}
			} else if c == ';' {
				s.st = csExtName0
			} else if c == '\r' {
				s.st = csSizeLF
			} else {
				return n, false, s.lineFault(c, "invalid chunk size")
			}
		case csExtName0, csExtName, csExtVal0, csExtTok, csExtQuoted, csExtEscape, csExtAfterQuote:
			s.ext++
			if s.ext > cfg.MaxChunkExtBytes {
				return n, false, badBody("chunk extension too long")
			}
			if f := s.extByte(c); !f.ok() {
				return n, false, f
			}
		case csSizeLF:
			if c != '\n' {
				return n, false, badBody("bare CR in chunk line")
			}
			if s.size == 0 {
				s.st = csTrStart
				if split {
					return n + 1, false, fault{}
				}
			} else {
				s.remain, s.st = s.size, csData
			}
		case csDataCR:
			if c != '\r' {
				return n, false, badBody("chunk data not followed by CRLF")
			}
			s.st = csDataLF
		case csDataLF:
			if c != '\n' {
				return n, false, badBody("chunk data not followed by CRLF")
			}
			s.st = csSizeStart
		case csTrStart, csTrName, csTrValue, csTrLF:
			s.trBytes++
			if s.trBytes > cfg.MaxHeaderBytes {
				return n, false, bodyFault(http.StatusRequestHeaderFieldsTooLarge, "trailer section too large")
			}
			if f := s.trailerByte(c, cfg); !f.ok() {
				return n, false, f
			}
		case csEndLF:
			if c != '\n' {
				return n, false, badBody("bare CR in trailer section")
			}
			return n + 1, true, fault{}
		}
		n++
	}
	return n, false, fault{}
}

func (s *chunkState) lineFault(c byte, reason string) fault {
	if c == '\n' {
		return badBody("bare LF in chunk line")
	}
	return badBody(reason)
}

// extByte advances the chunk-ext grammar:
// *( ";" token [ "=" ( token / quoted-string ) ] ), no whitespace.
func (s *chunkState) extByte(c byte) fault {
	switch s.st {
	case csExtName0:
		if !isTchar(c) {
			return s.lineFault(c, "invalid chunk extension")
		}
		s.st = csExtName
	case csExtName, csExtTok:
		switch {
		case isTchar(c):
		case c == '=' && s.st == csExtName:
			s.st = csExtVal0
		case c == ';':
			s.st = csExtName0
		case c == '\r':
			s.st = csSizeLF
		default:
			return s.lineFault(c, "invalid chunk extension")
		}
	case csExtVal0:
		switch {
		case isTchar(c):
			s.st = csExtTok
		case c == '"':
			s.st = csExtQuoted
		default:
			return s.lineFault(c, "invalid chunk extension")
		}
	case csExtQuoted:
		switch {
		case c == '"':
			s.st = csExtAfterQuote
		case c == '\\':
			s.st = csExtEscape
		case !isValueByte(c):
			return s.lineFault(c, "invalid character in chunk extension")
		}
	case csExtEscape:
		if !isValueByte(c) {
			return s.lineFault(c, "invalid character in chunk extension")
		}
		s.st = csExtQuoted
	case csExtAfterQuote:
		switch c {
		case ';':
			s.st = csExtName0
		case '\r':
			s.st = csSizeLF
		default:
			return s.lineFault(c, "invalid chunk extension")
		}
	}
	return fault{}
}

// trailerByte advances the trailer-section grammar (field lines as in the
// head, no obs-fold, CRLF only).
func (s *chunkState) trailerByte(c byte, cfg *Config) fault {
	switch s.st {
	case csTrStart:
		switch {
		case c == '\r':
			s.st = csEndLF
		case c == ' ' || c == '\t':
			return badBody("obs-fold in trailer section")
		case c == '\n':
			return badBody("bare LF in trailer section")
		case isTchar(c):
			s.trCount++
			if s.trCount > cfg.MaxHeaderCount {
				return bodyFault(http.StatusRequestHeaderFieldsTooLarge, "too many trailer fields")
			}
			s.nameLen = 0
			s.addName(c)
			s.st = csTrName
		default:
			return badBody("invalid trailer field name")
		}
	case csTrName:
		switch {
		case isTchar(c):
			s.addName(c)
		case c == ':':
			if s.nameLen <= len(s.name) {
				switch string(s.name[:s.nameLen]) {
				case "content-length", "transfer-encoding", "host":
					return badBody("forbidden trailer field")
				}
			}
			s.st = csTrValue
		case c == ' ' || c == '\t':
			return badBody("whitespace in trailer field name")
		case c == '\n':
			return badBody("bare LF in trailer section")
		default:
			return badBody("invalid trailer field name")
		}
	case csTrValue:
		switch {
		case c == '\r':
			s.st = csTrLF
		case c == '\n':
			return badBody("bare LF in trailer section")
		case !isValueByte(c):
			return badBody("invalid character in trailer field value")
		}
	case csTrLF:
		if c != '\n' {
			return badBody("bare CR in trailer section")
		}
		s.st = csTrStart
	}
	return fault{}
}

func (s *chunkState) addName(c byte) {
	if s.nameLen < len(s.name) {
		s.name[s.nameLen] = lower(c)
	}
	s.nameLen++
}
