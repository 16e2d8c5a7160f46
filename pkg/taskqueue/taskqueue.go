// Package taskqueue owns the JetStream work queue of sync tasks: the stream and
// consumer settings (in one place, EnsureStream), publishing (the api) and pulling
// (the copiers).
//
// Delivery semantics, as configured here:
//
//   - Work-queue retention, file storage: a task stays in the stream until a copier
//     acks or terminates it. JetStream's MaxAge counts from the publish whether a task
//     is claimed or not, so Config.MaxAge is only a backstop for a task's whole life,
//     retries included (30 days: a migration held back by a provider's daily limits
//     takes days). How long a task may wait UNCLAIMED is Config.Unclaimed, enforced by
//     the copier that receives a task on its first delivery (pkg/syncworker).
//   - Publish sets the task id as the JetStream message id: a publish repeated within
//     Config.Duplicates (an api retry) is stored once.
//   - One durable pull consumer, ConsumerName, shared by every copier, with explicit
//     acks. A pull asks for ONE message per free worker slot (the consumer refuses
//     larger pulls: MaxRequestBatch 1), so a task never waits in a busy copier's
//     buffer while its AckWait runs out.
//   - At least once: a task not acked within Config.AckWait of its delivery or of its
//     last keep-alive (Task.KeepAlive) is redelivered. A task is delivered at most
//     Config.MaxDeliver times, and a work-queue stream keeps a task that used them
//     up: the worker ends permanent failures and the last attempt with Term, never
//     by letting it run out.
//   - Retries are the worker's choice: NakWithDelay(d) redelivers after d. The
//     consumer has no BackOff on purpose: nats-server (2.15) starts a nak delay at
//     now - AckWait + d and then waits for the delivery's BackOff step, so with
//     BackOff = [1m, 2m] a NakWithDelay(3s) of a second delivery waits 2m03s.
//   - Subjects and headers never hold an email address; the payload is a
//     imapcopy.v1.SyncTask whose secrets are sealed (package taskseal).
package taskqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

const (
	// StreamName is the JetStream stream of sync tasks.
	StreamName = "IMAPCOPY_TASKS"
	// Subject is where tasks are published.
	Subject = "imapcopy.tasks.sync"
	// ConsumerName is the durable pull consumer every copier shares. KEDA's
	// nats-jetstream scaler names it (deploy manifests): keep them in step.
	ConsumerName = "imapcopy-copier"
)

// Config holds the tunables of the stream and consumer. The zero value of a field
// means its default (DefaultConfig).
type Config struct {
	// Replicas of the stream and consumer; default 1 (3 in a production cluster).
	Replicas int
	// Storage of the stream; default file.
	Storage jetstream.StorageType
	// Duplicates is the window in which a publish with a task id already seen is
	// dropped; default 10m.
	Duplicates time.Duration
	// MaxAge is the longest a task stays in the stream, claimed or not, retries
	// included; default 30 days. It must outlast the longest migration.
	MaxAge time.Duration
	// Unclaimed is how long a task may wait for its first copier; default 24h. The
	// copier fails a task that waited longer (the customer starts it again).
	Unclaimed time.Duration
	// AckWait is how long a delivered task may go without an ack or a keep-alive
	// before it is redelivered; default 1m. Keep-alives go every AckWait/4.
	AckWait time.Duration
	// MaxDeliver bounds the deliveries of one task, retries included; default 10.
	MaxDeliver int
	// MaxAckPending bounds the tasks in flight across all copiers; default 1000.
	MaxAckPending int
}

// DefaultConfig returns the defaults, filled in.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Duplicates <= 0 {
		c.Duplicates = 10 * time.Minute
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 30 * 24 * time.Hour
	}
	if c.Unclaimed <= 0 {
		c.Unclaimed = 24 * time.Hour
	}
	if c.AckWait <= 0 {
		c.AckWait = time.Minute
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 10
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 1000
	}
	return c
}

func (c Config) validate() error {
	if c.Duplicates > c.MaxAge {
		return fmt.Errorf("duplicates window %v is longer than max age %v", c.Duplicates, c.MaxAge)
	}
	if c.Unclaimed > c.MaxAge {
		return fmt.Errorf("unclaimed limit %v is longer than max age %v", c.Unclaimed, c.MaxAge)
	}
	if c.AckWait < time.Second {
		return fmt.Errorf("ack wait %v: want at least 1s", c.AckWait)
	}
	return nil
}

// KeepAliveInterval is how often a running task should send InProgress: a quarter of
// AckWait.
func (c Config) KeepAliveInterval() time.Duration { return c.withDefaults().AckWait / 4 }

// EnsureStream creates the stream and the consumer, or updates them to cfg, and
// returns the consumer. Both the api and the copiers may call it at start.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Consumer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("task queue config: %w", err)
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "imapcopy sync tasks (work queue)",
		Subjects:    []string{Subject},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.MaxAge,
		Duplicates:  cfg.Duplicates,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", StreamName, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:         ConsumerName,
		Description:     "imapcopy copiers: one task per free slot",
		DeliverPolicy:   jetstream.DeliverAllPolicy,
		AckPolicy:       jetstream.AckExplicitPolicy,
		AckWait:         cfg.AckWait,
		MaxDeliver:      cfg.MaxDeliver,
		MaxAckPending:   cfg.MaxAckPending,
		MaxRequestBatch: 1,
		Replicas:        cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", ConsumerName, err)
	}
	return cons, nil
}

// Publisher publishes tasks on one JetStream context.
type Publisher struct{ js jetstream.JetStream }

// NewPublisher returns a Publisher on js.
func NewPublisher(js jetstream.JetStream) *Publisher { return &Publisher{js: js} }

