package syncapi_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/taskqueue"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// queuedTask returns the one task in the queue, decoded.
func (e *env) queuedTask(taskID string) *imapcopyv1.SyncTask {
	e.t.Helper()
	for _, m := range e.tasks() {
		if m.Header.Get("Nats-Msg-Id") != taskID {
			continue
		}
		task := new(imapcopyv1.SyncTask)
		if err := proto.Unmarshal(m.Data, task); err != nil {
			e.t.Fatalf("decode task: %v", err)
		}
		if m.Subject != taskqueue.Subject {
			e.t.Errorf("task subject = %q, want %q", m.Subject, taskqueue.Subject)
		}
		return task
	}
	e.t.Fatalf("no task with message id %s in the queue", taskID)
	return nil
}

// finish plays the copier: RUNNING, then the terminal state, written with the task's
// lock token (fenced), then the lock released.
func (e *env) finish(task *imapcopyv1.SyncTask, state imapcopyv1.SyncState) {
	e.t.Helper()
	ctx := e.ctx()
	src := task.GetSourceEmail()
	if _, err := e.store.Update(ctx, src, task.GetLockToken(), func(st *imapcopyv1.SyncStatus) error {
		st.State = imapcopyv1.SyncState_SYNC_STATE_RUNNING
		st.Message = "copying"
		st.StartedAt = timestamppb.Now()
		return nil
	}); err != nil {
		e.t.Fatalf("copier: running: %v", err)
	}
	if _, err := e.store.Update(ctx, src, task.GetLockToken(), func(st *imapcopyv1.SyncStatus) error {
		st.State = state
		st.Message = "done"
		st.FinishedAt = timestamppb.Now()
		return nil
	}); err != nil {
		e.t.Fatalf("copier: finished: %v", err)
	}
	if err := e.store.Release(ctx, src, task.GetLockToken()); err != nil {
		e.t.Fatalf("copier: release: %v", err)
	}
}

func TestStartSync(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			src, dst := newUser(t), newUser(t)
			srcAcct := src.proto()
			srcAcct.Login = "  " + src.acct.Login + "@Example.TEST " // normalized for the key
			req := &imapcopyv1.StartSyncRequest{
				Source: srcAcct, Destination: dst.proto(),
				Options: &imapcopyv1.SyncOptions{ExcludeFolders: []string{"Trash"}, DryRun: true},
			}
			resp, err := e.client.StartSync(e.ctx(), req)
			if err != nil {
				t.Fatalf("StartSync: %v", err)
			}
			st := resp.GetStatus()
			if resp.GetTaskId() == "" || st.GetTaskId() != resp.GetTaskId() {
				t.Errorf("task ids = %q and %q, want one non-empty id", resp.GetTaskId(), st.GetTaskId())
			}
			if st.GetState() != imapcopyv1.SyncState_SYNC_STATE_QUEUED || st.GetMessage() != "not started yet, please be patient" {
				t.Errorf("status = %v %q, want QUEUED \"not started yet, please be patient\"", st.GetState(), st.GetMessage())
			}
			if st.GetSourceEmail() != src.email || st.GetDestinationEmail() != dst.email || !st.GetDryRun() {
				t.Errorf("status source, destination, dry run = %q, %q, %v, want %q, %q, true", st.GetSourceEmail(), st.GetDestinationEmail(), st.GetDryRun(), src.email, dst.email)
			}

			// The task is on the queue, its id as message id, its secrets sealed.
			task := e.queuedTask(resp.GetTaskId())
			if task.GetSourceEmail() != src.email || task.GetLockToken() == "" {
				t.Errorf("task source, lock token = %q, %q, want %q and a token", task.GetSourceEmail(), task.GetLockToken(), src.email)
			}
			if s := task.GetSource(); s.GetHost() != src.acct.Host || int(s.GetPort()) != src.acct.Port ||
				s.GetSecurity() != imapcopyv1.Security_SECURITY_TLS || s.GetProvider() != "other" || s.GetLogin() != strings.TrimSpace(srcAcct.Login) {
				t.Errorf("task source endpoint = %v, want the source's server and login", s)
			}
			if task.GetOptions().GetExcludeFolders()[0] != "Trash" || !task.GetOptions().GetDryRun() {
				t.Errorf("task options = %v, want the request's", task.GetOptions())
			}
			secrets, err := e.keyring.Open(task)
			if err != nil {
				t.Fatalf("open sealed secrets: %v", err)
			}
			if secrets.GetSourcePassword() != src.acct.Password || secrets.GetDestinationPassword() != dst.acct.Password {
				t.Errorf("sealed secrets do not hold the two passwords")
			}

			// The status is readable by the normalized address, and by any spelling.
			for _, addr := range []string{src.email, " " + src.acct.Login + "@EXAMPLE.test"} {
				got, err := e.client.GetSyncStatus(e.ctx(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: addr})
				if err != nil || got.GetStatus().GetTaskId() != resp.GetTaskId() || got.GetStatus().GetState() != imapcopyv1.SyncState_SYNC_STATE_QUEUED {
					t.Errorf("GetSyncStatus(%q) = %v, %v, want the queued task", addr, got, err)
				}
			}

			// A second start while queued: AlreadyExists, nothing queued.
			_, err = e.client.StartSync(e.ctx(), req)
			if status.Code(err) != codes.AlreadyExists || status.Convert(err).Message() != "a sync task for this account already exists" {
				t.Errorf("second StartSync = %v, want AlreadyExists \"a sync task for this account already exists\"", err)
			}
			if n := len(e.tasks()); n != 1 {
				t.Errorf("tasks queued = %d, want 1", n)
			}

			// The copier ends the task; a new start is then accepted (a delta sync).
			e.finish(task, imapcopyv1.SyncState_SYNC_STATE_COMPLETED)
			again, err := e.client.StartSync(e.ctx(), req)
			if err != nil {
				t.Fatalf("StartSync after the end: %v", err)
			}
			if again.GetTaskId() == resp.GetTaskId() {
				t.Errorf("StartSync after the end reused task id %s", again.GetTaskId())
			}
			if got := e.queuedTask(again.GetTaskId()); got.GetLockToken() == task.GetLockToken() {
				t.Errorf("new task has the old lock token")
			}
			if err := e.store.Put(e.ctx(), src.email, task.GetLockToken(), st); !errors.Is(err, syncstatus.ErrNotHolder) {
				t.Errorf("status write with the old task's token = %v, want ErrNotHolder", err)
			}
		})
	}
}

