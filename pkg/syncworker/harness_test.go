package syncworker_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/natstest"
	"imapcopy.dev/pkg/netpolicy"
	"imapcopy.dev/pkg/providers"
	"imapcopy.dev/pkg/redistest"
	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/syncworker"
	"imapcopy.dev/pkg/taskqueue"
	"imapcopy.dev/pkg/taskseal"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// childEnv, when set, makes the test binary a copier process (see copierMain): the
// crash and shutdown tests need real processes to kill.
const childEnv = "SYNCWORKER_TEST_COPIER"

// shared servers for the whole package; each test has its own NATS, Redis key
// prefix and IMAP users.
var shared struct {
	redis      *redistest.Server
	slash, dot *imaptest.Dovecot
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(copierMain(cfg))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	srv, stop, err := redistest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	shared.redis = srv
	for _, d := range []struct {
		f   imaptest.Flavour
		dst **imaptest.Dovecot
	}{{imaptest.FlavourSlash, &shared.slash}, {imaptest.FlavourDot, &shared.dot}} {
		dc, err := imaptest.Start(d.f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer dc.Close()
		*d.dst = dc
	}
	return m.Run()
}

// queueConfig is the task queue of the tests: short ack deadlines, so that a killed
// copier's task comes back within seconds.
func queueConfig() taskqueue.Config {
	const ackWait = 2 * time.Second
	return taskqueue.Config{
		AckWait:    ackWait,
		MaxDeliver: 5,
		Duplicates: time.Minute,
	}
}

// copierConfig is what a copier of the tests needs, in-process or as a child process
// (passed as JSON in childEnv).
type copierConfig struct {
	NATSURL     string
	RedisURL    string
	RedisPrefix string
	KeyFile     string
	CAFiles     []string
	Concurrency int
}

// runCopier is the copier's wiring, as the service does it: NATS, the stream and
// consumer from the shared settings, the Redis store, the keyring, the network policy
// (loopback allow-listed for the tests), then the worker until ctx ends.
func runCopier(ctx context.Context, cfg copierConfig, logger *slog.Logger, reg prometheus.Registerer) error {
	nc, err := nats.Connect(cfg.NATSURL, nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	qcfg := queueConfig()
	cons, err := taskqueue.EnsureStream(ctx, js, qcfg)
	if err != nil {
		return err
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return err
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	kr, err := taskseal.LoadKeyring(cfg.KeyFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	for _, f := range cfg.CAFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		roots.AppendCertsFromPEM(pem)
	}
	policy, err := netpolicy.New(netpolicy.Config{Allow: []string{"127.0.0.1"}})
	if err != nil {
		return err
	}
	w, err := syncworker.New(syncworker.Deps{
		Queue:   taskqueue.NewPuller(cons, taskqueue.PullerOptions{PullWait: time.Second, Logger: logger}),
		Store:   syncstatus.NewRedis(rc, syncstatus.RedisOptions{Prefix: cfg.RedisPrefix}),
		Opener:  kr,
		Logger:  logger,
		Metrics: syncworker.NewMetrics(reg),
	}, syncworker.Config{
		Concurrency: cfg.Concurrency,
		KeepAlive:   qcfg.KeepAliveInterval(),
		Dial:        imapconn.Options{Dialer: policy.Dialer(nil, nil)},
		RootCAs:     roots,
	})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// copierMain is a copier process: JSON logs on stderr, SIGTERM for a graceful stop,
// a second signal exits at once (as the service's main does).
func copierMain(cfgJSON string) int {
	var cfg copierConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "copier child:", err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	go func() {
		<-ctx.Done()
		stop()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		os.Exit(3)
	}()
	if err := runCopier(ctx, cfg, logger, nil); err != nil {
		logger.Error("copier_failed", "error", err.Error())
		return 1
	}
	return 0
}

// env is one test's world: an embedded NATS, a Redis key prefix, a task key, the
// api served in-process over gRPC on loopback.
type env struct {
	t      *testing.T
	nats   *natstest.Server
	js     jetstream.JetStream
	prefix string
	store  *syncstatus.Redis
	keys   *taskseal.Keyring
	cfg    copierConfig
	api    imapcopyv1.SyncServiceClient
	logs   *syncBuffer // everything the in-process api and copiers logged
}

var prefixSeq atomic.Int64

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, nats: natstest.Start(t), logs: &syncBuffer{}}
	e.js = e.nats.JetStream(t)
	e.prefix = fmt.Sprintf("t%d:", prefixSeq.Add(1))
	e.store = syncstatus.NewRedis(shared.redis.Client(t), syncstatus.RedisOptions{Prefix: e.prefix})
	key := taskseal.GenerateKey()
	keyFile := filepath.Join(t.TempDir(), "task.key")
	if err := os.WriteFile(keyFile, taskseal.FormatKeys(key), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.keys, err = taskseal.NewKeyring(key); err != nil {
		t.Fatal(err)
	}
	e.cfg = copierConfig{
		NATSURL: e.nats.ClientURL(), RedisURL: shared.redis.URL(), RedisPrefix: e.prefix,
		KeyFile: keyFile, CAFiles: []string{shared.slash.CAFile, shared.dot.CAFile}, Concurrency: 2,
	}
	if _, err := taskqueue.EnsureStream(t.Context(), e.js, queueConfig()); err != nil {
		t.Fatal(err)
	}
	e.startAPI()
	t.Cleanup(func() {
		if t.Failed() {
			var lines []string
			for l := range strings.SplitSeq(e.logs.String(), "\n") {
				if !strings.Contains(l, `"msg":"grpc_call"`) {
					lines = append(lines, l)
				}
			}
			t.Logf("in-process logs (but the api's calls):\n%s", tail(strings.Join(lines, "\n"), 60))
		}
	})
	return e
}

func (e *env) logger(name string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", name)
}

func (e *env) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, f := range e.cfg.CAFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			e.t.Fatal(err)
		}
		pool.AppendCertsFromPEM(pem)
	}
	return pool
}

