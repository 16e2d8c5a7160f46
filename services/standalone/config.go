package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"imapcopy.dev/pkg/envflag"
	"imapcopy.dev/pkg/svcconfig"
	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/syncworker"
)

// config is the standalone binary's configuration: the api's own piece
// (syncapi.Config, whose settings also govern the copiers here: network policy, CAs,
// plaintext IMAP, shutdown timeout) and the one-process parts around it.
type config struct {
	API syncapi.Config

	DataDir         string        // IMAPCOPY_DATA_DIR
	TaskKeyFile     string        // IMAPCOPY_TASK_KEY_FILE; empty: DataDir/task.key, made on first start
	Concurrency     int           // IMAPCOPY_COPIER_CONCURRENCY
	Connections     int           // IMAPCOPY_COPIER_CONNECTIONS
	NATSListenAddr  string        // IMAPCOPY_NATS_LISTEN_ADDR
	StatusRetention time.Duration // IMAPCOPY_STATUS_RETENTION
	svcconfig.Admin

	errs error
}

// parseConfig reads the flags in args over the environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("imapcopy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: imapcopy [flags]\n\nimapcopy in one process: embedded NATS (data on local disk), the gRPC api, the copiers.\nEvery flag has an environment variable; a flag wins over its variable.\n\n")
		fs.PrintDefaults()
	}
	c.API.HTTPAddr = syncapi.DefaultStandaloneHTTPAddr // the page, at once
	c.API.RegisterFlags(fs, getenv)
	c.Admin.RegisterFlags(fs, getenv)
	e := envflag.New(fs, getenv)
	e.String(&c.DataDir, "data-dir", "IMAPCOPY_DATA_DIR", "data", "directory of the queue, the statuses and the generated task key (created 0700)")
	e.String(&c.TaskKeyFile, "task-key-file", "IMAPCOPY_TASK_KEY_FILE", "", `file of task encryption keys, "keyid:base64key" per line (default: DATA_DIR/task.key, generated on first start)`)
	e.Int(&c.Concurrency, "copier-concurrency", "IMAPCOPY_COPIER_CONCURRENCY", syncworker.DefaultConcurrency, "syncs copied at once")
	e.Int(&c.Connections, "copier-connections", "IMAPCOPY_COPIER_CONNECTIONS", syncworker.DefaultConnections, "connections per account when neither the sync's options nor its provider preset say")
	e.String(&c.NATSListenAddr, "nats-listen-addr", "IMAPCOPY_NATS_LISTEN_ADDR", "", "loopback address on which the embedded NATS also accepts clients, such as 127.0.0.1:4222, for the nats CLI (empty: in-process only)")
	e.Duration(&c.StatusRetention, "status-retention", "IMAPCOPY_STATUS_RETENTION", syncstatus.DefaultRetention, "how long a finished sync's status is kept")
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
	errs := []error{c.errs, c.Admin.Check()}
	if err := c.API.Check(); err != nil {
		errs = append(errs, err)
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("IMAPCOPY_DATA_DIR is required: the queue and the statuses live there"))
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_COPIER_CONCURRENCY=%d: expected 1 to 256", c.Concurrency))
	}
	if c.Connections < 1 || c.Connections > 50 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_COPIER_CONNECTIONS=%d: expected 1 to 50", c.Connections))
	}
	if c.StatusRetention <= 0 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_STATUS_RETENTION=%v: expected a positive duration", c.StatusRetention))
	}
	if c.NATSListenAddr != "" {
		// The embedded server has no authentication: whoever reaches it reads the queue.
		host, _, err := net.SplitHostPort(c.NATSListenAddr)
		addr, perr := netip.ParseAddr(host)
		if err != nil || perr != nil || !addr.Unmap().IsLoopback() {
			errs = append(errs, fmt.Errorf("IMAPCOPY_NATS_LISTEN_ADDR=%q: expected a loopback address and port, such as 127.0.0.1:4222 (the embedded NATS has no authentication)", c.NATSListenAddr))
		}
	}
	return errors.Join(errs...)
}

// keyFile is the task key file: the configured one, or the data directory's.
func (c *config) keyFile() string {
	if c.TaskKeyFile != "" {
		return c.TaskKeyFile
	}
	return filepath.Join(c.DataDir, "task.key")
}
