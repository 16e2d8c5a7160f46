//go:build !race

package copybench

const raceEnabled = false
