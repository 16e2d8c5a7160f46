package syncworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/taskqueue"
	"imapcopy.dev/pkg/taskseal"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// task is one delivery of a sync task being worked on.
type task struct {
	w       *Worker
	d       *taskqueue.Task
	pb      *imapcopyv1.SyncTask
	attempt uint64 // the message's delivery count, 1 on the first delivery
	log     *slog.Logger
	// holder is this delivery's lock token (syncstatus.DeliveryToken): the lock names
	// the delivery that holds it, so that two deliveries of the task never both hold
	// it and an older delivery's status writes are refused.
	holder string
	locked bool // the lock was reclaimed with holder: status writes may go

	// The task's lease: when the last keep-alive and the last lock refresh that
	// succeeded were sent (see fence).
	ackAt, lockAt atomic.Pointer[time.Time]
	lapsed        atomic.Bool // the lease ran out once: see renew and fence

	latest   atomic.Pointer[mailcopy.Progress] // the engine's last snapshot
	reported mailcopy.Counts                   // totals already counted in the metrics
	mu       sync.Mutex                        // guards reported
}

// handle runs one delivery from start to its action. It never panics.
func (w *Worker) handle(ctx context.Context, d *taskqueue.Task) {
	start := w.now()
	w.metrics.taskStarted()
	t := &task{w: w, d: d, pb: d.Task, attempt: uint64(max(d.Attempt, 1))}
	t.holder = syncstatus.DeliveryToken(t.pb.GetLockToken(), t.attempt)
	t.ackAt.Store(&start) // the delivery's AckWait runs from about now
	t.log = w.log.With("task_id", t.pb.GetTaskId(), "source", t.source(), "attempt", t.attempt)
	res, err := t.runSafely(ctx)
	a := decide(verdict{err: err, result: res, attempt: t.attempt, maxDeliver: uint64(max(d.MaxDeliver, 0))}, w.cfg)
	a = t.apply(ctx, a, res)
	t.countProgress(res)
	w.metrics.taskEnded(a.outcome, w.now().Sub(start))
	if err != nil {
		w.metrics.engineError(err)
	}
	attrs := []any{"outcome", a.outcome, "duration", w.now().Sub(start).Round(time.Millisecond).String()}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	if res != nil {
		attrs = append(attrs, "copied", res.Totals.Copied, "present", res.Totals.Present,
			"failed", res.Totals.Failed, "bytes", res.Totals.Bytes)
	}
	t.log.Info("task_ended", attrs...)
}

func (t *task) runSafely(ctx context.Context) (res *mailcopy.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			t.log.Error("task_panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = &taskError{class: classTemporary, reason: "internal error in the copier", err: fmt.Errorf("panic: %v", r)}
		}
	}()
	return t.run(ctx)
}

// run takes the task as far as it goes and returns the engine's result (nil when
// it did not run) and why it stopped (nil: the copy ran to its end).
func (t *task) run(parent context.Context) (*mailcopy.Result, error) {
	// The task's own context: its heartbeat cancels it with the reason to stop (a
	// cancel request, a lost lock); Run cancels it with errShutdown.
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	res, err := t.steps(ctx, cancel)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			var te *taskError
			if errors.As(cause, &te) {
				err = cause // why we stopped, rather than how the engine noticed
			}
		}
	}
	return res, err
}

