// Package storetest is the contract every syncstatus.Store implementation passes:
// lock exclusivity and expiry, holder-only refresh and release, fenced status writes,
// Watch, retention, cancel requests and address encoding. Used only by tests.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// NewStore returns a fresh, empty store for one test, finished statuses kept for
// retention. Stores returned for different tests must not share data.
type NewStore func(t *testing.T, retention time.Duration) syncstatus.Store

// waitLimit bounds every poll for something that happens in the background (an
// expiry); it is a failure bound, not a speed assertion.
const waitLimit = 30 * time.Second

// Run runs the contract tests against the stores newStore makes. Subtests run in
// parallel.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		f    func(t *testing.T, s syncstatus.Store)
	}{
		{"LockIsExclusive", testLockIsExclusive},
		{"LockExpires", testLockExpires},
		{"RefreshByHolderOnly", testRefreshByHolderOnly},
		{"ReleaseByHolderOnly", testReleaseByHolderOnly},
		{"Reclaim", testReclaim},
		{"ConcurrentAcquire", testConcurrentAcquire},
		{"GetNotFound", testGetNotFound},
		{"FencedWrites", testFencedWrites},
		{"UpdateFnError", testUpdateFnError},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"Watch", testWatch},
		{"WatchNotFound", testWatchNotFound},
		{"WatchCancelled", testWatchCancelled},
		{"Cancel", testCancel},
		{"Addresses", testAddresses},
		{"EmptyAddress", testEmptyAddress},
		{"List", testList},
		{"TakeToken", testTakeToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.f(t, newStore(t, syncstatus.DefaultRetention))
		})
	}
	t.Run("Retention", func(t *testing.T) {
		t.Parallel()
		testRetention(t, newStore(t, time.Second))
	})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func status(taskID, source string, state imapcopyv1.SyncState) *imapcopyv1.SyncStatus {
	return &imapcopyv1.SyncStatus{TaskId: taskID, SourceEmail: source, State: state, Total: &imapcopyv1.Progress{}}
}

func acquire(t *testing.T, s syncstatus.Store, source string, ttl time.Duration) string {
	t.Helper()
	tok, err := s.Acquire(ctxFor(t), source, ttl)
	if err != nil {
		t.Fatalf("Acquire(%q): %v", source, err)
	}
	if tok == "" {
		t.Fatalf("Acquire(%q) returned an empty token", source)
	}
	return tok
}

// eventually polls cond until it is true or waitLimit passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLimit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func testLockIsExclusive(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	acquire(t, s, "a@example.com", time.Hour)
	if _, err := s.Acquire(ctx, "a@example.com", time.Hour); !errors.Is(err, syncstatus.ErrLocked) {
		t.Fatalf("second Acquire = %v, want ErrLocked", err)
	}
	if got, want := syncstatus.ErrLocked.Error(), "a sync task for this account already exists"; got != want {
		t.Errorf("ErrLocked = %q, want %q", got, want)
	}
	acquire(t, s, "b@example.com", time.Hour) // another address is independent
}

func testLockExpires(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	const src = "expiring@example.com"
	old := acquire(t, s, src, time.Second)
	if err := s.Put(ctx, src, old, status("t1", src, imapcopyv1.SyncState_SYNC_STATE_RUNNING)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	eventually(t, "lock seen free after its TTL", func() bool {
		locked, err := s.Locked(ctx, src)
		if err != nil {
			t.Fatalf("Locked: %v", err)
		}
		return !locked
	})
	var tok string
	eventually(t, "lock acquirable after its TTL", func() bool {
		var err error
		tok, err = s.Acquire(ctx, src, time.Hour)
		if err != nil && !errors.Is(err, syncstatus.ErrLocked) {
			t.Fatalf("Acquire: %v", err)
		}
		return err == nil
	})
	if tok == old {
		t.Fatal("the new holder got the expired holder's token")
	}
	if err := s.Refresh(ctx, src, old, time.Hour); !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Errorf("Refresh by the expired holder = %v, want ErrNotHolder", err)
	}
	_, err := s.Update(ctx, src, old, func(st *imapcopyv1.SyncStatus) error {
		st.State = imapcopyv1.SyncState_SYNC_STATE_COMPLETED
		return nil
	})
	if !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Errorf("Update by the expired holder = %v, want ErrNotHolder", err)
	}
}

