package syncapi_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"imapcopy.dev/pkg/syncapi"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// TestStartRefusedWhileRunning: a RUNNING status written less than RunningLive ago
// means a copier copies the source, lock or no lock: a start is refused then, even
// when the lock key is gone (gap 2 of docs/faults.md; the end-to-end case is
// syncworker TestLockLostThenStartAgain). A RUNNING status older than that has no
// live copier behind it (its copier writes it at least every lock refresh), and the
// lock alone decides.
func TestStartRefusedWhileRunning(t *testing.T) {
	for _, kind := range storeKinds {
		for _, tc := range []struct {
			name string
			live time.Duration
			want codes.Code
		}{
			{"fresh", 0, codes.AlreadyExists}, // the default, 2 minutes
			{"stale", time.Nanosecond, codes.OK},
		} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, kind, withOptions(func(o *syncapi.Options) { o.RunningLive = tc.live }))
				src, dst := newUser(t), newUser(t)
				req := &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()}
				resp, err := e.client.StartSync(e.ctx(), req)
				if err != nil {
					t.Fatalf("StartSync: %v", err)
				}
				// A copier runs the task, and then its lock key vanishes.
				task := e.queuedTask(resp.GetTaskId())
				if _, err := e.store.Update(e.ctx(), task.GetSourceEmail(), task.GetLockToken(), func(st *imapcopyv1.SyncStatus) error {
					st.State = imapcopyv1.SyncState_SYNC_STATE_RUNNING
					st.Attempt = 1
					st.StartedAt = timestamppb.Now()
					return nil
				}); err != nil {
					t.Fatalf("copier: running: %v", err)
				}
				if err := e.store.Release(e.ctx(), task.GetSourceEmail(), task.GetLockToken()); err != nil {
					t.Fatalf("lose the lock: %v", err)
				}
				again, err := e.client.StartSync(e.ctx(), req)
				if status.Code(err) != tc.want {
					t.Fatalf("StartSync with the lock gone and the status RUNNING: %v (task %s), want %v", err, again.GetTaskId(), tc.want)
				}
				if tc.want == codes.AlreadyExists {
					if locked, err := e.store.Locked(e.ctx(), task.GetSourceEmail()); err != nil || locked {
						t.Errorf("lock after the refused start: %v (%v), want untouched (free) for the copier to take back", locked, err)
					}
				}
			})
		}
	}
}