func TestStartSyncFailedLogin(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			src, dst := newUser(t), newUser(t)
			for _, tt := range []struct {
				name     string
				req      *imapcopyv1.StartSyncRequest
				account  string
				reason   string
				contains string
			}{
				{"wrong source password", &imapcopyv1.StartSyncRequest{Source: src.withPassword("wrong"), Destination: dst.proto()}, "source", "TEST_FAILURE_AUTH_FAILED", "source account test failed: the server refused the login or password"},
				{"wrong destination password", &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.withPassword("wrong")}, "destination", "TEST_FAILURE_AUTH_FAILED", "destination account test failed"},
			} {
				_, err := e.client.StartSync(e.ctx(), tt.req)
				if status.Code(err) != codes.FailedPrecondition {
					t.Errorf("%s: StartSync = %v, want FailedPrecondition", tt.name, err)
					continue
				}
				if msg := status.Convert(err).Message(); !contains(msg, tt.contains) {
					t.Errorf("%s: message %q, want it to contain %q", tt.name, msg, tt.contains)
				}
				if info := errorInfo(err); info.GetReason() != tt.reason || info.GetMetadata()["account"] != tt.account {
					t.Errorf("%s: ErrorInfo = %v, want reason %s for the %s", tt.name, info, tt.reason, tt.account)
				}
			}
			// Nothing was recorded or queued, and the lock is free.
			if _, err := e.client.GetSyncStatus(e.ctx(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: src.email}); status.Code(err) != codes.NotFound {
				t.Errorf("GetSyncStatus after failed starts = %v, want NotFound", err)
			}
			if n := len(e.tasks()); n != 0 {
				t.Errorf("tasks queued = %d, want 0", n)
			}
			if _, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()}); err != nil {
				t.Errorf("StartSync with the right passwords: %v", err)
			}
		})
	}
}

