package syncapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"imapcopy.dev/pkg/envflag"
	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/netpolicy"
	"imapcopy.dev/pkg/providers"
	"imapcopy.dev/pkg/syncpage"
)

// Config is the api's piece of a binary's configuration, read from flags and the
// environment (a flag wins over its variable, the variable over the default). The
// variable names are a contract with operators: see services/api/README.md.
type Config struct {
	GRPCAddr string // IMAPCOPY_GRPC_ADDR
	// HTTPAddr serves the JSON/HTTP API and the page; "" or "off": none. Its default
	// is the value the field holds when RegisterFlags is called (the standalone
	// sets DefaultStandaloneHTTPAddr; the api has none).
	HTTPAddr string // IMAPCOPY_HTTP_ADDR
	Page     string // IMAPCOPY_PAGE: public, private or off

	TLSCertFile     string // IMAPCOPY_TLS_CERT_FILE
	TLSKeyFile      string // IMAPCOPY_TLS_KEY_FILE
	TLSClientCAFile string // IMAPCOPY_TLS_CLIENT_CA_FILE: verify client certificates (mTLS)
	TokensFile      string // IMAPCOPY_API_TOKENS_FILE
	Tokens          string // IMAPCOPY_API_TOKENS (environment only: a flag would show in ps)
	InsecureListen  bool   // IMAPCOPY_INSECURE_LISTEN: serve a non-loopback address without TLS or authentication
	Reflection      bool   // IMAPCOPY_REFLECTION

	// IMAP is how customers' servers are reached (policy, CAs, plaintext), the same
	// for the api's account tests as for the copiers.
	IMAP          netpolicy.Settings
	ProvidersFile string // IMAPCOPY_PROVIDERS_FILE

	RatePerAddress     string        // IMAPCOPY_RATE_PER_ADDRESS
	RatePerCaller      string        // IMAPCOPY_RATE_PER_CALLER
	MaxAccountTests    int           // IMAPCOPY_MAX_ACCOUNT_TESTS
	MaxWatches         int           // IMAPCOPY_MAX_WATCHES_PER_CALLER
	AccountTestTimeout time.Duration // IMAPCOPY_ACCOUNT_TEST_TIMEOUT
	PlanTimeout        time.Duration // IMAPCOPY_PLAN_TIMEOUT
	QueuedLockTTL      time.Duration // IMAPCOPY_QUEUED_LOCK_TTL
	RetryWindow        time.Duration // IMAPCOPY_RETRY_WINDOW: how long a started task is kept for RetrySync; 0: none
	ShutdownTimeout    time.Duration // IMAPCOPY_SHUTDOWN_TIMEOUT

	errs []error // environment values that did not parse
}

// Defaults of the api's settings.
const (
	DefaultGRPCAddr           = "127.0.0.1:50051"
	DefaultStandaloneHTTPAddr = "127.0.0.1:8080"
	DefaultRatePerAddress     = "10/10m"
	DefaultRatePerCaller      = "1200/1m"
)

