package syncworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// class is what kind of end a task came to, as far as the worker is concerned.
type class int

const (
	classTemporary  class = iota // worth retrying later as is
	classPermanent               // a person must change something first
	classInvalid                 // the message is not a usable task: no status can be written
	classSuperseded              // another task holds this source's lock or status
	classStale                   // a later delivery of this task owns it
	classEnded                   // this task already ended; only its ack was lost
	classLost                    // the token no longer holds the lock
	classCancelled               // the customer asked to cancel
	classShutdown                // the copier is stopping
)

// taskError is a failure the worker classified itself. reason is for people (the
// status, the Term reason): it never holds a secret.
type taskError struct {
	class  class
	reason string
	err    error
}

func (e *taskError) Error() string {
	if e.err == nil {
		return e.reason
	}
	return e.reason + ": " + e.err.Error()
}

func (e *taskError) Unwrap() error { return e.err }

var (
	errSuperseded = &taskError{class: classSuperseded, reason: "superseded: another sync task holds this source's lock"}
	errStale      = &taskError{class: classStale, reason: "a later delivery of this task is running"}
	errEnded      = &taskError{class: classEnded, reason: "the task has already ended"}
	errLost       = &taskError{class: classLost, reason: "the sync lock is no longer held by this task"}
	// errUnrecorded: no status names the task. The api writes it before publishing, so
	// such a task was not queued by the api (or its record is gone): it is dropped
	// like a superseded one, without a status write and without opening its secrets.
	errUnrecorded      = &taskError{class: classSuperseded, reason: "the api has no record of this task (no status names it)"}
	errCancelRequested = &taskError{class: classCancelled, reason: "cancelled on request"}
)

func temporary(reason string, err error) error {
	return &taskError{class: classTemporary, reason: reason, err: err}
}

func permanent(reason string, err error) error {
	return &taskError{class: classPermanent, reason: reason, err: err}
}

// invalidf is a task that cannot be run. withStatus: the task names its source and
// lock token, so its status can say FAILED; otherwise nothing can be written.
func invalidf(withStatus bool, format string, args ...any) error {
	c := classInvalid
	if withStatus {
		c = classPermanent
	}
	return &taskError{class: c, reason: "invalid task: " + fmt.Sprintf(format, args...)}
}

// classify is the single place that sorts a task's end into a class: the worker's
// own verdicts as they are; the engine's permanent kinds (login refused, over quota,
// unusable server) as permanent; everything else, unknown included, as temporary,
// bounded by MaxDeliver.
func classify(err error) class {
	var te *taskError
	if errors.As(err, &te) {
		return te.class
	}
	if mailcopy.IsPermanent(err) {
		return classPermanent
	}
	return classTemporary
}

// reasonOf is the sentence that explains err to a person.
func reasonOf(err error) string {
	var te *taskError
	if errors.As(err, &te) && te.class != classTemporary && te.class != classPermanent {
		return te.reason
	}
	msg := err.Error()
	switch mailcopy.KindOf(err) {
	case mailcopy.KindLogin:
		msg += " (check the login and the password of that account, then start the sync again)"
	case mailcopy.KindOverQuota:
		msg += " (free space or raise the quota, then start the sync again: it copies only what is missing)"
	case mailcopy.KindConnect:
		msg += " (check the server address, the port and the security settings of that account)"
	}
	return msg
}

// termKind names the kind of a failure for a Term reason, which NATS shows in its
// advisories: a kind, never an address or a server's words.
func termKind(err error) string {
	var te *taskError
	if errors.As(err, &te) {
		if te.class == classPermanent {
			return "invalid or undecryptable task"
		}
		return "copier"
	}
	return mailcopy.KindOf(err).String()
}

// queueOp is what happens to the queue message.
type queueOp int

const (
	opNone queueOp = iota // leave it: another delivery owns it
	opAck
	opNak  // redeliver after delay
	opTerm // never redeliver
)

func (o queueOp) String() string {
	return [...]string{opNone: "none", opAck: "ack", opNak: "nak", opTerm: "term"}[o]
}

// Outcomes, as logged and counted (label "outcome").
const (
	outcomeCompleted           = "completed"
	outcomeCompletedWithErrors = "completed_with_errors"
	outcomeFailed              = "failed"
	outcomeCancelled           = "cancelled"
	outcomeRetry               = "retry"
	outcomeHandedBack          = "handed_back"
	outcomeSuperseded          = "superseded"
	outcomeStale               = "stale"
	outcomeDuplicate           = "duplicate"
	outcomeInvalid             = "invalid"
)

// action is what the worker does about a task's end: one status write, one lock
// move and one queue operation.
type action struct {
	outcome string

	// state 0: no status write. Otherwise the status gets state, message and the
	// reasons, and the engine's result when there is one.
	state                      imapcopyv1.SyncState
	message                    string
	failureReason, retryReason string

	release    bool          // release the lock
	extendLock time.Duration // >0: keep the lock that long (the task waits in the queue)

	op    queueOp
	delay time.Duration // for opNak
	term  string        // for opTerm

	// throttled: the task waits delay in the queue because a server throttles the
	// copy; the status says until when (throttled_until and the message).
	throttled bool
}

