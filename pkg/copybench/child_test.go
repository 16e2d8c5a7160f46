package copybench

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestHelperAllocate is not a test: run as a child by TestRunChildPeakRSS, it touches
// 64 MiB and exits.
func TestHelperAllocate(t *testing.T) {
	if os.Getenv("COPYBENCH_HELPER") != "allocate" {
		return
	}
	b := make([]byte, 64<<20)
	for i := range b {
		b[i] = byte(i)
	}
	time.Sleep(100 * time.Millisecond)
	os.Exit(int(b[12345]) % 2) // 12345 % 256 = 57: exit code 1
}

// TestRunChildPeakRSS checks that runChild reports the child's own peak memory, not the
// parent's: the parent holds a big buffer, the child touches 64 MiB.
func TestRunChildPeakRSS(t *testing.T) {
	// The parent's ballast stays above what the child may reach, even with the race
	// detector's shadow memory (about 3x for the child's 64 MiB).
	ballast := make([]byte, 512<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	m, err := runChild(context.Background(), os.Args[0],
		[]string{"-test.run=^TestHelperAllocate$"}, append(os.Environ(), "COPYBENCH_HELPER=allocate"))
	if err != nil {
		t.Fatal(err)
	}
	if m.ExitCode != 1 {
		t.Errorf("exit code = %d, want 1; stderr: %s", m.ExitCode, m.StderrEnd)
	}
	lo, hi := int64(64<<20), int64(160<<20)
	if raceEnabled {
		hi = 400 << 20
	}
	if m.MaxRSS < lo || m.MaxRSS > hi {
		t.Errorf("MaxRSS = %d MiB, want %d–%d MiB (the parent holds 512 MiB)", m.MaxRSS>>20, lo>>20, hi>>20)
	}
	if m.User+m.Sys <= 0 || m.Wall < 100*time.Millisecond {
		t.Errorf("CPU %v, wall %v: want > 0 and ≥ 100ms", m.User+m.Sys, m.Wall)
	}
	_ = ballast[len(ballast)-1]
}
