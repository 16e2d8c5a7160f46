package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"imapcopy.dev/pkg/envflag"
	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/taskqueue"
)

// config is the api binary's configuration: the pieces of the packages it composes
// (the api, the task queue's NATS, the status store) and its own settings.
type config struct {
	API    syncapi.Config
	NATS   taskqueue.NATSConfig
	Status syncstatus.Config

	TaskKeyFile string     // IMAPCOPY_TASK_KEY_FILE
	AdminAddr   string     // IMAPCOPY_ADMIN_ADDR
	LogLevel    slog.Level // IMAPCOPY_LOG_LEVEL

	errs error
}

// parseConfig reads the flags in args over the environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{LogLevel: slog.LevelInfo}
	fs := flag.NewFlagSet("imapcopy-api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.API.RegisterFlags(fs, getenv)
	c.NATS.RegisterFlags(fs, getenv)
	c.Status.RegisterFlags(fs, getenv)
	e := envflag.New(fs, getenv)
	e.String(&c.TaskKeyFile, "task-key-file", "IMAPCOPY_TASK_KEY_FILE", "", "file of task encryption keys, \"keyid:base64key\" per line, the first one current (required)")
	e.String(&c.AdminAddr, "admin-addr", "IMAPCOPY_ADMIN_ADDR", "127.0.0.1:9090", "admin HTTP address: /metrics, /healthz, /readyz (empty: off)")
	e.Text(&c.LogLevel, "log-level", "IMAPCOPY_LOG_LEVEL", "debug, info, warn or error", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c.errs = e.Err()
	return c, c.check()
}

func (c *config) check() error {
	errs := []error{c.errs, c.API.Check(), c.NATS.Check(), c.Status.Check()}
	if c.TaskKeyFile == "" {
		errs = append(errs, errors.New(`IMAPCOPY_TASK_KEY_FILE is required: a file with a line "keyid:base64key", such as made by: printf '%s:%s\n' "k$(date +%Y%m%d)" "$(head -c 32 /dev/urandom | base64)"`))
	}
	return errors.Join(errs...)
}
