package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"imapcopy.dev/pkg/adminhttp"
	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/syncworker"
	"imapcopy.dev/pkg/taskqueue"
	"imapcopy.dev/pkg/taskseal"
)

// version is set at build time (-ldflags "-X main.version=...", see the Dockerfile).
var version = "dev"

// runWorker is the worker mode: it pulls tasks until ctx ends (the first SIGTERM),
// then /readyz fails, the worker stops pulling and hands its running tasks back
// within IMAPCOPY_SHUTDOWN_TIMEOUT, and the admin server stops last.
func runWorker(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseWorkerConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	keyring, err := taskseal.LoadKeyring(cfg.TaskKeyFile)
	if err != nil {
		return fmt.Errorf("IMAPCOPY_TASK_KEY_FILE: %w", err)
	}
	policy, err := cfg.IMAP.Policy()
	if err != nil {
		return err
	}
	roots, err := cfg.IMAP.RootCAs()
	if err != nil {
		return err
	}

	nc, js, err := cfg.NATS.Connect("imapcopy-copier", logger)
	if err != nil {
		return err
	}
	defer nc.Close()

	checks := map[string]func(context.Context) error{
		"nats": func(context.Context) error {
			if !nc.IsConnected() {
				return errors.New("not connected to NATS")
			}
			return nil
		},
	}
	var store syncworker.Store
	if cfg.Status.Store == "redis" {
		redisStore, rdb, err := cfg.Status.OpenRedis()
		if err != nil {
			return err
		}
		defer rdb.Close()
		store = redisStore
		checks["redis"] = func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := syncworker.NewMetrics(reg)

	// The admin server comes up first, so that probes answer (not ready) while NATS
	// is awaited; it stops last.
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAdmin()
	var admin *adminhttp.Server
	adminDone := make(chan error, 1)
	var started atomic.Bool
	checks["worker"] = func(context.Context) error {
		if !started.Load() {
			return errors.New("starting")
		}
		return nil
	}
	if cfg.AdminAddr != "" {
		admin = adminhttp.New(cfg.AdminAddr, reg, checks, logger)
		go func() { adminDone <- admin.Serve(adminCtx) }()
	} else {
		adminDone <- nil
	}
	defer func() {
		stopAdmin()
		if err := <-adminDone; err != nil {
			logger.Warn("admin_http_failed", "error", err.Error())
		}
	}()

	qcfg := cfg.NATS.Stream()
	cons, err := ensureStream(ctx, nc, js, qcfg, logger)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if cfg.Status.Store == "nats" {
		kv, err := syncstatus.NewKV(ctx, js, cfg.Status.KVOptions(cfg.NATS.Replicas))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("status store: %w", err)
		}
		store = kv
	}

	worker, err := syncworker.New(syncworker.Deps{
		Queue:   taskqueue.NewPuller(cons, taskqueue.PullerOptions{Logger: logger}),
		Store:   store,
		Opener:  keyring,
		Logger:  logger,
		Metrics: metrics,
	}, syncworker.Config{
		Concurrency:     cfg.Concurrency,
		Connections:     cfg.Connections,
		KeepAlive:       qcfg.KeepAliveInterval(),
		QueuedLockTTL:   cfg.QueuedLockTTL,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Dial:            imapconn.Options{Dialer: policy.Dialer(nil, nil)},
		RootCAs:         roots,
		AllowPlaintext:  cfg.IMAP.AllowPlaintext,
	})
	if err != nil {
		return err
	}
	started.Store(true)
	logger.Info("copier_started", "version", version, "concurrency", cfg.Concurrency, "store", cfg.Status.Store,
		"task_keys", keyring.KeyIDs(), "admin_addr", cfg.AdminAddr)
	go func() {
		<-ctx.Done()
		if admin != nil {
			admin.Drain()
		}
	}()
	err = worker.Run(ctx)
	logger.Info("copier_stopped")
	return err
}

// ensureStream creates or updates the task stream and consumer from the shared
// settings. While NATS is unreachable it waits (readiness says so); a refusal from
// a reachable NATS, such as a setting JetStream cannot change in place, is fatal.
func ensureStream(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, cfg taskqueue.Config, logger *slog.Logger) (jetstream.Consumer, error) {
	wait := time.Second
	for {
		if nc.IsConnected() {
			cons, err := taskqueue.EnsureStream(ctx, js, cfg)
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
