package syncstatus_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"imapcopy.dev/pkg/natstest"
	"imapcopy.dev/pkg/redistest"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/syncstatus/storetest"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

func TestRedisContract(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T, retention time.Duration) syncstatus.Store {
		// One server, a key prefix per test.
		return syncstatus.NewRedis(client, syncstatus.RedisOptions{
			Prefix:    fmt.Sprintf("test%d:", n.Add(1)),
			Retention: retention,
		})
	})
}

func TestKVContract(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T, retention time.Duration) syncstatus.Store {
		// One server, buckets per test.
		i := n.Add(1)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		s, err := syncstatus.NewKV(ctx, js, syncstatus.KVOptions{
			LockBucket:   fmt.Sprintf("locks-%d", i),
			StatusBucket: fmt.Sprintf("status-%d", i),
			Retention:    retention,
		})
		if err != nil {
			t.Fatalf("NewKV: %v", err)
		}
		return s
	})
}

func TestKeyOf(t *testing.T) {
	kvKey := regexp.MustCompile(`^[-_A-Za-z0-9]+$`) // a strict subset of what KV keys allow, without '.'
	tests := []struct{ a, b string }{
		{"Alice@Example.COM", " alice@example.com\t"},
		{"JÖHN@EXÄMPLE.DE", "jöhn@exämple.de"},
	}
	for _, tt := range tests {
		if ka, kb := syncstatus.KeyOf(tt.a), syncstatus.KeyOf(tt.b); ka != kb {
			t.Errorf("KeyOf(%q) = %q, KeyOf(%q) = %q; want the same key", tt.a, ka, tt.b, kb)
		}
	}
	seen := map[string]string{}
	for _, a := range []string{"a.b@c.d", "a_b@c.d", "a-b@c.d", "ab@c.d", "a.b@cd", "用户@例子.广告", `"x y"@z`, "a/b=c*d>e@x.y", "a@b", "a@b."} {
		k := syncstatus.KeyOf(a)
		if !kvKey.MatchString(k) {
			t.Errorf("KeyOf(%q) = %q, want only [-_A-Za-z0-9]", a, k)
		}
		if prev, dup := seen[k]; dup {
			t.Errorf("KeyOf(%q) = KeyOf(%q) = %q", a, prev, k)
		}
		seen[k] = a
	}
}

// TestRedisWatchesShareOneConnection: a hundred watches hold one pub/sub connection
// (one each used to be a connection each: 3,000 streams, 3,000 connections), each sees
// the changes of its own address, and their channels are unsubscribed when they end.
func TestRedisWatchesShareOneConnection(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	s := syncstatus.NewRedis(client, syncstatus.RedisOptions{Prefix: "shared:"})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const n = 100
	type watch struct {
		src, token string
		states     chan imapcopyv1.SyncState
	}
	watches := make([]watch, n)
	wctx, stopWatches := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range watches {
		w := watch{src: fmt.Sprintf("w%d@example.com", i), states: make(chan imapcopyv1.SyncState, 8)}
		tok, err := s.Acquire(ctx, w.src, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		w.token = tok
		if err := s.Put(ctx, w.src, tok, &imapcopyv1.SyncStatus{SourceEmail: w.src, State: imapcopyv1.SyncState_SYNC_STATE_QUEUED}); err != nil {
			t.Fatal(err)
		}
		watches[i] = w
		wg.Go(func() {
			defer close(w.states)
			for st, err := range s.Watch(wctx, w.src) {
				if err != nil {
					return
				}
				w.states <- st.GetState()
			}
		})
		if got := <-w.states; got != imapcopyv1.SyncState_SYNC_STATE_QUEUED {
			t.Fatalf("watch %d: first state %v", i, got)
		}
	}
	pubsub := func() int {
		list, err := client.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(list, "\n")
	}
	if got := pubsub(); got != 1 {
		t.Errorf("%d watches hold %d pub/sub connections, want 1", n, got)
	}
	for i, w := range watches {
		if _, err := s.Update(ctx, w.src, w.token, func(st *imapcopyv1.SyncStatus) error {
			st.State = imapcopyv1.SyncState_SYNC_STATE_RUNNING
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := <-w.states; got != imapcopyv1.SyncState_SYNC_STATE_RUNNING {
			t.Errorf("watch %d: state after the update %v, want RUNNING", i, got)
		}
	}
	stopWatches()
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for {
		channels, err := client.PubSubChannels(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(channels) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d channels still subscribed after every watch ended", len(channels))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
