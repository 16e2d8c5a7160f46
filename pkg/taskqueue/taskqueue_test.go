package taskqueue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"imapcopy.dev/pkg/natstest"
	"imapcopy.dev/pkg/taskqueue"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// setup is one test's queue on its own embedded NATS server.
type setup struct {
	js     jetstream.JetStream
	cons   jetstream.Consumer
	puller *taskqueue.Puller
}

func newSetup(t *testing.T, cfg taskqueue.Config) *setup {
	t.Helper()
	js := natstest.Start(t).JetStream(t)
	cons, err := taskqueue.EnsureStream(ctxFor(t), js, cfg)
	if err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	return &setup{js: js, cons: cons, puller: taskqueue.NewPuller(cons, taskqueue.PullerOptions{PullWait: time.Second})}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func task(id string) *imapcopyv1.SyncTask {
	return &imapcopyv1.SyncTask{
		TaskId:      id,
		SourceEmail: "alice@example.com",
		LockToken:   "token-" + id,
		Sealed:      &imapcopyv1.SealedSecrets{KeyId: "k1", Algorithm: "AES-256-GCM", Nonce: make([]byte, 12), Ciphertext: []byte{1, 2, 3}},
	}
}

func (s *setup) publish(t *testing.T, id string) {
	t.Helper()
	if err := taskqueue.NewPublisher(s.js).Publish(ctxFor(t), task(id)); err != nil {
		t.Fatalf("Publish(%s): %v", id, err)
	}
}

func (s *setup) next(t *testing.T) *taskqueue.Task {
	t.Helper()
	tk, err := s.puller.Next(ctxFor(t))
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return tk
}

// expectEmpty checks that no task comes within a short wait.
func (s *setup) expectEmpty(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if tk, err := s.puller.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on an empty queue = %v, %v; want context.DeadlineExceeded", tk, err)
	}
}