func (t *task) steps(ctx context.Context, cancel context.CancelCauseFunc) (*mailcopy.Result, error) {
	w := t.w
	if t.pb.GetTaskId() == "" || t.source() == "" || t.pb.GetLockToken() == "" {
		return nil, invalidf(false, "the task lacks its id, source address or lock token")
	}
	t.log.Info("task_received", "max_deliver", t.d.MaxDeliver)

	// The lock: the api's, reclaimed for this delivery (see the package doc).
	if err := t.reclaim(ctx); err != nil {
		return nil, err
	}

	// The api records a sync's status before it publishes the task: a task whose
	// status is missing or names another task was never queued by the api (or its
	// record is gone), and none of its credentials are used.
	st, err := w.store.Get(ctx, t.source())
	switch {
	case errors.Is(err, syncstatus.ErrNotFound):
		return nil, errUnrecorded
	case err != nil:
		return nil, temporary("the status store is unavailable", err)
	}
	if err := t.owns(st); err != nil {
		return nil, err
	}

	if err := checkEndpoints(t.pb, w.cfg.AllowPlaintext); err != nil {
		return nil, err
	}
	if err := t.checkCancel(ctx); err != nil {
		return nil, err
	}
	if err := t.checkUnclaimed(st); err != nil {
		return nil, err
	}
	secrets, err := w.opener.Open(t.pb)
	switch {
	case errors.Is(err, taskseal.ErrUnknownKey):
		// Keys rotate: another copier may already have the new key.
		return nil, temporary("this copier does not have the key that sealed the task (key id "+t.pb.GetSealed().GetKeyId()+")", err)
	case err != nil:
		return nil, permanent("the task's credentials cannot be decrypted: the task was altered or the key changed; start the sync again", err)
	}
	cfg, err := copyConfig(t.pb, secrets, w.cfg)
	if err != nil {
		return nil, err
	}
	cfg.Previous = t.previousState(st)

	if _, err := t.update(ctx, t.running); err != nil {
		return nil, err
	}
	t.log.Info("task_running")

	cfg.Logger = t.log
	cfg.Dial.Logger = t.log
	cfg.Fence = t.fence
	cfg.ProgressInterval = w.cfg.ProgressInterval
	cfg.Progress = func(p mailcopy.Progress) {
		t.latest.Store(&p)
		t.countProgress(nil)
	}
	stop := t.heartbeat(ctx, cancel)
	defer stop()
	return t.runEngine(ctx, cfg)
}

