package syncworker

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/netpolicy"
	"imapcopy.dev/pkg/providers"
	"imapcopy.dev/pkg/taskqueue"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Store is the part of the status and lock store the worker uses; syncstatus.Redis
// and syncstatus.KV implement it.
type Store interface {
	Reclaim(ctx context.Context, source, token, holder string, ttl time.Duration) error
	HandBack(ctx context.Context, source, holder, token string, ttl time.Duration) error
	HeldBy(ctx context.Context, source, token string) (bool, error)
	Refresh(ctx context.Context, source, token string, ttl time.Duration) error
	Release(ctx context.Context, source, token string) error
	Put(ctx context.Context, source, token string, st *imapcopyv1.SyncStatus) error
	Update(ctx context.Context, source, token string, fn func(*imapcopyv1.SyncStatus) error) (*imapcopyv1.SyncStatus, error)
	Get(ctx context.Context, source string) (*imapcopyv1.SyncStatus, error)
	CancelRequested(ctx context.Context, source, taskID string) (bool, error)
}

// Opener opens a task's sealed secrets, bound to the whole task; *taskseal.Keyring
// implements it.
type Opener interface {
	Open(task *imapcopyv1.SyncTask) (*imapcopyv1.TaskSecrets, error)
}

// Queue hands out one task delivery per call, blocking until one comes or ctx
// ends; *taskqueue.Puller implements it. The worker calls it once per free slot, so
// that no task waits in a local buffer while its ack deadline runs.
type Queue interface {
	Next(ctx context.Context) (*taskqueue.Task, error)
}

// CopyFunc runs one copy; mailcopy.Copy is the real one.
type CopyFunc func(ctx context.Context, cfg mailcopy.Config) (*mailcopy.Result, error)

// Config is the operator's choices. The zero value of every field takes the default.
type Config struct {
	// Concurrency is how many tasks one worker runs at once (default 4). Each task
	// holds up to Connections connections per account and bounded memory; the work
	// waits on the IMAP servers, not on this process's CPU.
	Concurrency int
	// Connections per account when neither the task nor its provider preset says
	// (default 4, the engine's default).
	Connections int

	// KeepAlive is how often a running task's message gets InProgress; default
	// taskqueue.DefaultConfig().KeepAliveInterval(). Set it from the queue's config:
	// it must stay well inside the consumer's AckWait.
	KeepAlive time.Duration
	// AckWait is the consumer's: a delivery that goes that long without InProgress
	// is redelivered elsewhere. Default 4 × KeepAlive (taskqueue sends keep-alives
	// every AckWait/4). The engine appends only while the task's lease holds (see
	// the package doc, "Fencing").
	AckWait time.Duration
	// LockTTL is the lock's lifetime while a copier works on the task (default
	// AckWait), refreshed every LockRefresh (default a sixth of LockTTL). A delivery
	// waits for an earlier delivery's lock to be released or to expire (see the
	// package doc), so a task whose copier died resumes after the later of AckWait
	// and LockTTL. QueuedLockTTL is its lifetime while a handed-back task waits in the
	// queue (default 24h, like the api's).
	LockTTL, LockRefresh, QueuedLockTTL time.Duration
	// ProgressInterval is the least time between two progress writes of one task
	// (default 1s); CancelPoll how often a running task reads its cancel flag
	// (default 2s).
	ProgressInterval, CancelPoll time.Duration
	// StallNote: a running copy whose counters have not moved for this long (and
	// that no server throttles) says so in its status message, "no progress for N
	// s", long before the connections' idle timeout (5m) ends the attempt; default
	// 60s.
	StallNote time.Duration
	// Unclaimed is how long a task may wait for its first delivery; older, it fails
	// ("start it again") instead of starting. Default taskqueue's Unclaimed (24h).
	Unclaimed time.Duration
	// RetryBackoff is the delay before the first retry of a temporary failure,
	// doubled at each attempt up to MaxRetryDelay (defaults 30s and 10m).
	RetryBackoff, MaxRetryDelay time.Duration
	// ShutdownTimeout bounds how long Run takes to hand running tasks back once its
	// context ends (default 20s, inside Kubernetes' 30s grace period).
	ShutdownTimeout time.Duration

	// Dial is given to the engine for both accounts: the network policy's dialer,
	// timeouts. Its Logger is replaced by the task's.
	Dial imapconn.Options
	// RootCAs verify the IMAP servers' certificates (nil: the system roots); the api
	// must trust the same.
	RootCAs *x509.CertPool
	// AllowPlaintext lets tasks use SECURITY_PLAINTEXT; otherwise such a task fails.
	AllowPlaintext bool
	// Providers are the presets whose handling (throttling back-off, MULTIAPPEND)
	// applies to a task's endpoint, found by its provider id; nil: the built-in
	// catalogue. Give the api's catalogue when it loads an operator's file.
	Providers *providers.Catalog
}

// Defaults.
const (
	DefaultConcurrency      = 4
	DefaultConnections      = 4
	DefaultQueuedLockTTL    = 24 * time.Hour
	DefaultProgressInterval = time.Second
	DefaultCancelPoll       = 2 * time.Second
	DefaultStallNote        = time.Minute
	DefaultRetryBackoff     = 30 * time.Second
	DefaultMaxRetryDelay    = 10 * time.Minute
	DefaultShutdownTimeout  = 20 * time.Second
)

