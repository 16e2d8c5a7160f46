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
	ballast := make([]byte, 256<<20)
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
	if lo, hi := int64(64<<20), int64(160<<20); m.MaxRSS < lo || m.MaxRSS > hi {
		t.Errorf("MaxRSS = %d MiB, want 64–160 MiB (the parent holds 256 MiB)", m.MaxRSS>>20)
	}
	if m.User+m.Sys <= 0 || m.Wall < 100*time.Millisecond {
		t.Errorf("CPU %v, wall %v: want > 0 and ≥ 100ms", m.User+m.Sys, m.Wall)
	}
	_ = ballast[len(ballast)-1]
}
