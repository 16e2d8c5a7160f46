package syncworker_test

import (
	"testing"
	"time"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"

	"imapcopy.dev/pkg/servicetest"
)

// TestNoCopierThenOne: syncs started while no copier runs wait QUEUED, untouched,
// longer than the queue's ack wait; once a copier starts, every one of them ends
// COMPLETED with the checker clean, at its first attempt.
func TestNoCopierThenOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pairs := []*pair{newPair(t, shared.slash, shared.dot, 1601), newPair(t, shared.dot, shared.slash, 1602)}
	tasks := make([]string, len(pairs))
	for i, p := range pairs {
		tasks[i] = e.start(p).GetTaskId()
	}
	// Nobody to take them: they wait, and stay as StartSync left them.
	time.Sleep(2 * queueConfig().AckWait)
	for i, p := range pairs {
		st, err := e.api.GetSyncStatus(t.Context(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: p.source})
		if err != nil {
			t.Fatal(err)
		}
		if st.GetStatus().GetState() != stateQueued || st.GetStatus().GetTaskId() != tasks[i] || st.GetStatus().GetAttempt() != 0 {
			t.Fatalf("with no copier: %v %q attempt %d, want QUEUED, not attempted", st.GetStatus().GetState(), st.GetStatus().GetMessage(), st.GetStatus().GetAttempt())
		}
		t.Logf("waiting for a copier: %q", st.GetStatus().GetMessage())
	}
	e.startCopier()
	for i, p := range pairs {
		st := e.waitEnd(p, tasks[i])
		if st.GetState() != stateCompleted || st.GetAttempt() != 1 {
			t.Errorf("%s: %v %q attempt %d, want COMPLETED at attempt 1", p.source, st.GetState(), st.GetMessage(), st.GetAttempt())
		}
		servicetest.Check(t, p.src, p.dst)
	}
}
