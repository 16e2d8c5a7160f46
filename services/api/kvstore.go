package main

import (
	"context"
	"errors"
	"iter"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// kvStore is the JetStream KV store, opened on first use: NewKV creates the buckets,
// which needs NATS up, and the api starts even when it is not.
type kvStore struct {
	js   jetstream.JetStream
	opts syncstatus.KVOptions

	mu sync.Mutex
	kv *syncstatus.KV
}

var errKVNotReady = errors.New("the JetStream key-value store is not available yet")

func (s *kvStore) open(ctx context.Context) (*syncstatus.KV, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	kv, err := syncstatus.NewKV(ctx, s.js, s.opts)
	if err != nil {
		return nil, errors.Join(errKVNotReady, err)
	}
	s.kv = kv
	return kv, nil
}

func (s *kvStore) ready(ctx context.Context) error {
	_, err := s.open(ctx)
	return err
}

func (s *kvStore) Acquire(ctx context.Context, source string, ttl time.Duration) (string, error) {
	kv, err := s.open(ctx)
	if err != nil {
		return "", err
	}
	return kv.Acquire(ctx, source, ttl)
}

func (s *kvStore) Refresh(ctx context.Context, source, token string, ttl time.Duration) error {
	kv, err := s.open(ctx)
	if err != nil {
		return err
	}
	return kv.Refresh(ctx, source, token, ttl)
}

func (s *kvStore) Release(ctx context.Context, source, token string) error {
	kv, err := s.open(ctx)
	if err != nil {
		return err
	}
	return kv.Release(ctx, source, token)
}

func (s *kvStore) Put(ctx context.Context, source, token string, st *imapcopyv1.SyncStatus) error {
	kv, err := s.open(ctx)
	if err != nil {
		return err
	}
	return kv.Put(ctx, source, token, st)
}

func (s *kvStore) Get(ctx context.Context, source string) (*imapcopyv1.SyncStatus, error) {
	kv, err := s.open(ctx)
	if err != nil {
		return nil, err
	}
	return kv.Get(ctx, source)
}

func (s *kvStore) Watch(ctx context.Context, source string) iter.Seq2[*imapcopyv1.SyncStatus, error] {
	kv, err := s.open(ctx)
	if err != nil {
		return func(yield func(*imapcopyv1.SyncStatus, error) bool) { yield(nil, err) }
	}
	return kv.Watch(ctx, source)
}

func (s *kvStore) RequestCancel(ctx context.Context, source, taskID string) error {
	kv, err := s.open(ctx)
	if err != nil {
		return err
	}
	return kv.RequestCancel(ctx, source, taskID)
}
