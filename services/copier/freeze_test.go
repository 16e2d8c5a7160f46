package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/natstest"
	"imapcopy.dev/pkg/procmain"
	"imapcopy.dev/pkg/proxytest"
	"imapcopy.dev/pkg/redistest"
	"imapcopy.dev/pkg/servicetest"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/taskseal"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// childWorkerEnv makes the test binary a copier worker (run with the environment),
// so that a test can freeze a real copier process with SIGSTOP.
const childWorkerEnv = "COPIER_TEST_WORKER"

func childWorker() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return procmain.Exit(os.Stderr, "imapcopy-copier", run(ctx, nil, os.Getenv, os.Stdout, os.Stderr))
}

// TestFrozenCopierAppendsNothing: a copier process frozen (SIGSTOP) in the middle of a
// copy, past its delivery's ack wait and its lock's lifetime, while a second copier
// takes the task over and goes on, then thawed (SIGCONT), appends nothing more: the
// copy ends COMPLETED, the checker finds every message exactly once, and the thawed
// copier ends as a stale delivery. Before the
// fence, the thawed copier appended for about a second: 177 and 13 duplicates in two
// runs from outside.
func TestFrozenCopierAppendsNothing(t *testing.T) {
	ns, rs := natstest.Start(t), redistest.Start(t)
	key := taskseal.GenerateKey()
	keyFile := filepath.Join(t.TempDir(), "task.key")
	if err := os.WriteFile(keyFile, taskseal.FormatKeys(key), 0o600); err != nil {
		t.Fatal(err)
	}
	src, dst := slash.AddUser(t), dot.AddUser(t)
	if err := imaptest.Load(t.Context(), src, imaptest.Generate(11, imaptest.Spec{Count: 1500, Folders: -1})); err != nil {
		t.Fatal(err)
	}
	// The destination behind a link with latency, so that the copy is still going when
	// frozen. What the frozen copier had already written drains within milliseconds,
	// well before another copier may take over (the ack wait): this test is about what
	// the copier does once it runs again. (Bytes still in flight when the takeover
	// begins are another matter: see the note on issue 14.)
	slow := proxytest.New(t, fmt.Sprintf("%s:%d", dst.Host, dst.Port), proxytest.WithLatency(30*time.Millisecond))
	env := []string{
		childWorkerEnv + "=1",
		"IMAPCOPY_NATS_URL=" + ns.ClientURL(),
		"IMAPCOPY_REDIS_URL=" + rs.URL(),
		"IMAPCOPY_STORE=redis",
		"IMAPCOPY_TASK_KEY_FILE=" + keyFile,
		"IMAPCOPY_ALLOW_NETWORKS=127.0.0.1",
		"IMAPCOPY_IMAP_CA_FILE=" + caBundle(t),
		"IMAPCOPY_COPIER_CONCURRENCY=1",
		"IMAPCOPY_COPIER_CONNECTIONS=1",
		// Short leases, for a short test, but not so short that a copier slowed down
		// by a loaded machine (a late keep-alive) loses its lease while it runs: the
		// fence allows a quarter of each as margin.
		"IMAPCOPY_ACK_WAIT=10s",
		"IMAPCOPY_LOCK_TTL=10s",
		"IMAPCOPY_LOG_LEVEL=info",
	}
	first := servicetest.StartChild(t, "copier-a", append(env, "IMAPCOPY_ADMIN_ADDR="+servicetest.FreeAddr(t))...)

	// What the api does: the lock, the QUEUED status, the sealed task.
	store := syncstatus.NewRedis(rs.Client(t), syncstatus.RedisOptions{})
	source := src.Login + "@source.test"
	queueTask(t, store, ns.JetStream(t), key, &imapcopyv1.SyncTask{
		TaskId: "frozen-copier-task", SourceEmail: source,
		Source: endpoint(src, src.Host, src.Port), Destination: endpoint(dst, slow.Host(), slow.Port()),
		Options: &imapcopyv1.SyncOptions{NoReport: true},
	}, &imapcopyv1.TaskSecrets{SourcePassword: src.Password, DestinationPassword: dst.Password}, stringer(first.Logs))

	status := func() *imapcopyv1.SyncStatus {
		st, err := store.Get(t.Context(), source)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		return st
	}
	waitUntil(t, "the first copier copying", func() (bool, string) {
		st := status()
		return st.GetState() == imapcopyv1.SyncState_SYNC_STATE_RUNNING && st.GetTotal().GetMessagesCopied() >= 20, st.String()
	})
	if err := first.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	servicetest.StartChild(t, "copier-b", append(env, "IMAPCOPY_ADMIN_ADDR="+servicetest.FreeAddr(t))...)
	waitUntil(t, "the second copier copying", func() (bool, string) {
		st := status()
		return st.GetAttempt() >= 2 && st.GetTotal().GetMessagesCopied() > 0, st.String()
	})
	if err := first.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the copy ended", func() (bool, string) {
		st := status()
		return syncstatus.Terminal(st.GetState()), st.String()
	})
	if st := status(); st.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED {
		t.Errorf("final status %v (%s), want COMPLETED", st.GetState(), st.GetMessage())
	}
	servicetest.Check(t, src, dst)
	// The thawed copier stops as a stale delivery: its fence (the lease ran out) or its
	// next status write (a later delivery runs) tells it, whichever comes first.
	if !strings.Contains(first.Logs(), `"outcome":"stale"`) {
		t.Errorf("the thawed copier did not end as a stale delivery; its log:\n%s", servicetest.Tail(first.Logs(), 30))
	}
}

