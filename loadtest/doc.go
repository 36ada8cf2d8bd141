// Package loadtest will hold edged's load generator, origin simulator and
// side-by-side benchmarks against Varnish and nginx (issue 6). It may use the
// standard library only and talks to edged over HTTP, black-box.
//
// Until then, the hit-path benchmarks are Go benchmarks in package edge:
//
//	go test -run XXX -bench Hit -benchmem ./edge
package loadtest
