package syncworker_test

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/proxytest"
	"imapcopy.dev/pkg/servicetest"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/taskqueue"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

const (
	stateQueued    = imapcopyv1.SyncState_SYNC_STATE_QUEUED
	stateRunning   = imapcopyv1.SyncState_SYNC_STATE_RUNNING
	stateCompleted = imapcopyv1.SyncState_SYNC_STATE_COMPLETED
	stateFailed    = imapcopyv1.SyncState_SYNC_STATE_FAILED
	stateCancelled = imapcopyv1.SyncState_SYNC_STATE_CANCELLED
)

// Bounds of the waits: generous, since the machine is shared; they bound a hang,
// they do not measure speed.
const (
	waitStart = 60 * time.Second
	waitEnd   = 120 * time.Second
)

// pair is a source filled with a generated mailbox and an empty destination, the
// source reached through a bandwidth-limited proxy so that a copy lasts seconds:
// long enough to act on it mid-copy.
type pair struct {
	src, dst imapconn.Account // direct, for loading and checking
	source   string           // the source address the api keys the sync by
	proxy    *proxytest.Proxy
	count    int
}

func newPair(t *testing.T, from, to *imaptest.Dovecot, seed int64) *pair {
	t.Helper()
	return newPairAt(t, from, to, seed, 250_000)
}

// newPairAt is newPair with the source proxy's downstream bandwidth per connection.
func newPairAt(t *testing.T, from, to *imaptest.Dovecot, seed int64, bytesPerSecond int64) *pair {
	t.Helper()
	p := &pair{src: from.AddUser(t), dst: to.AddUser(t)}
	mb := imaptest.Generate(seed, imaptest.Spec{
		Count:   300,
		Folders: 4,
		Sizes:   []imaptest.SizeClass{{Weight: 1, Min: 4_000, Max: 16_000}},
	})
	if err := imaptest.Load(t.Context(), p.src, mb); err != nil {
		t.Fatalf("load the source: %v", err)
	}
	p.count = mb.Count()
	// About 3 MB through two connections at 250 kB/s each: about 6 s of copying.
	p.proxy = proxytest.New(t, from.TLSAddr, proxytest.WithDirBandwidth(proxytest.Downstream, bytesPerSecond))
	p.source = p.src.Login + "@source.test"
	return p
}

func (p *pair) request() *imapcopyv1.StartSyncRequest {
	via := p.src
	via.Host, via.Port = p.proxy.Host(), p.proxy.Port()
	return &imapcopyv1.StartSyncRequest{
		Source:      servicetest.Account(via, p.source),
		Destination: servicetest.Account(p.dst, p.dst.Login+"@destination.test"),
		Options:     &imapcopyv1.SyncOptions{MaxConnections: 2},
	}
}

func (e *env) start(p *pair) *imapcopyv1.StartSyncResponse {
	e.t.Helper()
	resp, err := e.api.StartSync(e.t.Context(), p.request())
	if err != nil {
		e.t.Fatalf("StartSync: %v", err)
	}
	if got := resp.GetStatus().GetState(); got != stateQueued {
		e.t.Fatalf("StartSync status = %v, want QUEUED", got)
	}
	return resp
}

// waitCopying waits until the copy of task runs and has copied some messages.
func (e *env) waitCopying(p *pair, task string) *imapcopyv1.SyncStatus {
	e.t.Helper()
	st := e.waitStatus(p.source, waitStart, "RUNNING with messages copied", func(st *imapcopyv1.SyncStatus) bool {
		return st.GetTaskId() == task && (syncstatus.Terminal(st.GetState()) ||
			st.GetState() == stateRunning && st.GetTotal().GetMessagesCopied() > 0)
	})
	if st.GetState() != stateRunning {
		e.t.Fatalf("status = %v before any progress was seen, want RUNNING with progress (the copy is too fast for this test)", st.GetState())
	}
	return st
}

func (e *env) waitEnd(p *pair, task string) *imapcopyv1.SyncStatus {
	e.t.Helper()
	return e.waitStatus(p.source, waitEnd, "ended", func(st *imapcopyv1.SyncStatus) bool {
		return st.GetTaskId() == task && syncstatus.Terminal(st.GetState())
	})
}

