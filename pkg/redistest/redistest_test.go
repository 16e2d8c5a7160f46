package redistest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"imapcopy.dev/pkg/redistest"
)

func TestStartIsRealAndEmpty(t *testing.T) {
	srv := redistest.Start(t)
	if !strings.HasPrefix(srv.Addr, "127.0.0.1:") {
		t.Fatalf("Addr = %q, want a 127.0.0.1 address", srv.Addr)
	}
	ctx := context.Background()
	c := srv.Client(t)

	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		t.Fatalf("INFO: %v", err)
	}
	if !strings.Contains(info, "redis_version:") {
		t.Fatalf("INFO server lacks redis_version:\n%s", info)
	}
	t.Logf("real redis-server at %s: %s", srv.Addr, versionLine(info))

	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE = %d, %v; want 0, nil", n, err)
	}
	for param, want := range map[string]string{"save": "", "appendonly": "no"} {
		got, err := c.ConfigGet(ctx, param).Result()
		if err != nil {
			t.Fatalf("CONFIG GET %s: %v", param, err)
		}
		if got[param] != want {
			t.Errorf("CONFIG GET %s = %q, want %q", param, got[param], want)
		}
	}
}

func TestURLParses(t *testing.T) {
	srv := redistest.Start(t)
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", srv.URL(), err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING via URL %s: %v", srv.URL(), err)
	}
}

func TestServersAreIndependent(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr == b.Addr {
		t.Fatalf("two servers share %s", a.Addr)
	}
	ctx := context.Background()
	if err := a.Client(t).Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Client(t).Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET k on the second server: err = %v, want redis.Nil", err)
	}
}

func TestStopAndRestart(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	opts := srv.Options()
	opts.MaxRetries = -1 // fail at once while the server is down
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING after Stop succeeded, want an error")
	}
	srv.Stop() // a second Stop is harmless

	srv.Restart(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET k after Restart: err = %v, want redis.Nil (nothing persisted)", err)
	}
}

func TestStartMain(t *testing.T) {
	srv, stop, err := redistest.StartMain()
	if err != nil {
		t.Fatal(err)
	}
	opts := srv.Options()
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	stop()
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("PING after stop succeeded, want an error")
	}
}

func versionLine(info string) string {
	for _, l := range strings.Split(info, "\n") {
		if strings.HasPrefix(l, "redis_version:") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
