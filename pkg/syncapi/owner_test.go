package syncapi_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// TestCallersSeeTheirOwnSyncs: a sync records the caller that started it; another
// caller gets NOT_FOUND for it (read, watch, cancel), as for an address with no sync;
// an admin token sees and cancels every sync. Any caller used to read and cancel any
// other caller's sync.
func TestCallersSeeTheirOwnSyncs(t *testing.T) {
	e := newEnv(t, "redis", withTeam(t))
	addr := e.conn.Target()
	alice := imapcopyv1.NewSyncServiceClient(dial(t, addr, aliceToken))
	bob := imapcopyv1.NewSyncServiceClient(dial(t, addr, bobToken))
	ops := imapcopyv1.NewSyncServiceClient(dial(t, addr, opsToken))

	src, dst := newUser(t), newUser(t)
	resp, err := alice.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()})
	if err != nil {
		t.Fatalf("StartSync as alice: %v", err)
	}
	if got := resp.GetStatus().GetCaller(); got != "alice" {
		t.Errorf("status caller = %q, want alice", got)
	}
	// The task holds it too, for a copier that writes the status afresh.
	if got := e.queuedTask(resp.GetTaskId()).GetCaller(); got != "alice" {
		t.Errorf("queued task caller = %q, want alice", got)
	}

	get := &imapcopyv1.GetSyncStatusRequest{SourceEmail: src.email}
	if _, err := bob.GetSyncStatus(e.ctx(), get); status.Code(err) != codes.NotFound {
		t.Errorf("GetSyncStatus of alice's sync as bob = %v, want NotFound", err)
	}
	if _, err := bob.CancelSync(e.ctx(), &imapcopyv1.CancelSyncRequest{SourceEmail: src.email}); status.Code(err) != codes.NotFound {
		t.Errorf("CancelSync of alice's sync as bob = %v, want NotFound", err)
	}
	stream, err := bob.WatchSyncStatus(e.ctx(), &imapcopyv1.WatchSyncStatusRequest{SourceEmail: src.email})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("WatchSyncStatus of alice's sync as bob = %v, want NotFound", err)
	}

	for name, c := range map[string]imapcopyv1.SyncServiceClient{"alice": alice, "ops (admin)": ops} {
		got, err := c.GetSyncStatus(e.ctx(), get)
		if err != nil || got.GetStatus().GetTaskId() != resp.GetTaskId() {
			t.Errorf("GetSyncStatus as %s = %v, %v; want the sync", name, got, err)
		}
	}
	if _, err := ops.CancelSync(e.ctx(), &imapcopyv1.CancelSyncRequest{SourceEmail: src.email}); err != nil {
		t.Errorf("CancelSync as admin: %v", err)
	}
}