func testRefreshByHolderOnly(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	const src = "refresh@example.com"
	tok := acquire(t, s, src, 2*time.Second)
	if err := s.Refresh(ctx, src, "not-the-token", time.Hour); !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Fatalf("Refresh with a wrong token = %v, want ErrNotHolder", err)
	}
	if err := s.Refresh(ctx, src, tok, time.Hour); err != nil {
		t.Fatalf("Refresh by the holder: %v", err)
	}
	// Past the first TTL the lock is still held: Refresh extended it.
	time.Sleep(4 * time.Second)
	if _, err := s.Acquire(ctx, src, time.Hour); !errors.Is(err, syncstatus.ErrLocked) {
		t.Fatalf("Acquire after the original TTL of a refreshed lock = %v, want ErrLocked", err)
	}
	if err := s.Refresh(ctx, "nobody@example.com", tok, time.Hour); !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Errorf("Refresh of a free lock = %v, want ErrNotHolder", err)
	}
}

func testReleaseByHolderOnly(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	const src = "release@example.com"
	locked := func(want bool, when string) {
		t.Helper()
		if got, err := s.Locked(ctx, src); err != nil || got != want {
			t.Errorf("Locked %s = %v, %v; want %v", when, got, err, want)
		}
	}
	locked(false, "before any Acquire")
	tok := acquire(t, s, src, time.Hour)
	locked(true, "after Acquire")
	if err := s.Release(ctx, src, "not-the-token"); !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Fatalf("Release with a wrong token = %v, want ErrNotHolder", err)
	}
	if _, err := s.Acquire(ctx, src, time.Hour); !errors.Is(err, syncstatus.ErrLocked) {
		t.Fatalf("Acquire after a refused Release = %v, want ErrLocked", err)
	}
	if err := s.Release(ctx, src, tok); err != nil {
		t.Fatalf("Release by the holder: %v", err)
	}
	locked(false, "after Release")
	if err := s.Release(ctx, src, tok); !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Errorf("second Release = %v, want ErrNotHolder", err)
	}
	tok2 := acquire(t, s, src, time.Hour)
	if err := s.Release(ctx, src, tok); !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Errorf("Release with the previous holder's token = %v, want ErrNotHolder", err)
	}
	if err := s.Refresh(ctx, src, tok2, time.Hour); err != nil {
		t.Errorf("the new holder's Refresh: %v", err)
	}
}

