package main

import (
	"context"
	"io"

	"imapcopy.dev/pkg/adminhttp"
	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/taskqueue"
)

// run serves until ctx ends, then shuts down: readiness fails first, the gRPC and
// HTTP servers drain (IMAPCOPY_SHUTDOWN_TIMEOUT), then the admin server stops. NATS
// and the store may be down at start: readiness says so until they are up.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := cfg.Logger(stderr)
	deps, err := cfg.Fleet.Open("imapcopy-api", logger)
	if err != nil {
		return err
	}
	defer deps.Close()
	reg := adminhttp.NewRegistry(taskqueue.NewCollector(deps.JS))
	server, err := cfg.API.Build(syncapi.Parts{
		Store: deps.Store.Store, Queue: taskqueue.NewPublisher(deps.JS), Sealer: deps.Keyring, Logger: logger, Registry: reg,
		Kept:       taskqueue.NewKept(deps.JS, cfg.API.RetryWindow, cfg.NATS.Replicas),
		MaxDeliver: taskqueue.DefaultConfig().MaxDeliver, // the copiers' consumer's (not configurable)
	})
	if err != nil {
		return err
	}
	checks := map[string]func(context.Context) error{
		"nats":          taskqueue.PublisherCheck(deps.JS, cfg.NATS.Stream()),
		deps.Store.Name: deps.Store.Check,
	}
	logger.Info("api_started", "version", version, "store", cfg.Status.Store, "task_key", deps.Keyring.CurrentKeyID())
	err = adminhttp.Run(ctx, adminhttp.New(cfg.AdminAddr, reg, checks, logger), func(ctx context.Context) error {
		return cfg.API.Serve(ctx, server, logger)
	})
	logger.Info("api_stopped")
	return err
}
