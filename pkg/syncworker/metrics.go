package syncworker

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/mailcopy"
)

// Metrics are the worker's Prometheus metrics. Labels never carry an address, a
// login or a host: outcomes and error kinds only, so cardinality stays bounded.
type Metrics struct {
	tasks      *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	inFlight   prometheus.Gauge
	messages   prometheus.Counter
	bytes      prometheus.Counter
	failed     prometheus.Counter
	imapErrors *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapcopy_copier_tasks_total",
			Help: "Task deliveries handled, by outcome (completed, completed_with_errors, failed, cancelled, retry, handed_back, superseded, stale, duplicate, invalid).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imapcopy_copier_task_duration_seconds",
			Help:    "Time a copier spent on one task delivery, by outcome.",
			Buckets: []float64{1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600},
		}, []string{"outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imapcopy_copier_tasks_in_flight",
			Help: "Tasks this copier is working on.",
		}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imapcopy_copier_messages_copied_total",
			Help: "Messages appended to destinations (dry runs excluded).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imapcopy_copier_bytes_copied_total",
			Help: "Bytes of the messages appended to destinations (dry runs excluded).",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imapcopy_copier_messages_failed_total",
			Help: "Messages a destination refused (too big, over quota, rejected).",
		}),
		imapErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imapcopy_copier_imap_errors_total",
			Help: "Copies stopped by an IMAP failure, by side (source, destination, none) and kind (auth, tls, unreachable, timeout, over-quota, ...).",
		}, []string{"side", "kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.tasks, m.duration, m.inFlight, m.messages, m.bytes, m.failed, m.imapErrors)
	}
	return m
}

func (m *Metrics) taskStarted() {
	if m != nil {
		m.inFlight.Inc()
	}
}

func (m *Metrics) taskEnded(outcome string, d time.Duration) {
	if m != nil {
		m.inFlight.Dec()
		m.tasks.WithLabelValues(outcome).Inc()
		m.duration.WithLabelValues(outcome).Observe(d.Seconds())
	}
}

func (m *Metrics) copied(messages int, bytes int64) {
	if m != nil {
		m.messages.Add(float64(messages))
		m.bytes.Add(float64(bytes))
	}
}

func (m *Metrics) failedMessages(n int) {
	if m != nil {
		m.failed.Add(float64(n))
	}
}

// engineError counts a copy stopped by an error from the engine; the worker's own
// verdicts (cancel, shutdown, superseded...) are not IMAP errors.
func (m *Metrics) engineError(err error) {
	if m == nil {
		return
	}
	var me *mailcopy.Error
	if !errors.As(err, &me) || me.Kind == mailcopy.KindCancelled {
		return
	}
	side := string(me.Side)
	if side == "" {
		side = "none"
	}
	kind := imapconn.KindOf(err).String()
	if me.Kind == mailcopy.KindOverQuota || imapconn.KindOf(err) == imapconn.KindUnknown {
		kind = me.Kind.String()
	}
	m.imapErrors.WithLabelValues(side, kind).Inc()
}