func (e *env) startAPI() {
	t := e.t
	policy, err := netpolicy.New(netpolicy.Config{Allow: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	dialer := policy.Dialer(nil, nil)
	logger := e.logger("api")
	svc, err := syncapi.New(syncapi.Deps{
		Store:     e.store,
		Queue:     taskqueue.NewPublisher(e.js),
		Sealer:    e.keys,
		Prober:    syncapi.NewProber(imapconn.Options{Dialer: dialer}, logger),
		Policy:    dialer,
		Providers: providers.Builtin(),
		Logger:    logger,
	}, syncapi.Options{RootCAs: e.roots()})
	if err != nil {
		t.Fatal(err)
	}
	srv := syncapi.NewServer(svc, syncapi.ServerOptions{Logger: logger, ShutdownTimeout: time.Second})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("api Serve: %v", err)
		}
	})
	e.api = imapcopyv1.NewSyncServiceClient(conn)
}

// inProcess is a copier running in the test process.
type inProcess struct {
	reg  *prometheus.Registry
	stop func() error
}

func (e *env) startCopier() *inProcess {
	t := e.t
	ctx, cancel := context.WithCancel(context.Background())
	c := &inProcess{reg: prometheus.NewRegistry()}
	done := make(chan error, 1)
	go func() { done <- runCopier(ctx, e.cfg, e.logger("copier"), c.reg) }()
	var once sync.Once
	var err error
	c.stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("copier Run: %v", err)
		}
	})
	return c
}

// gauge reads a metric without labels.
func (c *inProcess) gauge(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := c.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// child is a copier process: this test binary run with childEnv set.
type child struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

func (e *env) startChild(name string) *child {
	t := e.t
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { c.err = cmd.Wait(); logFile.Close(); close(c.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("copier %s log:\n%s", name, tail(string(b), 100))
		}
	})
	return c
}

// wait waits at most d for the process to exit.
func (c *child) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-c.exited:
		return c.err
	case <-time.After(d):
		t.Fatalf("copier process still running after %v", d)
		return nil
	}
}

func (c *child) logs() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// addUser adds a user to d and waits until d lets it log in: Dovecot re-reads its
// passwd-file at most once a second, so a user added in the second of another
// login is refused for up to a second.
func addUser(t *testing.T, d *imaptest.Dovecot, opts ...imaptest.UserOption) imapconn.Account {
	t.Helper()
	acct := d.AddUser(t, opts...)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := imaptest.Dial(t.Context(), acct)
		if err == nil {
			c.Close()
			return acct
		}
		if time.Now().After(deadline) {
			t.Fatalf("new user cannot log in: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// accountProto is the StartSync form of an account on a test server.
func accountProto(a imapconn.Account, login string) *imapcopyv1.Account {
	return &imapcopyv1.Account{
		Provider: "other", Login: login, Password: a.Password,
		Host: a.Host, Port: uint32(a.Port), Security: imapcopyv1.Security_SECURITY_TLS,
	}
}

// waitStatus polls the status until cond holds, at most d, and returns it.
func (e *env) waitStatus(source string, d time.Duration, what string, cond func(*imapcopyv1.SyncStatus) bool) *imapcopyv1.SyncStatus {
	t := e.t
	t.Helper()
	deadline := time.Now().Add(d)
	var last *imapcopyv1.SyncStatus
	for {
		resp, err := e.api.GetSyncStatus(t.Context(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: source})
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

func isReport(_ string, raw []byte) bool {
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	return bytes.Contains(head, []byte(mailcopy.ReportHeader+":"))
}

// check runs the harness's checker on the copy, the reports aside.
func check(t *testing.T, src, dst imapconn.Account) {
	t.Helper()
	res, err := imaptest.Check(t.Context(), src, dst, imaptest.CheckOptions{IgnoreDest: isReport})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !res.OK() {
		t.Errorf("Check: %v", res)
	}
}

// reports counts the report messages in the destination INBOX.
func reports(t *testing.T, dst imapconn.Account) int {
	t.Helper()
	msgs, err := imaptest.ReadFolder(t.Context(), dst, "INBOX")
	if err != nil {
		t.Fatalf("read destination INBOX: %v", err)
	}
	n := 0
	for _, m := range msgs {
		if isReport("INBOX", m.Raw) {
			n++
		}
	}
	return n
}
