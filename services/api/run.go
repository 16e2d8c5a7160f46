package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"imapcopy.dev/pkg/adminhttp"
	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/taskqueue"
	"imapcopy.dev/pkg/taskseal"
)

// run serves until ctx ends, then shuts down: readiness fails first, the gRPC server
// drains (IMAPCOPY_SHUTDOWN_TIMEOUT), then the admin server stops.
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
	queue := &queueCheck{js: js, cfg: cfg.NATS.Stream()}
	if err := queue.ready(ctx); err != nil {
		logger.Warn("task_queue_not_ready", "error", err.Error())
	}

	var store syncapi.Store
	checks := map[string]func(context.Context) error{"nats": queue.ready}
	switch cfg.Status.Store {
	case "redis":
		redisStore, rdb, err := cfg.Status.OpenRedis()
		if err != nil {
			return err
		}
		defer rdb.Close()
		store = redisStore
		checks["redis"] = func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
	case "nats":
		kv := &kvStore{js: js, opts: cfg.Status.KVOptions(cfg.NATS.Replicas)}
		if err := kv.ready(ctx); err != nil {
			logger.Warn("kv_store_not_ready", "error", err.Error())
		}
		store = kv
		checks["kv"] = kv.ready
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		taskqueue.NewCollector(js))
	server, err := cfg.API.Build(syncapi.Parts{
		Store:    store,
		Queue:    taskqueue.NewPublisher(js),
		Sealer:   keyring,
		Logger:   logger,
		Registry: reg,
	})
	if err != nil {
		return err
	}

	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", cfg.API.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	httpLis, err := cfg.API.ListenHTTP(ctx)
	if err != nil {
		lis.Close()
		return err
	}
	if httpLis != nil {
		logger.Info("http_started", "http_addr", httpLis.Addr().String(), "page", cfg.API.Page,
			"hint", "open http://"+httpLis.Addr().String()+"/ ; the JSON API is under /v1/ (described at /v1/openapi.json)")
	}
	logger.Info("api_started", "version", version, "grpc_addr", lis.Addr().String(),
		"tls", cfg.API.TLSCertFile != "", "client_certificates", cfg.API.TLSClientCAFile != "",
		"tokens", cfg.API.TokensFile != "" || cfg.API.Tokens != "", "reflection", cfg.API.Reflection,
		"store", cfg.Status.Store, "task_key", keyring.CurrentKeyID())
	if cfg.API.TLSCertFile == "" {
		logger.Info("api_plaintext", "hint", "plain gRPC: fine on loopback; set IMAPCOPY_TLS_CERT_FILE, IMAPCOPY_TLS_KEY_FILE and IMAPCOPY_API_TOKENS_FILE before listening on a wider address")
	}

	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAdmin()
	var g errgroup.Group
	var admin *adminhttp.Server
	if cfg.AdminAddr != "" {
		admin = adminhttp.New(cfg.AdminAddr, reg, checks, logger)
		g.Go(func() error { return admin.Serve(adminCtx) })
	}
	var api errgroup.Group
	if httpLis != nil {
		api.Go(func() error { return server.ServeHTTP(ctx, httpLis) })
	}
	api.Go(func() error {
		served := make(chan error, 1)
		go func() { served <- server.Serve(ctx, lis) }()
		select {
		case err := <-served:
			return err
		case <-ctx.Done():
		}
		if admin != nil {
			admin.Drain()
		}
		return <-served
	})
	g.Go(func() error {
		defer stopAdmin() // the admin server outlives the gRPC and HTTP drains, then stops
		return api.Wait()
	})
	err = g.Wait()
	logger.Info("api_stopped")
	return err
}

// queueCheck makes sure the task stream exists. The copiers own its settings
// (taskqueue.EnsureStream at their start); the api creates the stream only when it
// is missing, so that starts work even before the first copier comes up, and never
// overwrites the copiers' settings.
type queueCheck struct {
	js  jetstream.JetStream
	cfg taskqueue.Config
}

func (q *queueCheck) ready(ctx context.Context) error {
	_, err := q.js.Stream(ctx, taskqueue.StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = taskqueue.EnsureStream(ctx, q.js, q.cfg)
	}
	if err != nil {
		return fmt.Errorf("task stream: %w", err)
	}
	return nil
}