func TestStartSyncInvalid(t *testing.T) {
	e := newEnv(t, "redis")
	src, dst := newUser(t), newUser(t)
	tests := []struct {
		name string
		req  *imapcopyv1.StartSyncRequest
		want string
	}{
		{"no source", &imapcopyv1.StartSyncRequest{Destination: dst.proto()}, "source: missing"},
		{"no destination", &imapcopyv1.StartSyncRequest{Source: src.proto()}, "destination: missing"},
		{"same account", &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: src.proto()}, "destination: the same account as the source"},
		{"bad option", &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto(), Options: &imapcopyv1.SyncOptions{IncludeFolders: []string{""}}}, "options.include_folders[0]: empty"},
		{"source login", &imapcopyv1.StartSyncRequest{Source: func() *imapcopyv1.Account { a := src.proto(); a.Login = src.acct.Login; return a }(), Destination: dst.proto()}, "source.login: not an email address: expected user@domain"},
		{"destination port", &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: func() *imapcopyv1.Account { a := dst.proto(); a.Port = 0; return a }()}, "destination.port: required"},
	}
	for _, tt := range tests {
		_, err := e.client.StartSync(e.ctx(), tt.req)
		if status.Code(err) != codes.InvalidArgument || !contains(status.Convert(err).Message(), tt.want) {
			t.Errorf("%s: StartSync = %v, want InvalidArgument containing %q", tt.name, err, tt.want)
		}
	}
}

// With NATS down, a start is answered Unavailable and leaves the lock free. With the
// Redis store the status says why; with the KV store (on the same NATS) the lock
// cannot even be taken.
func TestStartSyncQueueDown(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind, withOptions(func(o *syncapi.Options) {
				o.PublishTimeout = 2 * time.Second
				o.StoreTimeout = 2 * time.Second
			}))
			src, dst := newUser(t), newUser(t)
			req := &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()}
			e.nats.Shutdown()
			_, err := e.client.StartSync(e.ctx(), req)
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("StartSync with NATS down = %v, want Unavailable", err)
			}
			if kind == "redis" {
				got, err := e.client.GetSyncStatus(e.ctx(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: src.email})
				if err != nil || got.GetStatus().GetState() != imapcopyv1.SyncState_SYNC_STATE_FAILED {
					t.Errorf("GetSyncStatus after a failed publish = %v, %v, want FAILED", got, err)
				}
			}
			e.nats.Restart(t)
			waitFor(t, "a start after NATS is back", func() error {
				_, err := e.client.StartSync(e.ctx(), req)
				return err
			})
		})
	}
}

func TestGetSyncStatus(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			_, err := e.client.GetSyncStatus(e.ctx(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: "nobody@example.test"})
			if status.Code(err) != codes.NotFound {
				t.Errorf("GetSyncStatus(unknown) = %v, want NotFound", err)
			}
			for _, bad := range []string{"", "nobody", "a@b@c", "x@example.test\r\n"} {
				_, err := e.client.GetSyncStatus(e.ctx(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: bad})
				if status.Code(err) != codes.InvalidArgument || !contains(err.Error(), "source_email") {
					t.Errorf("GetSyncStatus(%q) = %v, want InvalidArgument naming source_email", bad, err)
				}
			}
		})
	}
}

func TestWatchSyncStatus(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			src, dst := newUser(t), newUser(t)
			resp, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()})
			if err != nil {
				t.Fatalf("StartSync: %v", err)
			}
			stream, err := e.client.WatchSyncStatus(e.ctx(), &imapcopyv1.WatchSyncStatusRequest{SourceEmail: src.email})
			if err != nil {
				t.Fatalf("WatchSyncStatus: %v", err)
			}
			first, err := stream.Recv()
			if err != nil || first.GetStatus().GetState() != imapcopyv1.SyncState_SYNC_STATE_QUEUED {
				t.Fatalf("first watched status = %v, %v, want QUEUED", first, err)
			}
			task := e.queuedTask(resp.GetTaskId())
			e.finish(task, imapcopyv1.SyncState_SYNC_STATE_COMPLETED_WITH_ERRORS)
			var states []imapcopyv1.SyncState
			for {
				m, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("Recv: %v", err)
				}
				states = append(states, m.GetStatus().GetState())
			}
			if len(states) == 0 || states[len(states)-1] != imapcopyv1.SyncState_SYNC_STATE_COMPLETED_WITH_ERRORS {
				t.Errorf("watched states = %v, want them to end with COMPLETED_WITH_ERRORS", states)
			}

			// Unknown address: NotFound.
			stream, err = e.client.WatchSyncStatus(e.ctx(), &imapcopyv1.WatchSyncStatusRequest{SourceEmail: "nobody@example.test"})
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.NotFound {
				t.Errorf("WatchSyncStatus(unknown) = %v, want NotFound", err)
			}
		})
	}
}