func testReclaim(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	const src = "reclaim@example.com"
	tok := acquire(t, s, src, time.Hour)
	first, second := syncstatus.DeliveryToken(tok, 1), syncstatus.DeliveryToken(tok, 2)
	// The first delivery takes the queued task's lock, and takes it again.
	for range 2 {
		if err := s.Reclaim(ctx, src, tok, first, time.Hour); err != nil {
			t.Fatalf("Reclaim by the first delivery: %v", err)
		}
	}
	if err := s.Put(ctx, src, first, status("t1", src, imapcopyv1.SyncState_SYNC_STATE_RUNNING)); err != nil {
		t.Errorf("Put by the holding delivery: %v", err)
	}
	// While it holds the lock, no other delivery of the task and no other task take it,
	// and the task's own token writes nothing.
	if err := s.Reclaim(ctx, src, tok, second, time.Hour); !errors.Is(err, syncstatus.ErrHeld) {
		t.Fatalf("Reclaim by a second delivery = %v, want ErrHeld", err)
	}
	other := "0123456789abcdef"
	if err := s.Reclaim(ctx, src, other, syncstatus.DeliveryToken(other, 1), time.Hour); !errors.Is(err, syncstatus.ErrLocked) {
		t.Fatalf("Reclaim by another task = %v, want ErrLocked", err)
	}
	if err := s.Put(ctx, src, tok, status("t1", src, imapcopyv1.SyncState_SYNC_STATE_RUNNING)); !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Errorf("Put with the task's token while a delivery holds the lock = %v, want ErrNotHolder", err)
	}
	for token, want := range map[string]bool{tok: true, other: false, "": false} {
		if held, err := s.HeldBy(ctx, src, token); err != nil || held != want {
			t.Errorf("HeldBy(%q) = %v, %v; want %v", token, held, err, want)
		}
	}
	// Handed back, the lock is the task's again: a later delivery takes it, the
	// earlier one no longer holds it.
	if err := s.HandBack(ctx, src, second, tok, time.Hour); !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Errorf("HandBack by a delivery that does not hold the lock = %v, want ErrNotHolder", err)
	}
	if err := s.HandBack(ctx, src, first, tok, time.Hour); err != nil {
		t.Fatalf("HandBack: %v", err)
	}
	if _, err := s.Acquire(ctx, src, time.Hour); !errors.Is(err, syncstatus.ErrLocked) {
		t.Errorf("Acquire of a handed-back lock = %v, want ErrLocked", err)
	}
	if err := s.Reclaim(ctx, src, tok, second, time.Hour); err != nil {
		t.Fatalf("Reclaim by the second delivery after the hand-back: %v", err)
	}
	if err := s.Refresh(ctx, src, first, time.Hour); !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Errorf("Refresh by the earlier delivery = %v, want ErrNotHolder", err)
	}
	// A free lock: a redelivered task takes it back.
	if err := s.Release(ctx, src, second); err != nil {
		t.Fatal(err)
	}
	if held, err := s.HeldBy(ctx, src, tok); err != nil || held {
		t.Errorf("HeldBy of a free lock = %v, %v; want false", held, err)
	}
	if err := s.Reclaim(ctx, src, tok, syncstatus.DeliveryToken(tok, 3), time.Hour); err != nil {
		t.Fatalf("Reclaim of a free lock: %v", err)
	}
	for _, bad := range [][2]string{{"", ""}, {tok, tok}, {tok, other + "#1"}, {tok, ""}} {
		if err := s.Reclaim(ctx, src, bad[0], bad[1], time.Hour); err == nil {
			t.Errorf("Reclaim with token %q and holder %q succeeded", bad[0], bad[1])
		}
	}
}

func testConcurrentAcquire(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	const n = 16
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		tokens []string
		locked int
	)
	for range n {
		wg.Go(func() {
			tok, err := s.Acquire(ctx, "race@example.com", time.Hour)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				tokens = append(tokens, tok)
			case errors.Is(err, syncstatus.ErrLocked):
				locked++
			default:
				t.Errorf("Acquire: %v", err)
			}
		})
	}
	wg.Wait()
	if len(tokens) != 1 || locked != n-1 {
		t.Fatalf("%d concurrent Acquires: %d won, %d got ErrLocked; want 1 and %d", n, len(tokens), locked, n-1)
	}
}

func testGetNotFound(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	if st, err := s.Get(ctx, "nobody@example.com"); !errors.Is(err, syncstatus.ErrNotFound) {
		t.Fatalf("Get of an unknown address = %v, %v; want ErrNotFound", st, err)
	}
	const src = "nostatus@example.com"
	tok := acquire(t, s, src, time.Hour)
	_, err := s.Update(ctx, src, tok, func(*imapcopyv1.SyncStatus) error { return nil })
	if !errors.Is(err, syncstatus.ErrNotFound) {
		t.Errorf("Update of a missing status by the holder = %v, want ErrNotFound", err)
	}
}

