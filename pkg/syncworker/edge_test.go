package syncworker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/taskqueue"
	"imapcopy.dev/pkg/taskseal"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// queued does what the api does for a start, with a task that the test shapes: the
// lock, the QUEUED status, the sealed secrets, the publish. It returns the task.
func (e *env) queued(source, taskID string, sealer *taskseal.Keyring, change func(*imapcopyv1.SyncTask)) *imapcopyv1.SyncTask {
	t := e.t
	t.Helper()
	ctx := t.Context()
	token, err := e.store.Acquire(ctx, source, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Put(ctx, source, token, &imapcopyv1.SyncStatus{TaskId: taskID, SourceEmail: source, State: stateQueued}); err != nil {
		t.Fatal(err)
	}
	// Port 9 on loopback: nothing listens there, and these tasks must end before
	// any dial.
	ep := &imapcopyv1.Endpoint{Provider: "other", Login: "nobody", Host: "127.0.0.1", Port: 9, Security: imapcopyv1.Security_SECURITY_TLS}
	task := &imapcopyv1.SyncTask{TaskId: taskID, SourceEmail: source, Source: ep, Destination: ep, LockToken: token}
	if change != nil {
		change(task)
	}
	sealed, err := sealer.Seal(task, &imapcopyv1.TaskSecrets{SourcePassword: "x", DestinationPassword: "y"})
	if err != nil {
		t.Fatal(err)
	}
	if task.Sealed == nil { // change may have put its own
		task.Sealed = sealed
	}
	if err := taskqueue.NewPublisher(e.js).Publish(ctx, task); err != nil {
		t.Fatal(err)
	}
	return task
}

// queueEmpty waits until no task is left in the stream (acked or terminated).
func (e *env) queueEmpty() {
	t := e.t
	t.Helper()
	stream, err := e.js.Stream(t.Context(), taskqueue.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := stream.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks left in the stream = %d after 30s, want 0", info.State.Msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func keyring(t *testing.T, id string) *taskseal.Keyring {
	t.Helper()
	k := taskseal.GenerateKey()
	k.ID = id
	kr, err := taskseal.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// The ends that need no IMAP server: each task ends before the engine would dial.
func TestTaskEndsBeforeCopying(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startCopier()
	ctx := t.Context()
	final := func(source string) *imapcopyv1.SyncStatus {
		return e.waitStatus(source, waitEnd, "ended", func(st *imapcopyv1.SyncStatus) bool { return syncstatus.Terminal(st.GetState()) })
	}

	t.Run("cancelled while queued", func(t *testing.T) {
		source := "queued-cancel@source.test"
		task := e.queued(source, "task-cancel", e.keys, func(task *imapcopyv1.SyncTask) {
			if err := e.store.RequestCancel(ctx, source, task.GetTaskId()); err != nil {
				t.Fatal(err)
			}
		})
		st := final(source)
		if st.GetState() != stateCancelled || st.GetTaskId() != task.GetTaskId() {
			t.Errorf("status = %v of %s, want CANCELLED of %s", st.GetState(), st.GetTaskId(), task.GetTaskId())
		}
		e.lockFree(source)
		e.queueEmpty()
	})

	t.Run("undecryptable", func(t *testing.T) {
		source := "undecryptable@source.test"
		// The same key id as the copier's, another key: the secrets do not authenticate.
		e.queued(source, "task-undecryptable", keyring(t, e.keys.CurrentKeyID()), nil)
		st := final(source)
		if st.GetState() != stateFailed || !strings.Contains(st.GetFailureReason(), "cannot be decrypted") {
			t.Errorf("status = %v (%q), want FAILED because the credentials cannot be decrypted", st.GetState(), st.GetFailureReason())
		}
		e.lockFree(source)
		e.queueEmpty()
	})

	t.Run("altered after sealing", func(t *testing.T) {
		source := "altered@source.test"
		// Sealed by the api's key for one destination, republished with another: the
		// secrets are bound to the task and do not open.
		e.queued(source, "task-altered", e.keys, func(task *imapcopyv1.SyncTask) {
			sealed, err := e.keys.Seal(task, &imapcopyv1.TaskSecrets{SourcePassword: "x", DestinationPassword: "y"})
			if err != nil {
				t.Fatal(err)
			}
			task.Sealed = sealed
			task.Destination = &imapcopyv1.Endpoint{Provider: "other", Login: "nobody", Host: "127.0.0.2", Port: 9, Security: imapcopyv1.Security_SECURITY_TLS}
		})
		st := final(source)
		if st.GetState() != stateFailed || !strings.Contains(st.GetFailureReason(), "cannot be decrypted") {
			t.Errorf("status = %v (%q), want FAILED because the credentials cannot be decrypted", st.GetState(), st.GetFailureReason())
		}
		e.lockFree(source)
		e.queueEmpty()
	})

	t.Run("caller changed in the queue", func(t *testing.T) {
		source := "recaller@source.test"
		// Sealed for alice's sync, republished as bob's: were it to run, a status
		// written afresh would hand alice's sync to bob. The caller is bound too.
		e.queued(source, "task-recaller", e.keys, func(task *imapcopyv1.SyncTask) {
			task.Caller = "alice"
			sealed, err := e.keys.Seal(task, &imapcopyv1.TaskSecrets{SourcePassword: "x", DestinationPassword: "y"})
			if err != nil {
				t.Fatal(err)
			}
			task.Sealed = sealed
			task.Caller = "bob"
		})
		st := final(source)
		if st.GetState() != stateFailed || !strings.Contains(st.GetFailureReason(), "cannot be decrypted") || st.GetStartedAt() != nil {
			t.Errorf("status = %v started at %v (%q), want FAILED because the credentials cannot be decrypted, never started",
				st.GetState(), st.GetStartedAt(), st.GetFailureReason())
		}
		e.lockFree(source)
		e.queueEmpty()
	})

	t.Run("never recorded", func(t *testing.T) {
		// A task the api never queued (no status, no lock), sealed with the real key:
		// dropped without a status and without a lock left behind.
		source := "unrecorded@source.test"
		ep := &imapcopyv1.Endpoint{Provider: "other", Login: "nobody", Host: "127.0.0.1", Port: 9, Security: imapcopyv1.Security_SECURITY_TLS}
		task := &imapcopyv1.SyncTask{TaskId: "task-unrecorded", SourceEmail: source, Source: ep, Destination: ep, LockToken: "forged-token"}
		sealed, err := e.keys.Seal(task, &imapcopyv1.TaskSecrets{SourcePassword: "x", DestinationPassword: "y"})
		if err != nil {
			t.Fatal(err)
		}
		task.Sealed = sealed
		if err := taskqueue.NewPublisher(e.js).Publish(ctx, task); err != nil {
			t.Fatal(err)
		}
		e.queueEmpty()
		if st, err := e.store.Get(ctx, source); !errors.Is(err, syncstatus.ErrNotFound) {
			t.Errorf("status of a task the api never recorded = %v, %v; want none (ErrNotFound)", st, err)
		}
		e.lockFree(source)
	})

	t.Run("unclaimed too long", func(t *testing.T) {
		source := "unclaimed@source.test"
		// Published as if two days ago: no copier took it within the 24h limit.
		e.queued(source, "task-unclaimed", e.keys, func(task *imapcopyv1.SyncTask) {
			task.CreatedAt = timestamppb.New(time.Now().Add(-48 * time.Hour))
		})
		st := final(source)
		if st.GetState() != stateFailed || !strings.Contains(st.GetFailureReason(), "waited") || !strings.Contains(st.GetFailureReason(), "start it again") {
			t.Errorf("status = %v (%q), want FAILED because the task waited too long unclaimed", st.GetState(), st.GetFailureReason())
		}
		e.lockFree(source)
		e.queueEmpty()
	})

	t.Run("invalid", func(t *testing.T) {
		source := "invalid@source.test"
		e.queued(source, "task-invalid", e.keys, func(task *imapcopyv1.SyncTask) { task.Destination = nil })
		st := final(source)
		if st.GetState() != stateFailed || !strings.Contains(st.GetFailureReason(), "no destination account") {
			t.Errorf("status = %v (%q), want FAILED for the missing destination", st.GetState(), st.GetFailureReason())
		}
		e.lockFree(source)
		e.queueEmpty()
	})
}

// A task whose lock another task took (the customer started again after the lock
// expired) is dropped without touching the newer task's status or lock; a task
// redelivered after it ended (its ack was lost) is acked and its lock released.
func TestStaleTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()

	// Superseded: queued, then its lock expired and a new start took it.
	superseded := "superseded@source.test"
	task := e.queued(superseded, "task-old", e.keys, nil)
	if err := e.store.Release(ctx, superseded, task.GetLockToken()); err != nil {
		t.Fatal(err)
	}
	newToken, err := e.store.Acquire(ctx, superseded, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Put(ctx, superseded, newToken, &imapcopyv1.SyncStatus{TaskId: "task-new", SourceEmail: superseded, State: stateQueued}); err != nil {
		t.Fatal(err)
	}

	// Ended: its copier wrote COMPLETED and released the lock, but the ack was lost.
	ended := "ended@source.test"
	task = e.queued(ended, "task-ended", e.keys, nil)
	if _, err := e.store.Update(ctx, ended, task.GetLockToken(), func(st *imapcopyv1.SyncStatus) error {
		st.State, st.Attempt = stateCompleted, 1
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Release(ctx, ended, task.GetLockToken()); err != nil {
		t.Fatal(err)
	}

	e.startCopier()
	e.queueEmpty()

	st, err := e.store.Get(ctx, superseded)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetTaskId() != "task-new" || st.GetState() != stateQueued {
		t.Errorf("newer task's status = %v of %s, want QUEUED of task-new, untouched", st.GetState(), st.GetTaskId())
	}
	if _, err := e.store.Acquire(ctx, superseded, time.Minute); !errors.Is(err, syncstatus.ErrLocked) {
		t.Errorf("Acquire of the newer task's lock = %v, want ErrLocked: it is still held", err)
	}

	st, err = e.store.Get(ctx, ended)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetState() != stateCompleted || st.GetAttempt() != 1 {
		t.Errorf("ended task's status = %v attempt %d, want COMPLETED attempt 1, untouched", st.GetState(), st.GetAttempt())
	}
	e.lockFree(ended)
}

// A task sealed with a key this copier lacks waits for a copier that has it: a
// retry with the reason, the lock kept.
func TestUnknownKeyIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startCopier()
	source := "unknown-key@source.test"
	e.queued(source, "task-unknown-key", keyring(t, "k-rotated-in"), nil)
	st := e.waitStatus(source, waitEnd, "waiting for a retry", func(st *imapcopyv1.SyncStatus) bool { return st.GetRetryReason() != "" })
	if st.GetState() != stateQueued || !strings.Contains(st.GetRetryReason(), "k-rotated-in") || st.GetAttempt() != 1 {
		t.Errorf("status = %v attempt %d (%q), want QUEUED, attempt 1, a retry reason naming the key", st.GetState(), st.GetAttempt(), st.GetRetryReason())
	}
	if _, err := e.store.Acquire(t.Context(), source, time.Minute); !errors.Is(err, syncstatus.ErrLocked) {
		t.Errorf("Acquire during the retry wait = %v, want ErrLocked: the lock is kept", err)
	}
}