// reclaim takes the task's lock for this delivery. While an earlier delivery of the
// task holds it (a copier that was slow to renew the message's ack deadline, and
// still copies), it waits, keeping this delivery's message alive, until that lock is
// released or expires: the two never copy at once. The earlier delivery may have
// sent an APPEND whole that the server still commits, so the lock is then held for
// handBackDelay before the copy reads anything. Another task's lock supersedes this
// one.
func (t *task) reclaim(ctx context.Context) error {
	w := t.w
	poll := max(min(w.cfg.LockRefresh, w.cfg.KeepAlive), 100*time.Millisecond)
	var waited bool
	var free time.Time // when the lock became this delivery's after a wait
	for {
		at := w.now()
		err := w.store.Reclaim(ctx, t.source(), t.pb.GetLockToken(), t.holder, w.cfg.LockTTL)
		switch {
		case err == nil && (!waited || !free.IsZero() && at.Sub(free) >= handBackDelay):
			t.locked = true
			t.lockAt.Store(&at)
			return nil
		case err == nil && free.IsZero():
			free = at
			t.log.Info("lock_free_again")
		case err == nil:
		case errors.Is(err, syncstatus.ErrLocked):
			return errSuperseded
		case !errors.Is(err, syncstatus.ErrHeld):
			return temporary("the status store is unavailable", err)
		case !waited:
			waited = true
			t.log.Info("lock_held_by_another_delivery")
		}
		if err := sleep(ctx, poll); err != nil {
			return err
		}
		sent := w.now()
		if err := t.d.InProgress(); err != nil {
			t.log.Warn("keepalive_failed", "error", err.Error())
		} else {
			t.renew(&t.ackAt, sent, w.cfg.AckWait)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// previousState is what the last copy of this source proved (SyncStatus.copy_state:
// an earlier sync's, or this task's earlier attempt's), for the engine to skip the
// folders unchanged since. A state it cannot read is no state: the full comparison.
func (t *task) previousState(st *imapcopyv1.SyncStatus) *mailcopy.State {
	if len(st.GetCopyState()) == 0 {
		return nil
	}
	var s mailcopy.State
	if err := json.Unmarshal(st.GetCopyState(), &s); err != nil {
		t.log.Warn("copy_state_unreadable", "error", err.Error())
		return nil
	}
	return &s
}

// checkUnclaimed fails a task that waited for its first copier longer than
// Config.Unclaimed: the customer has long stopped waiting for it, and its passwords
// may have changed. A task that was already started (retries, hand-backs) goes on
// whatever its age: the stream's MaxAge is the backstop for those.
func (t *task) checkUnclaimed(st *imapcopyv1.SyncStatus) error {
	if t.d.Attempt > 1 || st.GetStartedAt() != nil {
		return nil
	}
	created := t.pb.GetCreatedAt()
	if created == nil {
		return nil
	}
	if waited := time.Since(created.AsTime()); waited > t.w.cfg.Unclaimed {
		return permanent(fmt.Sprintf("the sync waited %v in the queue without a copier to take it (the limit is %v); start it again",
			waited.Round(time.Minute), t.w.cfg.Unclaimed), nil)
	}
	return nil
}

// engineStopGrace is how long a cancelled copy may take to return. The engine stops
// at once (it closes its connections); one that does not is abandoned, so that a
// stuck copy cannot hold its task, its slot or the shutdown forever.
const engineStopGrace = 15 * time.Second

// runEngine runs the copy and returns its outcome, or the reason of the task's
// cancellation when the engine does not return within engineStopGrace of it.
func (t *task) runEngine(ctx context.Context, cfg mailcopy.Config) (*mailcopy.Result, error) {
	type outcome struct {
		res *mailcopy.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				t.log.Error("engine_panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				done <- outcome{err: &taskError{class: classTemporary, reason: "internal error in the copy engine", err: fmt.Errorf("panic: %v", r)}}
			}
		}()
		res, err := t.w.copy(ctx, cfg)
		done <- outcome{res, err}
	}()
	select {
	case o := <-done:
		return o.res, o.err
	case <-ctx.Done():
	}
	grace := time.NewTimer(engineStopGrace)
	defer grace.Stop()
	select {
	case o := <-done:
		return o.res, o.err
	case <-grace.C:
		t.log.Error("engine_stuck", "grace", engineStopGrace.String(), "cause", context.Cause(ctx).Error())
		return nil, context.Cause(ctx)
	}
}

// source is the lock and status key of the task.
func (t *task) source() string { return syncstatus.Normalize(t.pb.GetSourceEmail()) }

// owns checks that st may be written by this delivery: it names this task, no later
// attempt, and has not ended.
func (t *task) owns(st *imapcopyv1.SyncStatus) error {
	switch {
	case st.GetTaskId() != t.pb.GetTaskId():
		return errSuperseded
	case syncstatus.Terminal(st.GetState()):
		return errEnded
	case uint64(st.GetAttempt()) > t.attempt:
		return errStale
	}
	return nil
}

// checkCancel reads the cancel flag: errCancelRequested when set.
func (t *task) checkCancel(ctx context.Context) error {
	cancelled, err := t.w.store.CancelRequested(ctx, t.source(), t.pb.GetTaskId())
	if err != nil {
		return temporary("the status store is unavailable", err)
	}
	if cancelled {
		return errCancelRequested
	}
	return nil
}

// update applies fn to the status, after checking that this delivery still owns it.
// A status that vanished (expired) is written afresh from the task. The errors are
// the worker's: errLost when the token no longer holds the lock, errSuperseded,
// errStale or errEnded when the status belongs to someone else, temporary ones when
// the store fails.
//
// A lock whose key is gone (deleted, or the store restarted without its data) is
// taken back while this delivery's lease holds (see retake), and the write is made
// again: the copy goes on, and its status (written afresh when it vanished too)
// catches up.
func (t *task) update(ctx context.Context, fn func(*imapcopyv1.SyncStatus)) (*imapcopyv1.SyncStatus, error) {
	st, err := t.write(ctx, fn)
	if errors.Is(err, syncstatus.ErrNotHolder) && t.retake(ctx) {
		st, err = t.write(ctx, fn)
	}
	switch {
	case err == nil:
		return st, nil
	case errors.Is(err, syncstatus.ErrNotHolder):
		return nil, t.whoHolds(ctx)
	}
	var te *taskError
	if errors.As(err, &te) {
		return nil, err
	}
	return nil, temporary("the status store is unavailable", err)
}

// write is one fenced write of the status for update.
func (t *task) write(ctx context.Context, fn func(*imapcopyv1.SyncStatus)) (*imapcopyv1.SyncStatus, error) {
	store, source, token := t.w.store, t.source(), t.holder
	st, err := store.Update(ctx, source, token, func(st *imapcopyv1.SyncStatus) error {
		if err := t.owns(st); err != nil {
			return err
		}
		fn(st)
		return nil
	})
	if errors.Is(err, syncstatus.ErrNotFound) {
		st = t.freshStatus()
		fn(st)
		err = store.Put(ctx, source, token, st)
	}
	return st, err
}

// retake takes this delivery's lock back when nobody holds it (its key vanished:
// an operator's DEL, a failover to a replica that lacked it, a store restarted
// empty) and this delivery's lease still holds (fence): no other delivery can own
// the task then, and the api refuses a new start of a source whose status is
// RUNNING and fresh (syncapi checkRunning), so the copy goes on instead of being
// dropped with its status left RUNNING. A lock that another task or delivery holds
// is not taken (whoHolds says which).
func (t *task) retake(ctx context.Context) bool {
	if !t.locked || t.fence() != nil {
		return false
	}
	sent := t.w.now()
	err := t.callStore(ctx, func(ctx context.Context) error {
		return t.w.store.Reclaim(ctx, t.source(), t.pb.GetLockToken(), t.holder, t.w.cfg.LockTTL)
	})
	if err != nil {
		return false
	}
	t.renew(&t.lockAt, sent, t.w.cfg.LockTTL)
	t.log.Warn("lock_retaken")
	return true
}

// freshStatus is the status written again from the task when it vanished (it
// expired, or the store lost it): the sync runs this attempt. It holds what the
// api recorded at the start and a reader relies on: the caller (only that caller
// and the admins may read or cancel the sync), the destination, the dry run flag
// and the creation time. The page's cancel secret needs nothing: it is derived
// from the task id. Lost with the old status: the copy state of the last sync (the
// engine then makes its full comparison) and a cancel request not yet seen.
func (t *task) freshStatus() *imapcopyv1.SyncStatus {
	st := &imapcopyv1.SyncStatus{
		TaskId:           t.pb.GetTaskId(),
		SourceEmail:      t.source(),
		DestinationEmail: t.pb.GetDestination().GetLogin(),
		CreatedAt:        t.pb.GetCreatedAt(),
		DryRun:           t.pb.GetOptions().GetDryRun(),
		Caller:           t.pb.GetCaller(),
	}
	t.running(st)
	return st
}

// running marks the status RUNNING for this attempt.
func (t *task) running(st *imapcopyv1.SyncStatus) {
	st.State = imapcopyv1.SyncState_SYNC_STATE_RUNNING
	st.Message = "copying"
	if t.attempt > 1 {
		st.Message = fmt.Sprintf("copying (attempt %d): resuming where the last attempt stopped", t.attempt)
	}
	st.Attempt = uint32(t.attempt)
	st.RetryReason = ""
	st.FailureReason = ""
	if st.StartedAt == nil {
		st.StartedAt = timestamppb.New(t.w.now())
	}
}

// heartbeat keeps a running task alive and watched until the returned stop is
// called: progress writes, cancel polls and lock refreshes in one goroutine, queue
// keep-alives in another (so that a slow store cannot starve the AckWait). A reason
// to stop the task cancels ctx with it. Keep-alives go on after ctx ends, until
// stop: the message must not come back while the copy winds down.
func (t *task) heartbeat(ctx context.Context, cancel context.CancelCauseFunc) (stop func()) {
	hbCtx, hbCancel := context.WithCancel(ctx)
	kaCtx, kaCancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { t.keepAlive(kaCtx) })
	wg.Go(func() {
		if err := t.watch(hbCtx); err != nil {
			cancel(err)
		}
	})
	var once sync.Once
	return func() { once.Do(func() { hbCancel(); kaCancel(); wg.Wait() }) }
}

// keepAlive sends InProgress every KeepAlive.
func (t *task) keepAlive(ctx context.Context) {
	tick := time.NewTicker(t.w.cfg.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			sent := t.w.now()
			if err := t.d.InProgress(); err != nil {
				t.log.Warn("keepalive_failed", "error", err.Error())
			} else {
				t.renew(&t.ackAt, sent, t.w.cfg.AckWait)
			}
		}
	}
}

