package taskqueue

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"imapcopy.dev/pkg/natstest"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

func TestCollector(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	c := NewCollector(js)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	expect := func(step, want string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	const head = `
# HELP imapcopy_queue_up 1 when the task queue's consumer could be read at this scrape, else 0.
# TYPE imapcopy_queue_up gauge
`
	expect("no stream yet", head+"imapcopy_queue_up 0\n")

	cons, err := EnsureStream(ctx, js, Config{})
	if err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	state := func(step string, waiting, unacked, redelivered, oldest float64) {
		t.Helper()
		want := queueState{waiting: waiting, unacked: unacked, redelivered: redelivered, oldest: time.Duration(oldest * float64(time.Second))}
		got, err := c.read(ctx)
		if err != nil || got != want {
			t.Fatalf("%s: read = %+v, %v; want %+v", step, got, err, want)
		}
	}
	state("empty queue", 0, 0, 0, 0)

	var published []time.Time
	for _, id := range []string{"t1", "t2", "t3"} {
		b, err := proto.Marshal(&imapcopyv1.SyncTask{TaskId: id})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: Subject, Data: b})
		if err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
		m, err := js.Stream(ctx, StreamName)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := m.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		published = append(published, raw.Time)
	}
	now := published[2].Add(time.Hour)
	c.now = func() time.Time { return now }
	age := func(i int) float64 { return now.Sub(published[i]).Seconds() }
	state("three waiting", 3, 0, 0, age(0))

	// The first is delivered and nak'ed (redelivered at once), the second delivered
	// and acked: the oldest waiting task is then the third.
	fetch := func(wantID string) jetstream.Msg {
		t.Helper()
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		m, ok := <-batch.Messages()
		if !ok {
			t.Fatalf("Fetch: no message (%v)", batch.Error())
		}
		var tk imapcopyv1.SyncTask
		if err := proto.Unmarshal(m.Data(), &tk); err != nil || tk.GetTaskId() != wantID {
			t.Fatalf("Fetch = task %q (%v); want %q", tk.GetTaskId(), err, wantID)
		}
		return m
	}
	first := fetch("t1")
	state("one delivered", 2, 1, 0, age(1))
	// A Nak as a request: the server answers once it has taken it, so the next
	// fetch cannot overtake it (Msg.Nak does not wait).
	if _, err := js.Conn().RequestWithContext(ctx, first.Reply(), []byte("-NAK")); err != nil {
		t.Fatalf("Nak: %v", err)
	}
	fetch("t1")
	state("first redelivered", 2, 1, 1, age(1))
	second := fetch("t2")
	if err := second.DoubleAck(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
	state("second acked", 1, 1, 1, age(2))

	expect("metrics", head+`imapcopy_queue_up 1
# HELP imapcopy_queue_oldest_waiting_seconds Age of the oldest task never delivered to a copier (0 when none waits).
# TYPE imapcopy_queue_oldest_waiting_seconds gauge
imapcopy_queue_oldest_waiting_seconds `+strconv.FormatFloat(age(2), 'g', -1, 64)+`
# HELP imapcopy_queue_tasks_redelivered Unacked tasks delivered more than once.
# TYPE imapcopy_queue_tasks_redelivered gauge
imapcopy_queue_tasks_redelivered 1
# HELP imapcopy_queue_tasks_unacked Tasks delivered to a copier and not yet ended (running, or waiting for a redelivery).
# TYPE imapcopy_queue_tasks_unacked gauge
imapcopy_queue_tasks_unacked 1
# HELP imapcopy_queue_tasks_waiting Tasks in the queue never delivered to a copier.
# TYPE imapcopy_queue_tasks_waiting gauge
imapcopy_queue_tasks_waiting 1
`)

	srv.Shutdown()
	c.timeout = 200 * time.Millisecond // the requests wait for a reconnection until then
	expect("NATS down", head+"imapcopy_queue_up 0\n")
}
