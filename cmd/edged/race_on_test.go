//go:build race

package main

// raceDetector is true when the tests run with -race, which makes the
// daemon about ten times slower: load tests scale their request counts
// down by it, keeping what they assert.
const raceDetector = true
