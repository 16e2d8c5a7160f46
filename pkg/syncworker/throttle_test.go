package syncworker_test

import (
	"strings"
	"testing"
	"time"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/servicetest"
	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// TestThrottledQueued: a source that throttles longer than the engine's patience.
// The attempt ends, the sync goes back to the queue as QUEUED saying that the server
// throttles it and until when (throttled_until), and the next attempt, once the
// server lets go, ends COMPLETED with the checker clean.
func TestThrottledQueued(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cfg.MaxThrottles = 2
	e.cfg.RetryBackoff = 3 * time.Second
	e.startCopier()

	src, dst := shared.slash.AddUser(t), shared.dot.AddUser(t)
	mb := imaptest.Generate(1502, imaptest.Spec{Count: 40, Folders: 2})
	if err := imaptest.Load(t.Context(), src, mb); err != nil {
		t.Fatal(err)
	}
	// Every body FETCH is throttled until 4 refusals were sent: the first attempt
	// gives up after 3 (MaxThrottles 2), the second sees the last and goes on.
	px := shared.slash.ProfileProxy(t, imaptest.Profile{Name: "throttling", ThrottleEvery: 1, MaxThrottles: 4, ThrottleReply: imaptest.GmailBandwidth})
	source := src.Login + "@source.test"
	req := &imapcopyv1.StartSyncRequest{
		Source:      servicetest.Account(px.Account(src), source),
		Destination: servicetest.Account(dst, dst.Login+"@destination.test"),
		Options:     &imapcopyv1.SyncOptions{MaxConnections: 1},
	}
	if _, err := e.api.StartSync(t.Context(), req); err != nil {
		t.Fatalf("StartSync: %v", err)
	}
	waiting := e.waitStatus(source, waitEnd, "QUEUED after a throttled attempt", func(st *imapcopyv1.SyncStatus) bool {
		return syncstatus.Terminal(st.GetState()) || st.GetState() == stateQueued && st.GetAttempt() >= 1 && st.GetRetryReason() != ""
	})
	if waiting.GetState() != stateQueued {
		t.Fatalf("status %v %q, want QUEUED between attempts", waiting.GetState(), waiting.GetMessage())
	}
	t.Logf("between attempts: %q (retry reason %q)", waiting.GetMessage(), waiting.GetRetryReason())
	if !strings.Contains(waiting.GetMessage(), "the server throttles the copy: waiting until ") || waiting.GetThrottledUntil() == nil {
		t.Errorf("QUEUED status %q, throttled_until %v: want it to say the server throttles it, until when", waiting.GetMessage(), waiting.GetThrottledUntil())
	}
	end := e.waitStatus(source, waitEnd, "ended", func(st *imapcopyv1.SyncStatus) bool { return syncstatus.Terminal(st.GetState()) })
	if end.GetState() != stateCompleted {
		t.Fatalf("end status %v %q (%s), want COMPLETED", end.GetState(), end.GetMessage(), end.GetFailureReason())
	}
	if end.GetThrottledUntil() != nil || strings.Contains(end.GetMessage(), "throttles") {
		t.Errorf("COMPLETED status still says it is throttled: %q, %v", end.GetMessage(), end.GetThrottledUntil())
	}
	if end.GetAttempt() < 2 {
		t.Errorf("attempt = %d, want at least 2", end.GetAttempt())
	}
	if s := px.Stats(); s.Throttled != 4 {
		t.Errorf("the proxy throttled %d commands, want 4", s.Throttled)
	}
	servicetest.Check(t, src, dst)
}