// RegisterFlags registers the api's flags on fs, their defaults taken from the
// environment through getenv (os.Getenv in main).
func (c *Config) RegisterFlags(fs *flag.FlagSet, getenv func(string) string) {
	c.IMAP.RegisterFlags(fs, getenv)
	e := envflag.New(fs, getenv)
	e.String(&c.GRPCAddr, "grpc-addr", "IMAPCOPY_GRPC_ADDR", DefaultGRPCAddr, "gRPC listen address")
	e.String(&c.HTTPAddr, "http-addr", "IMAPCOPY_HTTP_ADDR", c.HTTPAddr, `JSON/HTTP API and page listen address ("off": none)`)
	e.String(&c.Page, "page", "IMAPCOPY_PAGE", "public", `the page at / on the HTTP address: "public" (anyone may start a sync; an address lookup shows state and percentages only), "private" (callers need an API token, as in gRPC) or "off"`)
	e.String(&c.TLSCertFile, "tls-cert-file", "IMAPCOPY_TLS_CERT_FILE", "", "PEM certificate (chain) of the gRPC listener; with the key, turns TLS on")
	e.String(&c.TLSKeyFile, "tls-key-file", "IMAPCOPY_TLS_KEY_FILE", "", "PEM private key of the gRPC listener")
	e.String(&c.TLSClientCAFile, "tls-client-ca-file", "IMAPCOPY_TLS_CLIENT_CA_FILE", "", "PEM CAs whose client certificates authenticate callers (mTLS)")
	e.String(&c.TokensFile, "api-tokens-file", "IMAPCOPY_API_TOKENS_FILE", "", `file of bearer tokens, one per line: "secret", "name secret" or "name secret admin" (sees every caller's syncs)`)
	c.Tokens = getenv("IMAPCOPY_API_TOKENS")
	e.Bool(&c.InsecureListen, "insecure-listen", "IMAPCOPY_INSECURE_LISTEN", false, "allow a non-loopback gRPC address without TLS or without authentication")
	e.Bool(&c.Reflection, "reflection", "IMAPCOPY_REFLECTION", true, "serve gRPC reflection (grpcurl without proto files)")
	e.String(&c.ProvidersFile, "providers-file", "IMAPCOPY_PROVIDERS_FILE", "", "JSON provider catalogue replacing the built-in one")
	e.String(&c.RatePerAddress, "rate-per-address", "IMAPCOPY_RATE_PER_ADDRESS", DefaultRatePerAddress, `account tests and starts per email address: "N/duration" ("off": no limit)`)
	e.String(&c.RatePerCaller, "rate-per-caller", "IMAPCOPY_RATE_PER_CALLER", DefaultRatePerCaller, `account tests and starts per caller: "N/duration" ("off": no limit)`)
	e.Int(&c.MaxAccountTests, "max-account-tests", "IMAPCOPY_MAX_ACCOUNT_TESTS", 32, "account tests running at once (a start runs two)")
	e.Int(&c.MaxWatches, "max-watches-per-caller", "IMAPCOPY_MAX_WATCHES_PER_CALLER", 100, "WatchSyncStatus streams one caller may hold open at once")
	e.Duration(&c.AccountTestTimeout, "account-test-timeout", "IMAPCOPY_ACCOUNT_TEST_TIMEOUT", 60*time.Second, "bound of one account test")
	e.Duration(&c.PlanTimeout, "plan-timeout", "IMAPCOPY_PLAN_TIMEOUT", 2*time.Minute, "bound of the dry run of a PlanSync (the pre-flight verdict)")
	e.Duration(&c.QueuedLockTTL, "queued-lock-ttl", "IMAPCOPY_QUEUED_LOCK_TTL", 24*time.Hour, "lifetime of a source's lock while its task waits in the queue")
	e.Duration(&c.RetryWindow, "retry-window", "IMAPCOPY_RETRY_WINDOW", retryWindowDefault, "how long the api keeps each started task, its credentials sealed, so that RetrySync can start a failed sync again (0: keep none)")
	e.Duration(&c.ShutdownTimeout, "shutdown-timeout", "IMAPCOPY_SHUTDOWN_TIMEOUT", 20*time.Second, "how long running calls may finish at shutdown")
	if err := e.Err(); err != nil {
		c.errs = append(c.errs, err)
	}
}

// Check validates the configuration, reporting every problem.
func (c *Config) Check() error {
	errs := append([]error{c.IMAP.Check()}, c.errs...)
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("IMAPCOPY_TLS_CERT_FILE and IMAPCOPY_TLS_KEY_FILE go together: give both or neither"))
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		errs = append(errs, errors.New("IMAPCOPY_TLS_CLIENT_CA_FILE needs TLS: set IMAPCOPY_TLS_CERT_FILE and IMAPCOPY_TLS_KEY_FILE"))
	}
	for name, v := range map[string]string{"IMAPCOPY_RATE_PER_ADDRESS": c.RatePerAddress, "IMAPCOPY_RATE_PER_CALLER": c.RatePerCaller} {
		if _, err := ParseRate(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	errs = append(errs, c.checkListen("IMAPCOPY_GRPC_ADDR", c.GRPCAddr))
	if c.HTTPEnabled() {
		errs = append(errs, c.checkListen("IMAPCOPY_HTTP_ADDR", c.HTTPAddr))
	}
	if c.RetryWindow < 0 {
		errs = append(errs, fmt.Errorf("IMAPCOPY_RETRY_WINDOW %v: use a duration such as 168h, or 0 to keep no task", c.RetryWindow))
	}
	switch c.Page {
	case "", "public", "private", "off":
	default:
		errs = append(errs, fmt.Errorf("IMAPCOPY_PAGE %q: use public, private or off", c.Page))
	}
	return errors.Join(errs...)
}

// checkListen refuses a non-loopback listen address without TLS or without
// authentication, unless InsecureListen says a TLS proxy in front does the job.
func (c *Config) checkListen(name, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", name, addr, err)
	}
	if c.InsecureListen || loopbackHost(host) {
		return nil
	}
	var errs []error
	if c.TLSCertFile == "" {
		errs = append(errs, fmt.Errorf("%s %s is not a loopback address: passwords would cross the network in clear; set IMAPCOPY_TLS_CERT_FILE and IMAPCOPY_TLS_KEY_FILE (or IMAPCOPY_INSECURE_LISTEN=true behind a TLS proxy)", name, addr))
	}
	if c.TokensFile == "" && c.Tokens == "" && c.TLSClientCAFile == "" {
		errs = append(errs, fmt.Errorf("%s %s is not a loopback address: anyone could call; set IMAPCOPY_API_TOKENS_FILE or IMAPCOPY_TLS_CLIENT_CA_FILE (or IMAPCOPY_INSECURE_LISTEN=true)", name, addr))
	}
	return errors.Join(errs...)
}

