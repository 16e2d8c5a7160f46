package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"imapcopy.dev/pkg/envflag"
	"imapcopy.dev/pkg/netpolicy"
	"imapcopy.dev/pkg/providers"
	"imapcopy.dev/pkg/svcconfig"
	"imapcopy.dev/pkg/syncworker"
	"imapcopy.dev/pkg/taskseal"
)

// workerConfig is the configuration of the worker mode (the default command). The
// names of the shared settings are the api's: both services read one environment.
type workerConfig struct {
	svcconfig.Fleet
	svcconfig.Admin

	Concurrency     int           // IMAPCOPY_COPIER_CONCURRENCY
	Connections     int           // IMAPCOPY_COPIER_CONNECTIONS
	ShutdownTimeout time.Duration // IMAPCOPY_SHUTDOWN_TIMEOUT
	QueuedLockTTL   time.Duration // IMAPCOPY_QUEUED_LOCK_TTL
	LockTTL         time.Duration // IMAPCOPY_LOCK_TTL
	ProvidersFile   string        // IMAPCOPY_PROVIDERS_FILE, the api's
	MemoryLimit     memoryLimit   // IMAPCOPY_COPIER_MEMORY_LIMIT

	IMAP netpolicy.Settings // the api's: the copiers reach the servers it tested
}

const workerUsage = `Usage: imapcopy-copier [worker] [options]

Pulls sync tasks from the JetStream work queue and copies the mailboxes, reporting
progress in the status store. Every option is also an IMAPCOPY_* environment variable
(named below); a flag wins over its variable. See README.md.

Options:
`

// parseWorkerConfig reads the flags in args over the environment.
func parseWorkerConfig(args []string, getenv func(string) string, stderr io.Writer) (*workerConfig, error) {
	c := &workerConfig{}
	fs := flag.NewFlagSet("imapcopy-copier worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, workerUsage)
		fs.PrintDefaults()
	}
	c.Fleet.RegisterFlags(fs, getenv, `file of task encryption keys, "keyid:base64key" per line; every key that may have sealed a queued task (required)`)
	c.Admin.RegisterFlags(fs, getenv)
	c.IMAP.RegisterFlags(fs, getenv)
	e := envflag.New(fs, getenv)
	e.Int(&c.Concurrency, "concurrency", "IMAPCOPY_COPIER_CONCURRENCY", syncworker.DefaultConcurrency, "tasks this process copies at once (KEDA's lagThreshold must be the same)")
	e.Int(&c.Connections, "connections", "IMAPCOPY_COPIER_CONNECTIONS", syncworker.DefaultConnections, "connections per account when neither the task nor its provider preset says")
	e.Duration(&c.ShutdownTimeout, "shutdown-timeout", "IMAPCOPY_SHUTDOWN_TIMEOUT", syncworker.DefaultShutdownTimeout, "after SIGTERM, how long running tasks have to stop and hand back to the queue")
	e.Duration(&c.QueuedLockTTL, "queued-lock-ttl", "IMAPCOPY_QUEUED_LOCK_TTL", syncworker.DefaultQueuedLockTTL, "lifetime of a source's lock while its task waits in the queue (retry, hand-back); the same as the api's")
	e.Duration(&c.LockTTL, "lock-ttl", "IMAPCOPY_LOCK_TTL", 0, "lifetime of a source's lock while a copier works on it, refreshed every sixth of it: how soon another copier may take over the task of a copier that died (default: the queue's ack wait, IMAPCOPY_ACK_WAIT)")
	e.String(&c.ProvidersFile, "providers-file", "IMAPCOPY_PROVIDERS_FILE", "", "the api's JSON provider catalogue, if it replaces the built-in one: the presets' handling (throttling back-off, MULTIAPPEND) applies to the tasks")
	e.String(&c.MemoryLimit.raw, "memory-limit", "IMAPCOPY_COPIER_MEMORY_LIMIT", "", "Go memory limit of the process (512MiB, 1GiB; off: none); default 16 MiB + concurrency x connections x 8 MiB, GOMEMLIMIT if lower")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, &exitError{code: exitOK, err: err, quiet: true}
		}
		return nil, &exitError{code: exitUsage, err: err, quiet: true}
	}
	if fs.NArg() > 0 {
		return nil, usageErr("unexpected argument %q (options start with -)", fs.Arg(0))
	}
	if err := errors.Join(e.Err(), c.check()); err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return c, nil
}

func (c *workerConfig) check() error {
	errs := []error{c.Fleet.Check("the api's task key file (all its keys)"), c.Admin.Check(), c.IMAP.Check()}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_COPIER_CONCURRENCY=%d: expected 1 to 256", c.Concurrency))
	}
	if c.Connections < 1 || c.Connections > 50 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_COPIER_CONNECTIONS=%d: expected 1 to 50", c.Connections))
	}
	if c.LockTTL < 0 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_LOCK_TTL=%v: expected a positive duration, or 0 for the ack wait", c.LockTTL))
	}
	if _, err := c.MemoryLimit.resolve(c.Concurrency, c.Connections); err != nil {
		errs = append(errs, fmt.Errorf("IMAPCOPY_COPIER_MEMORY_LIMIT: %w", err))
	}
	for name, d := range map[string]time.Duration{
		"IMAPCOPY_SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
		"IMAPCOPY_QUEUED_LOCK_TTL":  c.QueuedLockTTL,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%v: expected a positive duration", name, d))
		}
	}
	return errors.Join(errs...)
}

// worker builds the worker this configuration describes.
func (c *workerConfig) worker(queue syncworker.Queue, store syncworker.Store, keyring *taskseal.Keyring, logger *slog.Logger, metrics *syncworker.Metrics) (*syncworker.Worker, error) {
	cfg := syncworker.Config{
		Concurrency:     c.Concurrency,
		Connections:     c.Connections,
		KeepAlive:       c.NATS.Stream().KeepAliveInterval(),
		QueuedLockTTL:   c.QueuedLockTTL,
		LockTTL:         c.LockTTL, // 0: syncworker's default, the ack wait
		ShutdownTimeout: c.ShutdownTimeout,
	}
	if err := cfg.SetIMAP(&c.IMAP); err != nil {
		return nil, err
	}
	if c.ProvidersFile != "" {
		cat, err := providers.Load(c.ProvidersFile)
		if err != nil {
			return nil, err
		}
		cfg.Providers = cat
	}
	return syncworker.New(syncworker.Deps{Queue: queue, Store: store, Opener: keyring, Logger: logger, Metrics: metrics}, cfg)
}
