package syncapi

import (
	"context"
	"path"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Metrics are the api's Prometheus metrics. Labels never carry an address, a login or
// a host: only method names, codes and outcomes, so cardinality stays bounded.
type Metrics struct {
	calls        *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	accountTests *prometheus.CounterVec
	syncsStarted prometheus.Counter
	limited      *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not registered, as
// in tests that do not look at them).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapcopy_api_calls_total",
			Help: "gRPC calls answered, by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imapcopy_api_call_duration_seconds",
			Help:    "Time to answer a unary gRPC call, by method.",
			Buckets: []float64{.005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"method"}),
		accountTests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapcopy_api_account_tests_total",
			Help: "IMAP account tests, by role and outcome (ok or the failure reason).",
		}, []string{"role", "outcome"}),
		syncsStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imapcopy_api_syncs_started_total",
			Help: "Sync tasks queued.",
		}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapcopy_api_rate_limited_total",
			Help: "Calls refused by an abuse limit, by limit (address, caller, concurrency).",
		}, []string{"limit"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.duration, m.accountTests, m.syncsStarted, m.limited)
	}
	return m
}

func (m *Metrics) accountTested(role, outcome string) {
	if m != nil {
		m.accountTests.WithLabelValues(role, outcome).Inc()
	}
}

func (m *Metrics) syncStarted() {
	if m != nil {
		m.syncsStarted.Inc()
	}
}

func (m *Metrics) rateLimited(limit string) {
	if m != nil {
		m.limited.WithLabelValues(limit).Inc()
	}
}

// methodName turns "/imapcopy.v1.SyncService/StartSync" into "StartSync".
func methodName(full string) string {
	return path.Base(strings.TrimSuffix(full, "/"))
}

// UnaryInterceptor counts and times unary calls.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		method := methodName(info.FullMethod)
		m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
		m.calls.WithLabelValues(method, status.Code(err).String()).Inc()
		return resp, err
	}
}

// StreamInterceptor counts streaming calls when they end.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		m.calls.WithLabelValues(methodName(info.FullMethod), status.Code(err).String()).Inc()
		return err
	}
}
