package taskqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the queue's depth at each scrape, read from JetStream (the
// consumer's info and the first waiting message). Register it in the api, which
// stays up when no copier runs, so that a queue nobody drains shows. Its metrics:
//
//   - imapcopy_queue_up: 1 when this scrape could read the consumer, else 0 (and
//     the other metrics are left out);
//   - imapcopy_queue_tasks_waiting: tasks never delivered to a copier;
//   - imapcopy_queue_tasks_unacked: tasks delivered and not yet ended (running, or
//     handed back or nak'ed and waiting for their redelivery);
//   - imapcopy_queue_tasks_redelivered: of those, the ones delivered more than once;
//   - imapcopy_queue_oldest_waiting_seconds: how long the oldest waiting task has
//     waited (0 when none waits). A task that waits Config.Unclaimed is failed.
type Collector struct {
	js      jetstream.JetStream
	timeout time.Duration
	now     func() time.Time

	up, waiting, unacked, redelivered, oldest *prometheus.Desc
}

// NewCollector returns a collector reading the queue through js. Each scrape makes
// two JetStream requests, bounded together by 5s.
func NewCollector(js jetstream.JetStream) *Collector {
	return &Collector{
		js:          js,
		timeout:     5 * time.Second,
		now:         time.Now,
		up:          prometheus.NewDesc("imapcopy_queue_up", "1 when the task queue's consumer could be read at this scrape, else 0.", nil, nil),
		waiting:     prometheus.NewDesc("imapcopy_queue_tasks_waiting", "Tasks in the queue never delivered to a copier.", nil, nil),
		unacked:     prometheus.NewDesc("imapcopy_queue_tasks_unacked", "Tasks delivered to a copier and not yet ended (running, or waiting for a redelivery).", nil, nil),
		redelivered: prometheus.NewDesc("imapcopy_queue_tasks_redelivered", "Unacked tasks delivered more than once.", nil, nil),
		oldest:      prometheus.NewDesc("imapcopy_queue_oldest_waiting_seconds", "Age of the oldest task never delivered to a copier (0 when none waits).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.waiting, c.unacked, c.redelivered, c.oldest} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.read(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, st.waiting)
	ch <- prometheus.MustNewConstMetric(c.unacked, prometheus.GaugeValue, st.unacked)
	ch <- prometheus.MustNewConstMetric(c.redelivered, prometheus.GaugeValue, st.redelivered)
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, st.oldest.Seconds())
}

type queueState struct {
	waiting, unacked, redelivered float64
	oldest                        time.Duration
}

func (c *Collector) read(ctx context.Context) (queueState, error) {
	stream, err := c.js.Stream(ctx, StreamName)
	if err != nil {
		return queueState{}, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	cons, err := stream.Consumer(ctx, ConsumerName)
	if err != nil {
		return queueState{}, fmt.Errorf("consumer %s: %w", ConsumerName, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return queueState{}, fmt.Errorf("consumer %s info: %w", ConsumerName, err)
	}
	st := queueState{
		waiting:     float64(info.NumPending),
		unacked:     float64(info.NumAckPending),
		redelivered: float64(info.NumRedelivered),
	}
	if st.waiting == 0 {
		return st, nil
	}
	// The consumer delivers in stream order (DeliverAll, one message per pull), so
	// the first message after the last delivered one is the oldest never delivered.
	msg, err := stream.GetMsg(ctx, info.Delivered.Stream+1, jetstream.WithGetMsgSubject(Subject))
	if err != nil {
		return queueState{}, fmt.Errorf("oldest waiting task: %w", err)
	}
	st.oldest = max(c.now().Sub(msg.Time), 0)
	return st, nil
}