// waitUntil polls cond every 100 ms for at most two minutes (a bound on a hang, not a
// speed assertion); last describes the state for the failure message.
func waitUntil(t *testing.T, what string, cond func() (ok bool, last string)) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 2 minutes; last: %s", what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stringer is a func as a fmt.Stringer.
type stringer func() string

func (f stringer) String() string { return f() }

// TestSlowCopierIsNotOverlapped: a copier that is alive and copying but whose
// keep-alives reach NATS too late (its link to NATS stalls: what it sends is accepted
// and arrives seconds later) has its task redelivered to a second copier while it
// still appends. The second delivery must not copy alongside it: it finds the lock
// held by the first delivery and waits, and the first one finishes the copy alone:
// COMPLETED by the first attempt, every message exactly once. Before the lock named
// the delivery, both deliveries held it with the task's token and copied the same
// folders at once (100 duplicates in a run from outside, with a 2 s ack wait).
func TestSlowCopierIsNotOverlapped(t *testing.T) {
	ns, rs := natstest.Start(t), redistest.Start(t)
	key := taskseal.GenerateKey()
	keyFile := filepath.Join(t.TempDir(), "task.key")
	if err := os.WriteFile(keyFile, taskseal.FormatKeys(key), 0o600); err != nil {
		t.Fatal(err)
	}
	src, dst := slash.AddUser(t), dot.AddUser(t)
	if err := imaptest.Load(t.Context(), src, imaptest.Generate(12, imaptest.Spec{Count: 1500, Folders: -1})); err != nil {
		t.Fatal(err)
	}
	// The destination behind a 2 MB/s link: the copy (36 MB) lasts well past the
	// redelivery.
	slow := proxytest.New(t, fmt.Sprintf("%s:%d", dst.Host, dst.Port), proxytest.WithLatency(30*time.Millisecond), proxytest.WithLinkBandwidth(2e6))
	natsURL, err := url.Parse(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	natsLink := proxytest.New(t, natsURL.Host)
	env := func(natsAddr string) []string {
		return []string{
			childWorkerEnv + "=1",
			"IMAPCOPY_NATS_URL=nats://" + natsAddr,
			"IMAPCOPY_REDIS_URL=" + rs.URL(),
			"IMAPCOPY_STORE=redis",
			"IMAPCOPY_TASK_KEY_FILE=" + keyFile,
			"IMAPCOPY_ALLOW_NETWORKS=127.0.0.1",
			"IMAPCOPY_IMAP_CA_FILE=" + caBundle(t),
			"IMAPCOPY_COPIER_CONCURRENCY=1",
			"IMAPCOPY_COPIER_CONNECTIONS=1",
			// A short ack wait, for the redelivery to come soon; a lock long enough for
			// a loaded machine's late refreshes.
			"IMAPCOPY_ACK_WAIT=4s",
			"IMAPCOPY_LOCK_TTL=10s",
			"IMAPCOPY_LOG_LEVEL=info",
			"IMAPCOPY_ADMIN_ADDR=" + servicetest.FreeAddr(t),
		}
	}
	first := servicetest.StartChild(t, "copier-a", env(natsLink.Addr())...)

	store := syncstatus.NewRedis(rs.Client(t), syncstatus.RedisOptions{})
	source := src.Login + "@source.test"
	queueTask(t, store, ns.JetStream(t), key, &imapcopyv1.SyncTask{
		TaskId: "slow-copier-task", SourceEmail: source,
		Source: endpoint(src, src.Host, src.Port), Destination: endpoint(dst, slow.Host(), slow.Port()),
		Options: &imapcopyv1.SyncOptions{NoReport: true},
	}, &imapcopyv1.TaskSecrets{SourcePassword: src.Password, DestinationPassword: dst.Password}, stringer(first.Logs))

	status := func() *imapcopyv1.SyncStatus {
		st, err := store.Get(t.Context(), source)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		return st
	}
	waitUntil(t, "the first copier copying", func() (bool, string) {
		st := status()
		return st.GetState() == imapcopyv1.SyncState_SYNC_STATE_RUNNING && st.GetTotal().GetMessagesCopied() >= 20, st.String()
	})
	// The first copier's keep-alives now reach NATS 8 s late: past the ack wait, the
	// task is redelivered to the second copier.
	natsLink.SetLatency(proxytest.Upstream, 8*time.Second)
	second := servicetest.StartChild(t, "copier-b", env(natsURL.Host)...)
	waitUntil(t, "the second copier given the task", func() (bool, string) {
		return strings.Contains(second.Logs(), `"msg":"task_received"`), servicetest.Tail(second.Logs(), 5)
	})
	natsLink.SetLatency(proxytest.Upstream, 0)
	waitUntil(t, "the copy ended", func() (bool, string) {
		st := status()
		return syncstatus.Terminal(st.GetState()), st.String()
	})
	st := status()
	if st.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED || st.GetAttempt() != 1 {
		t.Errorf("final status %v attempt %d (%s), want COMPLETED by the first delivery", st.GetState(), st.GetAttempt(), st.GetMessage())
	}
	servicetest.Check(t, src, dst)
	if !strings.Contains(second.Logs(), `"msg":"lock_held_by_another_delivery"`) {
		t.Errorf("the second delivery did not wait for the first one's lock; its log:\n%s", servicetest.Tail(second.Logs(), 30))
	}
	if strings.Contains(second.Logs(), `"msg":"task_running"`) {
		t.Errorf("the second delivery copied while the first one ran; its log:\n%s", servicetest.Tail(second.Logs(), 30))
	}
}