func testFencedWrites(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	const src = "fenced@example.com"
	tok := acquire(t, s, src, time.Hour)
	queued := status("t1", src, imapcopyv1.SyncState_SYNC_STATE_QUEUED)

	if err := s.Put(ctx, src, "intruder", queued); !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Fatalf("Put by a non-holder = %v, want ErrNotHolder", err)
	}
	if _, err := s.Get(ctx, src); !errors.Is(err, syncstatus.ErrNotFound) {
		t.Fatalf("Get after a refused Put = %v, want ErrNotFound", err)
	}
	before := time.Now().Add(-time.Minute)
	if err := s.Put(ctx, src, tok, queued); err != nil {
		t.Fatalf("Put by the holder: %v", err)
	}
	got, err := s.Get(ctx, src)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.GetTaskId() != "t1" || got.GetState() != imapcopyv1.SyncState_SYNC_STATE_QUEUED {
		t.Errorf("Get = task %q state %v, want t1 QUEUED", got.GetTaskId(), got.GetState())
	}
	if got.GetUpdatedAt() == nil || got.GetUpdatedAt().AsTime().Before(before) {
		t.Errorf("updated_at = %v, want the time of the write", got.GetUpdatedAt())
	}

	running := func(st *imapcopyv1.SyncStatus) error {
		st.State = imapcopyv1.SyncState_SYNC_STATE_RUNNING
		st.Total.MessagesCopied = 7
		return nil
	}
	if _, err := s.Update(ctx, src, "intruder", running); !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Fatalf("Update by a non-holder = %v, want ErrNotHolder", err)
	}
	if got, _ := s.Get(ctx, src); got.GetState() != imapcopyv1.SyncState_SYNC_STATE_QUEUED {
		t.Fatalf("state after a refused Update = %v, want QUEUED", got.GetState())
	}
	upd, err := s.Update(ctx, src, tok, running)
	if err != nil {
		t.Fatalf("Update by the holder: %v", err)
	}
	if upd.GetState() != imapcopyv1.SyncState_SYNC_STATE_RUNNING || upd.GetTotal().GetMessagesCopied() != 7 {
		t.Errorf("Update returned state %v copied %d, want RUNNING 7", upd.GetState(), upd.GetTotal().GetMessagesCopied())
	}
	if got, _ := s.Get(ctx, src); !proto.Equal(got, upd) {
		t.Errorf("Get after Update = %v, want what Update returned: %v", got, upd)
	}

	// After release, nothing is written with the old token, terminal states included.
	if err := s.Release(ctx, src, tok); err != nil {
		t.Fatal(err)
	}
	_, err = s.Update(ctx, src, tok, func(st *imapcopyv1.SyncStatus) error {
		st.State = imapcopyv1.SyncState_SYNC_STATE_COMPLETED
		return nil
	})
	if !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Errorf("terminal Update after Release = %v, want ErrNotHolder", err)
	}
	if err := s.Put(ctx, src, tok, status("t1", src, imapcopyv1.SyncState_SYNC_STATE_FAILED)); !errors.Is(err, syncstatus.ErrNotHolder) {
		t.Errorf("Put after Release = %v, want ErrNotHolder", err)
	}
	if got, _ := s.Get(ctx, src); got.GetState() != imapcopyv1.SyncState_SYNC_STATE_RUNNING {
		t.Errorf("state after refused writes = %v, want RUNNING", got.GetState())
	}

	// A new task replaces the finished one's status.
	tok2 := acquire(t, s, src, time.Hour)
	if err := s.Put(ctx, src, tok2, status("t2", src, imapcopyv1.SyncState_SYNC_STATE_QUEUED)); err != nil {
		t.Fatalf("Put by the next holder: %v", err)
	}
	if got, _ := s.Get(ctx, src); got.GetTaskId() != "t2" {
		t.Errorf("task after the next Put = %q, want t2", got.GetTaskId())
	}
}

