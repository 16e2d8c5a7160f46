package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/proxytest"
	"imapcopy.dev/pkg/servicetest"
	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// childEnv, when set, makes the test binary a standalone process (its value: the
// arguments, as JSON): the restart test needs a real process to kill.
const childEnv = "STANDALONE_TEST_ARGS"

// Bounds of the waits: generous, since the machine is shared; they bound a hang, they
// do not measure speed.
const (
	waitServing = 60 * time.Second
	waitEnd     = 120 * time.Second
)

// The two Dovecots every test shares (each test has its own users), and one file
// with both their CAs, for IMAPCOPY_IMAP_CA_FILE.
var shared struct {
	slash, dot *imaptest.Dovecot
	caFile     string
}

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		os.Exit(childMain(args))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	slash, dot, stopDovecots, err := servicetest.StartDovecots()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopDovecots()
	shared.slash, shared.dot = slash, dot
	dir, err := os.MkdirTemp("", "standalone-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	var pem []byte
	for _, d := range []*imaptest.Dovecot{shared.slash, shared.dot} {
		b, err := os.ReadFile(d.CAFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pem = append(pem, b...)
	}
	shared.caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(shared.caFile, pem, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// childMain is the standalone's main with the arguments of args (JSON).
func childMain(args string) int {
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		fmt.Fprintln(os.Stderr, "standalone child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, argv, os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "imapcopy:", err)
		return 1
	}
	return 0
}

// testEnv is the environment of a standalone under test: the local Dovecots
// allow-listed and trusted.
func testEnv() map[string]string {
	return map[string]string{
		"IMAPCOPY_ALLOW_NETWORKS": "127.0.0.1/32",
		"IMAPCOPY_IMAP_CA_FILE":   shared.caFile,
		"IMAPCOPY_HTTP_ADDR":      "off", // tests run in parallel: one that serves HTTP picks a free address
	}
}

// client is a gRPC client of a standalone.
type client struct {
	imapcopyv1.SyncServiceClient
	health healthpb.HealthClient
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn := servicetest.Dial(t, addr)
	return &client{imapcopyv1.NewSyncServiceClient(conn), healthpb.NewHealthClient(conn)}
}

// waitServing waits until the health service says SERVING, or the standalone exited.
func (c *client) waitServing(t *testing.T, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(waitServing)
	var last string
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		resp, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		last = fmt.Sprintf("%v %v", resp.GetStatus(), err)
		select {
		case <-exited:
			t.Fatalf("the standalone exited before serving (last health answer: %s)", last)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("health not SERVING within %v; last answer: %s", waitServing, last)
		}
	}
}

// check runs the harness's checker on the copy (the report aside) and counts the
// reports in the destination INBOX.
func check(t *testing.T, src, dst imapconn.Account, wantReports int) {
	t.Helper()
	servicetest.Check(t, src, dst)
	if n := servicetest.Reports(t, dst); n != wantReports {
		t.Errorf("reports in the destination INBOX = %d, want %d", n, wantReports)
	}
}

// noSecretIn fails when a secret appears in a file under dir (the JetStream store).
func noSecretIn(t *testing.T, dir string, secrets ...string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("a password appears in clear in %s", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Errorf("no file under %s: nothing was stored?", dir)
	}
}

// TestStandalone runs the standalone in-process on a fresh data directory and goes
// through the README's sequence with a real gRPC client against two real Dovecot
// accounts: health, providers, account tests, start, watch, status, cancel.
func TestStandalone(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	grpcAddr, adminAddr := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	env := testEnv()
	logs := &servicetest.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- run(ctx, []string{"-data-dir", dataDir, "-grpc-addr", grpcAddr, "-admin-addr", adminAddr},
			func(k string) string { return env[k] }, logs)
		close(exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("standalone logs:\n%s", servicetest.Tail(logs.String(), 60))
		}
	})
	c := dial(t, grpcAddr)
	c.waitServing(t, exited)

	// One data directory, one process.
	err := run(ctx, []string{"-data-dir", dataDir, "-grpc-addr", servicetest.FreeAddr(t), "-admin-addr", ""},
		func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "in use by another imapcopy process") {
		t.Errorf("a second run on the same data directory: %v, want it refused", err)
	}

	if !strings.Contains(logs.String(), `"msg":"task_key_created"`) {
		t.Errorf("no task_key_created in the logs of a first start")
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "task.key")); err != nil {
		t.Errorf("task key file: %v, want one made on first start", err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("task key file mode = %v, want 0600", fi.Mode().Perm())
	}
	resp, err := http.Get("http://" + adminAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /readyz = %d, want 200", resp.StatusCode)
	}

	src, dst := shared.slash.AddUser(t), shared.dot.AddUser(t)
	mb := imaptest.Generate(7, imaptest.Spec{Count: 60})
	if err := imaptest.Load(t.Context(), src, mb); err != nil {
		t.Fatalf("load the source: %v", err)
	}
	source := src.Login + "@source.test"
	srcReq, dstReq := servicetest.Account(src, source), servicetest.Account(dst, dst.Login+"@destination.test")

	providers, err := c.ListProviders(t.Context(), &imapcopyv1.ListProvidersRequest{Role: imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE})
	if err != nil {
		t.Fatalf("ListProviders: %v", err)
	}
	ids := map[string]bool{}
	for _, p := range providers.GetProviders() {
		ids[p.GetId()] = true
	}
	for _, want := range []string{"gmail", "other"} {
		if !ids[want] {
			t.Errorf("ListProviders: no %q among %d presets", want, len(ids))
		}
	}

	for _, tc := range []struct {
		acct *imapcopyv1.Account
		role imapcopyv1.AccountRole
	}{{srcReq, imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE}, {dstReq, imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION}} {
		r, err := c.TestAccount(t.Context(), &imapcopyv1.TestAccountRequest{Account: tc.acct, Role: tc.role})
		if err != nil || !r.GetOk() {
			t.Fatalf("TestAccount(%v) = %v, %v; want ok", tc.role, r, err)
		}
	}

	started, err := c.StartSync(t.Context(), &imapcopyv1.StartSyncRequest{Source: srcReq, Destination: dstReq})
	if err != nil {
		t.Fatalf("StartSync: %v", err)
	}
	if got := started.GetStatus().GetState(); got != imapcopyv1.SyncState_SYNC_STATE_QUEUED {
		t.Errorf("StartSync status = %v, want QUEUED", got)
	}

	watch, err := c.WatchSyncStatus(t.Context(), &imapcopyv1.WatchSyncStatusRequest{SourceEmail: source})
	if err != nil {
		t.Fatalf("WatchSyncStatus: %v", err)
	}
	var last *imapcopyv1.SyncStatus
	for {
		r, err := watch.Recv()
		if err != nil {
			if last == nil || !syncstatus.Terminal(last.GetState()) {
				t.Fatalf("WatchSyncStatus ended with %v before a terminal state (last %v)", err, last)
			}
			break
		}
		last = r.GetStatus()
	}
	if last.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED || last.GetTaskId() != started.GetTaskId() {
		t.Fatalf("watched final status = %v of task %s (%s), want COMPLETED of task %s",
			last.GetState(), last.GetTaskId(), last.GetMessage(), started.GetTaskId())
	}

	got, err := c.GetSyncStatus(t.Context(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: strings.ToUpper(source)})
	if err != nil {
		t.Fatalf("GetSyncStatus: %v", err)
	}
	if st := got.GetStatus(); st.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED || st.GetTotal().GetMessagesCopied() != uint64(mb.Count()) {
		t.Errorf("GetSyncStatus = %v with %d copied, want COMPLETED with %d", st.GetState(), st.GetTotal().GetMessagesCopied(), mb.Count())
	}
	check(t, src, dst, 1)

	cancelled, err := c.CancelSync(t.Context(), &imapcopyv1.CancelSyncRequest{SourceEmail: source})
	if err != nil || cancelled.GetStatus().GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED {
		t.Errorf("CancelSync after the end = %v, %v; want the COMPLETED status unchanged", cancelled.GetStatus().GetState(), err)
	}
	if _, err := c.GetSyncStatus(t.Context(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: "nobody@source.test"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetSyncStatus of an unknown address: %v, want NotFound", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v, want nil", err)
		}
	case <-time.After(waitEnd):
		t.Fatal("run did not return after its context ended")
	}
	noSecretIn(t, dataDir, src.Password, dst.Password)
	if l := logs.String(); strings.Contains(l, src.Password) || strings.Contains(l, dst.Password) {
		t.Errorf("a password appears in the logs")
	}
}

