package syncworker

import (
	"errors"
	"testing"
	"time"
)

// TestFence: the engine may append while the task's lease holds: within three
// quarters of AckWait since the last keep-alive sent and of LockTTL since the last
// lock refresh sent. A copier that was paused (SIGSTOP) past that, and runs again,
// is refused before it sends one more byte.
func TestFence(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	w := &Worker{cfg: Config{AckWait: time.Minute, LockTTL: 3 * time.Minute}.withDefaults(), now: func() time.Time { return clock }}
	tk := &task{w: w}
	start := clock
	tk.ackAt.Store(&start)
	tk.lockAt.Store(&start)
	for _, tt := range []struct {
		name    string
		elapsed time.Duration // since the last keep-alive and lock refresh
		ok      bool
	}{
		{"just delivered", 0, true},
		{"a keep-alive late", 40 * time.Second, true},
		{"paused past three quarters of AckWait", 46 * time.Second, false},
		{"paused past AckWait (redelivered elsewhere)", 2 * time.Minute, false},
	} {
		clock = start.Add(tt.elapsed)
		err := tk.fence()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, errFenced)) {
			t.Errorf("%s: fence() = %v, want ok %v", tt.name, err, tt.ok)
		}
	}

	// Keep-alives keep the delivery, but the lock must be refreshed too.
	clock = start.Add(150 * time.Second)
	ack := clock
	tk.ackAt.Store(&ack)
	if err := tk.fence(); !errors.Is(err, errFenced) {
		t.Errorf("lock refreshed 150s ago (LockTTL 3m): fence() = %v, want errFenced", err)
	}
	lock := clock
	tk.lockAt.Store(&lock)
	if err := tk.fence(); err != nil {
		t.Errorf("both fresh: fence() = %v, want nil", err)
	}
	if got := classify(errFenced); got != classStale {
		t.Errorf("classify(errFenced) = %v, want classStale: no status write, no ack (another delivery owns the task)", got)
	}
}
