package syncstatus

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"imapcopy.dev/pkg/envflag"
)

// Config is a binary's piece of configuration choosing the store, read from flags
// and the environment. The api and the copiers read the same variables and must
// agree on them (see their READMEs): IMAPCOPY_STORE, IMAPCOPY_REDIS_URL and
// IMAPCOPY_STATUS_RETENTION.
type Config struct {
	Store     string        // IMAPCOPY_STORE: redis, or nats (JetStream KV)
	RedisURL  string        // IMAPCOPY_REDIS_URL, for the redis store
	Retention time.Duration // IMAPCOPY_STATUS_RETENTION

	errs error // environment values that did not parse
}

// RegisterFlags registers the flags on fs, their defaults taken from the environment
// through getenv (os.Getenv in main).
func (c *Config) RegisterFlags(fs *flag.FlagSet, getenv func(string) string) {
	e := envflag.New(fs, getenv)
	e.String(&c.Store, "store", "IMAPCOPY_STORE", "redis", "status and lock store: redis, or nats (JetStream key-value buckets); the api and the copiers use the same")
	e.String(&c.RedisURL, "redis-url", "IMAPCOPY_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL (rediss:// for TLS), for the redis store")
	e.Duration(&c.Retention, "status-retention", "IMAPCOPY_STATUS_RETENTION", DefaultRetention, "how long a finished sync's status is kept; the api and the copiers use the same")
	c.errs = e.Err()
}

// Check validates the configuration, reporting every problem.
func (c *Config) Check() error {
	errs := []error{c.errs}
	switch c.Store {
	case "redis":
		if c.RedisURL == "" {
			errs = append(errs, errors.New("IMAPCOPY_REDIS_URL is required with IMAPCOPY_STORE=redis"))
		}
	case "nats":
	default:
		errs = append(errs, fmt.Errorf("IMAPCOPY_STORE=%q: expected redis or nats", c.Store))
	}
	if c.Retention <= 0 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_STATUS_RETENTION=%v: expected a positive duration", c.Retention))
	}
	return errors.Join(errs...)
}

// OpenRedis returns the redis store and its client, which the caller closes (and
// may ping for readiness).
func (c *Config) OpenRedis() (*Redis, *redis.Client, error) {
	opts, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		// Not the parser's error: it may quote the URL, password included.
		return nil, nil, errors.New("IMAPCOPY_REDIS_URL: not a valid redis:// or rediss:// URL")
	}
	rdb := redis.NewClient(opts)
	return NewRedis(rdb, RedisOptions{Retention: c.Retention}), rdb, nil
}

// KVOptions returns the options of the nats store, its buckets with replicas.
func (c *Config) KVOptions(replicas int) KVOptions {
	return KVOptions{Replicas: replicas, Retention: c.Retention}
}