// startChild starts a standalone process with args and env: this test binary run
// with childEnv set.
func startChild(t *testing.T, name string, args []string, env map[string]string) *servicetest.Child {
	t.Helper()
	argv, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	vars := []string{childEnv + "=" + string(argv)}
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	return servicetest.StartChild(t, name, vars...)
}

// TestRestartResumes kills the standalone with SIGKILL in the middle of a copy and
// starts it again on the same data directory: the status survived, the task resumes
// and finishes with nothing lost or duplicated; a graceful restart keeps the final
// status too.
func TestRestartResumes(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	grpcAddr := servicetest.FreeAddr(t)
	args := []string{"-data-dir", dataDir, "-grpc-addr", grpcAddr, "-admin-addr", ""}
	env := testEnv()

	src, dst := shared.dot.AddUser(t), shared.slash.AddUser(t)
	mb := imaptest.Generate(11, imaptest.Spec{
		Count:   300,
		Folders: 4,
		Sizes:   []imaptest.SizeClass{{Weight: 1, Min: 4_000, Max: 16_000}},
	})
	if err := imaptest.Load(t.Context(), src, mb); err != nil {
		t.Fatalf("load the source: %v", err)
	}
	// About 3 MB through two connections at 250 kB/s each: some seconds of copying,
	// long enough to kill the process in the middle.
	proxy := proxytest.New(t, shared.dot.TLSAddr, proxytest.WithDirBandwidth(proxytest.Downstream, 250_000))
	via := src
	via.Host, via.Port = proxy.Host(), proxy.Port()
	source := src.Login + "@source.test"

	a := startChild(t, "a", args, env)
	c := dial(t, grpcAddr)
	c.waitServing(t, a.Exited)
	started, err := c.StartSync(t.Context(), &imapcopyv1.StartSyncRequest{
		Source:      servicetest.Account(via, source),
		Destination: servicetest.Account(dst, dst.Login+"@destination.test"),
		Options:     &imapcopyv1.SyncOptions{MaxConnections: 2},
	})
	if err != nil {
		t.Fatalf("StartSync: %v", err)
	}
	task := started.GetTaskId()
	running := servicetest.WaitStatus(t, c, source, waitServing, "RUNNING with messages copied", func(st *imapcopyv1.SyncStatus) bool {
		return syncstatus.Terminal(st.GetState()) ||
			st.GetState() == imapcopyv1.SyncState_SYNC_STATE_RUNNING && st.GetTotal().GetMessagesCopied() > 0
	})
	if running.GetState() != imapcopyv1.SyncState_SYNC_STATE_RUNNING {
		t.Fatalf("status = %v before any progress was seen, want RUNNING with progress (the copy is too fast for this test)", running.GetState())
	}
	if err := a.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.Wait(t, 10*time.Second)

	b := startChild(t, "b", args, env)
	c.waitServing(t, b.Exited)
	st, err := c.GetSyncStatus(t.Context(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: source})
	if err != nil {
		t.Fatalf("GetSyncStatus after the restart: %v", err)
	}
	if st.GetStatus().GetTaskId() != task || syncstatus.Terminal(st.GetStatus().GetState()) {
		t.Errorf("status after the restart = %v of task %s, want task %s not ended", st.GetStatus().GetState(), st.GetStatus().GetTaskId(), task)
	}
	end := servicetest.WaitStatus(t, c, source, waitEnd, "ended", func(st *imapcopyv1.SyncStatus) bool {
		return st.GetTaskId() == task && syncstatus.Terminal(st.GetState())
	})
	if end.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED {
		t.Fatalf("final status = %v (%s %s), want COMPLETED", end.GetState(), end.GetMessage(), end.GetFailureReason())
	}
	if end.GetAttempt() < 2 {
		t.Errorf("final attempt = %d, want a second delivery to have finished the task", end.GetAttempt())
	}
	check(t, src, dst, 1)

	// A graceful stop, and the final status is still there at the next start.
	if err := b.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(t, 60*time.Second); err != nil {
		t.Errorf("standalone after SIGTERM: %v, want a clean exit", err)
	}
	d := startChild(t, "c", args, env)
	c.waitServing(t, d.Exited)
	again, err := c.GetSyncStatus(t.Context(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: source})
	if err != nil || again.GetStatus().GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED || again.GetStatus().GetTaskId() != task {
		t.Errorf("status after a graceful restart = %v, %v; want COMPLETED of task %s", again.GetStatus(), err, task)
	}
}
