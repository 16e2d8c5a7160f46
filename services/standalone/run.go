package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"imapcopy.dev/pkg/adminhttp"
	"imapcopy.dev/pkg/natsembed"
	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/syncworker"
	"imapcopy.dev/pkg/taskqueue"
	"imapcopy.dev/pkg/taskseal"
)

// ackWait is the task queue's ack deadline in the standalone mode. Its only use here
// is bringing back the task that was running when the process was killed: after a
// restart the task resumes once this much time has passed since its last keep-alive
// (a quarter of it). Shorter than the distributed default (1m), since no other
// process competes for tasks and a restart should resume soon.
const ackWait = 15 * time.Second

// run serves until ctx ends, then shuts down: readiness fails and the gRPC health
// turns NOT_SERVING, the api drains while the copiers hand their tasks back
// (IMAPCOPY_SHUTDOWN_TIMEOUT), then the admin server and NATS stop.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := cfg.Logger(stderr)
	keyring, unlock, err := openDataDir(cfg, logger)
	if err != nil {
		return err
	}
	defer unlock()
	ns, err := natsembed.Start(natsembed.Config{StoreDir: filepath.Join(cfg.DataDir, "nats"), ListenAddr: cfg.NATSListenAddr}, logger)
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	nc, js, err := ns.JetStream("imapcopy-standalone")
	if err != nil {
		return err
	}
	defer nc.Close()
	cons, err := taskqueue.Open(ctx, nc, js, taskqueue.Config{AckWait: ackWait}, logger)
	if err != nil {
		return err
	}
	store, err := syncstatus.NewKV(ctx, js, syncstatus.KVOptions{Retention: cfg.StatusRetention})
	if err != nil {
		return fmt.Errorf("status store: %w", err)
	}
	reg := adminhttp.NewRegistry(taskqueue.NewCollector(js))
	server, err := cfg.api(js, store, keyring, logger.With("component", "api"), reg)
	if err != nil {
		return err
	}
	worker, err := cfg.worker(cons, store, keyring, logger.With("component", "copier"), reg)
	if err != nil {
		return err
	}
	cfg.logStart(logger, keyring)
	checks := map[string]func(context.Context) error{"nats": taskqueue.PublisherCheck(js, taskqueue.Config{AckWait: ackWait})}
	err = adminhttp.Run(ctx, adminhttp.New(cfg.AdminAddr, reg, checks, logger), func(ctx context.Context) error {
		var g errgroup.Group
		g.Go(func() error { return worker.Run(ctx) })
		g.Go(func() error { return cfg.API.Serve(ctx, server, logger) })
		return g.Wait()
	})
	logger.Info("standalone_stopped")
	return err
}

// openDataDir makes and locks the data directory (one process per directory) and
// loads the task keys. unlock releases the directory.
func openDataDir(cfg *config, logger *slog.Logger) (keyring *taskseal.Keyring, unlock func(), err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	unlock, err = lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	keyring, err = loadKeyring(cfg, logger)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return keyring, unlock, nil
}

// logStart logs the start and the hints a first-time user needs.
func (cfg *config) logStart(logger *slog.Logger, keyring *taskseal.Keyring) {
	logger.Info("standalone_started", "version", version, "data_dir", cfg.DataDir, "copier_concurrency", cfg.Concurrency,
		"admin_addr", cfg.AdminAddr, "allow_networks", cfg.API.IMAP.AllowNetworks, "task_key", keyring.CurrentKeyID())
	if cfg.API.IMAP.AllowNetworks == "" {
		logger.Info("network_policy", "hint", "IMAP servers on loopback and private networks are refused; to copy from or to a local test server set IMAPCOPY_ALLOW_NETWORKS, such as 127.0.0.1/32")
	}
}

// loadKeyring reads the configured task key file, or the data directory's, which is
// made on first start. A configured file must exist: a typo must not silently start
// with a fresh key that cannot open the tasks already queued.
func loadKeyring(cfg *config, logger *slog.Logger) (*taskseal.Keyring, error) {
	path := cfg.keyFile()
	if cfg.TaskKeyFile != "" {
		kr, err := taskseal.LoadKeyring(path)
		if err != nil {
			return nil, fmt.Errorf("IMAPCOPY_TASK_KEY_FILE: %w", err)
		}
		return kr, nil
	}
	kr, created, err := taskseal.EnsureKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("task key: %w", err)
	}
	if created {
		logger.Warn("task_key_created", "path", path, "key_id", kr.CurrentKeyID(),
			"hint", "the passwords of queued tasks are sealed with this key: keep the file with the data directory; without it queued tasks cannot start")
	}
	return kr, nil
}

// worker composes the copier workers on the embedded queue and the KV store, with
// the api's network policy, CAs and plaintext rule, so that the copiers reach
// exactly the servers the api tested.
// api builds the api's server on the embedded NATS (queue, kept tasks) and the store.
func (cfg *config) api(js jetstream.JetStream, store *syncstatus.KV, keyring *taskseal.Keyring, logger *slog.Logger, reg prometheus.Registerer) (*syncapi.Server, error) {
	return cfg.API.Build(syncapi.Parts{
		Store: store, Queue: taskqueue.NewPublisher(js), Kept: taskqueue.NewKept(js, cfg.API.RetryWindow, 1),
		Sealer: keyring, Logger: logger, Registry: reg,
		MaxDeliver: taskqueue.DefaultConfig().MaxDeliver,
	})
}

func (cfg *config) worker(cons jetstream.Consumer, store *syncstatus.KV, keyring *taskseal.Keyring, logger *slog.Logger, reg prometheus.Registerer) (*syncworker.Worker, error) {
	wcfg := syncworker.Config{
		Concurrency:     cfg.Concurrency,
		Connections:     cfg.Connections,
		KeepAlive:       taskqueue.Config{AckWait: ackWait}.KeepAliveInterval(),
		ShutdownTimeout: cfg.API.ShutdownTimeout,
	}
	if err := wcfg.SetIMAP(&cfg.API.IMAP); err != nil {
		return nil, err
	}
	// The api's presets: their handling (throttling back-off, MULTIAPPEND) applies.
	cat, err := cfg.API.Catalogue()
	if err != nil {
		return nil, err
	}
	wcfg.Providers = cat
	return syncworker.New(syncworker.Deps{
		Queue:   taskqueue.NewPuller(cons, taskqueue.PullerOptions{Logger: logger}),
		Store:   store,
		Opener:  keyring,
		Logger:  logger,
		Metrics: syncworker.NewMetrics(reg),
	}, wcfg)
}
