package syncstatus_test

import (
	"context"
	"fmt"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"imapcopy.dev/pkg/natstest"
	"imapcopy.dev/pkg/redistest"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/syncstatus/storetest"
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
