// Package servicetest holds what the end-to-end tests of the imapcopy services share
// (syncapi, syncworker, and the api, copier and standalone binaries): the Dovecot pair
// and its users, a SyncService served in-process on loopback, a sync's account in
// request form, waiting for a sync's status, checking a copied mailbox, child
// processes of the test binary, and a log buffer safe for concurrent writers.
//
// It is for tests only. Every address it listens on or dials is loopback. Its waits
// are bounds against hangs, never timed assertions.
package servicetest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/taskseal"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// StartDovecots starts the two Dovecot flavours, for a TestMain: "/" (slash) and
// "." with the INBOX. prefix (dot). stop closes both.
func StartDovecots() (slash, dot *imaptest.Dovecot, stop func(), err error) {
	if slash, err = imaptest.Start(imaptest.FlavourSlash); err != nil {
		return nil, nil, nil, err
	}
	if dot, err = imaptest.Start(imaptest.FlavourDot); err != nil {
		slash.Close()
		return nil, nil, nil, err
	}
	return slash, dot, func() { slash.Close(); dot.Close() }, nil
}

// Account is the request form of an account on a local Dovecot, as a control panel
// sends it: provider "other", its host and port, implicit TLS, known by login.
func Account(a imapconn.Account, login string) *imapcopyv1.Account {
	return &imapcopyv1.Account{
		Provider: "other", Login: login, Password: a.Password,
		Host: a.Host, Port: uint32(a.Port), Security: imapcopyv1.Security_SECURITY_TLS,
	}
}

// IsReport tells the copy's report message (mailcopy.ReportHeader) from copied mail,
// as imaptest.CheckOptions.IgnoreDest.
func IsReport(_ string, raw []byte) bool {
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	return bytes.Contains(head, []byte(mailcopy.ReportHeader+":"))
}

// Check runs imaptest's checker on the copy from src to dst, the reports aside.
func Check(t testing.TB, src, dst imapconn.Account) {
	t.Helper()
	res, err := imaptest.Check(t.Context(), src, dst, imaptest.CheckOptions{IgnoreDest: IsReport})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !res.OK() {
		t.Errorf("Check: %v", res)
	}
}

// Reports counts the report messages in the INBOX of dst.
func Reports(t testing.TB, dst imapconn.Account) int {
	t.Helper()
	msgs, err := imaptest.ReadFolder(t.Context(), dst, "INBOX")
	if err != nil {
		t.Fatalf("read destination INBOX: %v", err)
	}
	n := 0
	for _, m := range msgs {
		if IsReport("INBOX", m.Raw) {
			n++
		}
	}
	return n
}

// WaitStatus polls the status of source through c until cond holds, at most d, and
// returns it; what names the awaited condition in the failure.
func WaitStatus(t testing.TB, c imapcopyv1.SyncServiceClient, source string, d time.Duration, what string, cond func(*imapcopyv1.SyncStatus) bool) *imapcopyv1.SyncStatus {
	t.Helper()
	deadline := time.Now().Add(d)
	var last *imapcopyv1.SyncStatus
	for {
		resp, err := c.GetSyncStatus(t.Context(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: source})
		if err == nil {
			last = resp.GetStatus()
			if cond(last) {
				return last
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of %s: not %s within %v; last status: %v (err %v)", source, what, d, last, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Server is what Serve serves: a syncapi.Server.
type Server interface {
	Serve(ctx context.Context, lis net.Listener) error
}

// Serve serves srv on a loopback port until stop or the end of the test, and returns
// its address. stop shuts srv down as at a shutdown and waits for Serve, which must
// return nil; it may be called more than once.
func Serve(t testing.TB, srv Server) (addr string, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

// Dial is a client connection to the gRPC server at addr, without TLS (servers of
// tests listen on loopback), closed at the end of the test.
func Dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatalf("grpc client: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// FreeAddr is a loopback address with a port free at the time of the call, for a
// binary under test to listen on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Getenv is a getenv reading m, for a binary's run under test.
func Getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// Child is a child process: the test binary run again (its TestMain turns it into
// the process under test, as an environment variable tells it).
type Child struct {
	Cmd    *exec.Cmd
	Exited chan struct{} // closed once the process has exited
	log    string
	err    error
}

// StartChild starts the test binary, running no test, with the test's environment
// plus env ("KEY=value"). Its output goes to a log file, whose tail the test's log
// shows when the test fails; the process is killed at the end of the test.
func StartChild(t testing.TB, name string, env ...string) *Child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Child{Cmd: cmd, Exited: make(chan struct{}), log: logPath}
	go func() { c.err = cmd.Wait(); logFile.Close(); close(c.Exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.Exited
		if t.Failed() {
			t.Logf("child process %s, its log:\n%s", name, Tail(c.Logs(), 100))
		}
	})
	return c
}

// Wait waits at most d for the process to exit and returns how it exited.
func (c *Child) Wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-c.Exited:
		return c.err
	case <-time.After(d):
		t.Fatalf("child process still running after %v", d)
		return nil
	}
}

// Logs is what the process wrote so far.
func (c *Child) Logs() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogBuffer collects logs written from many goroutines.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Run runs a binary's run in the background with its logs going to the returned
// buffer. At the end of the test its context ends and run must return nil (within
// a minute); its logs are shown when the test failed.
func Run(t testing.TB, run func(ctx context.Context, logs io.Writer) error) *LogBuffer {
	t.Helper()
	logs := &LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(time.Minute):
			t.Errorf("run did not return a minute after its context ended")
		}
		if t.Failed() {
			t.Logf("logs:\n%s", Tail(logs.String(), 80))
		}
	})
	return logs
}

// TaskKeyFile writes a file with a fresh task key for the test and returns its path.
func TaskKeyFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "task.key")
	if err := os.WriteFile(path, taskseal.FormatKeys(taskseal.GenerateKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Get fetches url and returns the status code and the body. A connection refused is
// retried for 30 s (a server under test may not listen yet).
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitReady polls url (a /readyz) until it answers 200, at most a minute, and returns
// the last answer.
func WaitReady(t testing.TB, url string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := Get(t, url)
		if code == http.StatusOK || time.Now().After(deadline) {
			return code, body
		}
		time.Sleep(200 * time.Millisecond)
	}
}