// storeCallTimeout bounds one store call of the heartbeat, so that a hung store does
// not hold up the others past their period.
const storeCallTimeout = 10 * time.Second

// watch writes progress, polls the cancel flag and refreshes the lock, each on its
// period, until ctx ends (nil) or the task must stop (the reason).
func (t *task) watch(ctx context.Context) error {
	cfg := t.w.cfg
	tick := time.NewTicker(min(cfg.ProgressInterval, cfg.CancelPoll, cfg.LockRefresh))
	defer tick.Stop()
	var written *mailcopy.Progress
	lastCancel, lastRefresh, lastWrite := t.w.now(), t.w.now(), t.w.now()
	// The stall note: how long the counters have not moved.
	var seen *mailcopy.Progress
	moved, writtenNote := t.w.now(), ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := t.w.now()
		if now.Sub(lastRefresh) >= cfg.LockRefresh {
			if err := t.refreshLock(ctx); err != nil {
				return err
			}
			lastRefresh = now
		}
		if now.Sub(lastCancel) >= cfg.CancelPoll {
			lastCancel = now
			err := t.callStore(ctx, t.checkCancel)
			if errors.Is(err, errCancelRequested) {
				t.log.Info("cancel_requested")
				return err
			}
			if err != nil && ctx.Err() == nil {
				t.log.Warn("cancel_poll_failed", "error", err.Error())
			}
		}
		p := t.latest.Load()
		if p != seen {
			if p == nil || seen == nil || p.Totals != seen.Totals || !p.ThrottledUntil.IsZero() {
				moved = now
			}
			seen = p
		}
		note := stallNote(now.Sub(moved), cfg.StallNote)
		if p != nil && p.ThrottledUntil.After(now) {
			note = ""
		}
		// The status is written at least every LockRefresh, progress or not: its
		// updated_at tells the api that a copier runs the sync (checkRunning).
		if p != nil && p != written || note != writtenNote || now.Sub(lastWrite) >= cfg.LockRefresh {
			err := t.callStore(ctx, func(ctx context.Context) error {
				_, err := t.update(ctx, func(st *imapcopyv1.SyncStatus) {
					if p != nil {
						applyProgress(st, p)
					}
					setStallNote(st, note)
				})
				return err
			})
			var te *taskError
			switch {
			case err == nil:
				written, writtenNote, lastWrite = p, note, now
			case errors.As(err, &te) && te.class != classTemporary:
				return err // lost, superseded, stale: another copier owns the task
			case ctx.Err() == nil:
				t.log.Warn("progress_write_failed", "error", err.Error())
			}
		}
	}
}

