package syncworker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/proxytest"
	"imapcopy.dev/pkg/redistest"
	"imapcopy.dev/pkg/servicetest"
	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/taskqueue"
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

// TestRedisDownMidCopy: redis-server stops while a sync is RUNNING and comes back a
// few seconds later on the same port, empty (the test's Redis keeps nothing; the
// deploy's AOF keeps all but the last second). The outage is shorter than the
// copier's lease (three quarters of its lock TTL): the copy goes on meanwhile, its
// progress writes fail and are retried; once Redis is back the copier takes its
// lock back (its key is gone) and writes its status afresh (RUNNING, then its
// progress), the sync ends COMPLETED, and the checker finds every message once.
func TestRedisDownMidCopy(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	// A 16 s ack wait and lock TTL: the copier's lease (12 s from the last lock
	// refresh, which comes every 2 s here) outlives a 3 s outage and the restart.
	e := newEnvWith(t, envOptions{redis: rs, ackWait: 16 * time.Second})
	e.startCopier()
	// About 3 MB at 100 kB/s per connection: the copy outlasts the outage.
	p := newPairAt(t, shared.dot, shared.slash, 22, 100_000)

	first := e.start(p)
	e.waitCopying(p, first.GetTaskId())
	rs.Stop()
	// While Redis is down the api answers UNAVAILABLE, and the copy goes on.
	if _, err := e.api.GetSyncStatus(t.Context(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: p.source}); status.Code(err) != codes.Unavailable {
		t.Errorf("GetSyncStatus with Redis down: %v, want UNAVAILABLE", err)
	}
	time.Sleep(3 * time.Second)
	rs.Restart(t)

	// The status catches up: the copier writes it again, RUNNING, then its end.
	st := e.waitEnd(p, first.GetTaskId())
	if st.GetState() != stateCompleted || st.GetAttempt() != 1 {
		t.Fatalf("final status = %v at attempt %d (%s), want COMPLETED at attempt 1: the copy went on through the outage",
			st.GetState(), st.GetAttempt(), st.GetMessage())
	}
	servicetest.Check(t, p.src, p.dst)
	if n := servicetest.Reports(t, p.dst); n != 1 {
		t.Errorf("reports in the destination INBOX = %d, want 1", n)
	}
	e.lockFree(p.source)
	if logs := e.logs.String(); !strings.Contains(logs, `"msg":"lock_retaken"`) && !strings.Contains(logs, `"msg":"lock_reclaimed"`) {
		t.Errorf("the copier never logged taking its lock back after Redis came back empty")
	}
}

// ackLost is the api's task queue on a NATS connection through a proxy, whose
// Publish makes NATS restart inside the publish's acknowledgement wait, every time
// at the same point: the proxy holds what the server sends to the api, the task is
// published and stored (the stream counts it), NATS restarts (the task survives, on
// file storage), and the proxy cuts the api's connection, the acknowledgement with
// it. The api's publish then fails. held, when set, runs before that failure
// reaches the api (the test lets a copier take the task first).
type ackLost struct {
	e     *env
	proxy *proxytest.Proxy
	pub   *taskqueue.Publisher
	held  func()
}

