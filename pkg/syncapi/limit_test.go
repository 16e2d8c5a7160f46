package syncapi

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestKeyedLimiter(t *testing.T) {
	clock := newFakeClock()
	l := newKeyedLimiter(Rate{Every: time.Minute, Burst: 3}, clock)
	for i := range 3 {
		if wait := l.take("a"); wait != 0 {
			t.Fatalf("take #%d = %v, want 0 within the burst", i+1, wait)
		}
	}
	if wait := l.take("a"); wait <= 0 || wait > time.Minute {
		t.Fatalf("take after the burst = %v, want a wait in (0, 1m]", wait)
	}
	if wait := l.take("b"); wait != 0 {
		t.Errorf("take(b) = %v, want 0: keys are independent", wait)
	}
	clock.Advance(time.Minute)
	if wait := l.take("a"); wait != 0 {
		t.Errorf("take a minute later = %v, want 0", wait)
	}
	if wait := l.take("a"); wait == 0 {
		t.Errorf("second take a minute later = 0, want a wait")
	}
	// A refused take does not consume: after the wait it passes.
	wait := l.take("a")
	clock.Advance(wait)
	if got := l.take("a"); got != 0 {
		t.Errorf("take after waiting %v = %v, want 0", wait, got)
	}
}

func TestKeyedLimiterForgetsIdleKeys(t *testing.T) {
	clock := newFakeClock()
	l := newKeyedLimiter(Rate{Every: time.Second, Burst: 2}, clock)
	for i := range 100 {
		l.take(strings.Repeat("k", i+1))
	}
	clock.Advance(time.Hour)
	l.take("fresh")
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	if n != 1 {
		t.Errorf("buckets after an idle hour = %d, want 1", n)
	}
}

func TestKeyedLimiterOff(t *testing.T) {
	l := newKeyedLimiter(Rate{}, newFakeClock())
	for range 1000 {
		if wait := l.take("a"); wait != 0 {
			t.Fatalf("take with no limit = %v, want 0", wait)
		}
	}
	var nilLimiter *keyedLimiter
	if wait := nilLimiter.take("a"); wait != 0 {
		t.Errorf("nil limiter take = %v, want 0", wait)
	}
}

func TestExhausted(t *testing.T) {
	err := exhausted("too many attempts for this account", 1500*time.Millisecond)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("code = %v, want ResourceExhausted", st.Code())
	}
	if want := "too many attempts for this account: retry in 2 s"; st.Message() != want {
		t.Errorf("message = %q, want %q", st.Message(), want)
	}
	var got time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			got = ri.GetRetryDelay().AsDuration()
		}
	}
	if got != 2*time.Second {
		t.Errorf("RetryInfo delay = %v, want 2s", got)
	}
}

func TestTestSlots(t *testing.T) {
	ctx := context.Background()
	slots := newTestSlots(2, 0)
	release1, err := slots.acquire(ctx, 1)
	if err != nil {
		t.Fatalf("first acquire: %v", err)
	}
	if _, err := slots.acquire(ctx, 2); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("acquire 2 with 1 free = %v, want ResourceExhausted", err)
	}
	release2, err := slots.acquire(ctx, 1)
	if err != nil {
		t.Fatalf("acquire the last slot: %v", err)
	}
	if _, err := slots.acquire(ctx, 1); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("acquire when full = %v, want ResourceExhausted", err)
	}
	release1()
	release2()
	release, err := slots.acquire(ctx, 2)
	if err != nil {
		t.Fatalf("acquire 2 after release: %v", err)
	}
	release()

	// With a wait, an acquire waits for a release.
	waiting := newTestSlots(1, time.Hour)
	release, _ = waiting.acquire(ctx, 1)
	done := make(chan error)
	go func() {
		r, err := waiting.acquire(ctx, 1)
		if err == nil {
			r()
		}
		done <- err
	}()
	release()
	if err := <-done; err != nil {
		t.Errorf("acquire waiting for a release: %v", err)
	}

	// A caller that goes away stops waiting.
	release, _ = waiting.acquire(ctx, 1)
	defer release()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := waiting.acquire(cctx, 1); status.Code(err) != codes.Canceled {
		t.Errorf("acquire with a cancelled context = %v, want Canceled", err)
	}
}
