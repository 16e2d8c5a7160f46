//go:build race

package copybench

// raceEnabled: the race detector's shadow memory inflates a child's peak RSS.
const raceEnabled = true