func newAckLost(e *env) *ackLost {
	t := e.t
	proxy := proxytest.New(t, strings.TrimPrefix(e.nats.ClientURL(), "nats://"))
	nc, err := nats.Connect("nats://"+proxy.Addr(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &ackLost{e: e, proxy: proxy, pub: taskqueue.NewPublisher(js)}
}

func (q *ackLost) Publish(ctx context.Context, task *imapcopyv1.SyncTask) error {
	t := q.e.t
	q.proxy.SetLatency(proxytest.Downstream, time.Hour)
	done := make(chan error, 1)
	go func() { done <- q.pub.Publish(ctx, task) }()
	stream, err := q.e.js.Stream(t.Context(), taskqueue.StreamName)
	if err != nil {
		t.Error(err)
		return err
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := stream.Info(t.Context())
		if err == nil && info.State.Msgs == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the task never reached the stream: %v", err)
			return errors.New("not stored")
		}
	}
	select {
	case err := <-done:
		t.Errorf("publish answered (%v) while the proxy held the acknowledgement", err)
	default:
	}
	q.e.nats.Restart(t)
	q.proxy.CutAll()
	q.proxy.SetLatency(proxytest.Downstream, 0)
	err = <-done
	if err == nil {
		t.Errorf("publish succeeded without its acknowledgement")
		return nil
	}
	if q.held != nil {
		q.held()
	}
	return err
}

// TestNATSRestartDuringStartAck: NATS restarts while StartSync waits for the
// acknowledgement of its publish, the task already stored. Whichever comes first,
// the api's answer or a copier taking the task, the caller never gets an error for
// a task that runs: either UNAVAILABLE, the status FAILED, the lock free and the
// stored task ended by the copier without copying anything; or OK, and the task
// runs to COMPLETED.
func TestNATSRestartDuringStartAck(t *testing.T) {
	t.Parallel()
	opts := func(q **ackLost) envOptions {
		return envOptions{
			publisher:  func(e *env) syncapi.Publisher { *q = newAckLost(e); return *q },
			apiOptions: syncapi.Options{PublishTimeout: 3 * time.Second},
		}
	}

	t.Run("the api answers first", func(t *testing.T) {
		t.Parallel()
		var q *ackLost
		e := newEnvWith(t, opts(&q))
		p := newPair(t, shared.slash, shared.dot, 23)
		resp, err := e.api.StartSync(t.Context(), p.request())
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("StartSync with its acknowledgement lost and no copier: %v (task %s), want UNAVAILABLE", err, resp.GetTaskId())
		}
		st, err := e.store.Get(t.Context(), p.source)
		if err != nil || st.GetState() != stateFailed {
			t.Fatalf("status after the failed start: %v (%v), want FAILED", st, err)
		}
		e.lockFree(p.source)
		// The task is in the stream all the same: a copier ends it without copying.
		c := e.startCopier()
		e.queueEmpty()
		after, err := e.store.Get(t.Context(), p.source)
		if err != nil || after.GetTaskId() != st.GetTaskId() || after.GetState() != stateFailed || after.GetAttempt() != 0 {
			t.Errorf("status once the stored task was delivered: %v (%v), want the same FAILED, never run", after, err)
		}
		if n := c.gauge(t, "imapcopy_copier_messages_copied_total"); n != 0 {
			t.Errorf("messages copied = %v, want 0", n)
		}
		msgs, err := imaptest.ReadFolder(t.Context(), p.dst, "INBOX")
		if err != nil || len(msgs) != 0 {
			t.Errorf("destination INBOX: %d messages (%v), want none: the task must not run", len(msgs), err)
		}
	})

	t.Run("a copier takes the task first", func(t *testing.T) {
		t.Parallel()
		var q *ackLost
		e := newEnvWith(t, opts(&q))
		p := newPair(t, shared.dot, shared.slash, 24)
		e.startCopier()
		q.held = func() { // the copier runs the task before the api hears of the failure
			e.waitStatus(p.source, waitStart, "RUNNING", func(st *imapcopyv1.SyncStatus) bool {
				return st.GetState() == stateRunning || syncstatus.Terminal(st.GetState())
			})
		}
		resp, err := e.api.StartSync(t.Context(), p.request())
		if err != nil {
			t.Fatalf("StartSync whose task a copier runs: %v, want OK", err)
		}
		st := e.waitEnd(p, resp.GetTaskId())
		if st.GetState() != stateCompleted {
			t.Fatalf("final status = %v (%s), want COMPLETED", st.GetState(), st.GetMessage())
		}
		servicetest.Check(t, p.src, p.dst)
		e.lockFree(p.source)
	})
}

// TestRedisDownPastTheLease: Redis stays down longer than the copier's lease, and
// comes back with its data, as the deploy's Redis does (AOF; here an RDB snapshot
// taken at the stop). The fence stops the copy once the lock can no longer be
// renewed (the copy pauses), the lock's key expires meanwhile, the task comes back
// after its ack wait, and once Redis answers a later delivery resumes it: COMPLETED,
// the checker finds every message once.
func TestRedisDownPastTheLease(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	// A 2 s ack wait and lock TTL; a delivery that meets Redis still down retries
	// after 1 s rather than 30 s.
	e := newEnvWith(t, envOptions{redis: rs, retry: time.Second})
	e.startCopier()
	p := newPair(t, shared.slash, shared.slash, 25)

	first := e.start(p)
	e.waitCopying(p, first.GetTaskId())
	if err := rs.Client(t).Save(t.Context()).Err(); err != nil {
		t.Fatalf("SAVE: %v", err)
	}
	rs.Stop()
	time.Sleep(5 * time.Second) // past the lease (1.5 s) and the ack wait (2 s)
	rs.Restart(t)

	st := e.waitEnd(p, first.GetTaskId())
	if st.GetState() != stateCompleted || st.GetAttempt() < 2 {
		t.Fatalf("final status = %v at attempt %d (%s), want COMPLETED by a later delivery",
			st.GetState(), st.GetAttempt(), st.GetMessage())
	}
	t.Logf("COMPLETED at attempt %d", st.GetAttempt())
	servicetest.Check(t, p.src, p.dst)
	e.lockFree(p.source)
}

