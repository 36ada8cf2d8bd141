//go:build !race

package main

// raceDetector is true when the tests run with -race (race_on_test.go).
const raceDetector = false