// Publish queues task, its task id as the message id, so that a repeated publish
// within the duplicates window is stored once (a retried start queues one task).
func (p *Publisher) Publish(ctx context.Context, task *imapcopyv1.SyncTask) error {
	if task.GetTaskId() == "" {
		return errors.New("publish task: empty task id")
	}
	b, err := proto.Marshal(task)
	if err != nil {
		return fmt.Errorf("publish task %s: %w", task.GetTaskId(), err)
	}
	_, err = p.js.PublishMsg(ctx, &nats.Msg{Subject: Subject, Data: b},
		jetstream.WithMsgID(task.GetTaskId()), jetstream.WithExpectStream(StreamName))
	if err != nil {
		return fmt.Errorf("publish task %s: %w", task.GetTaskId(), err)
	}
	return nil
}

// PullerOptions configures a Puller.
type PullerOptions struct {
	// PullWait is how long one pull request waits on the server; Next repeats them
	// until a task comes or its context ends. Default 5s, at least 1s. A pull left behind when
	// the context ends can still receive one task, redelivered after its ack deadline:
	// a short PullWait keeps that window short.
	PullWait time.Duration
	// Logger reports tasks that cannot be decoded; default slog.Default().
	Logger *slog.Logger
}

// Puller pulls tasks from the consumer, one per call.
type Puller struct {
	cons       jetstream.Consumer
	maxDeliver int
	wait       time.Duration
	log        *slog.Logger
}

// NewPuller returns a Puller on cons (as EnsureStream returns it).
func NewPuller(cons jetstream.Consumer, opts PullerOptions) *Puller {
	p := &Puller{cons: cons, wait: opts.PullWait, log: opts.Logger}
	if p.wait <= 0 {
		p.wait = 5 * time.Second
	}
	p.wait = max(p.wait, time.Second)
	if p.log == nil {
		p.log = slog.Default()
	}
	if info := cons.CachedInfo(); info != nil {
		p.maxDeliver = info.Config.MaxDeliver
	}
	return p
}

// Next blocks until it has pulled one task or ctx ends. Call it once per free worker
// slot. A message that does not decode into a task is terminated and skipped.
func (p *Puller) Next(ctx context.Context) (*Task, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Each pull request expires on the server before the client stops waiting
		// for it (FetchContext uses 90% of the time left), so no request outlives
		// the loop unless ctx ends in the middle of one.
		pctx, cancel := context.WithTimeout(ctx, p.wait)
		if dl, _ := pctx.Deadline(); time.Until(dl) < 100*time.Millisecond {
			// Too little time left for a pull: wait for ctx to end.
			<-pctx.Done()
			cancel()
			continue
		}
		msg, err := p.cons.Next(jetstream.FetchContext(pctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			return nil, fmt.Errorf("pull task: %w", err)
		}
		t, err := p.decode(msg)
		if err != nil {
			p.log.WarnContext(ctx, "task_undecodable", "error", err)
			if terr := msg.TermWithReason(err.Error()); terr != nil {
				p.log.WarnContext(ctx, "task_term_failed", "error", terr)
			}
			continue
		}
		return t, nil
	}
}

func (p *Puller) decode(msg jetstream.Msg) (*Task, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, fmt.Errorf("undecodable task: metadata: %w", err)
	}
	task := new(imapcopyv1.SyncTask)
	if err := proto.Unmarshal(msg.Data(), task); err != nil {
		return nil, fmt.Errorf("undecodable task (stream seq %d): %w", meta.Sequence.Stream, err)
	}
	if task.GetTaskId() == "" {
		return nil, fmt.Errorf("undecodable task (stream seq %d): no task id", meta.Sequence.Stream)
	}
	return &Task{Task: task, Attempt: int(meta.NumDelivered), MaxDeliver: p.maxDeliver, msg: msg}, nil
}

// Task is one delivery of a queued task. Exactly one of Ack, Nak, NakWithDelay or
// Term should end it; until then KeepAlive keeps it from being redelivered.
type Task struct {
	Task *imapcopyv1.SyncTask
	// Attempt counts the deliveries of this task, this one included (1 = first).
	Attempt int
	// MaxDeliver is the consumer's bound on deliveries (0 if unknown).
	MaxDeliver int

	msg jetstream.Msg
}

// LastAttempt reports whether no delivery will follow this one: a temporary failure
// now must end the task (Term), or it would stay in the stream forever.
func (t *Task) LastAttempt() bool { return t.MaxDeliver > 0 && t.Attempt >= t.MaxDeliver }

// InProgress resets the ack deadline of this delivery.
func (t *Task) InProgress() error {
	if err := t.msg.InProgress(); err != nil {
		return fmt.Errorf("task %s in progress: %w", t.Task.GetTaskId(), err)
	}
	return nil
}

// Ack removes the task from the queue, waiting for the server to confirm.
func (t *Task) Ack(ctx context.Context) error {
	if err := t.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("ack task %s: %w", t.Task.GetTaskId(), err)
	}
	return nil
}

// Nak hands the task back for immediate redelivery (to any copier).
func (t *Task) Nak() error {
	if err := t.msg.Nak(); err != nil {
		return fmt.Errorf("nak task %s: %w", t.Task.GetTaskId(), err)
	}
	return nil
}

// NakWithDelay hands the task back for redelivery after delay.
func (t *Task) NakWithDelay(delay time.Duration) error {
	if err := t.msg.NakWithDelay(delay); err != nil {
		return fmt.Errorf("nak task %s: %w", t.Task.GetTaskId(), err)
	}
	return nil
}

// Term removes the task from the queue without success; reason shows in the
// server's advisory (no secret, no address).
func (t *Task) Term(reason string) error {
	if err := t.msg.TermWithReason(reason); err != nil {
		return fmt.Errorf("term task %s: %w", t.Task.GetTaskId(), err)
	}
	return nil
}