// The team of the caller tests: each token names its caller; ops is an admin, who
// sees every sync (the env's own client, for the helpers that wait on statuses).
const (
	aliceToken = "alice-token-0123456789abcdef"
	bobToken   = "bob-token-0123456789abcdef00"
	opsToken   = "ops-token-0123456789abcdef00"
	team       = "alice " + aliceToken + "\nbob " + bobToken + "\nops " + opsToken + " admin\n"
)

// TestRedisEmptiedKeepsTheCaller: Redis loses every key (FLUSHALL, as a failover to
// an empty replica or a restart without its data would) while alice's sync runs,
// the copier's lease holding. The copier takes its lock back and writes the status
// afresh from the task, which carries the caller: the status names alice again, bob
// gets NOT_FOUND for it (read, watch, cancel) as for a sync that does not exist,
// alice reads it, and the sync ends COMPLETED with every message once. Before the
// task carried its caller, the afresh status named nobody and anyone read and
// cancelled it (issue 14, finding 5).
func TestRedisEmptiedKeepsTheCaller(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	// A 16 s ack wait and lock TTL: the lease (12 s) easily outlives the flush.
	e := newEnvWith(t, envOptions{redis: rs, ackWait: 16 * time.Second, tokens: team, apiToken: opsToken})
	e.startCopier()
	p := newPairAt(t, shared.slash, shared.dot, 26, 100_000)
	alice, bob := e.as(aliceToken), e.as(bobToken)
	ctx := t.Context()

	resp, err := alice.StartSync(ctx, p.request())
	if err != nil {
		t.Fatalf("StartSync as alice: %v", err)
	}
	task := resp.GetTaskId()
	e.waitCopying(p, task)
	if err := rs.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatalf("FLUSHALL: %v", err)
	}
	// Every status read from now on was written afresh by the copier.
	e.waitStatus(p.source, waitStart, "written again", func(st *imapcopyv1.SyncStatus) bool { return st.GetTaskId() == task })
	st, err := e.store.Get(ctx, p.source)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetCaller() != "alice" {
		t.Errorf("status written afresh: caller %q, want alice", st.GetCaller())
	}
	if was := resp.GetStatus(); st.GetDestinationEmail() != was.GetDestinationEmail() || !st.GetCreatedAt().AsTime().Equal(was.GetCreatedAt().AsTime()) {
		t.Errorf("status written afresh: destination %q, created %v; want %q, %v (as recorded at the start)",
			st.GetDestinationEmail(), st.GetCreatedAt().AsTime(), was.GetDestinationEmail(), was.GetCreatedAt().AsTime())
	}

	get := &imapcopyv1.GetSyncStatusRequest{SourceEmail: p.source}
	if got, err := bob.GetSyncStatus(ctx, get); status.Code(err) != codes.NotFound {
		t.Errorf("GetSyncStatus of alice's sync as bob = %v, %v; want NOT_FOUND", got.GetStatus().GetTaskId(), err)
	}
	stream, err := bob.WatchSyncStatus(ctx, &imapcopyv1.WatchSyncStatusRequest{SourceEmail: p.source})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("WatchSyncStatus of alice's sync as bob = %v, want NOT_FOUND", err)
	}
	if _, err := bob.CancelSync(ctx, &imapcopyv1.CancelSyncRequest{SourceEmail: p.source}); status.Code(err) != codes.NotFound {
		t.Errorf("CancelSync of alice's sync as bob = %v, want NOT_FOUND", err)
	}
	if got, err := alice.GetSyncStatus(ctx, get); err != nil || got.GetStatus().GetTaskId() != task {
		t.Errorf("GetSyncStatus as alice = %v, %v; want her sync %s", got.GetStatus().GetTaskId(), err, task)
	}

	end := e.waitEnd(p, task)
	if end.GetState() != stateCompleted || end.GetCaller() != "alice" {
		t.Fatalf("final status = %v of %q (%s), want COMPLETED of alice", end.GetState(), end.GetCaller(), end.GetMessage())
	}
	servicetest.Check(t, p.src, p.dst)
	e.lockFree(p.source)
}