// verdict is the input of decide.
type verdict struct {
	err        error
	result     *mailcopy.Result
	attempt    uint64 // delivery count, from 1
	maxDeliver uint64 // 0: unbounded
}

// decide turns a task's end into its one action. It is the only place that does.
func decide(v verdict, cfg Config) action {
	if v.err == nil {
		if v.result != nil && v.result.Complete() {
			return action{
				outcome: outcomeCompleted, state: imapcopyv1.SyncState_SYNC_STATE_COMPLETED,
				message: completedMessage(v.result), release: true, op: opAck,
			}
		}
		return action{
			outcome: outcomeCompletedWithErrors, state: imapcopyv1.SyncState_SYNC_STATE_COMPLETED_WITH_ERRORS,
			message: completedMessage(v.result), release: true, op: opAck,
		}
	}
	last := v.maxDeliver > 0 && v.attempt >= v.maxDeliver
	switch classify(v.err) {
	case classPermanent:
		reason := reasonOf(v.err)
		return action{
			outcome: outcomeFailed, state: imapcopyv1.SyncState_SYNC_STATE_FAILED,
			message: "the sync failed: " + reason, failureReason: reason,
			release: true, op: opTerm, term: "failed: " + termKind(v.err),
		}
	case classInvalid:
		return action{outcome: outcomeInvalid, op: opTerm, term: "invalid task"}
	case classSuperseded, classLost:
		// Another task holds the lock or the status: this one is obsolete. Release
		// frees the lock only if this token holds it (it was free and reclaimed).
		return action{outcome: outcomeSuperseded, release: true, op: opTerm, term: "superseded by another sync task"}
	case classStale:
		// The later delivery owns the message. The lock, if this delivery still holds
		// it (its lease lapsed), goes back to the task: the later delivery waits for it.
		return action{outcome: outcomeStale, extendLock: cfg.QueuedLockTTL, op: opNone}
	case classEnded:
		return action{outcome: outcomeDuplicate, release: true, op: opAck}
	case classCancelled:
		return action{
			outcome: outcomeCancelled, state: imapcopyv1.SyncState_SYNC_STATE_CANCELLED,
			message: "cancelled on request", release: true, op: opAck,
		}
	case classShutdown:
		if last {
			reason := fmt.Sprintf("the copy was interrupted %d times by copier restarts; start the sync again: it resumes where it stopped", v.attempt)
			return action{
				outcome: outcomeFailed, state: imapcopyv1.SyncState_SYNC_STATE_FAILED,
				message: "the sync failed: " + reason, failureReason: reason,
				release: true, op: opTerm, term: "failed: interrupted on its last delivery",
			}
		}
		return action{
			outcome: outcomeHandedBack, state: imapcopyv1.SyncState_SYNC_STATE_QUEUED,
			message:    "waiting for a copier: the copy resumes where it stopped",
			extendLock: handBackDelay + cfg.QueuedLockTTL, op: opNak, delay: handBackDelay,
		}
	}
	// Temporary.
	reason := reasonOf(v.err)
	if last {
		failure := fmt.Sprintf("gave up after %d attempts: %s", v.attempt, reason)
		return action{
			outcome: outcomeFailed, state: imapcopyv1.SyncState_SYNC_STATE_FAILED,
			message: "the sync failed: " + failure, failureReason: failure,
			release: true, op: opTerm, term: fmt.Sprintf("failed: gave up after %d attempts (%s)", v.attempt, termKind(v.err)),
		}
	}
	delay := backoff(cfg, v.attempt)
	msg := fmt.Sprintf("attempt %d was interrupted by a temporary failure; retrying in %v", v.attempt, delay)
	wait, throttled := mailcopy.ThrottledFor(v.err)
	if throttled {
		// The server kept the copy waiting past the engine's patience: the task waits
		// in the queue at least as long as the server asked, and says until when
		// (finalStatus adds the time).
		delay = max(delay, wait)
		msg = fmt.Sprintf("attempt %d stopped", v.attempt)
	}
	return action{
		outcome: outcomeRetry, state: imapcopyv1.SyncState_SYNC_STATE_QUEUED,
		message: msg, retryReason: reason, throttled: throttled,
		extendLock: delay + cfg.QueuedLockTTL, op: opNak, delay: delay,
	}
}

// handBackDelay is how long a task handed back at shutdown waits in the queue
// before its redelivery: the next copier may start at once otherwise. The
// copier just cut its destination connections, and the server may still
// commit the last APPEND it received whole; the next copier must not read
// the destination before that, or it would append the batch again. It is
// longer than the engine's own wait after a lost connection (mailcopy's
// Config.CommitSettle, 2 s by default).
const handBackDelay = 5 * time.Second

