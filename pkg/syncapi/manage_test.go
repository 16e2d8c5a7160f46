package syncapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"imapcopy.dev/pkg/syncapi"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

const (
	aliceToken = "alice-token-0123456789abcdef"
	bobToken   = "bob-token-0123456789abcdef00"
	opsToken   = "ops-token-0123456789abcdef00"
)

// withTeam authenticates tests (the env's own client), alice, bob and ops (admin).
func withTeam(t *testing.T) envOption {
	tokens, err := syncapi.ParseTokens(strings.NewReader("tests " + testToken + "\nalice " + aliceToken + "\nbob " + bobToken + "\nops " + opsToken + " admin\n"))
	if err != nil {
		t.Fatal(err)
	}
	return func(c *envConfig) { c.auth = syncapi.NewAuth(tokens, false) }
}

// listAll pages through ListSyncs and returns the source addresses listed, and the
// totals of the first page.
func listAll(t *testing.T, e *env, c imapcopyv1.SyncServiceClient, req *imapcopyv1.ListSyncsRequest) ([]string, map[imapcopyv1.SyncState]uint32) {
	t.Helper()
	var got []string
	var totals map[imapcopyv1.SyncState]uint32
	for range 50 {
		resp, err := c.ListSyncs(e.ctx(), req)
		if err != nil {
			t.Fatalf("ListSyncs(%v): %v", req, err)
		}
		for _, st := range resp.GetSyncs() {
			got = append(got, st.GetSourceEmail())
		}
		if totals == nil {
			totals = map[imapcopyv1.SyncState]uint32{}
			for _, n := range resp.GetTotals() {
				totals[n.GetState()] = n.GetCount()
			}
		}
		if resp.GetNextPageToken() == "" {
			return got, totals
		}
		req.PageToken = resp.GetNextPageToken()
	}
	t.Fatal("ListSyncs: more than 50 pages")
	return nil, nil
}

// TestListSyncs: a caller lists the syncs it started, an admin every sync, by state
// and by destination domain, a page at a time, with the totals by state; bad filters
// are refused with the field named.
func TestListSyncs(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind, withTeam(t))
			addr := e.conn.Target()
			alice := imapcopyv1.NewSyncServiceClient(dial(t, addr, aliceToken))
			bob := imapcopyv1.NewSyncServiceClient(dial(t, addr, bobToken))
			ops := imapcopyv1.NewSyncServiceClient(dial(t, addr, opsToken))

			dst := newUser(t)
			var aliceSrc, bobSrc []string
			var aliceTasks []string
			for i := range 5 {
				c, list := alice, &aliceSrc
				if i >= 3 {
					c, list = bob, &bobSrc
				}
				src := newUser(t)
				resp, err := c.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()})
				if err != nil {
					t.Fatalf("StartSync %d: %v", i, err)
				}
				*list = append(*list, src.email)
				if i < 3 {
					aliceTasks = append(aliceTasks, resp.GetTaskId())
				}
			}
			e.finish(e.queuedTask(aliceTasks[0]), imapcopyv1.SyncState_SYNC_STATE_COMPLETED)
			e.finish(e.queuedTask(aliceTasks[1]), imapcopyv1.SyncState_SYNC_STATE_FAILED)

			sameSet := func(name string, got, want []string) {
				t.Helper()
				if len(got) != len(want) {
					t.Errorf("%s: listed %q, want %q", name, got, want)
					return
				}
				for _, w := range want {
					if !strings.Contains(strings.Join(got, " "), w) {
						t.Errorf("%s: listed %q, want %q", name, got, want)
						return
					}
				}
			}
			got, totals := listAll(t, e, alice, &imapcopyv1.ListSyncsRequest{PageSize: 2})
			sameSet("alice, pages of 2", got, aliceSrc)
			want := map[imapcopyv1.SyncState]uint32{
				imapcopyv1.SyncState_SYNC_STATE_QUEUED:    1,
				imapcopyv1.SyncState_SYNC_STATE_COMPLETED: 1,
				imapcopyv1.SyncState_SYNC_STATE_FAILED:    1,
			}
			for s, n := range want {
				if totals[s] != n {
					t.Errorf("alice's totals = %v, want %v", totals, want)
				}
			}
			got, _ = listAll(t, e, bob, &imapcopyv1.ListSyncsRequest{})
			sameSet("bob", got, bobSrc)
			got, _ = listAll(t, e, ops, &imapcopyv1.ListSyncsRequest{PageSize: 1})
			sameSet("ops (admin)", got, append(append([]string{}, aliceSrc...), bobSrc...))
			got, totals = listAll(t, e, ops, &imapcopyv1.ListSyncsRequest{States: []imapcopyv1.SyncState{imapcopyv1.SyncState_SYNC_STATE_QUEUED}})
			sameSet("ops, queued", got, append([]string{aliceSrc[2]}, bobSrc...))
			if totals[imapcopyv1.SyncState_SYNC_STATE_QUEUED] != 3 || totals[imapcopyv1.SyncState_SYNC_STATE_FAILED] != 1 {
				t.Errorf("ops' totals while listing QUEUED = %v, want every state counted", totals)
			}
			got, _ = listAll(t, e, ops, &imapcopyv1.ListSyncsRequest{DestinationDomain: "EXAMPLE.test"})
			sameSet("ops, domain example.test", got, append(append([]string{}, aliceSrc...), bobSrc...))
			got, _ = listAll(t, e, ops, &imapcopyv1.ListSyncsRequest{DestinationDomain: "other.test"})
			sameSet("ops, domain other.test", got, nil)

			for name, req := range map[string]*imapcopyv1.ListSyncsRequest{
				"page_token":         {PageToken: "not-a-token"},
				"page_size":          {PageSize: 501},
				"states":             {States: []imapcopyv1.SyncState{99}},
				"destination_domain": {DestinationDomain: "a b"},
			} {
				_, err := ops.ListSyncs(e.ctx(), req)
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), name) {
					t.Errorf("ListSyncs with a bad %s = %v, want InvalidArgument naming it", name, err)
				}
			}
		})
	}
}