func (t *task) callStore(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	defer cancel()
	return fn(ctx)
}

// refreshLock extends the lock. A lock that expired while the store was out of
// reach is reclaimed if nobody took it; one that another token holds stops the task.
func (t *task) refreshLock(ctx context.Context) error {
	cfg := t.w.cfg
	sent := t.w.now()
	err := t.callStore(ctx, func(ctx context.Context) error {
		return t.w.store.Refresh(ctx, t.source(), t.holder, cfg.LockTTL)
	})
	if errors.Is(err, syncstatus.ErrNotHolder) {
		err = t.callStore(ctx, func(ctx context.Context) error {
			return t.w.store.Reclaim(ctx, t.source(), t.pb.GetLockToken(), t.holder, cfg.LockTTL)
		})
		switch {
		case errors.Is(err, syncstatus.ErrHeld):
			t.log.Warn("lock_taken_by_a_later_delivery")
			return errStale
		case errors.Is(err, syncstatus.ErrLocked):
			t.log.Warn("lock_lost")
			return errLost
		}
		if err == nil {
			t.log.Warn("lock_reclaimed")
		}
	}
	if err == nil {
		t.renew(&t.lockAt, sent, cfg.LockTTL)
	} else if ctx.Err() == nil {
		// Transient: the next refresh tries again; the TTL leaves room for a few.
		t.log.Warn("lock_refresh_failed", "error", err.Error())
	}
	return nil
}

