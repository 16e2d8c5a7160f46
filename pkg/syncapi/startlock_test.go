package syncapi_test

import (
	"context"
	"testing"
	"time"

	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// heldQueue holds each Publish until release is closed, after telling entered: the
// moment of a start where a killed api would leave its lock behind.
type heldQueue struct {
	next    syncapi.Publisher
	entered chan struct{}
	release chan struct{}
}

func (q *heldQueue) Publish(ctx context.Context, task *imapcopyv1.SyncTask) error {
	close(q.entered)
	<-q.release
	return q.next.Publish(ctx, task)
}

// TestStartLockIsShort: while a start runs (tests, status write, publish), the
// source's lock lives a few minutes, so that an api killed in the middle (its
// deferred release never runs) does not block the address for QueuedLockTTL (24h);
// once the task is queued the lock lives QueuedLockTTL. A killed api used to leave
// a 24-hour lock with no way to clear it.
func TestStartLockIsShort(t *testing.T) {
	var q *heldQueue
	e := newEnv(t, "redis", withDeps(func(d *syncapi.Deps) {
		q = &heldQueue{next: d.Queue, entered: make(chan struct{}), release: make(chan struct{})}
		d.Queue = q
	}))
	src, dst := newUser(t), newUser(t)
	lockTTL := func() time.Duration {
		key := e.prefix + "{" + syncstatus.KeyOf(src.email) + "}:lock"
		ttl, err := e.rdb.PTTL(context.Background(), key).Result()
		if err != nil {
			t.Fatalf("PTTL %s: %v", key, err)
		}
		return ttl
	}
	started := make(chan error, 1)
	go func() {
		_, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()})
		started <- err
	}()
	select {
	case <-q.entered:
	case err := <-started:
		t.Fatalf("StartSync returned before its publish: %v", err)
	}
	if ttl := lockTTL(); ttl <= 0 || ttl > 5*time.Minute {
		t.Errorf("lock TTL during the start = %v, want a few minutes at most", ttl)
	}
	close(q.release)
	if err := <-started; err != nil {
		t.Fatalf("StartSync: %v", err)
	}
	if ttl := lockTTL(); ttl < 23*time.Hour {
		t.Errorf("lock TTL once queued = %v, want the queued TTL (24h)", ttl)
	}
}
