// Package adminhttp owns the admin HTTP endpoint that every imapcopy service runs
// beside its gRPC port, for Prometheus and Kubernetes:
//
//   - /metrics: the Prometheus registry made in main, plus
//     imapcopy_readiness_check_up{check}: 1 when the named check passed at its last
//     run (each /readyz runs them all), 0 when it failed or has not run yet;
//   - /healthz: liveness, 200 for as long as the process serves HTTP at all;
//   - /readyz: readiness, 200 when every named check passes, else 503 listing the
//     failing names (their errors go to the log, never to the response), and 503
//     as soon as Drain is called, so that traffic moves away before shutdown.
//
// Checks run concurrently, each bounded by Server.CheckTimeout, so that one hung
// dependency cannot hang the probe.
package adminhttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is the admin HTTP server.
type Server struct {
	// CheckTimeout bounds each readiness check (default 5s); ShutdownTimeout bounds
	// the graceful shutdown when Serve's context ends (default 5s). Set them before
	// Serve.
	CheckTimeout, ShutdownTimeout time.Duration

	addr     string
	checks   map[string]func(context.Context) error
	names    []string // sorted check names
	logger   *slog.Logger
	draining atomic.Bool
	http     *http.Server
	checkUp  *prometheus.GaugeVec
}

// New returns a server for addr (such as ":9090") exposing reg (nil: an empty
// registry) and the readiness checks by name (nil: always ready), or nil when addr is
// empty (no admin server; Run accepts nil). A check returns nil when the dependency
// it names is usable, and should return when its context ends. logger nil discards.
func New(addr string, reg *prometheus.Registry, checks map[string]func(context.Context) error, logger *slog.Logger) *Server {
	if addr == "" {
		return nil
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		CheckTimeout:    5 * time.Second,
		ShutdownTimeout: 5 * time.Second,
		addr:            addr,
		checks:          map[string]func(context.Context) error{},
		logger:          logger,
		checkUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imapcopy_readiness_check_up",
			Help: "1 when the readiness check of this name passed at its last run (each /readyz), 0 when it failed or has not run yet.",
		}, []string{"check"}),
	}
	for name, check := range checks {
		s.checks[name] = check
		s.names = append(s.names, name)
		s.checkUp.WithLabelValues(name).Set(0)
	}
	slices.Sort(s.names)
	reg.MustRegister(s.checkUp)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:          reg, // counts promhttp's own errors
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	s.http = &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Handler returns the server's routes, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Drain makes /readyz answer 503 from now on: the first phase of a graceful shutdown.
func (s *Server) Drain() { s.draining.Store(true) }

// Run runs a service beside the admin server s (nil: none), the one shutdown
// sequence of every imapcopy binary: the admin server listens first (a taken port
// fails at once) and answers probes while serve starts; when ctx ends, /readyz
// fails at once (Drain), so that traffic moves away while serve drains; the admin
// server stops last, once serve has returned. It returns serve's error, joined with
// the admin server's.
func Run(ctx context.Context, s *Server, serve func(context.Context) error) error {
	if s == nil {
		return serve(ctx)
	}
	ln, err := s.listen(ctx)
	if err != nil {
		return err
	}
	adminCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	adminDone := make(chan error, 1)
	go func() { adminDone <- s.ServeListener(adminCtx, ln) }()
	defer context.AfterFunc(ctx, s.Drain)()
	err = serve(ctx)
	stop()
	return errors.Join(err, <-adminDone)
}

// Serve listens on the server's address and serves until ctx ends, then shuts down
// gracefully (at most s.ShutdownTimeout). It returns nil after a shutdown caused by ctx.
func (s *Server) Serve(ctx context.Context) error {
	ln, err := s.listen(ctx)
	if err != nil {
		return err
	}
	return s.ServeListener(ctx, ln)
}

func (s *Server) listen(ctx context.Context) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("admin http listen %s: %w", s.addr, err)
	}
	return ln, nil
}

// ServeListener is Serve on a listener the caller opened (such as 127.0.0.1:0 in
// tests). It closes ln.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	s.logger.Info("admin_http_listening", slog.String("addr", ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin http serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.ShutdownTimeout)
	defer cancel()
	err := s.http.Shutdown(shutdownCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("admin http shutdown: %w", err)
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeText(w, http.StatusServiceUnavailable, "not ready: shutting down\n")
		return
	}
	failed := s.runChecks(r.Context())
	if len(failed) > 0 {
		writeText(w, http.StatusServiceUnavailable, "not ready: "+strings.Join(failed, ", ")+"\n")
		return
	}
	writeText(w, http.StatusOK, "ok\n")
}

// runChecks runs every check concurrently and returns the sorted names of those that
// failed.
func (s *Server) runChecks(ctx context.Context) []string {
	ok := make([]bool, len(s.names))
	var wg sync.WaitGroup
	for i, name := range s.names {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, s.CheckTimeout)
			defer cancel()
			if err := s.run(ctx, name); err != nil {
				s.logger.Warn("readiness_check_failed", slog.String("check", name), slog.Any("error", err))
				s.checkUp.WithLabelValues(name).Set(0)
				return
			}
			ok[i] = true
			s.checkUp.WithLabelValues(name).Set(1)
		})
	}
	wg.Wait()
	var failed []string
	for i, name := range s.names {
		if !ok[i] {
			failed = append(failed, name)
		}
	}
	return failed
}

// run runs one check, turning a panic into a failure and giving up when ctx ends
// even if the check ignores ctx (its goroutine then ends when the check returns).
func (s *Server) run(ctx context.Context, name string) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("panic: %v", p)
			}
		}()
		done <- s.checks[name](ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer: %w", ctx.Err())
	}
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// NewRegistry returns the registry of a binary's /metrics: the Go runtime's and the
// process's collectors, and extra.
func NewRegistry(extra ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(extra...)
	return reg
}
