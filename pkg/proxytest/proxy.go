// Package proxytest is an in-process TCP proxy for tests and benchmarks. It owns the
// faults a network can cause between a client and a server on loopback: added latency
// per direction (a delay line that keeps the throughput), a bandwidth limit per
// connection or for the whole link (every connection through the proxy), writes of a
// bounded size (a trickle rather than bursts), and
// connections cut abruptly after a given number of bytes in a given direction, and an
// observer that sees each chunk as it is forwarded (to act at a point of a protocol).
//
// It listens on 127.0.0.1 and forwards only to a loopback target: it refuses any other.
// New ties a proxy to a test (closed by tb.Cleanup); Listen and Close serve callers
// without a testing.TB, such as the benchmark command.
package proxytest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// Direction is the way bytes flow through the proxy.
type Direction int

const (
	Upstream   Direction = iota + 1 // client to server
	Downstream                      // server to client
)

func (d Direction) String() string {
	switch d {
	case Upstream:
		return "upstream"
	case Downstream:
		return "downstream"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// Option configures a Proxy.
type Option func(*config)

type config struct {
	latency   [3]time.Duration // by Direction
	bandwidth [3]int64         // bytes per second and connection, 0: unlimited
	link      [3]int64         // bytes per second shared by every connection, 0: unlimited
	maxWrite  [3]int           // largest write, 0: chunkSize
	observe   [3]func(conn int64, b []byte)
}

// WithLatency delays every byte by d in both directions (a round trip gains 2*d).
func WithLatency(d time.Duration) Option {
	return func(c *config) { c.latency[Upstream], c.latency[Downstream] = d, d }
}

// WithDirLatency delays every byte flowing in dir by d.
func WithDirLatency(dir Direction, d time.Duration) Option {
	return func(c *config) { c.latency[dir] = d }
}

// WithBandwidth limits each connection to bytesPerSecond in each direction.
func WithBandwidth(bytesPerSecond int64) Option {
	return func(c *config) { c.bandwidth[Upstream], c.bandwidth[Downstream] = bytesPerSecond, bytesPerSecond }
}

// WithDirBandwidth limits each connection to bytesPerSecond in dir.
func WithDirBandwidth(dir Direction, bytesPerSecond int64) Option {
	return func(c *config) { c.bandwidth[dir] = bytesPerSecond }
}

// WithDirMaxWrite forwards the bytes flowing in dir in writes of at most n bytes.
// With a bandwidth limit, a connection then receives a steady trickle of small
// pieces rather than a burst of up to 16 KiB whenever the limit allows one: a
// server that sends a little at a time, each piece well within any idle timeout.
func WithDirMaxWrite(dir Direction, n int) Option {
	return func(c *config) { c.maxWrite[dir] = n }
}

// WithLinkBandwidth limits the proxy as a whole to bytesPerSecond in each direction,
// shared by every connection through it, as one network link between a client's
// site and a server's is: more connections do not make it wider.
func WithLinkBandwidth(bytesPerSecond int64) Option {
	return func(c *config) { c.link[Upstream], c.link[Downstream] = bytesPerSecond, bytesPerSecond }
}

// WithObserver calls fn with each chunk of bytes forwarded in dir, right after the
// chunk was written to the receiving side, so that fn can act at a precise point of
// a protocol: after the receiver may have read a given answer (a test that kills the
// client there), or before anything more reaches it (fn blocks, and the connection's
// bytes in dir wait for it: a server that stops answering mid-response). Chunks come
// in order for each connection; conn numbers the connections from 1 in the order
// they were accepted. A chunk may hold a part of a line, or several lines. fn must
// return by the time the proxy is closed (Close waits for it).
func WithObserver(dir Direction, fn func(conn int64, b []byte)) Option {
	return func(c *config) { c.observe[dir] = fn }
}

// Stats are the proxy's counters.
type Stats struct {
	Accepted   int64 // connections accepted
	Active     int64 // connections open now
	Upstream   int64 // bytes forwarded client to server
	Downstream int64 // bytes forwarded server to client
	Cuts       int64 // connections cut by CutAfter, CutConnAfter or CutAll
}

// Proxy is a running proxy.
type Proxy struct {
	target string
	cfg    config
	ln     net.Listener
	link   [3]*rate.Limiter // by Direction; nil: unlimited
	delay  [3]atomic.Int64  // latency by Direction, ns: the options', then SetLatency's

	accepted, cuts atomic.Int64
	bytes          [3]atomic.Int64 // by Direction

	mu      sync.Mutex
	conns   map[*link]struct{}
	armed   [3]cut // by Direction
	closed  bool
	wg      sync.WaitGroup
	closeCh chan struct{}
}

type cut struct {
	remaining int64 // bytes still allowed through; meaningful when on
	on        bool
	all       bool // cut every connection, not only the one that crossed the limit
}

// New starts a proxy to target for tb; tb.Cleanup closes it. It fails tb when target is
// not a loopback address.
func New(tb testing.TB, target string, opts ...Option) *Proxy {
	tb.Helper()
	p, err := Listen(target, opts...)
	if err != nil {
		tb.Fatalf("proxytest: %v", err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// Listen starts a proxy on 127.0.0.1 (a random port) forwarding to target, which must
// be a loopback address ("127.0.0.1:993", "[::1]:143", "localhost:143").
func Listen(target string, opts ...Option) (*Proxy, error) {
	if err := checkLoopback(target); err != nil {
		return nil, err
	}
	p := &Proxy{target: target, conns: map[*link]struct{}{}, closeCh: make(chan struct{})}
	for _, o := range opts {
		o(&p.cfg)
	}
	for _, dir := range []Direction{Upstream, Downstream} {
		p.delay[dir].Store(int64(p.cfg.latency[dir]))
		if bw := p.cfg.link[dir]; bw > 0 {
			p.link[dir] = rate.NewLimiter(rate.Limit(bw), chunkSize)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxytest listen: %w", err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func checkLoopback(target string) error {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("proxytest target %q: %w", target, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("proxytest target %q: not a loopback address", target)
	}
	return nil
}

// Addr is the proxy's address, 127.0.0.1:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Host is the proxy's IP address, "127.0.0.1".
func (p *Proxy) Host() string { return p.ln.Addr().(*net.TCPAddr).IP.String() }

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// SetLatency changes the latency of dir from now on, for every connection: bytes read
// from now are delayed by d (bytes already in the delay line keep their time, and
// nothing overtakes them). A long latency stalls a link without cutting it: what a
// client sends is accepted and arrives late.
func (p *Proxy) SetLatency(dir Direction, d time.Duration) { p.delay[dir].Store(int64(d)) }

// CutAfter arms a cut: once n more bytes have been forwarded in dir (counted over all
// connections), every open connection is closed abruptly (TCP reset on both sides),
// as when the network fails. The cut fires once; later connections work normally.
// n = 0 cuts at the next byte.
func (p *Proxy) CutAfter(dir Direction, n int64) {
	p.mu.Lock()
	p.armed[dir] = cut{remaining: n, on: true, all: true}
	p.mu.Unlock()
}

// CutConnAfter is CutAfter that closes only the connection that carries the nth byte.
func (p *Proxy) CutConnAfter(dir Direction, n int64) {
	p.mu.Lock()
	p.armed[dir] = cut{remaining: n, on: true}
	p.mu.Unlock()
}

// CutAll closes every open connection abruptly now.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	conns := p.snapshot()
	p.mu.Unlock()
	for _, l := range conns {
		p.cutLink(l)
	}
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := int64(len(p.conns))
	p.mu.Unlock()
	return Stats{
		Accepted:   p.accepted.Load(),
		Active:     active,
		Upstream:   p.bytes[Upstream].Load(),
		Downstream: p.bytes[Downstream].Load(),
		Cuts:       p.cuts.Load(),
	}
}

// Close stops listening, closes every connection and waits for the proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.closeCh)
	conns := p.snapshot()
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range conns {
		l.close(false, nil)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) snapshot() []*link {
	out := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		out = append(out, l)
	}
	return out
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		id := p.accepted.Add(1)
		p.wg.Add(1)
		go p.serve(client, id)
	}
}

// link is one proxied connection: the client's side and the server's side.
type link struct {
	client, server net.Conn
	id             int64 // from 1, in accept order
	once           sync.Once
}

// close closes both sides; abrupt closes send a TCP reset instead of a FIN. The first
// call runs before (if not nil) before closing.
func (l *link) close(abrupt bool, before func()) {
	l.once.Do(func() {
		if before != nil {
			before()
		}
		for _, c := range []net.Conn{l.client, l.server} {
			if c == nil {
				continue
			}
			if tc, ok := c.(*net.TCPConn); ok && abrupt {
				tc.SetLinger(0)
			}
			c.Close()
		}
	})
}

// cutLink counts the cut before the reset reaches anyone, so that a client that sees
// the reset also sees the count.
func (p *Proxy) cutLink(l *link) {
	l.close(true, func() { p.cuts.Add(1) })
}

func (p *Proxy) serve(client net.Conn, id int64) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	server, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		client.Close()
		return
	}
	l := &link{client: client, server: server, id: id}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.close(false, nil)
		return
	}
	p.conns[l] = struct{}{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(l, Upstream, client, server) }()
	go func() { defer wg.Done(); p.pipe(l, Downstream, server, client) }()
	wg.Wait()
	l.close(false, nil)
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
}

