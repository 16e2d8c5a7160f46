package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/natstest"
	"imapcopy.dev/pkg/redistest"
	"imapcopy.dev/pkg/servicetest"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/syncworker"
	"imapcopy.dev/pkg/taskqueue"
	"imapcopy.dev/pkg/taskseal"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

func TestWorkerConfig(t *testing.T) {
	base := map[string]string{"IMAPCOPY_TASK_KEY_FILE": "/keys"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // "" for success
		check   func(*workerConfig) bool
	}{
		{"defaults", nil, base, "", func(c *workerConfig) bool {
			return c.Concurrency == syncworker.DefaultConcurrency && c.Status.Store == "redis" && c.NATS.URL == "nats://127.0.0.1:4222" &&
				c.ShutdownTimeout == syncworker.DefaultShutdownTimeout && c.NATS.Replicas == 1 && c.AdminAddr == "127.0.0.1:9090"
		}},
		{"env", nil, with("IMAPCOPY_COPIER_CONCURRENCY", "2"), "", func(c *workerConfig) bool { return c.Concurrency == 2 }},
		{"flag wins", []string{"-concurrency", "3"}, with("IMAPCOPY_COPIER_CONCURRENCY", "2"), "", func(c *workerConfig) bool { return c.Concurrency == 3 }},
		{"shutdown timeout", nil, with("IMAPCOPY_SHUTDOWN_TIMEOUT", "30s"), "", func(c *workerConfig) bool { return c.ShutdownTimeout == 30*time.Second }},
		{"providers file", nil, with("IMAPCOPY_PROVIDERS_FILE", "/etc/imapcopy/providers.json"), "", func(c *workerConfig) bool { return c.ProvidersFile == "/etc/imapcopy/providers.json" }},
		{"nats store", nil, with("IMAPCOPY_STORE", "nats"), "", func(c *workerConfig) bool { return c.Status.Store == "nats" }},
		{"no key file", nil, map[string]string{}, "IMAPCOPY_TASK_KEY_FILE is required", nil},
		{"bad concurrency", nil, with("IMAPCOPY_COPIER_CONCURRENCY", "many"), "IMAPCOPY_COPIER_CONCURRENCY", nil},
		{"zero concurrency", nil, with("IMAPCOPY_COPIER_CONCURRENCY", "0"), "IMAPCOPY_COPIER_CONCURRENCY=0", nil},
		{"bad store", nil, with("IMAPCOPY_STORE", "memcached"), "IMAPCOPY_STORE", nil},
		{"bad duration", nil, with("IMAPCOPY_SHUTDOWN_TIMEOUT", "soon"), "IMAPCOPY_SHUTDOWN_TIMEOUT", nil},
		{"bad network", nil, with("IMAPCOPY_ALLOW_NETWORKS", "10.0.0.0/33"), "IMAPCOPY_ALLOW_NETWORKS", nil},
		{"bad port", nil, with("IMAPCOPY_ALLOW_PORTS", "993,imap"), "IMAPCOPY_ALLOW_PORTS", nil},
		{"bad log level", nil, with("IMAPCOPY_LOG_LEVEL", "loud"), "IMAPCOPY_LOG_LEVEL", nil},
		{"stray argument", []string{"now"}, base, "unexpected argument", nil},
		{"memory limit", nil, with("IMAPCOPY_COPIER_MEMORY_LIMIT", "512MiB"), "", func(c *workerConfig) bool {
			n, err := c.MemoryLimit.resolve(c.Concurrency, c.Connections)
			return err == nil && n == 512<<20
		}},
		{"memory limit by default", []string{"-concurrency", "2", "-connections", "3"}, base, "", func(c *workerConfig) bool {
			n, err := c.MemoryLimit.resolve(c.Concurrency, c.Connections)
			return err == nil && n == 16<<20+2*3*8<<20
		}},
		{"bad memory limit", nil, with("IMAPCOPY_COPIER_MEMORY_LIMIT", "lots"), "IMAPCOPY_COPIER_MEMORY_LIMIT", nil},
		{"tiny memory limit", nil, with("IMAPCOPY_COPIER_MEMORY_LIMIT", "1MiB"), "below 8 MiB", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c, err := parseWorkerConfig(tt.args, servicetest.Getenv(tt.env), &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitUsage {
					t.Errorf("parseWorkerConfig() = %v (exit %d), want a usage error containing %q", err, exitCode(err), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseWorkerConfig() = %v, want nil", err)
			}
			if !tt.check(c) {
				t.Errorf("parseWorkerConfig() = %+v, not what %s expects", c, tt.name)
			}
		})
	}
}

// The worker mode, wired as the binary runs it (flags and environment, NATS, Redis,
// the key file, the network policy, the CA file), copies a queued task to COMPLETED
// and stops cleanly when its context ends.
func TestWorkerCopiesAQueuedTask(t *testing.T) {
	ns := natstest.Start(t)
	rs := redistest.Start(t)
	key := taskseal.GenerateKey()
	keyFile := filepath.Join(t.TempDir(), "task.key")
	if err := os.WriteFile(keyFile, taskseal.FormatKeys(key), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"IMAPCOPY_NATS_URL":             ns.ClientURL(),
		"IMAPCOPY_REDIS_URL":            rs.URL(),
		"IMAPCOPY_TASK_KEY_FILE":        keyFile,
		"IMAPCOPY_ADMIN_ADDR":           "",
		"IMAPCOPY_ALLOW_NETWORKS":       "127.0.0.1",
		"IMAPCOPY_IMAP_CA_FILE":         caBundle(t),
		"IMAPCOPY_COPIER_CONCURRENCY":   "2",
		"IMAPCOPY_SHUTDOWN_TIMEOUT":     "10s",
		"IMAPCOPY_ALLOW_PLAINTEXT_IMAP": "false",
		"IMAPCOPY_STATUS_RETENTION":     "1h",
		"IMAPCOPY_QUEUED_LOCK_TTL":      "1h",
		"IMAPCOPY_COPIER_CONNECTIONS":   "2",
		"IMAPCOPY_LOG_LEVEL":            "info",
		"IMAPCOPY_QUEUE_REPLICAS":       "1",
		"IMAPCOPY_NATS_CREDS_FILE":      "",
		"IMAPCOPY_STORE":                "redis",
		"IMAPCOPY_ALLOW_PORTS":          "993",
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := &servicetest.LogBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, servicetest.Getenv(env), &bytes.Buffer{}, logs) }()

	// What the api does.
	src, dst := slash.AddUser(t), dot.AddUser(t)
	mb := imaptest.Generate(7, imaptest.Spec{Count: 40, Folders: 2})
	if err := imaptest.Load(t.Context(), src, mb); err != nil {
		t.Fatal(err)
	}
	store := syncstatus.NewRedis(rs.Client(t), syncstatus.RedisOptions{})
	source := src.Login + "@source.test"
	const taskID = "worker-mode-task"
	queueTask(t, store, ns.JetStream(t), key, &imapcopyv1.SyncTask{
		TaskId: taskID, SourceEmail: source, Source: endpoint(src, src.Host, src.Port), Destination: endpoint(dst, dst.Host, dst.Port),
	}, &imapcopyv1.TaskSecrets{SourcePassword: src.Password, DestinationPassword: dst.Password}, logs)

	deadline := time.Now().Add(60 * time.Second)
	var err error
	var st *imapcopyv1.SyncStatus
	for {
		st, err = store.Get(t.Context(), source)
		if err == nil && syncstatus.Terminal(st.GetState()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %v (err %v) after 60s, want the task ended\nworker logs:\n%s", st, err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED {
		t.Fatalf("status = %v (%s), want COMPLETED\nworker logs:\n%s", st.GetState(), st.GetMessage(), logs)
	}
	servicetest.Check(t, src, dst)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker still running 30s after its context ended")
	}
	out := logs.String()
	for _, want := range []string{`"msg":"copier_started"`, `"task_id":"` + taskID + `"`, `"msg":"copier_stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	for _, secret := range []string{src.Password, dst.Password} {
		if strings.Contains(out, secret) {
			t.Errorf("a password appears in the logs")
		}
	}
	if t.Failed() {
		t.Logf("worker logs:\n%s", out)
	}
}

// TestWorkerStartsWithDependenciesDown: the startup policy of every binary (see the
// api's TestStartsWithDependenciesDown): with NATS and Redis down, the worker waits
// for them, alive but not ready (/readyz names nats, redis and worker); once they
// are up it starts pulling and turns ready.
func TestWorkerStartsWithDependenciesDown(t *testing.T) {
	ns, rs := natstest.Start(t), redistest.Start(t)
	ns.Shutdown()
	rs.Stop()
	readyz := "http://" + servicetest.FreeAddr(t) + "/readyz"
	env := servicetest.Getenv(map[string]string{
		"IMAPCOPY_NATS_URL": ns.ClientURL(), "IMAPCOPY_REDIS_URL": rs.URL(), "IMAPCOPY_TASK_KEY_FILE": servicetest.TaskKeyFile(t),
		"IMAPCOPY_ADMIN_ADDR": strings.TrimSuffix(strings.TrimPrefix(readyz, "http://"), "/readyz"),
	})
	logs := servicetest.Run(t, func(ctx context.Context, logs io.Writer) error { return run(ctx, nil, env, &bytes.Buffer{}, logs) })
	code, body := servicetest.Get(t, readyz)
	for _, name := range []string{"nats", "redis", "worker"} {
		if code != http.StatusServiceUnavailable || !strings.Contains(body, name) {
			t.Errorf("/readyz = %d %q with NATS and Redis down, want 503 naming %s", code, body, name)
		}
	}
	ns.Restart(t)
	rs.Restart(t)
	if code, body := servicetest.WaitReady(t, readyz); code != http.StatusOK || !strings.Contains(logs.String(), `"msg":"copier_started"`) {
		t.Errorf("/readyz = %d %q after NATS and Redis came up, want 200 and the worker started", code, body)
	}
}

// endpoint is an account as a task names it, reached at host and port.
func endpoint(a imapconn.Account, host string, port int) *imapcopyv1.Endpoint {
	return &imapcopyv1.Endpoint{Provider: "other", Login: a.Login, Host: host, Port: uint32(port), Security: imapcopyv1.Security_SECURITY_TLS}
}

// queueTask does what the api does for task: the source's lock, the QUEUED status,
// the secrets sealed with key, the publish (retried while the copier that creates the
// stream is starting; logs are its logs, for the failure message).
func queueTask(t *testing.T, store *syncstatus.Redis, js jetstream.JetStream, key taskseal.Key, task *imapcopyv1.SyncTask, secrets *imapcopyv1.TaskSecrets, logs fmt.Stringer) {
	t.Helper()
	token, err := store.Acquire(t.Context(), task.GetSourceEmail(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	task.LockToken = token
	queued := &imapcopyv1.SyncStatus{TaskId: task.GetTaskId(), SourceEmail: task.GetSourceEmail(), State: imapcopyv1.SyncState_SYNC_STATE_QUEUED}
	if err := store.Put(t.Context(), task.GetSourceEmail(), token, queued); err != nil {
		t.Fatal(err)
	}
	kr, err := taskseal.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	if task.Sealed, err = kr.Seal(task, secrets); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := taskqueue.NewPublisher(js).Publish(t.Context(), task)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish: %v\ncopier logs:\n%s", err, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
