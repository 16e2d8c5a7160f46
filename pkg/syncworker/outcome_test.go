package syncworker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/mailcopy"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

func TestDecide(t *testing.T) {
	cfg := Config{}.withDefaults()
	complete := &mailcopy.Result{Totals: mailcopy.Counts{Total: 10, Copied: 10}}
	partial := &mailcopy.Result{
		Totals:   mailcopy.Counts{Total: 10, Copied: 9, Failed: 1},
		Failures: []mailcopy.MessageIssue{{Folder: "INBOX", UID: 7, Size: 99, Reason: "too big"}},
	}
	login := &mailcopy.Error{Kind: mailcopy.KindLogin, Side: mailcopy.SideSource, Err: errors.New("login refused")}
	quota := &mailcopy.Error{Kind: mailcopy.KindOverQuota, Side: mailcopy.SideDestination, Err: errors.New("over quota")}
	throttled := &mailcopy.Error{Kind: mailcopy.KindTemporary, Side: mailcopy.SideSource, Err: fmt.Errorf("fetch: %w", &imap.Error{Type: imap.StatusResponseTypeNo, Code: "THROTTLED", Text: "Request is throttled. Suggested Backoff Time: 45000 milliseconds"})}
	network := &mailcopy.Error{Kind: mailcopy.KindTemporary, Side: mailcopy.SideSource, Err: &imapconn.Error{Kind: imapconn.KindUnreachable, Op: "dial", Err: errors.New("connection refused")}}
	const (
		running   = imapcopyv1.SyncState(0)
		queued    = imapcopyv1.SyncState_SYNC_STATE_QUEUED
		completed = imapcopyv1.SyncState_SYNC_STATE_COMPLETED
		withErrs  = imapcopyv1.SyncState_SYNC_STATE_COMPLETED_WITH_ERRORS
		failed    = imapcopyv1.SyncState_SYNC_STATE_FAILED
		cancelled = imapcopyv1.SyncState_SYNC_STATE_CANCELLED
	)
	tests := []struct {
		name    string
		v       verdict
		outcome string
		state   imapcopyv1.SyncState // 0: no status write
		release bool
		keep    bool // the lock is extended for a wait in the queue
		op      queueOp
		delay   time.Duration
	}{
		{"complete", verdict{result: complete, attempt: 1, maxDeliver: 10}, outcomeCompleted, completed, true, false, opAck, 0},
		{"refused messages", verdict{result: partial, attempt: 1, maxDeliver: 10}, outcomeCompletedWithErrors, withErrs, true, false, opAck, 0},
		{"login refused", verdict{err: login, attempt: 1, maxDeliver: 10}, outcomeFailed, failed, true, false, opTerm, 0},
		{"over quota", verdict{err: quota, attempt: 3, maxDeliver: 10}, outcomeFailed, failed, true, false, opTerm, 0},
		{"undecryptable", verdict{err: permanent("cannot decrypt", errors.New("x")), attempt: 1, maxDeliver: 10}, outcomeFailed, failed, true, false, opTerm, 0},
		{"invalid with status", verdict{err: invalidf(true, "no login"), attempt: 1, maxDeliver: 10}, outcomeFailed, failed, true, false, opTerm, 0},
		{"invalid without status", verdict{err: invalidf(false, "no token"), attempt: 1, maxDeliver: 10}, outcomeInvalid, running, false, false, opTerm, 0},
		{"network, first attempt", verdict{err: network, attempt: 1, maxDeliver: 10}, outcomeRetry, queued, false, true, opNak, 30 * time.Second},
		{"network, third attempt", verdict{err: network, attempt: 3, maxDeliver: 10}, outcomeRetry, queued, false, true, opNak, 2 * time.Minute},
		{"network, backoff capped", verdict{err: network, attempt: 9, maxDeliver: 10}, outcomeRetry, queued, false, true, opNak, 10 * time.Minute},
		{"throttled past the engine's patience", verdict{err: throttled, attempt: 1, maxDeliver: 10}, outcomeRetry, queued, false, true, opNak, 45 * time.Second},
		{"network, last attempt", verdict{err: network, attempt: 10, maxDeliver: 10}, outcomeFailed, failed, true, false, opTerm, 0},
		{"unknown error", verdict{err: errors.New("boom"), attempt: 1, maxDeliver: 0}, outcomeRetry, queued, false, true, opNak, 30 * time.Second},
		{"unknown error, unbounded", verdict{err: errors.New("boom"), attempt: 100, maxDeliver: 0}, outcomeRetry, queued, false, true, opNak, 10 * time.Minute},
		{"store down", verdict{err: temporary("the status store is unavailable", errors.New("dial")), attempt: 1, maxDeliver: 10}, outcomeRetry, queued, false, true, opNak, 30 * time.Second},
		{"cancel", verdict{err: errCancelRequested, attempt: 2, maxDeliver: 10}, outcomeCancelled, cancelled, true, false, opAck, 0},
		{"cancel on last attempt", verdict{err: errCancelRequested, attempt: 10, maxDeliver: 10}, outcomeCancelled, cancelled, true, false, opAck, 0},
		{"shutdown", verdict{err: errShutdown, attempt: 1, maxDeliver: 10}, outcomeHandedBack, queued, false, true, opNak, handBackDelay},
		{"shutdown on last attempt", verdict{err: errShutdown, attempt: 10, maxDeliver: 10}, outcomeFailed, failed, true, false, opTerm, 0},
		{"superseded", verdict{err: errSuperseded, attempt: 1, maxDeliver: 10}, outcomeSuperseded, running, true, false, opTerm, 0},
		{"lock lost", verdict{err: errLost, attempt: 1, maxDeliver: 10}, outcomeSuperseded, running, true, false, opTerm, 0},
		{"stale delivery", verdict{err: errStale, attempt: 1, maxDeliver: 10}, outcomeStale, running, false, true, opNone, 0}, // the lock goes back to the task, if still held,
		{"already ended", verdict{err: errEnded, attempt: 2, maxDeliver: 10}, outcomeDuplicate, running, true, false, opAck, 0},
		{"engine cancelled, wrapped cause", verdict{err: fmt.Errorf("copy: %w", errShutdown), attempt: 1, maxDeliver: 10}, outcomeHandedBack, queued, false, true, opNak, handBackDelay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := decide(tt.v, cfg)
			if a.outcome != tt.outcome || a.state != tt.state || a.release != tt.release ||
				(a.extendLock > 0) != tt.keep || a.op != tt.op || a.delay != tt.delay {
				t.Errorf("decide() = {outcome %s, state %v, release %v, keep %v, op %v, delay %v}, want {%s, %v, %v, %v, %v, %v}",
					a.outcome, a.state, a.release, a.extendLock > 0, a.op, a.delay,
					tt.outcome, tt.state, tt.release, tt.keep, tt.op, tt.delay)
			}
			if a.release && a.extendLock > 0 {
				t.Errorf("decide() both releases and extends the lock")
			}
			if a.state == failed && a.failureReason == "" {
				t.Errorf("decide() = FAILED without a failure reason")
			}
			if a.outcome == outcomeRetry && a.retryReason == "" {
				t.Errorf("decide() = retry without a retry reason")
			}
			if a.op == opTerm && a.term == "" {
				t.Errorf("decide() = Term without a reason")
			}
		})
	}
}

