package syncworker_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
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
	"google.golang.org/grpc/metadata"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/natstest"
	"imapcopy.dev/pkg/netpolicy"
	"imapcopy.dev/pkg/providers"
	"imapcopy.dev/pkg/redistest"
	"imapcopy.dev/pkg/servicetest"
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
	slash, dot, stopDovecots, err := servicetest.StartDovecots()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopDovecots()
	shared.slash, shared.dot = slash, dot
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
	StallNote   time.Duration // 0: the default
	AckWait     time.Duration // 0: queueConfig's
	// RetryBackoff is the worker's (0: the default); MaxThrottles, when > 0, is
	// the engine's patience with a throttling server, each wait 50 ms.
	RetryBackoff time.Duration
	MaxThrottles int
}

// queue is queueConfig with the ack wait of cfg.
func (cfg copierConfig) queue() taskqueue.Config {
	q := queueConfig()
	if cfg.AckWait > 0 {
		q.AckWait = cfg.AckWait
	}
	return q
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
	qcfg := cfg.queue()
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
	var copyFunc syncworker.CopyFunc
	if cfg.MaxThrottles > 0 {
		copyFunc = func(ctx context.Context, mc mailcopy.Config) (*mailcopy.Result, error) {
			mc.MaxThrottles, mc.ThrottleBackoff = cfg.MaxThrottles, 50*time.Millisecond
			return mailcopy.Copy(ctx, mc)
		}
	}
	w, err := syncworker.New(syncworker.Deps{
		Copy:    copyFunc,
		Queue:   taskqueue.NewPuller(cons, taskqueue.PullerOptions{PullWait: time.Second, Logger: logger}),
		Store:   syncstatus.NewRedis(rc, syncstatus.RedisOptions{Prefix: cfg.RedisPrefix}),
		Opener:  kr,
		Logger:  logger,
		Metrics: syncworker.NewMetrics(reg),
	}, syncworker.Config{
		Concurrency:  cfg.Concurrency,
		StallNote:    cfg.StallNote,
		RetryBackoff: cfg.RetryBackoff,
		KeepAlive:    qcfg.KeepAliveInterval(),
		Dial:         imapconn.Options{Dialer: policy.Dialer(nil, nil)},
		RootCAs:      roots,
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
	logs   *servicetest.LogBuffer // everything the in-process api and copiers logged
	opts   envOptions
	addr   string // the api's
}

var prefixSeq atomic.Int64

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, envOptions{})
}

// envOptions change a test's world; the zero value is newEnv's.
type envOptions struct {
	redis   *redistest.Server // nil: the package's shared one
	ackWait time.Duration     // 0: queueConfig's
	retry   time.Duration     // the copiers' RetryBackoff; 0: the default
	// publisher, when set, is the api's queue, made from the env's NATS (the
	// api's own JetStream connection by default).
	publisher  func(e *env) syncapi.Publisher
	apiOptions syncapi.Options // RootCAs is set by the env
	// tokens, when set, authenticate the api's callers (syncapi.ParseTokens'
	// format): e.api then calls with apiToken, and e.as with another.
	tokens, apiToken string
}

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, nats: natstest.Start(t), logs: &servicetest.LogBuffer{}, opts: o}
	e.js = e.nats.JetStream(t)
	e.prefix = fmt.Sprintf("t%d:", prefixSeq.Add(1))
	if o.redis == nil {
		o.redis = shared.redis
	}
	e.store = syncstatus.NewRedis(o.redis.Client(t), syncstatus.RedisOptions{Prefix: e.prefix})
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
		NATSURL: e.nats.ClientURL(), RedisURL: o.redis.URL(), RedisPrefix: e.prefix,
		KeyFile: keyFile, CAFiles: []string{shared.slash.CAFile, shared.dot.CAFile}, Concurrency: 2,
		AckWait: o.ackWait, RetryBackoff: o.retry,
	}
	if _, err := taskqueue.EnsureStream(t.Context(), e.js, e.cfg.queue()); err != nil {
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
			t.Logf("in-process logs (but the api's calls):\n%s", servicetest.Tail(strings.Join(lines, "\n"), 60))
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
	var queue syncapi.Publisher = taskqueue.NewPublisher(e.js)
	if e.opts.publisher != nil {
		queue = e.opts.publisher(e)
	}
	apiOpts := e.opts.apiOptions
	apiOpts.RootCAs = e.roots()
	svc, err := syncapi.New(syncapi.Deps{
		Store:     e.store,
		Queue:     queue,
		Sealer:    e.keys,
		Prober:    syncapi.NewProber(imapconn.Options{Dialer: dialer}, logger),
		Policy:    dialer,
		Providers: providers.Builtin(),
		Logger:    logger,
	}, apiOpts)
	if err != nil {
		t.Fatal(err)
	}
	srvOpts := syncapi.ServerOptions{Logger: logger, ShutdownTimeout: time.Second}
	if e.opts.tokens != "" {
		tokens, err := syncapi.ParseTokens(strings.NewReader(e.opts.tokens))
		if err != nil {
			t.Fatal(err)
		}
		srvOpts.Auth = syncapi.NewAuth(tokens, false)
	}
	e.addr, _ = servicetest.Serve(t, syncapi.NewServer(svc, srvOpts))
	e.api = e.as(e.opts.apiToken)
}

// as is a client of the api that calls with token ("": none).
func (e *env) as(token string) imapcopyv1.SyncServiceClient {
	if token == "" {
		return imapcopyv1.NewSyncServiceClient(servicetest.Dial(e.t, e.addr))
	}
	bearer := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	return imapcopyv1.NewSyncServiceClient(servicetest.Dial(e.t, e.addr,
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(bearer(ctx), method, req, reply, cc, opts...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(bearer(ctx), desc, cc, method, opts...)
		})))
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

// startChild starts a copier process: this test binary run with childEnv set.
func (e *env) startChild(name string) *servicetest.Child {
	cfg, err := json.Marshal(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return servicetest.StartChild(e.t, name, childEnv+"="+string(cfg))
}

// waitStatus polls the status until cond holds, at most d, and returns it.
func (e *env) waitStatus(source string, d time.Duration, what string, cond func(*imapcopyv1.SyncStatus) bool) *imapcopyv1.SyncStatus {
	e.t.Helper()
	return servicetest.WaitStatus(e.t, e.api, source, d, what, cond)
}