// TestRetrySync: a FAILED sync starts again from its kept request, the passwords
// sealed in a new task bound to it; the new sync belongs to the caller of the first
// even when an admin retries it. Only FAILED and COMPLETED_WITH_ERRORS syncs are
// retried, and a sync whose request is no longer kept is refused with what to do.
func TestRetrySync(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind, withTeam(t))
			addr := e.conn.Target()
			alice := imapcopyv1.NewSyncServiceClient(dial(t, addr, aliceToken))
			ops := imapcopyv1.NewSyncServiceClient(dial(t, addr, opsToken))
			src, dst := newUser(t), newUser(t)
			first, err := alice.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{
				Source: src.proto(), Destination: dst.proto(),
				Options: &imapcopyv1.SyncOptions{ExcludeFolders: []string{"Trash"}},
			})
			if err != nil {
				t.Fatalf("StartSync: %v", err)
			}
			retry := &imapcopyv1.RetrySyncRequest{SourceEmail: src.email}
			if _, err := alice.RetrySync(e.ctx(), retry); status.Code(err) != codes.AlreadyExists {
				t.Errorf("RetrySync of a queued sync = %v, want AlreadyExists", err)
			}
			e.finish(e.queuedTask(first.GetTaskId()), imapcopyv1.SyncState_SYNC_STATE_FAILED)

			again, err := ops.RetrySync(e.ctx(), retry)
			if err != nil {
				t.Fatalf("RetrySync of a failed sync, by an admin: %v", err)
			}
			if again.GetTaskId() == "" || again.GetTaskId() == first.GetTaskId() || again.GetCancelSecret() == "" {
				t.Errorf("RetrySync = task %q (first %q), cancel secret set %v; want a new task and its secret",
					again.GetTaskId(), first.GetTaskId(), again.GetCancelSecret() != "")
			}
			st := again.GetStatus()
			if st.GetState() != imapcopyv1.SyncState_SYNC_STATE_QUEUED || st.GetCaller() != "alice" {
				t.Errorf("retried status = %v, caller %q; want QUEUED, alice's", st.GetState(), st.GetCaller())
			}
			task := e.queuedTask(again.GetTaskId())
			secrets, err := e.keyring.Open(task)
			if err != nil {
				t.Fatalf("open the retried task's secrets: %v", err)
			}
			if secrets.GetSourcePassword() != src.acct.Password || secrets.GetDestinationPassword() != dst.acct.Password {
				t.Error("the retried task does not carry the first start's passwords")
			}
			if got := task.GetOptions().GetExcludeFolders(); len(got) != 1 || got[0] != "Trash" {
				t.Errorf("retried options exclude %q, want the first start's [Trash]", got)
			}

			e.finish(task, imapcopyv1.SyncState_SYNC_STATE_COMPLETED)
			_, err = alice.RetrySync(e.ctx(), retry)
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "COMPLETED") {
				t.Errorf("RetrySync of a completed sync = %v, want FailedPrecondition naming the state", err)
			}
			bob := imapcopyv1.NewSyncServiceClient(dial(t, addr, bobToken))
			if _, err := bob.RetrySync(e.ctx(), retry); status.Code(err) != codes.NotFound {
				t.Errorf("RetrySync of alice's sync by bob = %v, want NotFound", err)
			}
		})
	}
}

// TestRetrySyncNotKept: with no task kept (IMAPCOPY_RETRY_WINDOW=0), a failed sync
// cannot be retried and the answer says what to do instead.
func TestRetrySyncNotKept(t *testing.T) {
	e := newEnv(t, "redis", withDeps(func(d *syncapi.Deps) { d.Kept = nil }))
	src, dst := newUser(t), newUser(t)
	resp, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()})
	if err != nil {
		t.Fatalf("StartSync: %v", err)
	}
	e.finish(e.queuedTask(resp.GetTaskId()), imapcopyv1.SyncState_SYNC_STATE_FAILED)
	_, err = e.client.RetrySync(e.ctx(), &imapcopyv1.RetrySyncRequest{SourceEmail: src.email})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "start it again with StartSync") {
		t.Errorf("RetrySync with nothing kept = %v, want FailedPrecondition saying to start again", err)
	}
}