// HTTPEnabled reports whether the JSON/HTTP API is served.
func (c *Config) HTTPEnabled() bool { return c.HTTPAddr != "" && c.HTTPAddr != "off" }

// ListenHTTP opens the HTTP listener; nil when HTTP is off.
func (c *Config) ListenHTTP(ctx context.Context) (net.Listener, error) {
	if !c.HTTPEnabled() {
		return nil, nil
	}
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", c.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("IMAPCOPY_HTTP_ADDR: %w", err)
	}
	return lis, nil
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// TLS returns the listener's TLS configuration, nil when TLS is off. With a client CA,
// client certificates are verified when presented (a caller may use a token instead).
func (c *Config) TLS() (*tls.Config, error) {
	if c.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.TLSClientCAFile != "" {
		pool, err := loadPool(c.TLSClientCAFile, x509.NewCertPool())
		if err != nil {
			return nil, fmt.Errorf("load client CAs: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// Auth returns the access rule: the tokens of the file and of IMAPCOPY_API_TOKENS,
// and client certificates when a client CA is configured.
func (c *Config) Auth() (*Auth, error) {
	var tokens []Token
	if c.TokensFile != "" {
		f, err := os.Open(c.TokensFile)
		if err != nil {
			return nil, fmt.Errorf("api tokens: %w", err)
		}
		defer f.Close()
		t, err := ParseTokens(f)
		if err != nil {
			return nil, fmt.Errorf("api tokens file %s: %w", c.TokensFile, err)
		}
		if len(t) == 0 {
			return nil, fmt.Errorf("api tokens file %s: no token", c.TokensFile)
		}
		tokens = append(tokens, t...)
	}
	if c.Tokens != "" {
		t, err := ParseTokens(strings.NewReader(c.Tokens))
		if err != nil {
			return nil, fmt.Errorf("IMAPCOPY_API_TOKENS: %w", err)
		}
		tokens = append(tokens, t...)
	}
	return NewAuth(tokens, c.TLSClientCAFile != ""), nil
}

// Catalogue returns the provider presets: the operator's file, or the built-in ones.
func (c *Config) Catalogue() (*providers.Catalog, error) {
	if c.ProvidersFile == "" {
		return providers.Builtin(), nil
	}
	return providers.Load(c.ProvidersFile)
}

func loadPool(path string, pool *x509.CertPool) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}

// Options returns the service options this configuration describes.
func (c *Config) Options() (Options, error) {
	perAddress, err := ParseRate(c.RatePerAddress)
	if err != nil {
		return Options{}, fmt.Errorf("IMAPCOPY_RATE_PER_ADDRESS: %w", err)
	}
	perCaller, err := ParseRate(c.RatePerCaller)
	if err != nil {
		return Options{}, fmt.Errorf("IMAPCOPY_RATE_PER_CALLER: %w", err)
	}
	roots, err := c.IMAP.RootCAs()
	if err != nil {
		return Options{}, err
	}
	return Options{
		AllowPlaintext:      c.IMAP.AllowPlaintext,
		RootCAs:             roots,
		QueuedLockTTL:       c.QueuedLockTTL,
		PerAddress:          perAddress,
		PerCaller:           perCaller,
		MaxConcurrentTests:  c.MaxAccountTests,
		MaxWatchesPerCaller: c.MaxWatches,
		TestTimeout:         c.AccountTestTimeout,
		PlanTimeout:         c.PlanTimeout,
	}, nil
}

// ParseRate reads "N/duration" (N events per duration, N at once at most), or "off"
// or "0" for no limit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "off" || s == "0" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err != nil || count <= 0 {
		return Rate{}, fmt.Errorf("rate %q: expected N/duration, such as 10/10m, or off", s)
	}
	d, err := time.ParseDuration(strings.TrimSpace(per))
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("rate %q: expected N/duration, such as 10/10m, or off", s)
	}
	return Rate{Every: d / time.Duration(count), Burst: count}, nil
}

