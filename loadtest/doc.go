// Package loadtest holds edged's load-testing tools (issue 6). They use the
// standard library only and talk to proxies black-box over HTTP, on loopback
// addresses only.
//
//   - loadtest/origin: origin simulator handler (deterministic bodies,
//     Cache-Control, ETag, latency and failure injection, request counters at
//     /__stats); loadtest/cmd/origin runs it.
//   - loadtest/load: load generator (closed and open loop, uniform or Zipf
//     keys, size mixes, HDR-style latency histogram, hit ratio from
//     Cache-Status); loadtest/cmd/load runs it.
//   - loadtest/cmd/pop: the PoP scenarios (issue 19): edged nodes behind a
//     built-in L4 balancer, hit ratio against one node, cold-object
//     coalescing across nodes, local against peer hit latency, a node
//     killed under load.
//   - loadtest/sizemix: byte sizes and weighted size mixes shared by both.
//   - loadtest/compare: a bash script that runs edged, Varnish and nginx side
//     by side in front of the same origin simulator.
//
// docs/benchmarks.md explains how to run them and holds the latest figures.
// Hit-path micro-benchmarks are Go benchmarks in package edge:
//
//	go test -run XXX -bench Hit -benchmem ./edge
package loadtest