// TestWatchLimitPerCaller: a caller holds at most MaxWatchesPerCaller watch streams;
// the next is RESOURCE_EXHAUSTED, another caller is not affected, and a closed stream
// frees its place.
func TestWatchLimitPerCaller(t *testing.T) {
	const limit = 3
	e := newEnv(t, "redis", withTeam(t), withOptions(func(o *syncapi.Options) { o.MaxWatchesPerCaller = limit }))
	src, dst := newUser(t), newUser(t)
	if _, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()}); err != nil {
		t.Fatalf("StartSync: %v", err)
	}
	watch := func(c imapcopyv1.SyncServiceClient, ctx context.Context) error {
		stream, err := c.WatchSyncStatus(ctx, &imapcopyv1.WatchSyncStatusRequest{SourceEmail: src.email})
		if err == nil {
			_, err = stream.Recv()
		}
		return err
	}
	var cancels []context.CancelFunc
	for i := range limit {
		ctx, cancel := context.WithCancel(e.ctx())
		cancels = append(cancels, cancel)
		if err := watch(e.client, ctx); err != nil {
			t.Fatalf("watch %d: %v", i+1, err)
		}
	}
	if err := watch(e.client, e.ctx()); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("watch %d: %v, want ResourceExhausted", limit+1, err)
	}
	ops := imapcopyv1.NewSyncServiceClient(dial(t, e.conn.Target(), opsToken))
	octx, ocancel := context.WithCancel(e.ctx())
	defer ocancel()
	if err := watch(ops, octx); err != nil {
		t.Errorf("another caller's watch: %v", err)
	}
	cancels[0]()
	waitFor(t, "a closed stream frees its place", func() error {
		ctx, cancel := context.WithCancel(e.ctx())
		cancels = append(cancels, cancel)
		return watch(e.client, ctx)
	})
	for _, c := range cancels {
		c()
	}
}

// TestInterruptedStartSettles: an api killed between the QUEUED write and the publish
// left "not started yet" forever. Once the start's lock has run out, the status is
// recorded FAILED with what to do, for every reader, and a new start works.
func TestInterruptedStartSettles(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			clock := newFakeClock()
			e := newEnv(t, kind, withDeps(func(d *syncapi.Deps) { d.Clock = clock }))
			src, dst := newUser(t), newUser(t)
			// What the killed api left: its short lock and the QUEUED status, no task.
			token, err := e.store.Acquire(e.ctx(), src.email, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			queued := &imapcopyv1.SyncStatus{
				TaskId: "crashed-start", SourceEmail: src.email, DestinationEmail: dst.email,
				State: imapcopyv1.SyncState_SYNC_STATE_QUEUED, Message: "not started yet, please be patient",
				CreatedAt: timestamppb.New(clock.Now()), Caller: "tests",
			}
			if err := e.store.Put(e.ctx(), src.email, token, queued); err != nil {
				t.Fatal(err)
			}
			get := func() *imapcopyv1.SyncStatus {
				t.Helper()
				resp, err := e.client.GetSyncStatus(e.ctx(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: src.email})
				if err != nil {
					t.Fatalf("GetSyncStatus: %v", err)
				}
				return resp.GetStatus()
			}
			if st := get(); st.GetState() != imapcopyv1.SyncState_SYNC_STATE_QUEUED {
				t.Fatalf("right after the start: %v, want QUEUED", st.GetState())
			}
			clock.Advance(10 * time.Minute)
			waitFor(t, "the start's lock runs out", func() error {
				if locked, err := e.store.Locked(e.ctx(), src.email); err != nil || locked {
					return fmt.Errorf("locked %v: %w", locked, err)
				}
				return nil
			})
			st := get()
			if st.GetState() != imapcopyv1.SyncState_SYNC_STATE_FAILED || !strings.Contains(st.GetFailureReason(), "start the sync again") {
				t.Errorf("after the lock ran out: %v %q, want FAILED saying to start again", st.GetState(), st.GetFailureReason())
			}
			if stored, err := e.store.Get(e.ctx(), src.email); err != nil || stored.GetState() != imapcopyv1.SyncState_SYNC_STATE_FAILED {
				t.Errorf("the stored status: %v, %v; want it recorded FAILED", stored.GetState(), err)
			}
			list, err := e.client.ListSyncs(e.ctx(), &imapcopyv1.ListSyncsRequest{States: []imapcopyv1.SyncState{imapcopyv1.SyncState_SYNC_STATE_FAILED}})
			if err != nil || len(list.GetSyncs()) != 1 {
				t.Errorf("ListSyncs of FAILED: %v, %v; want the settled sync", list, err)
			}
			if _, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()}); err != nil {
				t.Errorf("a new start: %v", err)
			}
		})
	}
}
