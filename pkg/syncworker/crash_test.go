package syncworker_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/netpolicy"
	"imapcopy.dev/pkg/servicetest"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/syncworker"
	"imapcopy.dev/pkg/taskqueue"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// quickWorker runs an in-process worker wired like runCopier's but with short retry
// delays, the engine tuned by tune (fewer reconnects, a shorter settle) and dial's
// timeouts, so that a task goes through all of its deliveries within seconds. It
// returns how many times the engine was started.
func (e *env) quickWorker(dial imapconn.Options, tune func(*mailcopy.Config), copy syncworker.CopyFunc) *atomic.Int64 {
	t := e.t
	if copy == nil {
		copy = mailcopy.Copy
	}
	var runs atomic.Int64
	qcfg := queueConfig()
	cons, err := taskqueue.EnsureStream(t.Context(), e.js, qcfg)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := netpolicy.New(netpolicy.Config{Allow: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	dial.Dialer = policy.Dialer(nil, nil)
	logger := e.logger("copier")
	w, err := syncworker.New(syncworker.Deps{
		Queue:  taskqueue.NewPuller(cons, taskqueue.PullerOptions{PullWait: time.Second, Logger: logger}),
		Store:  e.store,
		Opener: e.keys,
		Logger: logger,
		Copy: func(ctx context.Context, cfg mailcopy.Config) (*mailcopy.Result, error) {
			runs.Add(1)
			cfg.MaxRetries, cfg.RetryBackoff, cfg.CommitSettle = 1, 50*time.Millisecond, 100*time.Millisecond
			if tune != nil {
				tune(&cfg)
			}
			return copy(ctx, cfg)
		},
	}, syncworker.Config{
		Concurrency:   2,
		KeepAlive:     qcfg.KeepAliveInterval(),
		RetryBackoff:  100 * time.Millisecond,
		MaxRetryDelay: 200 * time.Millisecond,
		Dial:          dial,
		RootCAs:       e.roots(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker Run: %v", err)
		}
	})
	return &runs
}

// smallPair is a source with a few small messages in INBOX and an empty destination,
// reached directly, and the request that syncs them.
func smallPair(t *testing.T, seed int64) (*pair, *imapcopyv1.StartSyncRequest) {
	t.Helper()
	p := &pair{src: shared.slash.AddUser(t), dst: shared.dot.AddUser(t)}
	mb := imaptest.Generate(seed, imaptest.Spec{Count: 20, Folders: -1, Sizes: []imaptest.SizeClass{{Weight: 1, Min: 2_000, Max: 8_000}}})
	if err := imaptest.Load(t.Context(), p.src, mb); err != nil {
		t.Fatal(err)
	}
	p.count = mb.Count()
	p.source = p.src.Login + "@source.test"
	return p, &imapcopyv1.StartSyncRequest{
		Source:      servicetest.Account(p.src, p.source),
		Destination: servicetest.Account(p.dst, p.dst.Login+"@destination.test"),
		Options:     &imapcopyv1.SyncOptions{NoReport: true},
	}
}

// stackless reports the parts of a status that show a Go stack trace or a source
// position: what a panic's recovery may have let through to the customer.
func stackless(st *imapcopyv1.SyncStatus) []string {
	var bad []string
	for name, s := range map[string]string{"message": st.GetMessage(), "failure_reason": st.GetFailureReason(), "retry_reason": st.GetRetryReason()} {
		if strings.Contains(s, "goroutine ") || strings.Contains(s, ".go:") || strings.Contains(s, "runtime/") {
			bad = append(bad, fmt.Sprintf("%s: %q", name, s))
		}
	}
	return bad
}

// TestPanicEveryDelivery: a task whose copy panics on every delivery ends FAILED
// after the queue's MaxDeliver deliveries, with a reason that says the copier failed
// inside (and no stack trace: that is for the copier's log), the lock released and
// the message gone from the queue (not redelivered forever).
//
// The panics are provoked through the worker's CopyFunc (its seam for the engine):
// nothing a server sends is known to panic go-imap or the engine (imapclient's
// panics are programming errors, the engine's reader goroutines recover), so the
// test places them where such a bug would strike:
//   - "in the engine": mailcopy.Copy itself panics on the worker's goroutine;
//   - "mid-APPEND": a panic in the body stream of an APPEND, on a goroutine of the
//     engine's, which the engine recovers, retries the folder, and returns as an error.
func TestPanicEveryDelivery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		copy syncworker.CopyFunc
	}{
		{"in the engine", func(context.Context, mailcopy.Config) (*mailcopy.Result, error) {
			panic("injected: a bug in the engine")
		}},
		{"mid-APPEND", func(ctx context.Context, cfg mailcopy.Config) (*mailcopy.Result, error) {
			// The fence runs on every read of a body on its way to the destination.
			cfg.Fence = func() error { panic("injected: a bug in the body stream") }
			return mailcopy.Copy(ctx, cfg)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			runs := e.quickWorker(imapconn.Options{}, nil, tc.copy)
			p, req := smallPair(t, 21)
			resp, err := e.api.StartSync(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			st := e.waitStatus(p.source, waitEnd, "ended", func(st *imapcopyv1.SyncStatus) bool {
				return st.GetTaskId() == resp.GetTaskId() && syncstatus.Terminal(st.GetState())
			})
			maxDeliver := queueConfig().MaxDeliver
			reason := st.GetFailureReason()
			for _, want := range []string{fmt.Sprintf("gave up after %d attempts: ", maxDeliver), "internal error in the cop", "panic", "injected: a bug"} {
				if st.GetState() != stateFailed || !strings.Contains(reason, want) {
					t.Errorf("final status %v (%q), want FAILED with a reason containing %q", st.GetState(), reason, want)
				}
			}
			if bad := stackless(st); len(bad) > 0 {
				t.Errorf("the status shows a stack trace: %s", strings.Join(bad, "; "))
			}
			if st.GetAttempt() != uint32(maxDeliver) || runs.Load() != int64(maxDeliver) {
				t.Errorf("attempt %d, engine runs %d; want %d of each", st.GetAttempt(), runs.Load(), maxDeliver)
			}
			e.queueEmpty()
			e.lockFree(p.source)
			if !strings.Contains(e.logs.String(), "goroutine ") {
				t.Errorf("the copier's log holds no stack trace of the panic: an operator needs it")
			}
		})
	}
}
