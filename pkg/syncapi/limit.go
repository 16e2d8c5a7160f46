package syncapi

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Rate is how often a key may do something: Burst at once, then one every Every.
// A zero Every means no limit.
type Rate struct {
	Every time.Duration
	Burst int
}

// maxLimiterKeys bounds the memory of a keyed limiter: when a sweep of idle keys
// leaves more than this, the oldest half is dropped (a dropped key starts again with a
// full burst, which only ever errs on the generous side).
const maxLimiterKeys = 100_000

// keyedLimiter is a token bucket per key (a source address, a caller), forgetting keys
// that have been idle long enough to be full again.
type keyedLimiter struct {
	rate  Rate
	clock Clock

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newKeyedLimiter(r Rate, clock Clock) *keyedLimiter {
	return &keyedLimiter{rate: r, clock: clock, buckets: map[string]*bucket{}}
}

// refill is how long an idle bucket takes to be full again.
func (l *keyedLimiter) refill() time.Duration {
	return l.rate.Every * time.Duration(max(l.rate.Burst, 1))
}

// take takes one token for key. It returns 0 when allowed, or how long to wait for the
// next token (the token is not taken then).
func (l *keyedLimiter) take(key string) time.Duration {
	if l == nil || l.rate.Every <= 0 {
		return 0
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Every(l.rate.Every), max(l.rate.Burst, 1))}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return l.rate.Every
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

func (l *keyedLimiter) sweep(now time.Time) {
	idle := l.refill()
	if now.Sub(l.lastSweep) < idle && len(l.buckets) < maxLimiterKeys {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.seen) >= idle {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxLimiterKeys {
		// Still full of active keys (an attack spread over many keys): forget half.
		n := 0
		for k := range l.buckets {
			if n >= len(l.buckets)/2 {
				break
			}
			delete(l.buckets, k)
			n++
		}
	}
}

// exhausted is the ResourceExhausted answer with a retry hint, both in the message
// (for people) and as a RetryInfo detail (for programs).
func exhausted(what string, wait time.Duration) error {
	secs := int64(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	st := status.New(codes.ResourceExhausted, fmt.Sprintf("%s: retry in %d s", what, secs))
	if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(secs) * time.Second)}); err == nil {
		st = withInfo
	}
	return st.Err()
}

// watchCounts counts the open watch streams of each caller.
type watchCounts struct {
	mu sync.Mutex
	n  map[string]int
}

// open counts one more stream of caller unless it has max already; done uncounts it.
func (w *watchCounts) open(caller string, limit int) (done func(), ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n[caller] >= limit {
		return nil, false
	}
	if w.n == nil {
		w.n = map[string]int{}
	}
	w.n[caller]++
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.n[caller]--; w.n[caller] == 0 {
			delete(w.n, caller)
		}
	}, true
}

// testSlots bounds concurrent account tests. acquire waits at most wait for slots, so
// that a burst queues briefly instead of failing at once, but a flood is refused.
type testSlots struct {
	sem  *semaphore.Weighted
	size int64
	wait time.Duration
}

func newTestSlots(n int, wait time.Duration) *testSlots {
	if n <= 0 {
		return nil
	}
	return &testSlots{sem: semaphore.NewWeighted(int64(n)), size: int64(n), wait: wait}
}

// acquire takes n slots at once (the two accounts of a start take two). It returns a
// release func, or ResourceExhausted when the slots do not free up in time.
func (s *testSlots) acquire(ctx context.Context, n int) (func(), error) {
	if s == nil {
		return func() {}, nil
	}
	w := min(int64(n), s.size)
	if s.sem.TryAcquire(w) {
		return func() { s.sem.Release(w) }, nil
	}
	if s.wait <= 0 {
		return nil, exhausted("too many account tests in progress", time.Second)
	}
	wctx, cancel := context.WithTimeout(ctx, s.wait)
	defer cancel()
	if err := s.sem.Acquire(wctx, w); err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, exhausted("too many account tests in progress", time.Second)
	}
	return func() { s.sem.Release(w) }, nil
}