func testUpdateFnError(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	const src = "fnerror@example.com"
	tok := acquire(t, s, src, time.Hour)
	if err := s.Put(ctx, src, tok, status("t1", src, imapcopyv1.SyncState_SYNC_STATE_RUNNING)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err := s.Update(ctx, src, tok, func(st *imapcopyv1.SyncStatus) error {
		st.State = imapcopyv1.SyncState_SYNC_STATE_FAILED
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update with a failing fn = %v, want %v", err, boom)
	}
	if got, _ := s.Get(ctx, src); got.GetState() != imapcopyv1.SyncState_SYNC_STATE_RUNNING {
		t.Errorf("state after an aborted Update = %v, want RUNNING", got.GetState())
	}
}

func testConcurrentUpdates(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	const src = "busy@example.com"
	tok := acquire(t, s, src, time.Hour)
	if err := s.Put(ctx, src, tok, status("t1", src, imapcopyv1.SyncState_SYNC_STATE_RUNNING)); err != nil {
		t.Fatal(err)
	}
	const workers, each = 6, 8
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				_, err := s.Update(ctx, src, tok, func(st *imapcopyv1.SyncStatus) error {
					st.Total.MessagesCopied++
					return nil
				})
				if err != nil {
					t.Errorf("Update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := s.Get(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetTotal().GetMessagesCopied() != workers*each {
		t.Fatalf("messages_copied after %d concurrent increments = %d, want %d", workers*each, got.GetTotal().GetMessagesCopied(), workers*each)
	}
}

// watchResult is one value the Watch iterator yielded.
type watchResult struct {
	st  *imapcopyv1.SyncStatus
	err error
}

// startWatch runs Watch in a goroutine and forwards what it yields.
func startWatch(ctx context.Context, s syncstatus.Store, src string) <-chan watchResult {
	out := make(chan watchResult)
	go func() {
		defer close(out)
		for st, err := range s.Watch(ctx, src) {
			select {
			case out <- watchResult{st, err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func next(t *testing.T, ch <-chan watchResult) (watchResult, bool) {
	t.Helper()
	select {
	case r, ok := <-ch:
		return r, ok
	case <-time.After(waitLimit):
		t.Fatalf("Watch yielded nothing within %v", waitLimit)
		return watchResult{}, false
	}
}

func testWatch(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	const src = "watched@example.com"
	tok := acquire(t, s, src, time.Hour)
	if err := s.Put(ctx, src, tok, status("t1", src, imapcopyv1.SyncState_SYNC_STATE_QUEUED)); err != nil {
		t.Fatal(err)
	}
	ch := startWatch(ctx, s, src)
	r, ok := next(t, ch)
	if !ok || r.err != nil || r.st.GetState() != imapcopyv1.SyncState_SYNC_STATE_QUEUED {
		t.Fatalf("first Watch value = %v, %v (open %v); want the QUEUED status", r.st, r.err, ok)
	}
	for i := uint64(1); i <= 5; i++ {
		if _, err := s.Update(ctx, src, tok, func(st *imapcopyv1.SyncStatus) error {
			st.State = imapcopyv1.SyncState_SYNC_STATE_RUNNING
			st.Total.MessagesCopied = i
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		r, ok := next(t, ch)
		if !ok || r.err != nil || r.st.GetTotal().GetMessagesCopied() != i {
			t.Fatalf("Watch value after update %d = %v, %v (open %v); want messages_copied %d", i, r.st, r.err, ok, i)
		}
	}
	if _, err := s.Update(ctx, src, tok, func(st *imapcopyv1.SyncStatus) error {
		st.State = imapcopyv1.SyncState_SYNC_STATE_COMPLETED
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r, ok = next(t, ch)
	if !ok || r.err != nil || r.st.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED {
		t.Fatalf("last Watch value = %v, %v (open %v); want COMPLETED", r.st, r.err, ok)
	}
	if r, ok := next(t, ch); ok {
		t.Fatalf("Watch went on after a terminal state: %v, %v", r.st, r.err)
	}

	// Watching a finished sync yields its final status and ends.
	ch = startWatch(ctx, s, src)
	r, ok = next(t, ch)
	if !ok || r.err != nil || r.st.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED {
		t.Fatalf("Watch of a finished sync = %v, %v (open %v); want COMPLETED", r.st, r.err, ok)
	}
	if r, ok := next(t, ch); ok {
		t.Fatalf("Watch of a finished sync went on: %v, %v", r.st, r.err)
	}
}

func testWatchNotFound(t *testing.T, s syncstatus.Store) {
	ch := startWatch(ctxFor(t), s, "unknown@example.com")
	r, ok := next(t, ch)
	if !ok || !errors.Is(r.err, syncstatus.ErrNotFound) {
		t.Fatalf("Watch of an unknown address = %v, %v (open %v); want ErrNotFound", r.st, r.err, ok)
	}
	if _, ok := next(t, ch); ok {
		t.Fatal("Watch went on after ErrNotFound")
	}
}

func testWatchCancelled(t *testing.T, s syncstatus.Store) {
	ctx, cancel := context.WithCancel(ctxFor(t))
	const src = "leaving@example.com"
	tok := acquire(t, s, src, time.Hour)
	if err := s.Put(ctx, src, tok, status("t1", src, imapcopyv1.SyncState_SYNC_STATE_RUNNING)); err != nil {
		t.Fatal(err)
	}
	results := make(chan watchResult, 4)
	go func() {
		defer close(results)
		for st, err := range s.Watch(ctx, src) {
			results <- watchResult{st, err}
			if err == nil {
				cancel() // the client goes away after the first status
			}
		}
	}()
	if r, ok := next(t, results); !ok || r.err != nil {
		t.Fatalf("first Watch value = %v, %v (open %v)", r.st, r.err, ok)
	}
	r, ok := next(t, results)
	if !ok || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Watch after its context ended = %v, %v (open %v); want context.Canceled", r.st, r.err, ok)
	}
	if _, ok := next(t, results); ok {
		t.Fatal("Watch went on after its context ended")
	}
}

func testRetention(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	const src = "retained@example.com"
	tok := acquire(t, s, src, time.Hour)
	if err := s.Put(ctx, src, tok, status("t1", src, imapcopyv1.SyncState_SYNC_STATE_RUNNING)); err != nil {
		t.Fatal(err)
	}
	// A running sync's status outlives the retention...
	time.Sleep(3 * time.Second)
	if _, err := s.Get(ctx, src); err != nil {
		t.Fatalf("Get of a running status older than the retention: %v, want it kept", err)
	}
	// ...and a finished one goes after it.
	if _, err := s.Update(ctx, src, tok, func(st *imapcopyv1.SyncStatus) error {
		st.State = imapcopyv1.SyncState_SYNC_STATE_COMPLETED
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, src); err != nil {
		t.Fatalf("Get right after the end: %v", err)
	}
	if got := listAll(t, s, syncstatus.ListQuery{}); len(got) != 1 {
		t.Fatalf("List right after the end: %d syncs, want 1", len(got))
	}
	eventually(t, "finished status removed after the retention", func() bool {
		_, err := s.Get(ctx, src)
		if err != nil && !errors.Is(err, syncstatus.ErrNotFound) {
			t.Fatalf("Get: %v", err)
		}
		return errors.Is(err, syncstatus.ErrNotFound)
	})
	page, err := s.List(ctx, syncstatus.ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Statuses) != 0 || len(page.Totals) != 0 {
		t.Fatalf("List after the retention: %d syncs, totals %v; want none", len(page.Statuses), page.Totals)
	}
}

func testCancel(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	const src = "cancel@example.com"
	check := func(taskID string, want bool) {
		t.Helper()
		got, err := s.CancelRequested(ctx, src, taskID)
		if err != nil || got != want {
			t.Errorf("CancelRequested(%q) = %v, %v; want %v, nil", taskID, got, err, want)
		}
	}
	check("t1", false)
	if err := s.RequestCancel(ctx, src, "t1"); err != nil {
		t.Fatalf("RequestCancel: %v", err)
	}
	check("t1", true)
	check("t2", false) // a later task of the same address is not cancelled
	if ok, err := s.CancelRequested(ctx, "other@example.com", "t1"); err != nil || ok {
		t.Errorf("CancelRequested of another address = %v, %v; want false, nil", ok, err)
	}
}

func testAddresses(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	// Differently typed forms of one address share one lock and one status.
	tok := acquire(t, s, "  Alice.Smith+Tag@Example.COM ", time.Hour)
	if _, err := s.Acquire(ctx, "alice.smith+tag@example.com", time.Hour); !errors.Is(err, syncstatus.ErrLocked) {
		t.Fatalf("Acquire of the normalized form = %v, want ErrLocked", err)
	}
	if err := s.Put(ctx, "ALICE.SMITH+TAG@EXAMPLE.COM", tok, status("alice", "alice.smith+tag@example.com", imapcopyv1.SyncState_SYNC_STATE_QUEUED)); err != nil {
		t.Fatalf("Put with an upper-case form: %v", err)
	}

	odd := []string{
		"a.b@c.d", "a_b@c.d", "a-b@c.d", // must not collide once encoded
		"o'brien@example.org",
		"jöhn.doe@exämple.de",
		"用户@例子.广告",
		`"quoted local"@example.com`,
		"user@[127.0.0.1]",
		"a/b=c*d>e@x.y",
		"with space@x.y",
		"dots...@x.y",
		strings.Repeat("long", 60) + "@example.com",
	}
	for i, src := range odd {
		tok := acquire(t, s, src, time.Hour)
		if err := s.Put(ctx, src, tok, status(fmt.Sprint("task-", i), src, imapcopyv1.SyncState_SYNC_STATE_RUNNING)); err != nil {
			t.Fatalf("Put(%q): %v", src, err)
		}
		if err := s.RequestCancel(ctx, src, fmt.Sprint("task-", i)); err != nil {
			t.Fatalf("RequestCancel(%q): %v", src, err)
		}
	}
	for i, src := range odd {
		got, err := s.Get(ctx, src)
		if err != nil {
			t.Fatalf("Get(%q): %v", src, err)
		}
		if want := fmt.Sprint("task-", i); got.GetTaskId() != want || got.GetSourceEmail() != src {
			t.Errorf("Get(%q) = task %q source %q, want %q %q", src, got.GetTaskId(), got.GetSourceEmail(), want, src)
		}
		if ok, err := s.CancelRequested(ctx, src, fmt.Sprint("task-", i)); err != nil || !ok {
			t.Errorf("CancelRequested(%q) = %v, %v; want true", src, ok, err)
		}
		ch := startWatch(ctx, s, src)
		if r, ok := next(t, ch); !ok || r.err != nil || r.st.GetSourceEmail() != src {
			t.Errorf("Watch(%q) first value = %v, %v", src, r.st, r.err)
		}
	}
	if got, err := s.Get(ctx, "alice.smith+tag@example.com"); err != nil || got.GetTaskId() != "alice" {
		t.Errorf("Get of the normalized form = %v, %v; want task alice", got, err)
	}
}

func testEmptyAddress(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	if _, err := s.Acquire(ctx, "  ", time.Hour); err == nil || errors.Is(err, syncstatus.ErrLocked) {
		t.Errorf("Acquire of a blank address = %v, want an input error", err)
	}
	if _, err := s.Get(ctx, ""); err == nil || errors.Is(err, syncstatus.ErrNotFound) {
		t.Errorf("Get of an empty address = %v, want an input error", err)
	}
}

// listAll pages through q and returns the source addresses in the order listed.
func listAll(t *testing.T, s syncstatus.Store, q syncstatus.ListQuery) []string {
	t.Helper()
	var out []string
	for range 100 {
		page, err := s.List(ctxFor(t), q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		for _, st := range page.Statuses {
			out = append(out, st.GetSourceEmail())
		}
		if page.NextPageToken == "" {
			return out
		}
		q.PageToken = page.NextPageToken
	}
	t.Fatal("List: more than 100 pages")
	return nil
}

func testList(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	states := []imapcopyv1.SyncState{
		imapcopyv1.SyncState_SYNC_STATE_QUEUED,
		imapcopyv1.SyncState_SYNC_STATE_RUNNING,
		imapcopyv1.SyncState_SYNC_STATE_COMPLETED,
	}
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := func(i int) string { return fmt.Sprintf("list%02d@example.com", i) }
	// want lists the sources i of 11 down to 0 (newest first) for which keep is true.
	want := func(keep func(i int) bool) []string {
		var out []string
		for i := 11; i >= 0; i-- {
			if keep(i) {
				out = append(out, src(i))
			}
		}
		return out
	}
	tokens := map[int]string{}
	for i := range 12 {
		st := status(fmt.Sprintf("t%d", i), src(i), states[i%3])
		st.DestinationEmail = fmt.Sprintf("user%d@%s.example", i, []string{"a", "B"}[i%2])
		st.Caller = []string{"x", "y"}[i/6]
		st.CreatedAt = timestamppb.New(base.Add(time.Duration(i) * time.Minute))
		tokens[i] = acquire(t, s, src(i), time.Hour)
		if err := s.Put(ctx, src(i), tokens[i], st); err != nil {
			t.Fatal(err)
		}
	}
	check := func(name string, q syncstatus.ListQuery, want []string) {
		t.Helper()
		if got := listAll(t, s, q); !slices.Equal(got, want) {
			t.Errorf("%s: listed %q, want %q", name, got, want)
		}
	}
	all := func(int) bool { return true }
	check("every sync, pages of 5", syncstatus.ListQuery{PageSize: 5}, want(all))
	check("every sync, one page", syncstatus.ListQuery{}, want(all))
	check("completed", syncstatus.ListQuery{States: states[2:], PageSize: 3},
		want(func(i int) bool { return i%3 == 2 }))
	check("queued or running", syncstatus.ListQuery{States: states[:2], PageSize: 3},
		want(func(i int) bool { return i%3 != 2 }))
	check("domain b.example", syncstatus.ListQuery{DestinationDomain: "b.EXAMPLE"},
		want(func(i int) bool { return i%2 == 1 }))
	check("caller x", syncstatus.ListQuery{OnlyCaller: true, Caller: "x", PageSize: 2},
		want(func(i int) bool { return i < 6 }))
	check("created in [3m, 7m)", syncstatus.ListQuery{CreatedAfter: base.Add(3 * time.Minute), CreatedBefore: base.Add(7 * time.Minute)},
		want(func(i int) bool { return i >= 3 && i < 7 }))

	// Totals count every state on every page, whatever States selects.
	page, err := s.List(ctx, syncstatus.ListQuery{States: states[:1], PageSize: 1, DestinationDomain: "a.example"})
	if err != nil {
		t.Fatal(err)
	}
	wantTotals := map[imapcopyv1.SyncState]int{states[0]: 2, states[1]: 2, states[2]: 2}
	if !maps.Equal(page.Totals, wantTotals) {
		t.Errorf("totals of domain a.example = %v, want %v", page.Totals, wantTotals)
	}

	// A page token is a position: a sync started after the first page does not shift
	// the second one.
	first, err := s.List(ctx, syncstatus.ListQuery{PageSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	late := status("t-late", "late@example.com", states[0])
	late.CreatedAt = timestamppb.New(base.Add(time.Hour))
	if err := s.Put(ctx, "late@example.com", acquire(t, s, "late@example.com", time.Hour), late); err != nil {
		t.Fatal(err)
	}
	second, err := s.List(ctx, syncstatus.ListQuery{PageSize: 5, PageToken: first.NextPageToken})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range second.Statuses {
		got = append(got, st.GetSourceEmail())
	}
	if w := want(all)[5:10]; !slices.Equal(got, w) {
		t.Errorf("second page after a new sync: %q, want %q", got, w)
	}

	// A state change moves the sync in the listing.
	if _, err := s.Update(ctx, src(0), tokens[0], func(st *imapcopyv1.SyncStatus) error {
		st.State = imapcopyv1.SyncState_SYNC_STATE_FAILED
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check("failed", syncstatus.ListQuery{States: []imapcopyv1.SyncState{imapcopyv1.SyncState_SYNC_STATE_FAILED}}, []string{src(0)})

	for _, tok := range []string{"x", "!!!", "MTIz"} {
		if _, err := s.List(ctx, syncstatus.ListQuery{PageToken: tok}); !errors.Is(err, syncstatus.ErrBadPageToken) {
			t.Errorf("List with page token %q: %v, want ErrBadPageToken", tok, err)
		}
	}
	if _, err := s.List(ctx, syncstatus.ListQuery{PageSize: syncstatus.MaxPageSize + 1}); err == nil {
		t.Errorf("List with page size %d: no error", syncstatus.MaxPageSize+1)
	}
}

func testTakeToken(t *testing.T, s syncstatus.Store) {
	ctx := ctxFor(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	take := func(key string, at time.Time) time.Duration {
		t.Helper()
		wait, err := s.TakeToken(ctx, key, at, time.Minute, 2)
		if err != nil {
			t.Fatalf("TakeToken(%q): %v", key, err)
		}
		return wait
	}
	const key = "guess:alice@imap.example.com"
	for i := range 2 {
		if wait := take(key, now); wait != 0 {
			t.Fatalf("request %d of a burst of 2: wait %v, want none", i+1, wait)
		}
	}
	if wait := take(key, now); wait != time.Minute {
		t.Errorf("third request at once: wait %v, want 1m", wait)
	}
	if wait := take(key, now.Add(20*time.Second)); wait != 40*time.Second {
		t.Errorf("20s later: wait %v, want 40s (a refused request takes nothing)", wait)
	}
	if wait := take("guess:bob@imap.example.com", now); wait != 0 {
		t.Errorf("another key: wait %v, want none", wait)
	}
	if wait := take(key, now.Add(time.Minute)); wait != 0 {
		t.Errorf("a minute later: wait %v, want none", wait)
	}
	if wait := take(key, now.Add(time.Minute)); wait != time.Minute {
		t.Errorf("a minute later, twice: wait %v, want 1m", wait)
	}
}
