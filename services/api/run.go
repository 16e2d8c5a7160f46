package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"imapcopy.dev/pkg/adminhttp"
	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/taskqueue"
	"imapcopy.dev/pkg/taskseal"
)

// run serves until ctx ends, then shuts down: readiness fails first, the gRPC and
// HTTP servers drain (IMAPCOPY_SHUTDOWN_TIMEOUT), then the admin server stops. NATS
// and the store may be down at start: readiness says so until they are up.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	keyring, err := taskseal.LoadKeyring(cfg.TaskKeyFile)
	if err != nil {
		return fmt.Errorf("IMAPCOPY_TASK_KEY_FILE: %w", err)
	}
	nc, js, err := cfg.NATS.Connect("imapcopy-api", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	store, err := cfg.Status.Open(js, cfg.NATS.Replicas)
	if err != nil {
		return err
	}
	defer store.Close()
	reg := adminhttp.NewRegistry(taskqueue.NewCollector(js))
	server, err := cfg.API.Build(syncapi.Parts{
		Store: store.Store, Queue: taskqueue.NewPublisher(js), Sealer: keyring, Logger: logger, Registry: reg,
	})
	if err != nil {
		return err
	}
	checks := map[string]func(context.Context) error{"nats": taskqueue.PublisherCheck(js, cfg.NATS.Stream()), store.Name: store.Check}
	logger.Info("api_started", "version", version, "store", cfg.Status.Store, "task_key", keyring.CurrentKeyID())
	err = adminhttp.Run(ctx, adminhttp.New(cfg.AdminAddr, reg, checks, logger), func(ctx context.Context) error {
		return cfg.API.Serve(ctx, server, logger)
	})
	logger.Info("api_stopped")
	return err
}