// backoff is the delay before retrying after attempt n (from 1): RetryBackoff
// doubled each attempt, at most MaxRetryDelay.
func backoff(cfg Config, n uint64) time.Duration {
	d := cfg.RetryBackoff
	for i := uint64(1); i < n && d < cfg.MaxRetryDelay; i++ {
		d *= 2
	}
	return min(d, cfg.MaxRetryDelay)
}

func completedMessage(r *mailcopy.Result) string {
	if r == nil {
		return "completed"
	}
	t := r.Totals
	msg := fmt.Sprintf("completed: %d messages copied, %d already there", t.Copied, t.Present)
	if r.DryRun {
		msg = fmt.Sprintf("dry run completed: %d messages would be copied, %d already there", t.Copied, t.Present)
	}
	if t.Skipped > 0 {
		msg += fmt.Sprintf(", %d skipped", t.Skipped)
	}
	if t.Failed > 0 {
		msg += fmt.Sprintf(", %d refused by the destination (listed in failed_messages and in the report)", t.Failed)
	}
	if n := len(r.FailedFolders()); n > 0 {
		msg += fmt.Sprintf(", %d folders could not be copied", n)
	}
	return msg
}

// finalWriteAttempts bounds the retries of the status write that ends a task.
const finalWriteAttempts = 4

// handBackTimeout bounds the store and queue calls of apply.
const handBackTimeout = 15 * time.Second

// apply carries out a: the status write first (fenced by the token), then the
// lock, then the queue message, so that a crash in between redelivers the task
// rather than losing it. It returns the action actually taken: a status write
// refused because another copier owns the task turns into that case's action, and
// one the store keeps failing turns into a retry.
func (t *task) apply(parent context.Context, a action, res *mailcopy.Result) action {
	// The task's context may be cancelled (shutdown, cancel request): finish anyway.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), handBackTimeout)
	defer cancel()
	w := t.w
	if a.state != 0 && t.locked {
		err := t.writeFinal(ctx, a, res)
		if err != nil {
			switch c := classify(err); c {
			case classTemporary:
				t.log.Warn("final_status_write_failed", "error", err.Error())
				// The next delivery finds everything copied and writes the end.
				a = action{outcome: outcomeRetry, extendLock: w.cfg.QueuedLockTTL, op: opNak, delay: backoff(w.cfg, 1)}
			default:
				a = decide(verdict{err: err, attempt: t.attempt}, w.cfg)
			}
		}
	}
	if t.locked && (a.release || a.extendLock > 0) {
		source := t.source()
		var err error
		if a.release {
			err = w.store.Release(ctx, source, t.holder)
		} else {
			// Queued again: the lock goes back to the task, for its next delivery.
			err = w.store.HandBack(ctx, source, t.holder, t.pb.GetLockToken(), a.extendLock)
		}
		if err != nil && !errors.Is(err, syncstatus.ErrNotHolder) {
			// The lock expires by its TTL anyway.
			t.log.Warn("lock_update_failed", "release", a.release, "error", err.Error())
		}
	}
	var err error
	switch {
	case a.op == opAck:
		err = t.d.Ack(ctx)
	case a.op == opNak && a.delay <= 0:
		err = t.d.Nak()
	case a.op == opNak:
		err = t.d.NakWithDelay(a.delay)
	case a.op == opTerm:
		err = t.d.Term(a.term)
	}
	if err != nil {
		// The message comes back after its AckWait; the next delivery sees the status.
		t.log.Warn("queue_ack_failed", "op", a.op.String(), "error", err.Error())
	}
	return a
}

// writeFinal writes the status of a, retrying the store's transient failures a few
// times: a task whose end cannot be recorded must run again.
func (t *task) writeFinal(ctx context.Context, a action, res *mailcopy.Result) error {
	now := t.w.now()
	var err error
	for i := range finalWriteAttempts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Duration(i) * time.Second):
			}
		}
		_, err = t.update(ctx, func(st *imapcopyv1.SyncStatus) { finalStatus(st, a, res, uint32(t.attempt), now) })
		if classify(err) != classTemporary || err == nil {
			return err
		}
	}
	return err
}

// finalStatus writes the end of a task into st.
func finalStatus(st *imapcopyv1.SyncStatus, a action, res *mailcopy.Result, attempt uint32, now time.Time) {
	st.State = a.state
	st.Message = a.message
	st.FailureReason = a.failureReason
	st.RetryReason = a.retryReason
	st.ThrottledUntil = nil
	if a.throttled {
		until := now.Add(a.delay)
		st.Message += throttledNote + until.UTC().Format(time.RFC3339)
		st.ThrottledUntil = timestamppb.New(until)
	}
	if attempt > st.Attempt {
		st.Attempt = attempt
	}
	if syncstatus.Terminal(a.state) {
		st.FinishedAt = timestamppb.New(now)
	}
	if res != nil {
		applyResult(st, res)
	}
	if res != nil && res.State != nil {
		// For the next attempt or the next sync of this source (the engine records no
		// state in a dry run).
		if b, err := json.Marshal(res.State); err == nil {
			st.CopyState = b
		}
	}
}