func (s *setup) streamMsgs(t *testing.T) uint64 {
	t.Helper()
	st, err := s.js.Stream(ctxFor(t), taskqueue.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestPublishPullAck(t *testing.T) {
	t.Parallel()
	s := newSetup(t, taskqueue.Config{})
	s.publish(t, "task-1")
	st, err := s.js.Stream(ctxFor(t), taskqueue.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetLastMsgForSubject(ctxFor(t), taskqueue.Subject); err != nil {
		t.Errorf("no message on %s in %s: %v", taskqueue.Subject, taskqueue.StreamName, err)
	}
	tk := s.next(t)
	if !proto.Equal(tk.Task, task("task-1")) {
		t.Errorf("pulled %v, want %v", tk.Task, task("task-1"))
	}
	if tk.Attempt != 1 || tk.LastAttempt() {
		t.Errorf("Attempt = %d, LastAttempt = %v; want 1, false", tk.Attempt, tk.LastAttempt())
	}
	if err := tk.InProgress(); err != nil {
		t.Errorf("InProgress: %v", err)
	}
	if err := tk.Ack(ctxFor(t)); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if n := s.streamMsgs(t); n != 0 {
		t.Errorf("stream holds %d messages after the ack, want 0 (work queue)", n)
	}
	s.expectEmpty(t)
}

func TestStreamAndConsumerSettings(t *testing.T) {
	t.Parallel()
	s := newSetup(t, taskqueue.Config{})
	info, err := s.cons.Info(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	def := taskqueue.DefaultConfig()
	c := info.Config
	if info.Name != taskqueue.ConsumerName || c.Durable != taskqueue.ConsumerName {
		t.Errorf("consumer name = %q (durable %q), want %q", info.Name, c.Durable, taskqueue.ConsumerName)
	}
	if c.AckPolicy != jetstream.AckExplicitPolicy || c.AckWait != def.AckWait || c.MaxDeliver != def.MaxDeliver ||
		c.MaxAckPending != def.MaxAckPending || c.MaxRequestBatch != 1 || len(c.BackOff) != 0 {
		t.Errorf("consumer config = ack %v wait %v maxdeliver %d maxackpending %d maxbatch %d backoff %v; want explicit %v %d %d 1 none",
			c.AckPolicy, c.AckWait, c.MaxDeliver, c.MaxAckPending, c.MaxRequestBatch, c.BackOff,
			def.AckWait, def.MaxDeliver, def.MaxAckPending)
	}
	st, err := s.js.Stream(ctxFor(t), taskqueue.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	sc := st.CachedInfo().Config
	if sc.Retention != jetstream.WorkQueuePolicy || sc.Storage != jetstream.FileStorage ||
		sc.MaxAge != def.MaxAge || sc.Duplicates != def.Duplicates {
		t.Errorf("stream config = %v %v maxage %v duplicates %v; want workqueue file %v %v",
			sc.Retention, sc.Storage, sc.MaxAge, sc.Duplicates, def.MaxAge, def.Duplicates)
	}
	// EnsureStream again (another replica starting) changes nothing and fails nothing.
	if _, err := taskqueue.EnsureStream(ctxFor(t), s.js, taskqueue.Config{}); err != nil {
		t.Fatalf("second EnsureStream: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	js := natstest.Start(t).JetStream(t)
	for name, cfg := range map[string]taskqueue.Config{
		"ack wait below a second":   {AckWait: 500 * time.Millisecond},
		"duplicates beyond max age": {Duplicates: time.Hour, MaxAge: time.Minute},
		"unclaimed beyond max age":  {Unclaimed: 48 * time.Hour, MaxAge: 24 * time.Hour},
	} {
		if _, err := taskqueue.EnsureStream(ctxFor(t), js, cfg); err == nil {
			t.Errorf("EnsureStream(%s) succeeded, want an error", name)
		}
	}
	if got, want := taskqueue.DefaultConfig().KeepAliveInterval(), 15*time.Second; got != want {
		t.Errorf("KeepAliveInterval = %v, want %v", got, want)
	}
}

func TestOneMessagePerPull(t *testing.T) {
	t.Parallel()
	s := newSetup(t, taskqueue.Config{})
	for _, id := range []string{"a", "b", "c"} {
		s.publish(t, id)
	}
	tk := s.next(t)
	if tk.Task.GetTaskId() != "a" {
		t.Errorf("first task = %q, want a", tk.Task.GetTaskId())
	}
	info, err := s.cons.Info(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 1 || info.NumPending != 2 {
		t.Fatalf("after one Next: ack pending %d, pending %d; want 1 and 2 (nothing prefetched)", info.NumAckPending, info.NumPending)
	}
	// The consumer itself refuses a larger pull, whatever the client.
	batch, err := s.cons.Fetch(2, jetstream.FetchMaxWait(time.Second))
	if err == nil {
		for range batch.Messages() {
			t.Error("a pull of 2 messages delivered one")
		}
		err = batch.Error()
	}
	if err == nil {
		t.Error("a pull of 2 messages succeeded, want the consumer to refuse it")
	}
}

func TestDuplicatePublishIsDeduped(t *testing.T) {
	t.Parallel()
	s := newSetup(t, taskqueue.Config{})
	s.publish(t, "same")
	s.publish(t, "same")
	if n := s.streamMsgs(t); n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
	tk := s.next(t)
	if err := tk.Ack(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	s.expectEmpty(t)
}

func TestRedeliveryAfterNak(t *testing.T) {
	t.Parallel()
	s := newSetup(t, taskqueue.Config{})
	s.publish(t, "retry")
	first := s.next(t)
	if err := first.Nak(); err != nil {
		t.Fatal(err)
	}
	second := s.next(t)
	if second.Task.GetTaskId() != "retry" || second.Attempt != 2 {
		t.Fatalf("after Nak: task %q attempt %d, want retry 2", second.Task.GetTaskId(), second.Attempt)
	}

	// NakWithDelay: not redelivered at once, but after the delay.
	if err := second.NakWithDelay(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	s.expectEmpty(t) // within 2s of a 3s delay
	third := s.next(t)
	if third.Attempt != 3 {
		t.Fatalf("after NakWithDelay: attempt %d, want 3", third.Attempt)
	}
	if err := third.Ack(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
}

func TestRedeliveryAfterAckWait(t *testing.T) {
	t.Parallel()
	s := newSetup(t, taskqueue.Config{AckWait: 2 * time.Second})
	s.publish(t, "abandoned")
	first := s.next(t)
	// The copier holding it dies: no ack, no keep-alive.
	second := s.next(t)
	if second.Task.GetTaskId() != first.Task.GetTaskId() || second.Attempt != 2 {
		t.Fatalf("redelivery: task %q attempt %d, want %q 2", second.Task.GetTaskId(), second.Attempt, first.Task.GetTaskId())
	}
	if err := second.Ack(ctxFor(t)); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	s.expectEmpty(t)
}

func TestKeepAliveHoldsTask(t *testing.T) {
	t.Parallel()
	// Ack deadline 2s: without keep-alives the task would come back within the waits.
	s := newSetup(t, taskqueue.Config{AckWait: 2 * time.Second})
	s.publish(t, "long")
	tk := s.next(t)
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { // what the worker's heartbeat does
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = tk.InProgress()
			}
		}
	}()
	s.expectEmpty(t)
	s.expectEmpty(t) // 4s in all, twice the ack deadline
	stop()
	<-done
	if err := tk.Ack(ctxFor(t)); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	info, err := s.cons.Info(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 {
		t.Errorf("redelivered %d, want 0 while keep-alives ran", info.NumRedelivered)
	}
}

func TestTermRemoves(t *testing.T) {
	t.Parallel()
	s := newSetup(t, taskqueue.Config{})
	s.publish(t, "hopeless")
	tk := s.next(t)
	if err := tk.Term("login refused"); err != nil {
		t.Fatal(err)
	}
	s.expectEmpty(t)
	if n := s.streamMsgs(t); n != 0 {
		t.Errorf("stream holds %d messages after Term, want 0", n)
	}
}

func TestLastAttempt(t *testing.T) {
	t.Parallel()
	s := newSetup(t, taskqueue.Config{MaxDeliver: 3})
	s.publish(t, "flaky")
	for attempt := 1; attempt <= 3; attempt++ {
		tk := s.next(t)
		if tk.Attempt != attempt || tk.LastAttempt() != (attempt == 3) {
			t.Fatalf("delivery %d: Attempt %d LastAttempt %v", attempt, tk.Attempt, tk.LastAttempt())
		}
		if attempt < 3 {
			if err := tk.Nak(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := tk.Term("gave up after 3 attempts"); err != nil {
			t.Fatal(err)
		}
	}
	s.expectEmpty(t)
}

func TestUndecodableMessageIsTerminated(t *testing.T) {
	t.Parallel()
	s := newSetup(t, taskqueue.Config{})
	if _, err := s.js.Publish(ctxFor(t), taskqueue.Subject, []byte("\xff\xff not a proto")); err != nil {
		t.Fatal(err)
	}
	s.publish(t, "good")
	tk := s.next(t)
	if tk.Task.GetTaskId() != "good" {
		t.Fatalf("Next = %q, want the good task after skipping the broken one", tk.Task.GetTaskId())
	}
	if err := tk.Ack(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	if n := s.streamMsgs(t); n != 0 {
		t.Errorf("stream holds %d messages, want 0 (the broken one terminated)", n)
	}
}

func TestPublishRefusesEmptyID(t *testing.T) {
	t.Parallel()
	s := newSetup(t, taskqueue.Config{})
	if err := taskqueue.NewPublisher(s.js).Publish(ctxFor(t), &imapcopyv1.SyncTask{}); err == nil {
		t.Fatal("Publish of a task without id succeeded")
	}
	pub := taskqueue.NewPublisher(s.js)
	if err := pub.Publish(ctxFor(t), task("via-publisher")); err != nil {
		t.Fatalf("Publisher.Publish: %v", err)
	}
	if got := s.next(t).Task.GetTaskId(); got != "via-publisher" {
		t.Errorf("pulled %q, want via-publisher", got)
	}
}

func TestNextEndsWithContext(t *testing.T) {
	t.Parallel()
	s := newSetup(t, taskqueue.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { _, err := s.puller.Next(ctx); errc <- err }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Next after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Next did not return after its context ended")
	}
}