// Parts are what a binary supplies around the configuration: the store, the queue
// and the sealer it chose, and its logger and metrics registry.
type Parts struct {
	Store    Store
	Queue    Publisher
	Kept     TaskKeeper // nil: RetrySync refuses (see RetryWindow)
	Sealer   Sealer
	Logger   *slog.Logger          // nil: discard
	Registry prometheus.Registerer // nil: no metrics
	// Resolver resolves customers' host names for the network policy; nil: the
	// system's. The policy checks every address it returns, on every dial.
	Resolver netpolicy.Resolver
	// MaxDeliver is the task queue's bound on deliveries (Options.MaxDeliver).
	MaxDeliver int
}

// Build makes the gRPC server this configuration describes around parts: the
// network policy and its dialer, the prober, the catalogue, the limits, TLS and
// access. The api binary and the standalone mode both build their server here.
func (c *Config) Build(p Parts) (*Server, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	policy, err := c.IMAP.Policy()
	if err != nil {
		return nil, err
	}
	dialer := policy.Dialer(nil, p.Resolver)
	catalogue, err := c.Catalogue()
	if err != nil {
		return nil, err
	}
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	opts.MaxDeliver = p.MaxDeliver
	auth, err := c.Auth()
	if err != nil {
		return nil, err
	}
	tlsConfig, err := c.TLS()
	if err != nil {
		return nil, err
	}
	metrics := NewMetrics(p.Registry)
	svc, err := New(Deps{
		Store:     p.Store,
		Queue:     p.Queue,
		Kept:      p.Kept,
		Sealer:    p.Sealer,
		Prober:    NewProber(imapconn.Options{Dialer: dialer, Logger: logger}, logger),
		Policy:    dialer,
		Providers: catalogue,
		Logger:    logger,
		Metrics:   metrics,
	}, opts)
	if err != nil {
		return nil, err
	}
	return NewServer(svc, ServerOptions{
		TLS:             tlsConfig,
		Auth:            auth,
		Reflection:      c.Reflection,
		Metrics:         metrics,
		ShutdownTimeout: c.ShutdownTimeout,
		Logger:          logger,
		HTTP:            c.httpOptions(),
	}), nil
}

// httpOptions are the HTTP side's: the page in its mode (none when off).
func (c *Config) httpOptions() HTTPOptions {
	opts := HTTPOptions{Public: c.Page == "public" || c.Page == ""}
	if c.Page != "off" {
		opts.Page = syncpage.Handler(syncpage.Options{Mode: syncpage.Mode(c.Page)})
	}
	return opts
}

// Serve serves server on the configured addresses until ctx ends, then drains: gRPC
// on GRPCAddr and, when HTTPEnabled, the JSON/HTTP API and the page on HTTPAddr. A
// listen failure returns at once. It logs where it listens, with a hint when gRPC is
// plain.
func (c *Config) Serve(ctx context.Context, server *Server, logger *slog.Logger) error {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", c.GRPCAddr)
	if err != nil {
		return fmt.Errorf("IMAPCOPY_GRPC_ADDR: %w", err)
	}
	httpLis, err := c.ListenHTTP(ctx)
	if err != nil {
		lis.Close()
		return err
	}
	logger.Info("grpc_listening", "addr", lis.Addr().String(), "tls", c.TLSCertFile != "",
		"client_certificates", c.TLSClientCAFile != "", "tokens", c.TokensFile != "" || c.Tokens != "", "reflection", c.Reflection)
	if c.TLSCertFile == "" {
		logger.Info("api_plaintext", "hint", "plain gRPC: fine on loopback (grpcurl -plaintext "+lis.Addr().String()+
			" list); before listening on a wider address set IMAPCOPY_TLS_CERT_FILE, IMAPCOPY_TLS_KEY_FILE and IMAPCOPY_API_TOKENS_FILE")
	}
	var g errgroup.Group
	g.Go(func() error { return server.Serve(ctx, lis) })
	if httpLis != nil {
		logger.Info("http_listening", "addr", httpLis.Addr().String(), "page", c.Page,
			"hint", "open http://"+httpLis.Addr().String()+"/ ; the JSON API is under /v1/ (described at /v1/openapi.json)")
		g.Go(func() error { return server.ServeHTTP(ctx, httpLis) })
	}
	return g.Wait()
}