func TestCancelSync(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			src, dst := newUser(t), newUser(t)
			resp, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()})
			if err != nil {
				t.Fatalf("StartSync: %v", err)
			}
			got, err := e.client.CancelSync(e.ctx(), &imapcopyv1.CancelSyncRequest{SourceEmail: src.email})
			if err != nil {
				t.Fatalf("CancelSync: %v", err)
			}
			if got.GetStatus().GetTaskId() != resp.GetTaskId() || !contains(got.GetStatus().GetMessage(), "cancel requested") {
				t.Errorf("CancelSync = %v, want the task's status saying the cancel is requested", got.GetStatus())
			}
			ok, err := e.store.CancelRequested(e.ctx(), src.email, resp.GetTaskId())
			if err != nil || !ok {
				t.Errorf("CancelRequested = %v, %v, want true", ok, err)
			}

			// A finished sync is left as it is.
			e.finish(e.queuedTask(resp.GetTaskId()), imapcopyv1.SyncState_SYNC_STATE_CANCELLED)
			got, err = e.client.CancelSync(e.ctx(), &imapcopyv1.CancelSyncRequest{SourceEmail: src.email})
			if err != nil || got.GetStatus().GetState() != imapcopyv1.SyncState_SYNC_STATE_CANCELLED {
				t.Errorf("CancelSync after the end = %v, %v, want the CANCELLED status", got, err)
			}

			// A new task is not cancelled by the old request.
			again, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()})
			if err != nil {
				t.Fatalf("StartSync again: %v", err)
			}
			if ok, err := e.store.CancelRequested(e.ctx(), src.email, again.GetTaskId()); err != nil || ok {
				t.Errorf("CancelRequested(new task) = %v, %v, want false", ok, err)
			}

			if _, err := e.client.CancelSync(e.ctx(), &imapcopyv1.CancelSyncRequest{SourceEmail: "nobody@example.test"}); status.Code(err) != codes.NotFound {
				t.Errorf("CancelSync(unknown) = %v, want NotFound", err)
			}
			if _, err := e.client.CancelSync(e.ctx(), &imapcopyv1.CancelSyncRequest{SourceEmail: "nobody"}); status.Code(err) != codes.InvalidArgument {
				t.Errorf("CancelSync(nobody) = %v, want InvalidArgument", err)
			}
		})
	}
}

// A copier writes the final status before it releases the lock: a start made in
// that moment, by a caller who saw the sync finished, is accepted once the lock goes.
func TestStartSyncWhileCopierReleases(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			src, dst := newUser(t), newUser(t)
			req := &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()}
			resp, err := e.client.StartSync(e.ctx(), req)
			if err != nil {
				t.Fatalf("StartSync: %v", err)
			}
			task := e.queuedTask(resp.GetTaskId())
			if _, err := e.store.Update(e.ctx(), task.GetSourceEmail(), task.GetLockToken(), func(st *imapcopyv1.SyncStatus) error {
				st.State = imapcopyv1.SyncState_SYNC_STATE_COMPLETED
				return nil
			}); err != nil {
				t.Fatalf("copier: final status: %v", err)
			}
			released := make(chan error, 1)
			go func() {
				time.Sleep(500 * time.Millisecond)
				released <- e.store.Release(context.Background(), task.GetSourceEmail(), task.GetLockToken())
			}()
			again, err := e.client.StartSync(e.ctx(), req)
			if err != nil {
				t.Fatalf("StartSync while the copier releases the lock: %v, want it accepted", err)
			}
			if again.GetTaskId() == resp.GetTaskId() {
				t.Errorf("StartSync reused task id %s", again.GetTaskId())
			}
			if err := <-released; err != nil {
				t.Fatalf("copier: release: %v", err)
			}
		})
	}
}
