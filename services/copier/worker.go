package main

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"imapcopy.dev/pkg/adminhttp"
	"imapcopy.dev/pkg/syncworker"
	"imapcopy.dev/pkg/taskqueue"
)

// version is set at build time (-ldflags "-X main.version=...", see the Dockerfile).
var version = "dev"

// runWorker is the worker mode: it waits for NATS, then pulls tasks until ctx ends
// (the first SIGTERM); then /readyz fails, the worker stops pulling and hands its
// running tasks back within IMAPCOPY_SHUTDOWN_TIMEOUT, and the admin server stops last.
func runWorker(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseWorkerConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := cfg.Logger(stderr)
	limit, _ := cfg.MemoryLimit.resolve(cfg.Concurrency, cfg.Connections) // checked by parseWorkerConfig
	limit = setMemoryLimit(limit)
	deps, err := cfg.Fleet.Open("imapcopy-copier", logger)
	if err != nil {
		return err
	}
	defer deps.Close()
	nc, store := deps.NATS, deps.Store
	reg := adminhttp.NewRegistry()
	metrics := syncworker.NewMetrics(reg)
	var started atomic.Bool
	checks := map[string]func(context.Context) error{
		"nats":     func(context.Context) error { return taskqueue.Connected(nc) },
		store.Name: store.Check,
		"worker":   func(context.Context) error { return ready(started.Load()) },
	}
	err = adminhttp.Run(ctx, adminhttp.New(cfg.AdminAddr, reg, checks, logger), func(ctx context.Context) error {
		cons, err := taskqueue.Open(ctx, nc, deps.JS, cfg.NATS.Stream(), logger)
		if err != nil {
			return ignoreCancel(ctx, err)
		}
		worker, err := cfg.worker(taskqueue.NewPuller(cons, taskqueue.PullerOptions{Logger: logger}), store.Store, deps.Keyring, logger, metrics)
		if err != nil {
			return err
		}
		started.Store(true)
		logger.Info("copier_started", "version", version, "concurrency", cfg.Concurrency, "store", cfg.Status.Store,
			"task_keys", deps.Keyring.KeyIDs(), "admin_addr", cfg.AdminAddr, "memory_limit", memoryLimitText(limit))
		return worker.Run(ctx)
	})
	logger.Info("copier_stopped")
	return err
}

// ready is the worker's readiness: not before it pulls tasks.
func ready(started bool) error {
	if !started {
		return errors.New("starting")
	}
	return nil
}

// ignoreCancel is nil when err only says that ctx ended (a shutdown while waiting).
func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
