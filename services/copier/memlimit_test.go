package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestMemoryLimit: the default is the engine's budget for the tasks and connections,
// "off" sets none, and a lower limit already in effect (GOMEMLIMIT) wins. Not
// parallel: it sets the process's memory limit (and puts the previous one back).
func TestMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })

	for _, tt := range []struct {
		raw                string
		tasks, connections int
		want               int64
	}{
		{"", 1, 4, 48 << 20},
		{"", 4, 4, 144 << 20},
		{"", 1, 0, 48 << 20}, // the engine's default connections
		{"off", 4, 4, 0},
		{"1GiB", 4, 4, 1 << 30},
		{"100MB", 1, 4, 100e6},
	} {
		got, err := memoryLimit{tt.raw}.resolve(tt.tasks, tt.connections)
		if err != nil || got != tt.want {
			t.Errorf("resolve(%q, %d tasks, %d connections) = %d, %v; want %d", tt.raw, tt.tasks, tt.connections, got, err, tt.want)
		}
	}

	debug.SetMemoryLimit(math.MaxInt64)
	if got := applyMemoryLimit(48 << 20); got != 48<<20 || debug.SetMemoryLimit(-1) != 48<<20 {
		t.Errorf("applyMemoryLimit(48 MiB) = %d, runtime limit %d; want 48 MiB set", got, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(32 << 20) // a lower GOMEMLIMIT
	if got := applyMemoryLimit(48 << 20); got != 32<<20 || debug.SetMemoryLimit(-1) != 32<<20 {
		t.Errorf("under a 32 MiB GOMEMLIMIT, applyMemoryLimit(48 MiB) = %d, runtime limit %d; want 32 MiB kept", got, debug.SetMemoryLimit(-1))
	}
	if got := applyMemoryLimit(0); got != 32<<20 {
		t.Errorf("applyMemoryLimit(off) = %d, want the limit in effect (32 MiB)", got)
	}
	if memoryLimitText(math.MaxInt64) != "none" {
		t.Errorf("memoryLimitText(none) = %q", memoryLimitText(math.MaxInt64))
	}
}
