package syncapi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/natstest"
	"imapcopy.dev/pkg/netpolicy"
	"imapcopy.dev/pkg/providers"
	"imapcopy.dev/pkg/redistest"
	"imapcopy.dev/pkg/servicetest"
	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/taskqueue"
	"imapcopy.dev/pkg/taskseal"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Servers shared by the package's tests; each test has its own accounts, Redis key
// prefix and NATS server.
var (
	dovecot  *imaptest.Dovecot
	redisSrv *redistest.Server
)

func TestMain(m *testing.M) {
	var err error
	dovecot, err = imaptest.Start(imaptest.FlavourSlash)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, stop, err := redistest.StartMain()
	if err != nil {
		dovecot.Close()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	redisSrv = srv
	code := m.Run()
	stop()
	dovecot.Close()
	os.Exit(code)
}

// testToken is the bearer token of the tests' client.
const testToken = "test-token-0123456789abcdef"

// storeKinds are the two stores every service test runs with.
var storeKinds = []string{"redis", "kv"}

// env is one running api: the service behind a real gRPC server on loopback, its
// store (Redis with a prefix of its own, or JetStream KV), its queue, and a client.
type env struct {
	t       *testing.T
	kind    string
	client  imapcopyv1.SyncServiceClient
	conn    *grpc.ClientConn
	store   syncstatus.Store
	nats    *natstest.Server
	js      jetstream.JetStream
	stream  jetstream.Stream
	rdb     *redis.Client
	prefix  string
	keyring *taskseal.Keyring
	logs    *servicetest.LogBuffer
	metrics *prometheus.Registry
	stop    func() // stops the server (as at shutdown) and waits for Serve
	httpURL string // the JSON/HTTP API's base URL, when withHTTP
}

type envConfig struct {
	opts       syncapi.Options
	deps       func(*syncapi.Deps)
	auth       *syncapi.Auth
	reflection bool
	http       *syncapi.HTTPOptions // serve the JSON/HTTP API too
}

// withHTTP serves the JSON/HTTP API as well (env.httpURL).
func withHTTP(opts syncapi.HTTPOptions) envOption {
	return func(c *envConfig) { c.http = &opts }
}

type envOption func(*envConfig)

func withOptions(f func(*syncapi.Options)) envOption {
	return func(c *envConfig) { f(&c.opts) }
}

func withDeps(f func(*syncapi.Deps)) envOption {
	return func(c *envConfig) { c.deps = f }
}

var prefixes atomic.Int64

// loopbackPolicy is the policy of the tests: Dovecot listens on 127.0.0.1, which the
// policy refuses unless allow-listed. Its resolver fails the test: every host of these
// tests is an IP literal.
func loopbackPolicy(t *testing.T) *netpolicy.Dialer {
	p, err := netpolicy.New(netpolicy.Config{Allow: []string{"127.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	return p.Dialer(nil, failResolver{t})
}

type failResolver struct{ t *testing.T }

func (r failResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.t.Errorf("unexpected DNS lookup of %q", host)
	return nil, errors.New("no DNS in this test")
}

func newEnv(t *testing.T, kind string, options ...envOption) *env {
	t.Helper()
	ctx := t.Context()
	e := &env{t: t, kind: kind, logs: &servicetest.LogBuffer{}, metrics: prometheus.NewRegistry()}
	cfg := envConfig{
		opts:       syncapi.Options{RootCAs: dovecot.CAPool},
		auth:       nil,
		reflection: true,
	}
	for _, o := range options {
		o(&cfg)
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	e.nats = natstest.Start(t)
	e.js = e.nats.JetStream(t)
	queue, stream := newQueue(t, e.js)
	e.stream = stream
	switch kind {
	case "redis":
		e.rdb = redisSrv.Client(t)
		e.prefix = fmt.Sprintf("t%d:", prefixes.Add(1))
		e.store = syncstatus.NewRedis(e.rdb, syncstatus.RedisOptions{Prefix: e.prefix})
	case "kv":
		kv, err := syncstatus.NewKV(ctx, e.js, syncstatus.KVOptions{})
		if err != nil {
			t.Fatalf("kv store: %v", err)
		}
		e.store = kv
	default:
		t.Fatalf("unknown store %q", kind)
	}
	keyring, err := taskseal.NewKeyring(taskseal.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	e.keyring = keyring
	policy := loopbackPolicy(t)
	metrics := syncapi.NewMetrics(e.metrics)
	deps := syncapi.Deps{
		Store:     e.store,
		Queue:     queue,
		Kept:      taskqueue.NewKept(e.js, time.Hour, 1),
		Sealer:    keyring,
		Prober:    syncapi.NewProber(imapconn.Options{Dialer: policy, DialTimeout: 20 * time.Second}, logger),
		Policy:    policy,
		Providers: providers.Builtin(),
		Logger:    logger,
		Metrics:   metrics,
	}
	if cfg.deps != nil {
		cfg.deps(&deps)
	}
	svc, err := syncapi.New(deps, cfg.opts)
	if err != nil {
		t.Fatalf("syncapi.New: %v", err)
	}
	auth := cfg.auth
	if auth == nil {
		tok, err := syncapi.NewToken("tests", testToken)
		if err != nil {
			t.Fatal(err)
		}
		auth = syncapi.NewAuth([]syncapi.Token{tok}, false)
	}
	serverOpts := syncapi.ServerOptions{
		Auth: auth, Reflection: cfg.reflection, Metrics: metrics, Logger: logger,
		ShutdownTimeout: 5 * time.Second,
	}
	if cfg.http != nil {
		serverOpts.HTTP = *cfg.http
	}
	server := syncapi.NewServer(svc, serverOpts)
	var addr string
	addr, e.stop = servicetest.Serve(t, server)
	if cfg.http != nil {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hctx, stopHTTP := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- server.ServeHTTP(hctx, lis) }()
		t.Cleanup(func() {
			stopHTTP()
			if err := <-served; err != nil {
				t.Errorf("ServeHTTP: %v", err)
			}
		})
		e.httpURL = "http://" + lis.Addr().String()
	}

	e.conn = dial(t, addr, testToken)
	e.client = imapcopyv1.NewSyncServiceClient(e.conn)
	return e
}

// dial connects a client that sends token (none when empty).
func dial(t *testing.T, addr, token string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	addToken := func(ctx context.Context) context.Context {
		if token == "" {
			return ctx
		}
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	all := append([]grpc.DialOption{
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(addToken(ctx), method, req, reply, cc, opts...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(addToken(ctx), desc, cc, method, opts...)
		}),
	}, opts...)
	return servicetest.Dial(t, addr, all...)
}

// ctx is a bounded context for one call of a test (a guard against hangs, not a
// timed assertion).
func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(e.t.Context(), 2*time.Minute)
	e.t.Cleanup(cancel)
	return ctx
}

// user is a fresh Dovecot user: its imapconn account and the address it is known by
// (Dovecot logs user@domain in as user).
type user struct {
	acct  imapconn.Account
	email string
}

func newUser(t *testing.T, opts ...imaptest.UserOption) user {
	t.Helper()
	acct := dovecot.AddUser(t, opts...)
	return user{acct: acct, email: acct.Login + "@example.test"}
}

// proto is the account as a control panel sends it.
func (u user) proto() *imapcopyv1.Account {
	return &imapcopyv1.Account{
		Provider: "other",
		Login:    u.email,
		Password: u.acct.Password,
		Host:     u.acct.Host,
		Port:     uint32(u.acct.Port),
		Security: imapcopyv1.Security_SECURITY_TLS,
	}
}

// withPassword is the account with another password.
func (u user) withPassword(pw string) *imapcopyv1.Account {
	a := u.proto()
	a.Password = pw
	return a
}

// nextTask reads the next task from the queue without consuming it.
func (e *env) tasks() []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx := e.ctx()
	info, err := e.stream.Info(ctx)
	if err != nil {
		e.t.Fatalf("stream info: %v", err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := e.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatalf("get msg %d: %v", seq, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

type netipAddrPort = netip.AddrPort

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// waitFor retries f until it succeeds (a bounded wait for a server coming back, not a
// timed assertion).
func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
