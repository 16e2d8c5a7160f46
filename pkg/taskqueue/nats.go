package taskqueue

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"imapcopy.dev/pkg/envflag"
)

// NATSConfig is a binary's piece of configuration for reaching the task queue, read
// from flags and the environment. The api and the copiers read the same variables
// (see their READMEs): IMAPCOPY_NATS_URL, IMAPCOPY_NATS_CREDS_FILE,
// IMAPCOPY_QUEUE_REPLICAS and IMAPCOPY_ACK_WAIT.
type NATSConfig struct {
	URL       string        // IMAPCOPY_NATS_URL: server URLs, comma-separated
	CredsFile string        // IMAPCOPY_NATS_CREDS_FILE: JWT and NKey
	Replicas  int           // IMAPCOPY_QUEUE_REPLICAS: of the stream (and of the KV buckets)
	AckWait   time.Duration // IMAPCOPY_ACK_WAIT: the consumer's ack deadline

	errs error // environment values that did not parse
}

// RegisterFlags registers the flags on fs, their defaults taken from the environment
// through getenv (os.Getenv in main).
func (c *NATSConfig) RegisterFlags(fs *flag.FlagSet, getenv func(string) string) {
	e := envflag.New(fs, getenv)
	e.String(&c.URL, "nats-url", "IMAPCOPY_NATS_URL", "nats://127.0.0.1:4222", "NATS server URLs, comma-separated")
	e.String(&c.CredsFile, "nats-creds-file", "IMAPCOPY_NATS_CREDS_FILE", "", "NATS credentials file (JWT and NKey)")
	e.Int(&c.Replicas, "queue-replicas", "IMAPCOPY_QUEUE_REPLICAS", 1, "replicas of the task stream (and of the KV buckets of the nats store); the copiers create or update the stream at start, the api creates it when missing")
	e.Duration(&c.AckWait, "ack-wait", "IMAPCOPY_ACK_WAIT", DefaultConfig().AckWait, "how long a running task may go without a keep-alive before the queue gives it to another copier (keep-alives go every quarter of it); the same for every copier")
	c.errs = e.Err()
}

// Check validates the configuration, reporting every problem.
func (c *NATSConfig) Check() error {
	errs := []error{c.errs}
	if c.URL == "" {
		errs = append(errs, errors.New("IMAPCOPY_NATS_URL is required: the tasks go through its JetStream work queue"))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_QUEUE_REPLICAS=%d: expected 1 to 5", c.Replicas))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("IMAPCOPY_ACK_WAIT=%v: expected at least 1s", c.AckWait))
	}
	return errors.Join(errs...)
}

// Stream returns the stream settings with the configured replicas and ack wait, the
// other settings at their defaults.
func (c *NATSConfig) Stream() Config { return Config{Replicas: c.Replicas, AckWait: c.AckWait} }

// Connect connects to NATS as name. It returns even when NATS is not up yet: the
// connection keeps retrying in the background (a binary starts, and its readiness
// says NATS is missing), and reconnects for ever, logging each loss and return.
func (c *NATSConfig) Connect(name string, logger *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats_disconnected", "error", err.Error())
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { logger.Info("nats_reconnected") }),
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// Open makes sure the task stream and its consumer exist with cfg's settings and
// returns the consumer: the copiers own the stream's settings. While NATS is
// unreachable it waits, logging each try (readiness says so meanwhile); a refusal from
// a reachable NATS, such as a setting JetStream cannot change in place, is an error.
// It returns ctx.Err() when ctx ends first.
func Open(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, cfg Config, logger *slog.Logger) (jetstream.Consumer, error) {
	wait := time.Second
	for {
		if nc.IsConnected() {
			cons, err := EnsureStream(ctx, js, cfg)
			if err == nil || !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) && nc.IsConnected() {
				return cons, err
			}
			logger.Warn("task_queue_not_ready", "error", err.Error())
		} else {
			logger.Warn("task_queue_not_ready", "error", "not connected to NATS", "retry_in", wait.String())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 15*time.Second)
	}
}

// PublisherCheck is the readiness check of a binary that only publishes (the api):
// the task stream exists. It creates the stream with cfg when it is missing, so that
// starts work before the first copier comes up, and never changes the settings of an
// existing stream (the copiers' Open owns them).
func PublisherCheck(js jetstream.JetStream, cfg Config) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := js.Stream(ctx, StreamName)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = EnsureStream(ctx, js, cfg)
		}
		if err != nil {
			return fmt.Errorf("task stream: %w", err)
		}
		return nil
	}
}

// Connected is the readiness check of a NATS connection.
func Connected(nc *nats.Conn) error {
	if !nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	return nil
}