// waitLog waits until a line the in-process api or copiers logged satisfies match,
// at most d, and returns it.
func (e *env) waitLog(d time.Duration, what string, match func(line string) bool) string {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		for l := range strings.SplitSeq(e.logs.String(), "\n") {
			if match(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no log line %s within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// taskEnded matches the copier's task_ended line of task with outcome.
func taskEnded(task, outcome string) func(string) bool {
	return func(l string) bool {
		return strings.Contains(l, `"msg":"task_ended"`) && strings.Contains(l, `"task_id":"`+task+`"`) &&
			strings.Contains(l, `"outcome":"`+outcome+`"`)
	}
}

// TestRedisDownPastTheLeaseBackEmpty: Redis stays down longer than the copier's
// lease and comes back empty (no persistence, or a failover to a replica that had
// nothing). The chosen behaviour: the fence stops the copy; the task comes back
// after its ack wait, finds no status naming it, and is dropped as unrecorded (a
// task no status names is never run: the api writes the status before it
// publishes). So: no copy runs again for it, the queue is empty, the lock is free,
// GetSyncStatus says there is no sync and to start one; a new start copies only
// what the first one had not, and every message is there once.
func TestRedisDownPastTheLeaseBackEmpty(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	// A 2 s ack wait and lock TTL (a 1.5 s lease); a delivery that meets Redis
	// still down retries after 1 s.
	e := newEnvWith(t, envOptions{redis: rs, retry: time.Second})
	c := e.startCopier()
	p := newPair(t, shared.slash, shared.dot, 27)
	ctx := t.Context()

	first := e.start(p)
	task := first.GetTaskId()
	e.waitCopying(p, task)
	rs.Stop()
	// The lease runs out: the fence stops the copy, and the delivery ends stale.
	e.waitLog(waitStart, "of the fenced delivery", taskEnded(task, "stale"))
	rs.Restart(t) // empty
	// The next delivery finds no status: dropped as unrecorded.
	drop := e.waitLog(waitEnd, "of the dropped task", taskEnded(task, "superseded"))
	if !strings.Contains(drop, "no record of this task") {
		t.Errorf("the task was dropped for another reason: %s", drop)
	}
	e.queueEmpty()
	if n := c.gauge(t, "imapcopy_copier_tasks_in_flight"); n != 0 {
		t.Errorf("tasks in flight after the drop = %v, want 0", n)
	}
	before, err := imaptest.TakeSnapshot(ctx, p.dst)
	if err != nil {
		t.Fatal(err)
	}
	copied := c.gauge(t, "imapcopy_copier_messages_copied_total")

	_, err = e.api.GetSyncStatus(ctx, &imapcopyv1.GetSyncStatusRequest{SourceEmail: p.source})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), "start one") {
		t.Errorf("GetSyncStatus after the drop = %v, want NOT_FOUND saying to start one", err)
	}
	e.lockFree(p.source)
	// Only the first delivery ever ran the copy.
	running, ends := 0, []string{}
	for l := range strings.SplitSeq(e.logs.String(), "\n") {
		if !strings.Contains(l, `"task_id":"`+task+`"`) {
			continue
		}
		if strings.Contains(l, `"msg":"task_running"`) {
			running++
		}
		if _, rest, ok := strings.Cut(l, `"outcome":"`); ok && strings.Contains(l, `"msg":"task_ended"`) {
			outcome, _, _ := strings.Cut(rest, `"`)
			ends = append(ends, outcome)
		}
	}
	t.Logf("deliveries of the first task ended: %s", strings.Join(ends, ", "))
	if n := running; n != 1 {
		t.Errorf("deliveries of the dropped task that ran the copy = %d, want 1", n)
	}
	after, err := imaptest.TakeSnapshot(ctx, p.dst)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range after.Folders {
		if b := before.Folders[name]; b.UIDNext != f.UIDNext || len(b.Messages) != len(f.Messages) {
			t.Errorf("destination %q changed after the drop: %d messages, UIDNEXT %d; were %d, %d",
				name, len(f.Messages), f.UIDNext, len(b.Messages), b.UIDNext)
		}
	}
	if n := c.gauge(t, "imapcopy_copier_messages_copied_total"); n != copied {
		t.Errorf("messages copied after the drop = %v, want none (%v before)", n-copied, copied)
	}
	t.Logf("the first copy appended %v of %d messages before the fence stopped it", copied, p.count)

	// A new start copies what is missing.
	again := e.start(p)
	st := e.waitEnd(p, again.GetTaskId())
	tot := st.GetTotal()
	if st.GetState() != stateCompleted || tot.GetMessagesPresent() == 0 || int(tot.GetMessagesCopied()+tot.GetMessagesPresent()) != p.count {
		t.Fatalf("new sync = %v (%s), %d copied + %d already there; want COMPLETED, %d in all, some already there",
			st.GetState(), st.GetMessage(), tot.GetMessagesCopied(), tot.GetMessagesPresent(), p.count)
	}
	servicetest.Check(t, p.src, p.dst)
	e.lockFree(p.source)
}
