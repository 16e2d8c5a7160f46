package syncstatus

import (
	"context"
	"errors"
	"iter"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Opened is the store a binary opened from its Config: the store, the readiness
// check of what it depends on, and Close.
type Opened struct {
	Store Store
	// Name names the store in readiness checks and metrics: "redis" or "kv".
	Name string
	// Check is nil when the store is usable (Redis answers PING; the JetStream
	// buckets exist or could be created). It is the binary's readiness check.
	Check func(context.Context) error
	Close func()
}

// Open opens the configured store without waiting for it: a binary starts while
// Redis or NATS is down, says so in its readiness (Opened.Check), and every store
// call fails until they are back (the api answers Unavailable; the copiers retry).
// The JetStream buckets are made on js on first use, with replicas.
func (c *Config) Open(js jetstream.JetStream, replicas int) (*Opened, error) {
	if c.Store == "nats" {
		kv := &lazyKV{js: js, opts: c.KVOptions(replicas)}
		return &Opened{Store: kv, Name: "kv", Check: kv.ready, Close: func() {}}, nil
	}
	store, rdb, err := c.OpenRedis()
	if err != nil {
		return nil, err
	}
	return &Opened{
		Store: store,
		Name:  "redis",
		Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		Close: func() { _ = rdb.Close() },
	}, nil
}

// lazyKV is the JetStream KV store, made on first use: NewKV creates the buckets,
// which needs NATS up.
type lazyKV struct {
	js   jetstream.JetStream
	opts KVOptions

	mu sync.Mutex
	kv *KV
}

var errKVNotReady = errors.New("the JetStream key-value store is not available yet")

func (s *lazyKV) open(ctx context.Context) (*KV, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	kv, err := NewKV(ctx, s.js, s.opts)
	if err != nil {
		return nil, errors.Join(errKVNotReady, err)
	}
	s.kv = kv
	return kv, nil
}

func (s *lazyKV) ready(ctx context.Context) error {
	_, err := s.open(ctx)
	return err
}

// with runs f on the store once it is open.
func with[T any](ctx context.Context, s *lazyKV, f func(*KV) (T, error)) (T, error) {
	kv, err := s.open(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	return f(kv)
}

func (s *lazyKV) Acquire(ctx context.Context, source string, ttl time.Duration) (string, error) {
	return with(ctx, s, func(kv *KV) (string, error) { return kv.Acquire(ctx, source, ttl) })
}

func (s *lazyKV) Reclaim(ctx context.Context, source, token, holder string, ttl time.Duration) error {
	_, err := with(ctx, s, func(kv *KV) (struct{}, error) { return struct{}{}, kv.Reclaim(ctx, source, token, holder, ttl) })
	return err
}

func (s *lazyKV) HandBack(ctx context.Context, source, holder, token string, ttl time.Duration) error {
	_, err := with(ctx, s, func(kv *KV) (struct{}, error) { return struct{}{}, kv.HandBack(ctx, source, holder, token, ttl) })
	return err
}

func (s *lazyKV) Refresh(ctx context.Context, source, token string, ttl time.Duration) error {
	_, err := with(ctx, s, func(kv *KV) (struct{}, error) { return struct{}{}, kv.Refresh(ctx, source, token, ttl) })
	return err
}

func (s *lazyKV) Release(ctx context.Context, source, token string) error {
	_, err := with(ctx, s, func(kv *KV) (struct{}, error) { return struct{}{}, kv.Release(ctx, source, token) })
	return err
}

func (s *lazyKV) Put(ctx context.Context, source, token string, st *imapcopyv1.SyncStatus) error {
	_, err := with(ctx, s, func(kv *KV) (struct{}, error) { return struct{}{}, kv.Put(ctx, source, token, st) })
	return err
}

func (s *lazyKV) Update(ctx context.Context, source, token string, fn func(*imapcopyv1.SyncStatus) error) (*imapcopyv1.SyncStatus, error) {
	return with(ctx, s, func(kv *KV) (*imapcopyv1.SyncStatus, error) { return kv.Update(ctx, source, token, fn) })
}

func (s *lazyKV) Get(ctx context.Context, source string) (*imapcopyv1.SyncStatus, error) {
	return with(ctx, s, func(kv *KV) (*imapcopyv1.SyncStatus, error) { return kv.Get(ctx, source) })
}

func (s *lazyKV) Watch(ctx context.Context, source string) iter.Seq2[*imapcopyv1.SyncStatus, error] {
	kv, err := s.open(ctx)
	if err != nil {
		return func(yield func(*imapcopyv1.SyncStatus, error) bool) { yield(nil, err) }
	}
	return kv.Watch(ctx, source)
}

func (s *lazyKV) RequestCancel(ctx context.Context, source, taskID string) error {
	_, err := with(ctx, s, func(kv *KV) (struct{}, error) { return struct{}{}, kv.RequestCancel(ctx, source, taskID) })
	return err
}

func (s *lazyKV) CancelRequested(ctx context.Context, source, taskID string) (bool, error) {
	return with(ctx, s, func(kv *KV) (bool, error) { return kv.CancelRequested(ctx, source, taskID) })
}

func (s *lazyKV) TakeToken(ctx context.Context, key string, now time.Time, every time.Duration, burst int) (time.Duration, error) {
	return with(ctx, s, func(kv *KV) (time.Duration, error) { return kv.TakeToken(ctx, key, now, every, burst) })
}

func (s *lazyKV) HeldBy(ctx context.Context, source, token string) (bool, error) {
	return with(ctx, s, func(kv *KV) (bool, error) { return kv.HeldBy(ctx, source, token) })
}

func (s *lazyKV) Locked(ctx context.Context, source string) (bool, error) {
	return with(ctx, s, func(kv *KV) (bool, error) { return kv.Locked(ctx, source) })
}

func (s *lazyKV) List(ctx context.Context, q ListQuery) (*ListPage, error) {
	return with(ctx, s, func(kv *KV) (*ListPage, error) { return kv.List(ctx, q) })
}
