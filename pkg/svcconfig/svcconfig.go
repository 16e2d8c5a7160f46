// Package svcconfig is the configuration the imapcopy binaries share, read the same
// way everywhere (a flag wins over its IMAPCOPY_* variable, the variable over the
// default), and the one order in which the api and the copiers of a fleet open what
// they depend on: the task keys, NATS, the status store. Neither waits for NATS or
// the store (see taskqueue.Open and syncstatus.Config.Open): a binary starts, says in
// its readiness what is missing, and works once it is there.
package svcconfig

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"imapcopy.dev/pkg/envflag"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/taskqueue"
	"imapcopy.dev/pkg/taskseal"
)

// Admin is what every binary has: the admin server's address and the log level.
type Admin struct {
	AdminAddr string     // IMAPCOPY_ADMIN_ADDR
	LogLevel  slog.Level // IMAPCOPY_LOG_LEVEL

	errs error
}

// RegisterFlags registers the flags on fs, their defaults taken from the environment
// through getenv (os.Getenv in main).
func (a *Admin) RegisterFlags(fs *flag.FlagSet, getenv func(string) string) {
	e := envflag.New(fs, getenv)
	e.String(&a.AdminAddr, "admin-addr", "IMAPCOPY_ADMIN_ADDR", "127.0.0.1:9090", "admin HTTP address: /metrics, /healthz, /readyz (empty: off)")
	a.LogLevel = slog.LevelInfo
	e.Text(&a.LogLevel, "log-level", "IMAPCOPY_LOG_LEVEL", "debug, info, warn or error", "log level")
	a.errs = e.Err()
}

// Check reports the values that did not parse.
func (a *Admin) Check() error { return a.errs }

// Logger is the binary's logger: JSON on w at the configured level.
func (a *Admin) Logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: a.LogLevel}))
}

// Fleet is what the api and the copiers of a fleet share and must agree on: NATS
// (the task queue), the status store and the task key file.
type Fleet struct {
	NATS        taskqueue.NATSConfig
	Status      syncstatus.Config
	TaskKeyFile string // IMAPCOPY_TASK_KEY_FILE

	errs error
}

// RegisterFlags registers the flags on fs; keyHelp says what the key file holds for
// this binary.
func (f *Fleet) RegisterFlags(fs *flag.FlagSet, getenv func(string) string, keyHelp string) {
	f.NATS.RegisterFlags(fs, getenv)
	f.Status.RegisterFlags(fs, getenv)
	e := envflag.New(fs, getenv)
	e.String(&f.TaskKeyFile, "task-key-file", "IMAPCOPY_TASK_KEY_FILE", "", keyHelp)
	f.errs = e.Err()
}

// Check validates the configuration, reporting every problem; keyHint tells how to
// get a key file when none is given.
func (f *Fleet) Check(keyHint string) error {
	errs := []error{f.errs, f.NATS.Check(), f.Status.Check()}
	if f.TaskKeyFile == "" {
		errs = append(errs, errors.New("IMAPCOPY_TASK_KEY_FILE is required: "+keyHint))
	}
	return errors.Join(errs...)
}

// Deps are a fleet binary's opened dependencies.
type Deps struct {
	Keyring *taskseal.Keyring
	NATS    *nats.Conn
	JS      jetstream.JetStream
	Store   *syncstatus.Opened
}

// Open loads the task keys, connects to NATS as name and opens the store, without
// waiting for NATS or the store.
func (f *Fleet) Open(name string, logger *slog.Logger) (*Deps, error) {
	keyring, err := taskseal.LoadKeyring(f.TaskKeyFile)
	if err != nil {
		return nil, fmt.Errorf("IMAPCOPY_TASK_KEY_FILE: %w", err)
	}
	nc, js, err := f.NATS.Connect(name, logger)
	if err != nil {
		return nil, err
	}
	store, err := f.Status.Open(js, f.NATS.Replicas)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Deps{Keyring: keyring, NATS: nc, JS: js, Store: store}, nil
}

// Close closes the store's client and the NATS connection.
func (d *Deps) Close() {
	d.Store.Close()
	d.NATS.Close()
}
