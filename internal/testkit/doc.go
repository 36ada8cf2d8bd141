// Package testkit is the shared support for edged's tests: one way to wait
// for a condition (Poll, Eventually), one gate that holds handlers until a
// test releases them (Gate), one counting test origin (Origin), one way to
// read a metric the code exports (Metric), and an in-memory connection
// (Conn).
//
// It is a normal package so that tests in every package can import it, but
// only _test.go files may: nothing that ships imports it. It imports the
// standard library (testing, net/http/httptest and friends) and, for
// Metric, the Prometheus client.
//
// Waits in tests should be on events: a channel the Origin closes when a
// request arrives (Origin.Arrived), a counter, or a metric the code already
// exports. Eventually is the one sanctioned poll, for conditions that have
// no event to wait on (a file appearing, a log line, a metric moving in
// another process). A time.Sleep that deliberately makes a slow peer (a
// slow origin body, a trickling client) is not a wait and may stay, with a
// comment saying so.
package testkit
