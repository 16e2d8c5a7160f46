package syncstatus

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// notifier shares one Redis pub/sub connection among every Watch of a store: a
// process with 3,000 open watch streams holds one subscriber connection, not 3,000.
// Each channel is subscribed while at least one watch listens to it. go-redis
// reconnects and subscribes again after a connection loss; notifications lost
// meanwhile are covered by each Watch's periodic re-read (RedisOptions.Resync).
type notifier struct {
	c redis.UniversalClient

	mu       sync.Mutex
	ps       *redis.PubSub // nil until the first watch
	channels map[string]*channelState
}

type channelState struct {
	listeners map[chan struct{}]struct{}
	ready     chan struct{} // closed when Redis confirmed the subscription
}

// listen subscribes to channel and returns a channel that receives (without blocking
// the notifier: it holds one pending signal) after each notification, once the
// subscription is confirmed or ctx ends, and a function that stops listening.
func (n *notifier) listen(ctx context.Context, channel string) (<-chan struct{}, func(), error) {
	n.mu.Lock()
	if n.ps == nil {
		n.ps = n.c.Subscribe(context.WithoutCancel(ctx))
		n.channels = map[string]*channelState{}
		go n.dispatch(n.ps.ChannelWithSubscriptions(redis.WithChannelSize(1024)))
	}
	st := n.channels[channel]
	subscribe := st == nil
	if subscribe {
		st = &channelState{listeners: map[chan struct{}]struct{}{}, ready: make(chan struct{})}
		n.channels[channel] = st
	}
	ch := make(chan struct{}, 1)
	st.listeners[ch] = struct{}{}
	ps := n.ps
	n.mu.Unlock()

	// stop runs when the watch ends, its context often done already: the unsubscribe
	// gets a context of its own.
	unsubscribeCtx := context.WithoutCancel(ctx)
	stop := func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(st.listeners, ch)
		if len(st.listeners) == 0 && n.channels[channel] == st {
			delete(n.channels, channel)
			uctx, cancel := context.WithTimeout(unsubscribeCtx, 5*time.Second)
			defer cancel()
			_ = ps.Unsubscribe(uctx, channel) // a failure only leaves a subscription that delivers to no one
		}
	}
	if subscribe {
		if err := ps.Subscribe(ctx, channel); err != nil {
			stop()
			return nil, nil, err
		}
	}
	select {
	case <-st.ready:
	case <-ctx.Done():
		stop()
		return nil, nil, ctx.Err()
	}
	return ch, stop, nil
}

// dispatch delivers the shared connection's messages to the listeners.
func (n *notifier) dispatch(msgs <-chan any) {
	for m := range msgs {
		var channel string
		confirmed := false
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			channel, confirmed = m.Channel, true
		case *redis.Message:
			channel = m.Channel
		default:
			continue
		}
		n.mu.Lock()
		if st := n.channels[channel]; st != nil {
			if confirmed {
				select {
				case <-st.ready:
				default:
					close(st.ready)
				}
			}
			for l := range st.listeners {
				select {
				case l <- struct{}{}:
				default: // a signal is pending: the watch reads the latest status anyway
				}
			}
		}
		n.mu.Unlock()
	}
}
