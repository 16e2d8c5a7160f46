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

	// Renewals on time keep the lease for as long as the copy runs.
	fresh := func() *task {
		clock = start
		tk := &task{w: w}
		tk.ackAt.Store(&start)
		tk.lockAt.Store(&start)
		return tk
	}
	tk = fresh()
	for range 40 { // ten minutes of keep-alives and refreshes every 15 s
		clock = clock.Add(15 * time.Second)
		tk.renew(&tk.ackAt, clock, w.cfg.AckWait)
		tk.renew(&tk.lockAt, clock, w.cfg.LockTTL)
		if err := tk.fence(); err != nil {
			t.Fatalf("renewed every 15 s, after %v: fence() = %v, want nil", clock.Sub(start), err)
		}
	}

	// Keep-alives keep the delivery, but the lock must be refreshed too.
	tk = fresh()
	for range 10 { // 150 s of keep-alives, no refresh (LockTTL 3m)
		clock = clock.Add(15 * time.Second)
		tk.renew(&tk.ackAt, clock, w.cfg.AckWait)
	}
	if err := tk.fence(); !errors.Is(err, errFenced) {
		t.Errorf("lock refreshed 150s ago (LockTTL 3m): fence() = %v, want errFenced", err)
	}

	// A copier thawed after a pause past its lease renews both at once, and both
	// succeed: the lease stays lapsed, since another delivery may own the task.
	tk = fresh()
	clock = start.Add(2 * time.Minute)
	tk.renew(&tk.ackAt, clock, w.cfg.AckWait)
	tk.renew(&tk.lockAt, clock, w.cfg.LockTTL)
	if err := tk.fence(); !errors.Is(err, errFenced) {
		t.Errorf("renewed after a 2 min pause: fence() = %v, want errFenced (the lease lapsed)", err)
	}
	if got := classify(errFenced); got != classStale {
		t.Errorf("classify(errFenced) = %v, want classStale: no status write, no ack (another delivery owns the task)", got)
	}
}
