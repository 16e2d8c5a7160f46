// Package natsembed runs the NATS server with JetStream inside the standalone
// process, so that imapcopy works on a machine with nothing else installed.
//
// JetStream keeps its files in a directory of the caller's (the standalone mode's data
// directory): queued tasks and key-value statuses survive a restart. By default the
// server opens no network port at all; clients in the same process connect through
// nats.InProcessServer. An operator who wants to look inside (the nats CLI, /jsz) can
// give it a loopback listen address.
package natsembed

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says where the embedded server keeps its data and whether it listens.
type Config struct {
	// StoreDir holds JetStream's files. Required.
	StoreDir string
	// ListenAddr, such as "127.0.0.1:4222", opens a client port; empty: in-process only.
	ListenAddr string
	// ReadyTimeout bounds the start (default 30s: JetStream recovers its files first).
	ReadyTimeout time.Duration
}

// Server is a running embedded NATS server.
type Server struct {
	ns     *server.Server
	logger *slog.Logger
}

// Start starts the server and waits until it accepts connections with JetStream on.
func Start(cfg Config, logger *slog.Logger) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded nats: a data directory is required")
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	opts := &server.Options{
		ServerName: "imapcopy-standalone",
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		DontListen: cfg.ListenAddr == "",
	}
	if cfg.ListenAddr != "" {
		host, port, err := net.SplitHostPort(cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen address %q: %w", cfg.ListenAddr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen port %q is not a number", port)
		}
		opts.Host, opts.Port = host, p
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready within %v (data directory %s)", cfg.ReadyTimeout, cfg.StoreDir)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats: JetStream did not start (data directory %s)", cfg.StoreDir)
	}
	logger.Info("nats_embedded_started", "store_dir", cfg.StoreDir, "listen", cfg.ListenAddr)
	return &Server{ns: ns, logger: logger}, nil
}

// Connect opens a client connection inside the process.
func (s *Server) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(s.ns), nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server, letting JetStream flush its files.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.logger.Info("nats_embedded_stopped")
}

// JetStream connects inside the process and returns the connection and its
// JetStream context.
func (s *Server) JetStream(name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := s.Connect(name)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}
