// Package h1 is edged's own HTTP/1 server: a connection loop that parses
// each request head once, with the strict reader's rules
// (strict.ParseHead), and runs an http.Handler through its own
// http.ResponseWriter, without net/http's server.
//
// What it does: HTTP/1.0 and 1.1 requests with keep-alive and pipelining,
// bodies framed by Content-Length or chunked, Expect: 100-continue,
// responses framed by Content-Length (computed when the handler's whole
// body fits the buffer), chunked or, for HTTP/1.0, by closing; HEAD, 204
// and 304 without a body; Date; Content-Type sniffing as net/http does;
// Flush; trailers; Hijack; ReadFrom (sendfile when the length is
// declared); deadlines through http.ResponseController; a panic closes the
// connection; Shutdown and Close; Request.TLS on TLS connections; request
// context cancellation when the client goes away; and a fast path (Fast)
// that answers requests without a body from the parsed head, before any
// http.Request exists (the edge answers cache hits there). edge.Server
// runs it (server.http1: edged, the default) and hands HTTP/2 connections
// to net/http through Server.HTTP2. Differential tests hold it to
// net/http's answers for the same requests.
//
// Per request it takes no lock and, on a busy keep-alive connection, moves
// no deadline: a connection's state is atomic, and the idle and header
// deadlines are re-armed only once less than half of them is left.
//
// The request's context is cancelled as net/http's is: when the client
// closes the connection (or it fails) after the body was read, when a
// write to it fails, and when the handler returns. Seeing the close takes a
// read of the connection, which net/http starts for every request; here it
// starts only when someone first calls the context's Done (deriving a
// context with context.WithCancel or WithTimeout calls it), so a handler
// that never looks pays for no goroutine and no channel. Until then Err
// reports only failed reads and writes of the body and response. The read
// keeps what it gets as the next pipelined request (which, as in net/http,
// does not cancel), and stops when the handler returns or hijacks the
// connection.
//
// A chunked request body is decoded by strict.ChunkDecoder, so it gets the
// strict reader's rules (chunk-size digits, extension grammar, trailer
// limits, CRLF only) where net/http is laxer, and nothing is read past its
// end. Its trailer fields fill Request.Trailer as in net/http. On a
// malformed body the handler's Read fails with a *strict.ChunkError (its
// Status is the answer a strict.Conn would give); the handler answers, with
// Connection: close if it had not started, and the connection then
// closes, as net/http does. (A strict.Conn in front of net/http, as with
// server.http1: net/http, answers 400 itself instead when no response byte
// was written yet.)
package h1
