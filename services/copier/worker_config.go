package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"imapcopy.dev/pkg/envflag"
	"imapcopy.dev/pkg/netpolicy"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/syncworker"
	"imapcopy.dev/pkg/taskqueue"
)

// workerConfig is the configuration of the worker mode (the default command). The
// names of the shared settings are the api's: both services read one environment.
type workerConfig struct {
	NATS   taskqueue.NATSConfig
	Status syncstatus.Config

	TaskKeyFile string     // IMAPCOPY_TASK_KEY_FILE
	AdminAddr   string     // IMAPCOPY_ADMIN_ADDR
	LogLevel    slog.Level // IMAPCOPY_LOG_LEVEL

	Concurrency     int           // IMAPCOPY_COPIER_CONCURRENCY
	Connections     int           // IMAPCOPY_COPIER_CONNECTIONS
	ShutdownTimeout time.Duration // IMAPCOPY_SHUTDOWN_TIMEOUT
	QueuedLockTTL   time.Duration // IMAPCOPY_QUEUED_LOCK_TTL

	AllowNetworks  string // IMAPCOPY_ALLOW_NETWORKS
	AllowPorts     string // IMAPCOPY_ALLOW_PORTS
	IMAPCAFile     string // IMAPCOPY_IMAP_CA_FILE
	AllowPlaintext bool   // IMAPCOPY_ALLOW_PLAINTEXT_IMAP
}

const workerUsage = `Usage: imapcopy-copier [worker] [options]

Pulls sync tasks from the JetStream work queue and copies the mailboxes, reporting
progress in the status store. Every option is also an IMAPCOPY_* environment variable
(named below); a flag wins over its variable. See README.md.

Options:
`

// parseWorkerConfig reads the flags in args over the environment.
func parseWorkerConfig(args []string, getenv func(string) string, stderr io.Writer) (*workerConfig, error) {
	c := &workerConfig{LogLevel: slog.LevelInfo}
	fs := flag.NewFlagSet("imapcopy-copier worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, workerUsage)
		fs.PrintDefaults()
	}
	c.NATS.RegisterFlags(fs, getenv)
	c.Status.RegisterFlags(fs, getenv)
	e := envflag.New(fs, getenv)
	e.String(&c.TaskKeyFile, "task-key-file", "IMAPCOPY_TASK_KEY_FILE", "", `file of task encryption keys, "keyid:base64key" per line; every key that may have sealed a queued task (required)`)
	e.String(&c.AdminAddr, "admin-addr", "IMAPCOPY_ADMIN_ADDR", "127.0.0.1:9090", "admin HTTP address: /metrics, /healthz, /readyz (empty: off)")
	e.Text(&c.LogLevel, "log-level", "IMAPCOPY_LOG_LEVEL", "debug, info, warn or error", "log level")
	e.Int(&c.Concurrency, "concurrency", "IMAPCOPY_COPIER_CONCURRENCY", syncworker.DefaultConcurrency, "tasks this process copies at once (KEDA's lagThreshold must be the same)")
	e.Int(&c.Connections, "connections", "IMAPCOPY_COPIER_CONNECTIONS", syncworker.DefaultConnections, "connections per account when neither the task nor its provider preset says")
	e.Duration(&c.ShutdownTimeout, "shutdown-timeout", "IMAPCOPY_SHUTDOWN_TIMEOUT", syncworker.DefaultShutdownTimeout, "after SIGTERM, how long running tasks have to stop and hand back to the queue")
	e.Duration(&c.QueuedLockTTL, "queued-lock-ttl", "IMAPCOPY_QUEUED_LOCK_TTL", syncworker.DefaultQueuedLockTTL, "lifetime of a source's lock while its task waits in the queue (retry, hand-back); the same as the api's")
	e.String(&c.AllowNetworks, "allow-networks", "IMAPCOPY_ALLOW_NETWORKS", "", "comma-separated CIDRs, addresses and host names (*.example for subdomains) exempt from the network policy; the same as the api's")
	e.String(&c.AllowPorts, "allow-ports", "IMAPCOPY_ALLOW_PORTS", "143,993", "comma-separated IMAP ports allowed to hosts that are not allow-listed; the same as the api's")
	e.String(&c.IMAPCAFile, "imap-ca-file", "IMAPCOPY_IMAP_CA_FILE", "", "PEM CAs trusted for IMAP servers, besides the system roots; the same as the api's")
	e.Bool(&c.AllowPlaintext, "allow-plaintext-imap", "IMAPCOPY_ALLOW_PLAINTEXT_IMAP", false, "run tasks that use IMAP without TLS; the same as the api's")
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
	errs := []error{c.NATS.Check(), c.Status.Check()}
	if c.TaskKeyFile == "" {
		errs = append(errs, errors.New("IMAPCOPY_TASK_KEY_FILE is required: the api's task key file (all its keys)"))
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_COPIER_CONCURRENCY=%d: expected 1 to 256", c.Concurrency))
	}
	if c.Connections < 1 || c.Connections > 50 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_COPIER_CONNECTIONS=%d: expected 1 to 50", c.Connections))
	}
	for name, d := range map[string]time.Duration{
		"IMAPCOPY_SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
		"IMAPCOPY_QUEUED_LOCK_TTL":  c.QueuedLockTTL,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%v: expected a positive duration", name, d))
		}
	}
	if _, err := c.policy(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// policy is the network policy for customers' IMAP servers, as the api builds it.
func (c *workerConfig) policy() (*netpolicy.Policy, error) {
	cfg := netpolicy.Config{Allow: strings.Split(c.AllowNetworks, ",")}
	for p := range strings.SplitSeq(c.AllowPorts, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("IMAPCOPY_ALLOW_PORTS: %q is not a port number", p)
		}
		cfg.Ports = append(cfg.Ports, port)
	}
	policy, err := netpolicy.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("IMAPCOPY_ALLOW_NETWORKS: %w", err)
	}
	return policy, nil
}

// rootCAs is the pool that verifies IMAP servers: nil (the system roots) unless
// IMAPCOPY_IMAP_CA_FILE adds CAs to them.
func (c *workerConfig) rootCAs() (*x509.CertPool, error) {
	if c.IMAPCAFile == "" {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(c.IMAPCAFile)
	if err != nil {
		return nil, fmt.Errorf("IMAPCOPY_IMAP_CA_FILE: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("IMAPCOPY_IMAP_CA_FILE: %s holds no PEM certificate", c.IMAPCAFile)
	}
	return pool, nil
}
