// Package strict is a connection-level HTTP/1.x request framing validator
// that sits between an accepted net.Conn and net/http.
//
// net/http accepts several ambiguous request framings (Content-Length next to
// Transfer-Encoding, obs-fold, bare LF, Transfer-Encoding on HTTP/1.0, ...).
// A Conn returned by WrapConn (or by a Listener from NewListener) parses every
// request head and tracks the body framing, and hands bytes to its reader only
// after they have been validated. Valid traffic passes through byte for byte,
// with one exception: up to two empty lines (CRLF) before a request-line are
// dropped (RFC 9112 §2.2), because net/http would otherwise reject them.
//
// On a violation the Conn answers with a minimal response (400, or 414, 431,
// 501, 505 where more precise) carrying Connection: close and a short
// text/plain reason, then closes the connection. net/http never sees the
// offending bytes; its Read gets io.EOF.
//
// When the response is written:
//   - a bad first request head, or a bad chunked body while no response bytes
//     have been written for that request: at once;
//   - a bad request head after an earlier request on the same connection:
//     deferred until net/http closes the connection (it does so right after
//     flushing the earlier responses), so the 400 never overtakes or cuts a
//     response already in flight. A consequence: a client that pipelines a bad
//     request behind a good one is seen by net/http as a client that went away
//     after the good one (the good request's context may be cancelled).
//   - a bad chunked body after the handler already began its response: the
//     connection is closed without a 400, so the client sees a truncated,
//     failed response rather than a spliced one.
//
// Policy choices (stricter than RFC 9112 where it says "MAY"):
//   - Only HTTP/1.0 and HTTP/1.1. Other well-formed versions get 505.
//   - Request-target: visible ASCII only, no '#'; in the path a '%' must start
//     a valid pct-encoding (the query may hold a bare '%'). Origin-form,
//     absolute-form (http/https only, no userinfo), authority-form (CONNECT
//     only, port required) and asterisk-form (OPTIONS only).
//   - Host: exactly one on HTTP/1.1, at most one on HTTP/1.0; a reg-name of
//     ALPHA / DIGIT / "-" / "." / "_" / "~" or a bracketed IPv6 literal, with
//     an optional port of 1-5 digits up to 65535. Empty Host is rejected. With
//     an absolute-form or authority-form target the Host must name the same
//     authority (case-insensitive, default port 80/443 implied by the scheme).
//   - Content-Length: one field, 1*DIGIT, at most 2^63-1. Lists, duplicates
//     (even equal ones), signs and spaces are rejected.
//   - Transfer-Encoding: only on HTTP/1.1, never with Content-Length, final
//     coding must be chunked and chunked may appear once (else 400). Codings
//     other than chunked (e.g. "gzip, chunked") get 501, since net/http
//     implements none of them.
//   - No whitespace in chunk-size lines (the RFC's BWS around ";" is refused);
//     at most 16 hex digits and below 2^63; extensions must match the RFC
//     grammar (token / quoted-string) and stay under Config.MaxChunkExtBytes.
//   - Trailer fields are validated like header fields, count against the same
//     limits, and may not be Content-Length, Transfer-Encoding or Host.
//
// Protocol switches: the package does not parse responses. A handler that
// takes over a connection (http.Hijacker, as httputil.ReverseProxy does for a
// 101 response) must tell the Conn to stop validating, which the hook from
// ConnState does on http.StateHijacked; Conn.Passthrough does the same by
// hand. Without it, bytes after a switch are validated as HTTP/1 and the
// connection is refused. CONNECT works the same way.
//
// HTTP/2 prior knowledge ("PRI * HTTP/2.0") as the first request gets 505
// unless Config.AllowH2C is set, in which case the whole connection passes
// through untouched (HTTP/2 framing has no Content-Length/Transfer-Encoding
// ambiguity and is validated by the HTTP/2 server).
//
// Write gathering: every response byte net/http writes passes the Conn, so
// the Conn is also where two writes can become one system call. Conn.Gather
// holds the next short write (at most GatherMax, net/http's buffer of a
// response head and the start of its body) and sends it with the write
// after it as one writev; Conn.EndGather sends a held write that no write
// followed. The bytes and their order do not change. It needs a wrapped
// connection that takes vectored writes (*net.TCPConn, or a BuffersWriter
// wrapper), so it is for cleartext HTTP/1 only.
//
// The parser: a server that reads its own connections (edged's HTTP/1 serve
// loop, rather than net/http) calls ParseHead on its buffer. It applies the
// same rules as a Conn (FuzzParseHead checks that the two accept the same
// heads and that net/http reads each accepted head the same way) and
// returns what it parsed, the request-line, the fields and the body framing,
// as a Head of slices into the buffer, without allocating, so nothing parses
// the head a second time. Such a server decodes a chunked body with a
// ChunkDecoder: the same rules again, in place in its buffer, stopping at
// the body's last byte (FuzzChunkDecoder holds it to a Conn's verdicts and
// to net/http's reading of every body it accepts).
//
// A connection's start: a Conn tells the connection it wraps when the
// first request head is complete, if that connection implements
// HeadMarker (edged's connection limiter does, to know which connections
// it may close for newer ones; edged's own loop marks it the same way).
// Until the first byte arrives, Config.FirstByteTimeout caps the read
// deadline the server sets, so a silent connection goes sooner than a slow
// request. CloseWaiting closes a Conn only while no head has come, which
// lets a server shutting down close the connections that have not begun a
// request without cutting one it already has.
//
// The Conn must wrap the plaintext side of a TLS connection; when it does,
// net/http no longer sees a *tls.Conn (no ALPN h2, no Request.TLS), so for
// HTTPS wrap only connections that negotiated HTTP/1.1.
package strict
