package taskqueue

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// KeptBucket is the JetStream key-value bucket where the api keeps the latest task
// of each source address, for RetrySync.
const KeptBucket = "imapcopy-kept-tasks"

// ErrNotKept: no task is kept for this source (never started, or its window ended).
var ErrNotKept = errors.New("no task kept for this source")

// Kept keeps the latest task started for each source address, exactly as published
// (its secrets sealed, bound to the task), for Window after the start, so that a
// failed sync can be started again without asking for the passwords. Keys are the
// base64url of the normalized source address, never the address. The bucket's
// MaxAge is the window: NATS removes a task when it ends. A nil *Kept keeps nothing.
type Kept struct {
	js       jetstream.JetStream
	window   time.Duration
	replicas int

	mu sync.Mutex
	kv jetstream.KeyValue // nil until the bucket is opened
}

// NewKept returns the keeper on js, keeping tasks for window; nil when window is 0
// (keep nothing). The bucket is created on first use, so that the api starts while
// NATS is down.
func NewKept(js jetstream.JetStream, window time.Duration, replicas int) *Kept {
	if window <= 0 {
		return nil
	}
	return &Kept{js: js, window: window, replicas: max(replicas, 1)}
}

func (k *Kept) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kv != nil {
		return k.kv, nil
	}
	kv, err := k.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      KeptBucket,
		Description: "imapcopy: the latest task of each source, secrets sealed, for retries",
		History:     1,
		TTL:         k.window,
		Storage:     jetstream.FileStorage,
		Replicas:    k.replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", KeptBucket, err)
	}
	k.kv = kv
	return kv, nil
}

func keptKey(source string) string { return base64.RawURLEncoding.EncodeToString([]byte(source)) }

// Keep stores task as the latest of its source (task.SourceEmail, normalized).
func (k *Kept) Keep(ctx context.Context, task *imapcopyv1.SyncTask) error {
	if k == nil {
		return nil
	}
	if task.GetSourceEmail() == "" || task.GetSealed() == nil {
		return errors.New("keep task: no source or no sealed secrets")
	}
	b, err := proto.Marshal(task)
	if err != nil {
		return fmt.Errorf("keep task %s: %w", task.GetTaskId(), err)
	}
	kv, err := k.bucket(ctx)
	if err != nil {
		return fmt.Errorf("keep task %s: %w", task.GetTaskId(), err)
	}
	if _, err := kv.Put(ctx, keptKey(task.GetSourceEmail()), b); err != nil {
		return fmt.Errorf("keep task %s: %w", task.GetTaskId(), err)
	}
	return nil
}

// Get returns the task kept for source (normalized), or ErrNotKept.
func (k *Kept) Get(ctx context.Context, source string) (*imapcopyv1.SyncTask, error) {
	if k == nil {
		return nil, ErrNotKept
	}
	kv, err := k.bucket(ctx)
	if err != nil {
		return nil, fmt.Errorf("get kept task: %w", err)
	}
	e, err := kv.Get(ctx, keptKey(source))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotKept
	}
	if err != nil {
		return nil, fmt.Errorf("get kept task: %w", err)
	}
	task := new(imapcopyv1.SyncTask)
	if err := proto.Unmarshal(e.Value(), task); err != nil {
		return nil, fmt.Errorf("get kept task: decode: %w", err)
	}
	return task, nil
}

// Window is how long a task is kept; 0 for a nil *Kept.
func (k *Kept) Window() time.Duration {
	if k == nil {
		return 0
	}
	return k.window
}