// whoHolds says why this delivery no longer holds the lock: errStale when the task
// still holds it (a later delivery, or the task's token after a hand-back: the
// message is not this delivery's to ack or term), errLost when another task holds it
// or nobody does.
func (t *task) whoHolds(ctx context.Context) error {
	var ours bool
	err := t.callStore(ctx, func(ctx context.Context) (err error) {
		ours, err = t.w.store.HeldBy(ctx, t.source(), t.pb.GetLockToken())
		return err
	})
	if err != nil {
		return temporary("the status store is unavailable", err)
	}
	if ours {
		return errStale
	}
	return errLost
}

// errFenced: the task's lease ran out while it copied (see fence).
var errFenced = &taskError{class: classStale,
	reason: "this copier's lease on the task ran out (it was paused or cut off past the queue's ack wait or the lock's lifetime): it stopped appending, the task goes on in another delivery"}

// fence is the engine's proof of ownership, asked before and during every append
// (mailcopy.Config.Fence). The task's lease is the later of its delivery's AckWait
// (from the last keep-alive sent) and the lock's LockTTL (from the last refresh
// sent); each is taken as over at three quarters of its length, so that a keep-alive
// or a refresh may be late or fail once without stopping the copy. A copier paused
// past that (SIGSTOP, a long GC pause, a partition) finds, as soon as it runs again
// and before it sends one more byte of a message, that another delivery may own the
// task: it stops instead of appending what the other delivery appends too. The
// monotonic clock counts the pause.
//
// A lease that ran out stays out (lapsed): a copier thawed after a SIGSTOP sends a
// keep-alive and refreshes the lock as soon as it runs, and both succeed (the lock is
// reclaimed with the task's own token, the queue takes a late keep-alive), yet another
// delivery may own the task since. Without this, the thawed copier's own renewals made
// its lease look fresh again and it appended 86 messages the other delivery had
// appended too (TestFrozenCopierAppendsNothing under load).
func (t *task) fence() error {
	now := t.w.now()
	cfg := t.w.cfg
	if t.lapsed.Load() {
		return errFenced
	}
	if at := t.ackAt.Load(); at != nil && now.Sub(*at) > cfg.AckWait*3/4 {
		t.lapsed.Store(true)
		return errFenced
	}
	if at := t.lockAt.Load(); at != nil && now.Sub(*at) > cfg.LockTTL*3/4 {
		t.lapsed.Store(true)
		return errFenced
	}
	return nil
}

// renew records a renewal of a lease (at: ackAt or lockAt, whose length is limit)
// sent at sent, unless the lease had already run out by then: a lapsed lease is not
// renewed (see fence).
func (t *task) renew(at *atomic.Pointer[time.Time], sent time.Time, limit time.Duration) {
	if prev := at.Load(); prev != nil && sent.Sub(*prev) > limit*3/4 {
		t.lapsed.Store(true)
		return
	}
	at.Store(&sent)
}

// countProgress adds what was copied since the last call to the metrics; res, when
// given, is the final word.
func (t *task) countProgress(res *mailcopy.Result) {
	if t.pb == nil || t.pb.GetOptions().GetDryRun() {
		return
	}
	var now mailcopy.Counts
	switch {
	case res != nil:
		now = res.Totals
	case t.latest.Load() != nil:
		now = t.latest.Load().Totals
	default:
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if d := now.Copied - t.reported.Copied; d > 0 {
		t.w.metrics.copied(d, 0)
		t.reported.Copied = now.Copied
	}
	if d := now.Bytes - t.reported.Bytes; d > 0 {
		t.w.metrics.copied(0, d)
		t.reported.Bytes = now.Bytes
	}
	if d := now.Failed - t.reported.Failed; d > 0 {
		t.w.metrics.failedMessages(d)
		t.reported.Failed = now.Failed
	}
}
