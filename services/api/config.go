package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/syncstatus"
)

// config is the api binary's configuration: the api's own piece (syncapi.Config) and
// the connections around it.
type config struct {
	API syncapi.Config

	Store           string        // IMAPCOPY_STORE: redis or nats
	RedisURL        string        // IMAPCOPY_REDIS_URL
	NATSURL         string        // IMAPCOPY_NATS_URL
	NATSCredsFile   string        // IMAPCOPY_NATS_CREDS_FILE
	QueueReplicas   int           // IMAPCOPY_QUEUE_REPLICAS
	TaskKeyFile     string        // IMAPCOPY_TASK_KEY_FILE
	StatusRetention time.Duration // IMAPCOPY_STATUS_RETENTION
	AdminAddr       string        // IMAPCOPY_ADMIN_ADDR
	LogLevel        string        // IMAPCOPY_LOG_LEVEL

	errs []error
}

// parseConfig reads the flags in args over the environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("imapcopy-api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.API.RegisterFlags(fs, getenv)
	str := func(p *string, name, env, def, usage string) {
		if v := getenv(env); v != "" {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+env+")")
	}
	str(&c.Store, "store", "IMAPCOPY_STORE", "redis", "status and lock store: redis, or nats (JetStream key-value buckets)")
	str(&c.RedisURL, "redis-url", "IMAPCOPY_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL (rediss:// for TLS), for the redis store")
	str(&c.NATSURL, "nats-url", "IMAPCOPY_NATS_URL", "nats://127.0.0.1:4222", "NATS server URLs, comma-separated")
	str(&c.NATSCredsFile, "nats-creds-file", "IMAPCOPY_NATS_CREDS_FILE", "", "NATS credentials file (JWT and NKey)")
	replicas := 1
	if v := getenv("IMAPCOPY_QUEUE_REPLICAS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("IMAPCOPY_QUEUE_REPLICAS=%q: expected a whole number", v))
		} else {
			replicas = n
		}
	}
	fs.IntVar(&c.QueueReplicas, "queue-replicas", replicas, "replicas of the task stream (and of the KV buckets of the nats store) when the api creates them (env IMAPCOPY_QUEUE_REPLICAS)")
	str(&c.TaskKeyFile, "task-key-file", "IMAPCOPY_TASK_KEY_FILE", "", "file of task encryption keys, \"keyid:base64key\" per line, the first one current (required)")
	retention := syncstatus.DefaultRetention
	if v := getenv("IMAPCOPY_STATUS_RETENTION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("IMAPCOPY_STATUS_RETENTION=%q: expected a duration such as 720h", v))
		} else {
			retention = d
		}
	}
	fs.DurationVar(&c.StatusRetention, "status-retention", retention, "how long a finished sync's status is kept (env IMAPCOPY_STATUS_RETENTION)")
	str(&c.AdminAddr, "admin-addr", "IMAPCOPY_ADMIN_ADDR", "127.0.0.1:9090", "admin HTTP address: /metrics, /healthz, /readyz (empty: off)")
	str(&c.LogLevel, "log-level", "IMAPCOPY_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return c, c.check()
}

func (c *config) check() error {
	errs := append([]error(nil), c.errs...)
	if err := c.API.Check(); err != nil {
		errs = append(errs, err)
	}
	switch c.Store {
	case "redis":
		if c.RedisURL == "" {
			errs = append(errs, errors.New("IMAPCOPY_REDIS_URL is required with IMAPCOPY_STORE=redis"))
		}
	case "nats":
	default:
		errs = append(errs, fmt.Errorf("IMAPCOPY_STORE=%q: expected redis or nats", c.Store))
	}
	if c.NATSURL == "" {
		errs = append(errs, errors.New("IMAPCOPY_NATS_URL is required: the tasks go on its JetStream work queue"))
	}
	if c.TaskKeyFile == "" {
		errs = append(errs, errors.New(`IMAPCOPY_TASK_KEY_FILE is required: a file with a line "keyid:base64key", such as made by: printf '%s:%s\n' "k$(date +%Y%m%d)" "$(head -c 32 /dev/urandom | base64)"`))
	}
	if c.QueueReplicas < 1 || c.QueueReplicas > 5 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_QUEUE_REPLICAS=%d: expected 1 to 5", c.QueueReplicas))
	}
	if c.StatusRetention <= 0 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_STATUS_RETENTION=%v: expected a positive duration", c.StatusRetention))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("IMAPCOPY_LOG_LEVEL=%q: expected debug, info, warn or error", s)
	}
	return l, nil
}
