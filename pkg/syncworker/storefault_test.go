package syncworker_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/servicetest"
	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// The store and queue faults of docs/faults.md (issue 14): the lock key lost under a
// running sync, Redis down mid-copy, NATS restarted inside StartSync's ack wait.

// lockKey is the Redis key of source's lock (syncstatus.Redis's layout).
func (e *env) lockKey(source string) string {
	return e.prefix + "{" + syncstatus.KeyOf(source) + "}:lock"
}

// TestLockLostThenStartAgain: the lock key of a RUNNING sync vanishes (an operator's
// DEL, a failover to a replica that had not received the key), then the customer
// starts the sync again. No two copies of one source may run at once: the new start
// is refused while the running copy is alive, the running copy takes its lock back
// and ends COMPLETED, and the checker finds every message once.
func TestLockLostThenStartAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startCopier()
	p := newPair(t, shared.slash, shared.dot, 21)
	rc := shared.redis.Client(t)

	first := e.start(p)
	e.waitCopying(p, first.GetTaskId())
	if n, err := rc.Del(t.Context(), e.lockKey(p.source)).Result(); err != nil || n != 1 {
		t.Fatalf("DEL the lock key: %d keys, %v; want 1", n, err)
	}
	second, err := e.api.StartSync(t.Context(), p.request())
	switch status.Code(err) {
	case codes.AlreadyExists:
	case codes.OK:
		t.Errorf("StartSync while the first sync runs without its lock key: OK (task %s), want ALREADY_EXISTS", second.GetTaskId())
		st := e.waitEnd(p, second.GetTaskId())
		t.Logf("second sync: %v (%s)", st.GetState(), st.GetMessage())
		servicetest.Check(t, p.src, p.dst)
		return
	default:
		t.Fatalf("StartSync while the first sync runs without its lock key: %v, want ALREADY_EXISTS", err)
	}

	st := e.waitEnd(p, first.GetTaskId())
	if st.GetState() != stateCompleted {
		t.Fatalf("first sync = %v (%s), want COMPLETED: the copier takes its lost lock back", st.GetState(), st.GetMessage())
	}
	servicetest.Check(t, p.src, p.dst)
	e.lockFree(p.source)
	// Once the first has ended, a new start works (and copies nothing more).
	again := e.start(p)
	if st := e.waitEnd(p, again.GetTaskId()); st.GetState() != stateCompleted || st.GetTotal().GetMessagesCopied() != 0 {
		t.Errorf("start after the end: %v (%s), %d copied; want COMPLETED with 0 copied",
			st.GetState(), st.GetMessage(), st.GetTotal().GetMessagesCopied())
	}
	servicetest.Check(t, p.src, p.dst)
}

var _ = time.Second
var _ imapcopyv1.SyncState