// chunk is bytes read from one side, due for the other side at a given time.
type chunk struct {
	data []byte
	due  time.Time
}

const (
	chunkSize  = 16 << 10
	queueDepth = 1024 // chunks in flight per direction and connection
)

// pipe forwards src to dst through a delay line: a reader stamps each chunk with the
// time it is due (read time + latency) and a writer releases it then, so that latency
// adds delay without limiting throughput.
func (p *Proxy) pipe(l *link, dir Direction, src, dst net.Conn) {
	size := chunkSize
	if n := p.cfg.maxWrite[dir]; n > 0 && n < size {
		size = n
	}
	var limiter *rate.Limiter
	if bw := p.cfg.bandwidth[dir]; bw > 0 {
		limiter = rate.NewLimiter(rate.Limit(bw), size)
	}
	queue := make(chan chunk, queueDepth)
	done := make(chan struct{})
	var reader sync.WaitGroup
	defer reader.Wait() // every way out of the loop below closes the connections

	reader.Add(1)
	go func() {
		defer reader.Done()
		defer close(queue)
		for {
			buf := make([]byte, size)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case queue <- chunk{data: buf[:n], due: time.Now().Add(time.Duration(p.delay[dir].Load()))}:
				case <-done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()

	defer close(done)
	timer := time.NewTimer(0)
	<-timer.C
	for c := range queue {
		if wait := time.Until(c.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-p.closeCh:
				return
			}
		}
		data := c.data
		for _, lim := range []*rate.Limiter{limiter, p.link[dir]} {
			if lim == nil {
				continue
			}
			if err := lim.WaitN(context.Background(), len(data)); err != nil {
				return
			}
		}
		allowed, cutNow, all := p.take(dir, int64(len(data)))
		if allowed > 0 {
			n, err := dst.Write(data[:allowed])
			p.bytes[dir].Add(int64(n))
			if err != nil {
				l.close(false, nil)
				return
			}
			if fn := p.cfg.observe[dir]; fn != nil {
				fn(l.id, data[:allowed])
			}
		}
		if cutNow {
			if all {
				p.CutAll()
			} else {
				p.cutLink(l)
			}
			return
		}
	}
	// The source finished: pass the end of stream on, keeping the other direction open.
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		l.close(false, nil)
	}
}

// take accounts n bytes about to pass in dir against an armed cut: it returns how many
// may pass and whether to cut after them.
func (p *Proxy) take(dir Direction, n int64) (allowed int64, cutNow, all bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := &p.armed[dir]
	if !c.on {
		return n, false, false
	}
	if n < c.remaining {
		c.remaining -= n
		return n, false, false
	}
	allowed, all = c.remaining, c.all
	*c = cut{}
	return allowed, true, all
}
