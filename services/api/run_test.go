package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/natstest"
	"imapcopy.dev/pkg/redistest"
	"imapcopy.dev/pkg/servicetest"
	"imapcopy.dev/pkg/taskseal"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// TestRun starts the binary's run with the environment an operator would set, against
// a real redis-server, an embedded NATS and Dovecot; calls it through gRPC; reads the
// admin endpoints; and shuts it down.
func TestRun(t *testing.T) {
	for _, store := range []string{"redis", "nats"} {
		t.Run(store, func(t *testing.T) {
			dc := imaptest.StartDovecot(t, imaptest.FlavourDot)
			ns := natstest.Start(t)
			keyFile := servicetest.TaskKeyFile(t)
			grpcAddr, adminAddr := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
			env := map[string]string{
				"IMAPCOPY_GRPC_ADDR":      grpcAddr,
				"IMAPCOPY_ADMIN_ADDR":     adminAddr,
				"IMAPCOPY_STORE":          store,
				"IMAPCOPY_NATS_URL":       ns.ClientURL(),
				"IMAPCOPY_TASK_KEY_FILE":  keyFile,
				"IMAPCOPY_API_TOKENS":     "ci run-test-token-0123456789",
				"IMAPCOPY_ALLOW_NETWORKS": "127.0.0.0/8",
				"IMAPCOPY_IMAP_CA_FILE":   dc.CAFile,
				"IMAPCOPY_REFLECTION":     "false",
			}
			if store == "redis" {
				env["IMAPCOPY_REDIS_URL"] = redistest.Start(t).URL()
			}
			logs := servicetest.Run(t, func(ctx context.Context, logs io.Writer) error { return run(ctx, nil, servicetest.Getenv(env), logs) })

			conn := servicetest.Dial(t, grpcAddr)
			callCtx, stop := context.WithTimeout(context.Background(), time.Minute)
			defer stop()
			health := healthpb.NewHealthClient(conn)
			resp, err := health.Check(callCtx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health = %v, %v, want SERVING", resp, err)
			}
			for _, path := range []string{"/healthz", "/readyz"} {
				if code, body := get(t, "http://"+adminAddr+path); code != http.StatusOK {
					t.Errorf("GET %s = %d %q, want 200", path, code, body)
				}
			}

			authed := metadata.AppendToOutgoingContext(callCtx, "authorization", "Bearer run-test-token-0123456789")
			client := imapcopyv1.NewSyncServiceClient(conn)
			if _, err := client.ListProviders(callCtx, &imapcopyv1.ListProvidersRequest{}); err == nil {
				t.Errorf("ListProviders without a token succeeded, want Unauthenticated")
			}
			src, dst := dc.AddUser(t), dc.AddUser(t)
			account := func(login, password string) *imapcopyv1.Account {
				return &imapcopyv1.Account{Provider: "other", Login: login + "@example.test", Password: password,
					Host: src.Host, Port: uint32(src.Port), Security: imapcopyv1.Security_SECURITY_TLS}
			}
			var started *imapcopyv1.StartSyncResponse
			// Dovecot reads its users at most once a second: retry while it learns them.
			deadline := time.Now().Add(20 * time.Second)
			for {
				started, err = client.StartSync(authed, &imapcopyv1.StartSyncRequest{
					Source: account(src.Login, src.Password), Destination: account(dst.Login, dst.Password),
				})
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(300 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("StartSync: %v", err)
			}
			got, err := client.GetSyncStatus(authed, &imapcopyv1.GetSyncStatusRequest{SourceEmail: src.Login + "@example.test"})
			if err != nil || got.GetStatus().GetTaskId() != started.GetTaskId() || got.GetStatus().GetState() != imapcopyv1.SyncState_SYNC_STATE_QUEUED {
				t.Errorf("GetSyncStatus = %v, %v, want the queued task", got, err)
			}

			_, metrics := get(t, "http://"+adminAddr+"/metrics")
			for _, want := range []string{`imapcopy_api_calls_total{code="OK",method="StartSync"} 1`, "imapcopy_api_syncs_started_total 1", `imapcopy_api_account_tests_total{outcome="ok",role="source"}`} {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
			for _, secret := range []string{src.Password, dst.Password, "run-test-token-0123456789"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the logs hold a secret")
				}
			}
			if !strings.Contains(logs.String(), `"msg":"api_started"`) {
				t.Errorf("no api_started in the logs")
			}
		})
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestConfigErrors(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keyFile, taskseal.FormatKeys(taskseal.GenerateKey()), 0o600)
	base := func() map[string]string {
		return map[string]string{"IMAPCOPY_TASK_KEY_FILE": keyFile}
	}
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		want  string
		noKey bool
	}{
		{"no task key", nil, nil, "IMAPCOPY_TASK_KEY_FILE is required", true},
		{"wide address without TLS or tokens", map[string]string{"IMAPCOPY_GRPC_ADDR": ":50051"}, nil, "not a loopback address: passwords would cross the network in clear", false},
		{"wide address by flag", nil, []string{"-grpc-addr", "0.0.0.0:50051"}, "anyone could call", false},
		{"half TLS", map[string]string{"IMAPCOPY_TLS_CERT_FILE": "/x.crt"}, nil, "go together", false},
		{"bad bool", map[string]string{"IMAPCOPY_REFLECTION": "maybe"}, nil, `IMAPCOPY_REFLECTION="maybe": expected true or false`, false},
		{"bad rate", map[string]string{"IMAPCOPY_RATE_PER_ADDRESS": "lots"}, nil, "IMAPCOPY_RATE_PER_ADDRESS", false},
		{"bad store", map[string]string{"IMAPCOPY_STORE": "mysql"}, nil, `IMAPCOPY_STORE="mysql"`, false},
		{"bad retention", map[string]string{"IMAPCOPY_STATUS_RETENTION": "30d"}, nil, "IMAPCOPY_STATUS_RETENTION", false},
		{"bad log level", map[string]string{"IMAPCOPY_LOG_LEVEL": "loud"}, nil, "IMAPCOPY_LOG_LEVEL", false},
		{"stray argument", nil, []string{"serve"}, "unexpected arguments: serve", false},
		{"unreadable key file", map[string]string{"IMAPCOPY_TASK_KEY_FILE": "/nonexistent/keys"}, nil, "IMAPCOPY_TASK_KEY_FILE", false},
	}
	for _, tt := range tests {
		env := base()
		if tt.noKey {
			delete(env, "IMAPCOPY_TASK_KEY_FILE")
		}
		for k, v := range tt.env {
			env[k] = v
		}
		err := run(context.Background(), tt.args, servicetest.Getenv(env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: run = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}

	// A wide address with TLS and tokens passes the check (the files are read later).
	c, err := parseConfig([]string{"-grpc-addr", ":50051", "-tls-cert-file", "a", "-tls-key-file", "b", "-api-tokens-file", "c"}, servicetest.Getenv(base()), io.Discard)
	if err != nil || c.API.GRPCAddr != ":50051" {
		t.Errorf("parseConfig(wide, TLS, tokens) = %v, want accepted", err)
	}
}

func TestHelpListsEnvironment(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, servicetest.Getenv(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h = %v, want flag.ErrHelp", err)
	}
	for _, env := range []string{"IMAPCOPY_GRPC_ADDR", "IMAPCOPY_NATS_URL", "IMAPCOPY_REDIS_URL", "IMAPCOPY_ALLOW_NETWORKS", "IMAPCOPY_TASK_KEY_FILE", "IMAPCOPY_API_TOKENS_FILE", "IMAPCOPY_ADMIN_ADDR", "IMAPCOPY_STATUS_RETENTION"} {
		if !strings.Contains(out.String(), env) {
			t.Errorf("-h output lacks %s", env)
		}
	}
	// The README documents every variable the binary reads.
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if i := strings.Index(line, "(env IMAPCOPY_"); i >= 0 {
			name := strings.TrimSuffix(strings.Fields(line[i+5:])[0], ")")
			if !strings.Contains(string(readme), "`"+name+"`") {
				t.Errorf("README.md does not document %s", name)
			}
		}
	}
	for _, name := range []string{"IMAPCOPY_API_TOKENS"} {
		if !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("README.md does not document %s", name)
		}
	}
}

// TestStartsWithDependenciesDown is the startup policy, the same in every binary
// (taskqueue.Open and PublisherCheck, syncstatus.Config.Open, adminhttp.Run): with
// NATS and Redis down at start, the api serves, /healthz says alive and /readyz names
// both as not ready, calls that need them answer Unavailable; once they are up,
// /readyz turns ready and the calls work, without a restart.
func TestStartsWithDependenciesDown(t *testing.T) {
	ns, rs := natstest.Start(t), redistest.Start(t)
	ns.Shutdown()
	rs.Stop()
	grpcAddr, adminAddr := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	env := servicetest.Getenv(map[string]string{
		"IMAPCOPY_GRPC_ADDR": grpcAddr, "IMAPCOPY_ADMIN_ADDR": adminAddr, "IMAPCOPY_TASK_KEY_FILE": servicetest.TaskKeyFile(t),
		"IMAPCOPY_NATS_URL": ns.ClientURL(), "IMAPCOPY_REDIS_URL": rs.URL(),
	})
	servicetest.Run(t, func(ctx context.Context, logs io.Writer) error { return run(ctx, nil, env, logs) })
	client := imapcopyv1.NewSyncServiceClient(servicetest.Dial(t, grpcAddr))
	status := func() (string, error) {
		callCtx, stop := context.WithTimeout(t.Context(), 10*time.Second)
		defer stop()
		_, err := client.GetSyncStatus(callCtx, &imapcopyv1.GetSyncStatusRequest{SourceEmail: "nobody@example.test"}, grpc.WaitForReady(true))
		return grpcstatus.Code(err).String(), err
	}
	if code, _ := status(); code != "Unavailable" {
		t.Errorf("GetSyncStatus with the store down: %s, want Unavailable", code)
	}
	if code, body := servicetest.Get(t, "http://"+adminAddr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d %q with the dependencies down, want 200", code, body)
	}
	code, body := servicetest.Get(t, "http://"+adminAddr+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "nats") || !strings.Contains(body, "redis") {
		t.Errorf("/readyz = %d %q with NATS and Redis down, want 503 naming both", code, body)
	}

	ns.Restart(t)
	rs.Restart(t)
	if code, body := servicetest.WaitReady(t, "http://"+adminAddr+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d %q after NATS and Redis came up, want 200", code, body)
	}
	if code, err := status(); code != "NotFound" {
		t.Errorf("GetSyncStatus once the store is up: %v, want NotFound", err)
	}
}
