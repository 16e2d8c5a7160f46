package syncapi_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"imapcopy.dev/pkg/syncapi"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// TestAbandonedRunningSettles: a copier that crashes on every delivery (an
// unrecovered panic, an out-of-memory kill) leaves a RUNNING status behind its
// last delivery. Once its lock has run out and its status is older than
// RunningLive, the api records it FAILED, with its progress kept and what to do;
// a RUNNING status with deliveries left, or written recently, is left alone.
func TestAbandonedRunningSettles(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			const maxDeliver = 5
			// The stores stamp updated_at with the real time: the api's clock
			// starts there, and moves only when told.
			clock := &fakeClock{now: time.Now()}
			e := newEnv(t, kind,
				withDeps(func(d *syncapi.Deps) { d.Clock = clock }),
				withOptions(func(o *syncapi.Options) { o.MaxDeliver = maxDeliver }))
			put := func(source string, attempt uint32) {
				t.Helper()
				token, err := e.store.Acquire(e.ctx(), source, 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				st := &imapcopyv1.SyncStatus{
					TaskId: "crash-loop-" + source, SourceEmail: source, DestinationEmail: "dst@example.test",
					State: imapcopyv1.SyncState_SYNC_STATE_RUNNING, Message: "copying", Attempt: attempt,
					Total:     &imapcopyv1.Progress{MessagesTotal: 10, MessagesCopied: 4},
					CreatedAt: timestamppb.New(clock.Now()), UpdatedAt: timestamppb.New(clock.Now()), Caller: "tests",
				}
				if err := e.store.Put(e.ctx(), source, token, st); err != nil {
					t.Fatal(err)
				}
			}
			get := func(source string) *imapcopyv1.SyncStatus {
				t.Helper()
				resp, err := e.client.GetSyncStatus(e.ctx(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: source})
				if err != nil {
					t.Fatalf("GetSyncStatus: %v", err)
				}
				return resp.GetStatus()
			}
			last, more := "last@example.test", "more@example.test"
			put(last, maxDeliver)
			put(more, maxDeliver-1)
			waitFor(t, "the copiers' locks run out", func() error {
				for _, s := range []string{last, more} {
					if locked, err := e.store.Locked(e.ctx(), s); err != nil || locked {
						return fmt.Errorf("%s locked %v: %w", s, locked, err)
					}
				}
				return nil
			})
			if st := get(last); st.GetState() != imapcopyv1.SyncState_SYNC_STATE_RUNNING {
				t.Fatalf("a RUNNING status written just now: %v, want RUNNING", st.GetState())
			}
			clock.Advance(syncapi.DefaultRunningLive + time.Second)
			st := get(last)
			if st.GetState() != imapcopyv1.SyncState_SYNC_STATE_FAILED || !strings.Contains(st.GetFailureReason(), "each of the 5 attempts") ||
				!strings.Contains(st.GetFailureReason(), "start the sync again") {
				t.Errorf("abandoned at its last attempt: %v %q, want FAILED saying what happened and what to do", st.GetState(), st.GetFailureReason())
			}
			if st.GetTotal().GetMessagesCopied() != 4 || st.GetFinishedAt() == nil {
				t.Errorf("the settled status lost its progress or end: %v", st)
			}
			if stored, err := e.store.Get(e.ctx(), last); err != nil || stored.GetState() != imapcopyv1.SyncState_SYNC_STATE_FAILED {
				t.Errorf("the stored status: %v, %v; want it recorded FAILED", stored.GetState(), err)
			}
			if st := get(more); st.GetState() != imapcopyv1.SyncState_SYNC_STATE_RUNNING {
				t.Errorf("a RUNNING sync with a delivery left: %v, want RUNNING (the queue delivers it again)", st.GetState())
			}
		})
	}
}
