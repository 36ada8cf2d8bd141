//go:build race

package main

// raceEnabled is true when the tests run under the race detector, which
// slows the daemon by an order of magnitude: load tests scale down.
const raceEnabled = true