// lockFree checks that the source's lock is released: another start could take it.
// The final status is written just before the release (writes are fenced by the
// lock), so the lock may lag the status by a moment.
func (e *env) lockFree(source string) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		token, err := e.store.Acquire(e.t.Context(), source, time.Minute)
		if err == nil {
			if err := e.store.Release(e.t.Context(), source, token); err != nil {
				e.t.Fatal(err)
			}
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("Acquire after the end: %v, want the lock released", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSyncEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startCopier()
	p := newPair(t, shared.slash, shared.dot, 1)

	resp := e.start(p)
	running := e.waitCopying(p, resp.GetTaskId())
	if running.GetAttempt() != 1 || running.GetStartedAt() == nil {
		t.Errorf("running status: attempt %d, started_at %v; want attempt 1 and a start time", running.GetAttempt(), running.GetStartedAt())
	}

	_, err := e.api.StartSync(t.Context(), p.request())
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("second StartSync during the run: %v, want AlreadyExists", err)
	}

	st := e.waitEnd(p, resp.GetTaskId())
	if st.GetState() != stateCompleted {
		t.Fatalf("final status = %v (%s), want COMPLETED", st.GetState(), st.GetMessage())
	}
	if got := st.GetTotal().GetMessagesCopied(); got != uint64(p.count) {
		t.Errorf("messages copied = %d, want %d", got, p.count)
	}
	if st.GetFinishedAt() == nil || st.GetAttempt() != 1 {
		t.Errorf("final status: finished_at %v, attempt %d; want a time and attempt 1", st.GetFinishedAt(), st.GetAttempt())
	}
	servicetest.Check(t, p.src, p.dst)
	if n := servicetest.Reports(t, p.dst); n != 1 {
		t.Errorf("reports in the destination INBOX = %d, want 1", n)
	}

	// A new sync after the end copies only what is new.
	var extra []imaptest.Message
	for i := range 3 {
		extra = append(extra, imaptest.Message{
			Raw: fmt.Appendf(nil, "From: a@example.com\r\nTo: b@example.com\r\nSubject: new %d\r\nMessage-ID: <new-%d@syncworker.test>\r\n"+
				"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nnew message %d\r\n", i, i, i),
			InternalDate: time.Date(2026, 3, 2, 10, 0, i, 0, time.UTC),
		})
	}
	if err := imaptest.Append(t.Context(), p.src, "INBOX", extra...); err != nil {
		t.Fatal(err)
	}
	resp2 := e.start(p)
	st = e.waitEnd(p, resp2.GetTaskId())
	if st.GetState() != stateCompleted {
		t.Fatalf("delta sync: final status = %v (%s), want COMPLETED", st.GetState(), st.GetMessage())
	}
	if got, present := st.GetTotal().GetMessagesCopied(), st.GetTotal().GetMessagesPresent(); got != 3 || present != uint64(p.count) {
		t.Errorf("delta sync: copied %d, present %d; want 3 and %d", got, present, p.count)
	}
	servicetest.Check(t, p.src, p.dst)
	if n := servicetest.Reports(t, p.dst); n != 2 {
		t.Errorf("reports in the destination INBOX = %d, want 2 (one per sync)", n)
	}
	e.lockFree(p.source)
	// The delta sync skipped the folders the first one proved complete and nobody
	// touched since (its copy_state, carried over by the api), not INBOX, which has new
	// messages; the api shows no copy_state.
	unchanged := 0
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"folder_unchanged"`) && strings.Contains(line, resp2.GetTaskId()) {
			unchanged++
			if strings.Contains(line, `"folder":"INBOX"`) {
				t.Errorf("the delta sync skipped INBOX, which has new messages: %s", line)
			}
		}
	}
	if unchanged == 0 {
		t.Errorf("the delta sync skipped no folder: the first sync's copy_state did not reach it")
	}
	if got, err := e.api.GetSyncStatus(t.Context(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: p.source}); err != nil || len(got.GetStatus().GetCopyState()) > 0 {
		t.Errorf("GetSyncStatus = %d bytes of copy_state, %v; want none shown", len(got.GetStatus().GetCopyState()), err)
	}
	if raw, err := e.store.Get(t.Context(), p.source); err != nil || len(raw.GetCopyState()) == 0 {
		t.Errorf("the stored status keeps no copy_state (%v)", err)
	}

	logs := e.logs.String()
	for _, secret := range []string{p.src.Password, p.dst.Password} {
		if strings.Contains(logs, secret) {
			t.Errorf("a password appears in the logs")
		}
	}
	if !strings.Contains(logs, `"task_id":"`+resp.GetTaskId()+`"`) {
		t.Errorf("the copier's logs do not carry the task id")
	}
}

func TestCopierKilledMidCopy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := newPair(t, shared.dot, shared.slash, 2)
	a := e.startChild("a")

	resp := e.start(p)
	e.waitCopying(p, resp.GetTaskId())
	if err := a.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.Wait(t, 10*time.Second)

	e.startChild("b")
	st := e.waitEnd(p, resp.GetTaskId())
	if st.GetState() != stateCompleted {
		t.Fatalf("final status = %v (%s), want COMPLETED", st.GetState(), st.GetMessage())
	}
	if st.GetAttempt() < 2 {
		t.Errorf("final attempt = %d, want a second delivery to have finished the task", st.GetAttempt())
	}
	servicetest.Check(t, p.src, p.dst)
	if n := servicetest.Reports(t, p.dst); n != 1 {
		t.Errorf("reports in the destination INBOX = %d, want 1", n)
	}
	e.lockFree(p.source)
}

func TestCopierSIGTERMHandsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := newPair(t, shared.dot, shared.dot, 3)
	a := e.startChild("a")

	resp := e.start(p)
	e.waitCopying(p, resp.GetTaskId())
	if err := a.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(t, 30*time.Second); err != nil {
		t.Errorf("copier after SIGTERM: %v, want a clean exit\n%s", err, servicetest.Tail(a.Logs(), 20))
	}
	st, err := e.store.Get(t.Context(), p.source)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetState() != stateQueued {
		t.Errorf("status after SIGTERM = %v (%s), want QUEUED: handed back", st.GetState(), st.GetMessage())
	}

	e.startChild("b")
	st = e.waitEnd(p, resp.GetTaskId())
	if st.GetState() != stateCompleted {
		t.Fatalf("final status = %v (%s), want COMPLETED", st.GetState(), st.GetMessage())
	}
	if st.GetAttempt() != 2 {
		t.Errorf("final attempt = %d, want 2", st.GetAttempt())
	}
	servicetest.Check(t, p.src, p.dst)
	e.lockFree(p.source)
}

func TestCancelDuringCopy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.startCopier()
	p := newPair(t, shared.slash, shared.slash, 4)

	resp := e.start(p)
	e.waitCopying(p, resp.GetTaskId())
	if _, err := e.api.CancelSync(t.Context(), &imapcopyv1.CancelSyncRequest{SourceEmail: p.source}); err != nil {
		t.Fatalf("CancelSync: %v", err)
	}
	st := e.waitStatus(p.source, 30*time.Second, "ended", func(st *imapcopyv1.SyncStatus) bool {
		return syncstatus.Terminal(st.GetState())
	})
	if st.GetState() != stateCancelled {
		t.Fatalf("status after CancelSync = %v (%s), want CANCELLED", st.GetState(), st.GetMessage())
	}
	e.lockFree(p.source)
	// The copier let go: no task in flight, no connection to the source left.
	deadline := time.Now().Add(10 * time.Second)
	for c.gauge(t, "imapcopy_copier_tasks_in_flight") != 0 || p.proxy.Stats().Active != 0 {
		if time.Now().After(deadline) {
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("10s after CANCELLED: %v tasks in flight, %d source connections open; want none",
				c.gauge(t, "imapcopy_copier_tasks_in_flight"), p.proxy.Stats().Active)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.gauge(t, "imapcopy_copier_messages_copied_total"); got == 0 || got >= float64(p.count) {
		t.Errorf("messages copied before the cancel = %v, want some but not all %d", got, p.count)
	}
}

// A task whose source password stopped working after the api tested it fails at
// once, with the reason, and is not retried.
func TestWrongSourcePasswordAtCopyTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.startCopier()
	src, dst := shared.dot.AddUser(t), shared.slash.AddUser(t)
	source := src.Login + "@source.test"
	// The source through a proxy that counts the connections: one refused login, not
	// a retry storm.
	sp := proxytest.New(t, shared.dot.TLSAddr)
	src.Host, src.Port = sp.Host(), sp.Port()

	// What the api does, with a password that the source refuses.
	ctx := t.Context()
	token, err := e.store.Acquire(ctx, source, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const taskID = "wrong-password-task"
	if err := e.store.Put(ctx, source, token, &imapcopyv1.SyncStatus{TaskId: taskID, SourceEmail: source, State: stateQueued}); err != nil {
		t.Fatal(err)
	}
	endpoint := func(a imapconn.Account) *imapcopyv1.Endpoint {
		return &imapcopyv1.Endpoint{Provider: "other", Login: a.Login, Host: a.Host, Port: uint32(a.Port), Security: imapcopyv1.Security_SECURITY_TLS}
	}
	task := &imapcopyv1.SyncTask{
		TaskId: taskID, SourceEmail: source, Source: endpoint(src), Destination: endpoint(dst), LockToken: token,
	}
	if task.Sealed, err = e.keys.Seal(task, &imapcopyv1.TaskSecrets{SourcePassword: "not-" + src.Password, DestinationPassword: dst.Password}); err != nil {
		t.Fatal(err)
	}
	if err := taskqueue.NewPublisher(e.js).Publish(ctx, task); err != nil {
		t.Fatal(err)
	}

	st := e.waitStatus(source, waitEnd, "ended", func(st *imapcopyv1.SyncStatus) bool { return syncstatus.Terminal(st.GetState()) })
	if st.GetState() != stateFailed {
		t.Fatalf("status = %v (%s), want FAILED", st.GetState(), st.GetMessage())
	}
	if r := st.GetFailureReason(); !strings.Contains(r, "source") || !strings.Contains(r, "password") {
		t.Errorf("failure reason = %q, want it to name the source and the password", r)
	}
	if st.GetAttempt() != 1 {
		t.Errorf("attempt = %d, want 1: a refused login is not retried", st.GetAttempt())
	}
	if n := sp.Stats().Accepted; n != 1 {
		t.Errorf("the source saw %d connections, want 1: one refused login, then stop", n)
	}
	e.lockFree(source)
	// The task left the queue (terminated, not waiting for a retry).
	stream, err := e.js.Stream(ctx, taskqueue.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks left in the stream = %d, want 0", info.State.Msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.gauge(t, "imapcopy_copier_tasks_in_flight"); got != 0 {
		t.Errorf("tasks in flight = %v, want 0", got)
	}
}

// Messages the destination refuses are listed in the status, the rest is copied,
// and the sync ends COMPLETED_WITH_ERRORS.
func TestRefusedMessagesCompleteWithErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startCopier()
	src, dst := shared.slash.AddUser(t), shared.dot.AddUser(t, imaptest.WithQuota(1<<20))
	mb := imaptest.Generate(5, imaptest.Spec{Count: 30, Folders: -1, Sizes: []imaptest.SizeClass{{Weight: 1, Min: 1_000, Max: 4_000}}})
	if err := imaptest.Load(t.Context(), src, mb); err != nil {
		t.Fatal(err)
	}
	big := fmt.Appendf(nil, "From: a@example.com\r\nTo: b@example.com\r\nSubject: too big\r\nMessage-ID: <big@syncworker.test>\r\n"+
		"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\n%s\r\n", strings.Repeat(strings.Repeat("x", 98)+"\r\n", 15_000))
	if _, err := imaptest.AppendRaw(t.Context(), src, "INBOX", big, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	source := src.Login + "@source.test"
	resp, err := e.api.StartSync(t.Context(), &imapcopyv1.StartSyncRequest{
		Source:      servicetest.Account(src, source),
		Destination: servicetest.Account(dst, dst.Login+"@destination.test"),
		// The source does not fit (the big message is over the quota): the api's
		// pre-flight check would refuse the start; go on, as an operator may.
		Options: &imapcopyv1.SyncOptions{IgnorePlan: true},
	})
	if err != nil {
		t.Fatalf("StartSync: %v", err)
	}
	st := e.waitStatus(source, waitEnd, "ended", func(st *imapcopyv1.SyncStatus) bool {
		return st.GetTaskId() == resp.GetTaskId() && syncstatus.Terminal(st.GetState())
	})
	if st.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED_WITH_ERRORS {
		t.Fatalf("status = %v (%s), want COMPLETED_WITH_ERRORS", st.GetState(), st.GetMessage())
	}
	failed := st.GetFailedMessages()
	if len(failed) != 1 || failed[0].GetFolder() != "INBOX" || failed[0].GetSize() != uint64(len(big)) || failed[0].GetReason() == "" {
		t.Errorf("failed messages = %v, want the big INBOX message (%d bytes) with a reason", failed, len(big))
	}
	if got := st.GetTotal().GetMessagesCopied(); got != uint64(mb.Count()) {
		t.Errorf("messages copied = %d, want %d", got, mb.Count())
	}
	res, err := imaptest.Check(t.Context(), src, dst, imaptest.CheckOptions{
		IgnoreDest:   servicetest.IsReport,
		AllowMissing: func(_ string, size int64) bool { return size == int64(len(big)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Errorf("Check: %v", res)
	}
	if n := servicetest.Reports(t, dst); n != 1 {
		t.Errorf("reports = %d, want 1", n)
	}
	e.lockFree(source)
}