func (c Config) withDefaults() Config {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Connections <= 0 {
		c.Connections = DefaultConnections
	}
	set(&c.KeepAlive, taskqueue.DefaultConfig().KeepAliveInterval())
	set(&c.AckWait, 4*c.KeepAlive)
	set(&c.LockTTL, c.AckWait)
	set(&c.LockRefresh, c.LockTTL/6)
	set(&c.QueuedLockTTL, DefaultQueuedLockTTL)
	set(&c.Unclaimed, taskqueue.DefaultConfig().Unclaimed)
	set(&c.ProgressInterval, DefaultProgressInterval)
	set(&c.CancelPoll, DefaultCancelPoll)
	set(&c.StallNote, DefaultStallNote)
	set(&c.RetryBackoff, DefaultRetryBackoff)
	set(&c.MaxRetryDelay, DefaultMaxRetryDelay)
	set(&c.ShutdownTimeout, DefaultShutdownTimeout)
	if c.Providers == nil {
		c.Providers = providers.Builtin()
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.LockRefresh*2 > c.LockTTL {
		errs = append(errs, fmt.Errorf("lock refresh period %v must be at most half the lock TTL %v", c.LockRefresh, c.LockTTL))
	}
	return errors.Join(errs...)
}

// Deps are the worker's collaborators.
type Deps struct {
	Queue   Queue
	Store   Store
	Opener  Opener
	Copy    CopyFunc     // nil: mailcopy.Copy
	Logger  *slog.Logger // nil: discard
	Metrics *Metrics     // nil: no metrics
}

// Worker runs sync tasks from the queue.
type Worker struct {
	cfg     Config
	queue   Queue
	store   Store
	opener  Opener
	copy    CopyFunc
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
}

// SetIMAP sets Dial, RootCAs and AllowPlaintext from the operator's IMAP settings
// (the api's), so that the copiers reach exactly the servers the api tested.
func (c *Config) SetIMAP(s *netpolicy.Settings) error {
	policy, err := s.Policy()
	if err != nil {
		return err
	}
	roots, err := s.RootCAs()
	if err != nil {
		return err
	}
	c.Dial = imapconn.Options{Dialer: policy.Dialer(nil, nil)}
	c.RootCAs, c.AllowPlaintext = roots, s.AllowPlaintext
	return nil
}

// New returns a worker.
func New(deps Deps, cfg Config) (*Worker, error) {
	if deps.Queue == nil || deps.Store == nil || deps.Opener == nil {
		return nil, errors.New("syncworker: queue, store and opener are required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("syncworker: %w", err)
	}
	if deps.Copy == nil {
		deps.Copy = mailcopy.Copy
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{
		cfg: cfg, queue: deps.Queue, store: deps.Store, opener: deps.Opener,
		copy: deps.Copy, log: deps.Logger, metrics: deps.Metrics, now: time.Now,
	}, nil
}

// errShutdown is the cause of the running tasks' cancellation when Run's context ends.
var errShutdown = &taskError{class: classShutdown, reason: "the copier is shutting down"}

// Run pulls and runs tasks, at most Config.Concurrency at a time, until ctx ends;
// then it stops pulling, cancels the running copies, hands their tasks back to the
// queue and returns, within Config.ShutdownTimeout. A failing pull is retried with
// backoff (the NATS client reconnects by itself). It returns nil after a clean
// shutdown, and an error when running tasks did not hand back in time.
func (w *Worker) Run(ctx context.Context) error {
	// Tasks outlive ctx until they have handed back: they get their own context,
	// cancelled with errShutdown when ctx ends.
	tasksCtx, cancelTasks := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelTasks(errShutdown)
	stopTasks := context.AfterFunc(ctx, func() { cancelTasks(errShutdown) })
	defer stopTasks()

	slots := make(chan struct{}, w.cfg.Concurrency)
	var running sync.WaitGroup
	w.log.Info("worker_started", "concurrency", w.cfg.Concurrency)
	pullBackoff := time.Duration(0)
	for ctx.Err() == nil {
		select { // one pull per free slot
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		d, err := w.queue.Next(ctx)
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				break
			}
			pullBackoff = min(max(2*pullBackoff, time.Second), 30*time.Second)
			w.log.Warn("pull_failed", "error", err.Error(), "retry_in", pullBackoff.String())
			select {
			case <-time.After(pullBackoff):
			case <-ctx.Done():
			}
			continue
		}
		pullBackoff = 0
		running.Go(func() {
			defer func() { <-slots }()
			w.handle(tasksCtx, d)
		})
	}

	w.log.Info("worker_stopping", "running", len(slots))
	cancelTasks(errShutdown)
	done := make(chan struct{})
	go func() { running.Wait(); close(done) }()
	timer := time.NewTimer(w.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
		w.log.Info("worker_stopped")
		return nil
	case <-timer.C:
		w.log.Warn("worker_shutdown_deadline", "timeout", w.cfg.ShutdownTimeout.String())
		return fmt.Errorf("running tasks did not hand back within %v: their messages come back after the ack deadline", w.cfg.ShutdownTimeout)
	}
}
