package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"imapcopy.dev/pkg/adminhttp"
	"imapcopy.dev/pkg/imapconn"
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
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	keyring, err := loadKeyring(cfg, logger)
	if err != nil {
		return err
	}

	ns, err := natsembed.Start(natsembed.Config{
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		ListenAddr: cfg.NATSListenAddr,
	}, logger)
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	nc, err := ns.Connect("imapcopy-standalone")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	qcfg := taskqueue.Config{AckWait: ackWait}
	cons, err := taskqueue.EnsureStream(ctx, js, qcfg)
	if err != nil {
		return err
	}
	store, err := syncstatus.NewKV(ctx, js, syncstatus.KVOptions{Retention: cfg.StatusRetention})
	if err != nil {
		return fmt.Errorf("status store: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		taskqueue.NewCollector(js))
	server, err := cfg.API.Build(syncapi.Parts{
		Store:    store,
		Queue:    taskqueue.NewPublisher(js),
		Sealer:   keyring,
		Logger:   logger.With("component", "api"),
		Registry: reg,
	})
	if err != nil {
		return err
	}
	worker, err := newWorker(cfg, cons, store, keyring, logger.With("component", "copier"), reg)
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
	logger.Info("standalone_started", "version", version, "grpc_addr", lis.Addr().String(),
		"data_dir", cfg.DataDir, "copier_concurrency", cfg.Concurrency, "admin_addr", cfg.AdminAddr,
		"tls", cfg.API.TLSCertFile != "", "tokens", cfg.API.TokensFile != "" || cfg.API.Tokens != "",
		"allow_networks", cfg.API.IMAP.AllowNetworks, "task_key", keyring.CurrentKeyID())
	if cfg.API.TLSCertFile == "" {
		logger.Info("api_plaintext", "hint", "plain gRPC: fine on loopback (grpcurl -plaintext "+lis.Addr().String()+
			" list); before listening on a wider address set IMAPCOPY_TLS_CERT_FILE, IMAPCOPY_TLS_KEY_FILE and IMAPCOPY_API_TOKENS_FILE")
	}
	if cfg.API.IMAP.AllowNetworks == "" {
		logger.Info("network_policy", "hint", "IMAP servers on loopback and private networks are refused; to copy from or to a local test server set IMAPCOPY_ALLOW_NETWORKS, such as 127.0.0.1/32")
	}

	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAdmin()
	var admin *adminhttp.Server
	if cfg.AdminAddr != "" {
		admin = adminhttp.New(cfg.AdminAddr, reg, map[string]func(context.Context) error{
			"nats": func(ctx context.Context) error {
				_, err := js.Stream(ctx, taskqueue.StreamName)
				return err
			},
		}, logger)
	}
	var g errgroup.Group
	if admin != nil {
		g.Go(func() error { return admin.Serve(adminCtx) })
	}
	var work errgroup.Group
	work.Go(func() error { return worker.Run(ctx) })
	if httpLis != nil {
		work.Go(func() error { return server.ServeHTTP(ctx, httpLis) })
	}
	work.Go(func() error {
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
		defer stopAdmin() // the admin server outlives the api and the copiers, then stops
		return work.Wait()
	})
	err = g.Wait()
	logger.Info("standalone_stopped")
	return err
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

// newWorker composes the copier workers on the embedded queue and the KV store,
// with the api's network policy, CAs and plaintext rule, so that the copiers reach
// exactly the servers the api tested.
func newWorker(cfg *config, cons jetstream.Consumer, store *syncstatus.KV, keyring *taskseal.Keyring, logger *slog.Logger, reg prometheus.Registerer) (*syncworker.Worker, error) {
	policy, err := cfg.API.IMAP.Policy()
	if err != nil {
		return nil, err
	}
	roots, err := cfg.API.IMAP.RootCAs()
	if err != nil {
		return nil, err
	}
	w, err := syncworker.New(syncworker.Deps{
		Queue:   taskqueue.NewPuller(cons, taskqueue.PullerOptions{Logger: logger}),
		Store:   store,
		Opener:  keyring,
		Logger:  logger,
		Metrics: syncworker.NewMetrics(reg),
	}, syncworker.Config{
		Concurrency:     cfg.Concurrency,
		Connections:     cfg.Connections,
		KeepAlive:       taskqueue.Config{AckWait: ackWait}.KeepAliveInterval(),
		ShutdownTimeout: cfg.API.ShutdownTimeout,
		Dial:            imapconn.Options{Dialer: policy.Dialer(nil, nil)},
		RootCAs:         roots,
		AllowPlaintext:  cfg.API.IMAP.AllowPlaintext,
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}
