package syncworker_test

import (
	"strings"
	"testing"
	"time"

	"imapcopy.dev/pkg/proxytest"
	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// TestStallShows: a source that stops answering in the middle of a copy (its proxy
// delays every byte by ten minutes) shows in the status message as "no progress for
// N s" once StallNote has passed, long before the connections' idle timeout (issue
// 14, item 9: it showed "copying" for five minutes); the sync can still be
// cancelled.
func TestStallShows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cfg.StallNote = 2 * time.Second
	e.startCopier()
	p := newPair(t, shared.slash, shared.dot, 1401)

	resp := e.start(p)
	e.waitCopying(p, resp.GetTaskId())
	p.proxy.SetLatency(proxytest.Downstream, 10*time.Minute)
	st := e.waitStatus(p.source, waitEnd, "saying it is stalled", func(st *imapcopyv1.SyncStatus) bool {
		return syncstatus.Terminal(st.GetState()) || strings.Contains(st.GetMessage(), "no progress for")
	})
	if st.GetState() != stateRunning || !strings.Contains(st.GetMessage(), "s: a server is not answering") {
		t.Fatalf("status %v %q, want RUNNING saying no server answers", st.GetState(), st.GetMessage())
	}
	t.Logf("stalled status: %q", st.GetMessage())
	if _, err := e.api.CancelSync(t.Context(), &imapcopyv1.CancelSyncRequest{SourceEmail: p.source}); err != nil {
		t.Fatalf("CancelSync: %v", err)
	}
	end := e.waitStatus(p.source, 30*time.Second, "ended", func(st *imapcopyv1.SyncStatus) bool { return syncstatus.Terminal(st.GetState()) })
	if end.GetState() != stateCancelled || strings.Contains(end.GetMessage(), "no progress for") {
		t.Errorf("after CancelSync: %v %q, want CANCELLED without the stall note", end.GetState(), end.GetMessage())
	}
}
