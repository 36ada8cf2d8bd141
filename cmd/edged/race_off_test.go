//go:build !race

package main

// raceEnabled is true when the tests run under the race detector, which
// slows the daemon by an order of magnitude: load tests scale their
// request counts down by it, keeping what they assert.
const raceEnabled = false
