//go:build race

package api_test

// raceDetector: the race detector's instrumentation allocates, so allocation counts are not the
// product's under it.
const raceDetector = true