// A permanent failure's reason tells the person what to do, and the Term reason
// (shown in NATS advisories) says only the kind.
func TestDecideReasons(t *testing.T) {
	err := &mailcopy.Error{Kind: mailcopy.KindLogin, Side: mailcopy.SideSource,
		Err: &imapconn.Error{Kind: imapconn.KindAuth, Op: "login alice@example.com", Err: errors.New("[AUTHENTICATIONFAILED] bad password")}}
	a := decide(verdict{err: err, attempt: 1, maxDeliver: 10}, Config{}.withDefaults())
	if !strings.Contains(a.failureReason, "check the login and the password") {
		t.Errorf("failure reason = %q, want a hint about the login and password", a.failureReason)
	}
	if strings.Contains(a.term, "alice") || a.term != "failed: login-refused" {
		t.Errorf("term reason = %q, want %q", a.term, "failed: login-refused")
	}
}

func TestBackoff(t *testing.T) {
	cfg := Config{RetryBackoff: time.Second, MaxRetryDelay: 5 * time.Second}.withDefaults()
	for n, want := range map[uint64]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 50: 5 * time.Second} {
		if got := backoff(cfg, n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestClassifyEngineCancel(t *testing.T) {
	// The engine's own cancellation, without a cause from the worker, is temporary.
	err := &mailcopy.Error{Kind: mailcopy.KindCancelled, Err: context.Canceled}
	if got := classify(err); got != classTemporary {
		t.Errorf("classify(engine cancelled) = %v, want temporary", got)
	}
}
