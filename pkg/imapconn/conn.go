package imapconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Dialer opens network connections; netpolicy's dialer and tests' proxies implement it.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Options tunes how connections are made. The zero value is usable.
type Options struct {
	Dialer       Dialer        // nil: a net.Dialer
	DialTimeout  time.Duration // TCP + TLS + greeting (+ STARTTLS); default 30s
	LoginTimeout time.Duration // capabilities + login; default 60s
	IdleTimeout  time.Duration // sliding: no byte moving for this long while an answer is awaited fails the conn; default 5m
	Logger       *slog.Logger  // nil: discard
	// WriteBuffer, when > 0, sets the TCP connection's send buffer (SO_SNDBUF; the
	// kernel doubles it) instead of letting the kernel grow it (to 4 MiB on
	// Linux). It bounds what the kernel still sends for a process that stopped
	// writing: a copier frozen with an APPEND in that buffer (see mailcopy's
	// appendWriteBuffer). Connections that are not TCP are left as they are.
	WriteBuffer int
	// UnsentLimit, when > 0, bounds the bytes the kernel keeps written but not yet
	// sent on the TCP connection (TCP_NOTSENT_LOWAT, Linux; ignored elsewhere): a
	// write waits while that much is queued. The send buffer still holds what is
	// in flight, so a fast or distant link stays full, but a process that stops
	// writing leaves only this much behind it besides what the network already
	// carries. Connections that are not TCP are left as they are.
	UnsentLimit int
	// BeforeLogin, unless nil, is called once the connection is secured and the
	// server greeted it, before the login: an error ends the dial, with nothing
	// sent, and is returned as it is. A connection dialed ahead of need waits
	// there for its user to decide that it is needed: the TLS handshake and the
	// greeting (round trips, on a distant server) are behind it, and an account
	// sees no login that is not needed. Its wait is no part of the timeouts.
	BeforeLogin func(context.Context) error
}

const (
	defaultDialTimeout  = 30 * time.Second
	defaultLoginTimeout = 60 * time.Second
	defaultIdleTimeout  = 5 * time.Minute
)

func (o Options) withDefaults() Options {
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{}
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	if o.LoginTimeout <= 0 {
		o.LoginTimeout = defaultLoginTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = defaultIdleTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Addr is the account's server address, host:port.
func (a Account) Addr() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// TLSConfig is the TLS configuration for the account: certificates verified against
// RootCAs (system roots when nil) for the name Host, unless InsecureSkipVerify.
func TLSConfig(acct Account) *tls.Config {
	return &tls.Config{
		ServerName:         acct.Host,
		RootCAs:            acct.RootCAs,
		InsecureSkipVerify: acct.InsecureSkipVerify,
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"imap"},
	}
}

// DialTransport opens the account's TCP connection through opts.Dialer and, for
// SecurityTLS, completes the TLS handshake; both bounded by opts.DialTimeout. The
// connection counts bytes, fails when idle while an answer is awaited (see Options), and is
// closed when ctx ends. It does not read the greeting. Errors are *Error.
func DialTransport(ctx context.Context, acct Account, opts Options) (net.Conn, error) {
	opts = opts.withDefaults()
	dialCtx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	nc, _, err := dialTransport(ctx, dialCtx, acct, opts)
	if err != nil {
		return nil, err
	}
	return nc, nil
}

// dialTransport is DialTransport with the dial phase bounded by dialCtx and the
// connection's life by ctx. It also returns the counting wrapper.
func dialTransport(ctx, dialCtx context.Context, acct Account, opts Options) (net.Conn, *conn, error) {
	addr := acct.Addr()
	op := "connect to " + addr
	if acct.Host == "" || acct.Port <= 0 || acct.Port > 65535 {
		return nil, nil, &Error{Kind: KindUnreachable, Op: op, Err: fmt.Errorf("the server address is incomplete")}
	}
	switch acct.Security {
	case SecurityTLS, SecurityStartTLS, SecurityPlaintext:
	default:
		return nil, nil, &Error{Kind: KindUnknown, Op: op, Err: fmt.Errorf("no connection security chosen (want TLS, STARTTLS or plaintext)")}
	}
	raw, err := opts.Dialer.DialContext(dialCtx, "tcp", addr)
	if err != nil {
		return nil, nil, phaseError(ctx, dialCtx, op, opts.DialTimeout, err)
	}
	if opts.WriteBuffer > 0 {
		if err := setWriteBuffer(raw, opts.WriteBuffer); err != nil {
			raw.Close()
			return nil, nil, &Error{Kind: KindUnknown, Op: op, Err: fmt.Errorf("set the send buffer: %w", err)}
		}
	}
	if opts.UnsentLimit > 0 {
		if err := setUnsentLimit(raw, opts.UnsentLimit); err != nil {
			raw.Close()
			return nil, nil, &Error{Kind: KindUnknown, Op: op, Err: fmt.Errorf("limit the unsent bytes: %w", err)}
		}
	}
	c := newConn(raw, opts.IdleTimeout)
	c.bind(ctx)
	if acct.Security != SecurityTLS {
		return c, c, nil
	}
	tc := tls.Client(c, TLSConfig(acct))
	if err := tc.HandshakeContext(dialCtx); err != nil {
		c.Close()
		return nil, nil, tlsError(ctx, dialCtx, "start TLS with "+addr, opts.DialTimeout, err)
	}
	return tlsConn{tc, c}, c, nil
}

// tlsConn is a TLS connection over a conn whose Writes each leave in one
// syscall per writeChunk, where crypto/tls makes one per record (at most
// 16 KiB): a copy's bodies go out 64 KiB a Write. Its handshake is done, so
// a Write never waits for the server while its records are held.
type tlsConn struct {
	*tls.Conn
	raw *conn
}

func (t tlsConn) Write(p []byte) (int, error) {
	t.raw.hold()
	n, err := t.Conn.Write(p)
	if ferr := t.raw.release(); err == nil {
		err = ferr
	}
	return n, err
}

// setWriteBuffer sets the send buffer of the TCP connection under nc, found
// through the wrappers that give it with NetConn (as *tls.Conn does). A
// connection with no TCP under it is left as it is.
func setWriteBuffer(nc net.Conn, n int) error {
	if tc := tcpConn(nc); tc != nil {
		return tc.SetWriteBuffer(n)
	}
	return nil
}

// tcpConn is the TCP connection under nc, found through the wrappers that give
// it with NetConn (as *tls.Conn does), or nil.
func tcpConn(nc net.Conn) *net.TCPConn {
	for nc != nil {
		if tc, ok := nc.(*net.TCPConn); ok {
			return tc
		}
		w, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		nc = w.NetConn()
	}
	return nil
}

// phaseError classifies err from a phase bounded by phaseCtx (itself derived from ctx).
func phaseError(ctx, phaseCtx context.Context, op string, limit time.Duration, err error) *Error {
	switch {
	case ctx.Err() != nil:
		kind := KindClosed
		if ctx.Err() == context.DeadlineExceeded {
			kind = KindTimeout
		}
		return &Error{Kind: kind, Op: op, Err: fmt.Errorf("gave up: %w", context.Cause(ctx))}
	case phaseCtx.Err() != nil:
		return &Error{Kind: KindTimeout, Op: op, Err: fmt.Errorf("no answer within %v: %w", limit, context.DeadlineExceeded)}
	}
	kind := classify(err)
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		err = opErr.Err // "dial tcp host:port" repeats the op
	}
	var verifyErr *tls.CertificateVerificationError
	if errors.As(err, &verifyErr) {
		err = fmt.Errorf("the server's certificate is not trusted (give its CA, or skip verification for this account): %w", err)
	}
	return &Error{Kind: kind, Op: op, Err: err}
}

func tlsError(ctx, phaseCtx context.Context, op string, limit time.Duration, err error) *Error {
	e := phaseError(ctx, phaseCtx, op, limit, err)
	if e.Kind == KindClosed && ctx.Err() == nil {
		// The server hung up during the handshake: it does not speak TLS to us.
		e.Kind = KindTLS
		e.Err = fmt.Errorf("the server closed the connection during the TLS handshake (is this a STARTTLS or plaintext port?): %w", err)
		return e
	}
	if e.Kind != KindTLS {
		return e
	}
	var rec tls.RecordHeaderError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &rec):
		e.Err = fmt.Errorf("the server does not speak TLS on this port (is it a STARTTLS or plaintext port?): %w", err)
	case errors.As(err, &verify):
		e.Err = fmt.Errorf("%w; the server's certificate cannot be trusted: ask its operator to fix it, or, only on a network you trust, "+
			"turn off the certificate check for this account (insecure_skip_verify)", err)
	}
	return e
}

// conn wraps a TCP connection: it counts bytes, enforces the sliding idle timeout and
// reads the network in chunks of up to readBuffer bytes.
//
// Deadlines: the layers above (go-imap, TLS, pkg/imapappend) do not set real deadlines on
// this conn. A non-zero SetReadDeadline means "an answer is expected: arm the idle
// timeout", a zero one disarms it; the time itself is ignored. The idle timeout is also
// armed from every write until the next byte is read, because every IMAP client write
// expects an answer. Armed, a read that sees no byte for idle fails with a timeout; writes
// are sent in chunks that must each leave within idle. So a transfer that keeps moving never
// times out, however long, and an idle connection between commands is left alone.
type conn struct {
	net.Conn
	idle time.Duration
	// in reads the network through rawReader, readBuffer bytes at a time:
	// crypto/tls asks for one record (at most 16 KiB) a read, and a read
	// syscall (and an idle deadline re-armed) per record was about a tenth
	// of the copier's CPU on a copy of hundreds of MB.
	in *bufio.Reader

	// The writes of one tlsConn.Write (crypto/tls writes a record at a time,
	// a syscall each) wait in wbuf and leave together; see hold.
	wmu   sync.Mutex
	holds int
	wbuf  []byte
	werr  error // a send of wbuf failed: the connection is broken

	read, written atomic.Int64

	mu        sync.Mutex
	readArmed bool // the layer above expects an answer
	awaiting  bool // bytes were written since the last byte was read

	closeOnce sync.Once
	closeErr  error
	unbind    func() bool // guarded by mu: bind may race with a Close from its own AfterFunc
}

// readBuffer is conn's read buffer.
const readBuffer = 64 << 10

func newConn(nc net.Conn, idle time.Duration) *conn {
	c := &conn{Conn: nc, idle: idle, unbind: func() bool { return false }}
	c.in = bufio.NewReaderSize(rawReader{c}, readBuffer)
	return c
}

// bind closes the connection when ctx ends.
func (c *conn) bind(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unbind = context.AfterFunc(ctx, func() { c.Close() })
}

// A write leaves in chunks of at most writeChunk+sendSlack bytes: the four TLS
// records of a 64 KiB Write, held (see hold), leave with their overhead (22 to
// 29 bytes each) in one syscall.
const (
	writeChunk = 64 << 10
	sendSlack  = 1 << 10
)

// Read returns what the read buffer holds, else reads the network.
func (c *conn) Read(p []byte) (int, error) { return c.in.Read(p) }

// Buffered is the number of bytes read from the network and not yet returned by Read.
func (c *conn) Buffered() int { return c.in.Buffered() }

// rawReader reads c's network connection, with the idle timeout armed as needed.
type rawReader struct{ c *conn }

func (r rawReader) Read(p []byte) (int, error) {
	c := r.c
	c.mu.Lock()
	c.applyReadDeadlineLocked()
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.read.Add(int64(n))
		c.mu.Lock()
		c.awaiting = false
		c.mu.Unlock()
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("nothing received for %v: %w", c.idle, err)
	}
	return n, err
}

// Write sends p, or, while a tlsConn's Write holds the connection, adds it to
// the write buffer, which is sent once it holds writeChunk bytes and at the
// end of the hold.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.holds == 0 {
		return c.send(p)
	}
	if c.werr != nil {
		return 0, c.werr
	}
	c.wbuf = append(c.wbuf, p...)
	if len(c.wbuf) >= writeChunk {
		return len(p), c.flushLocked()
	}
	return len(p), nil
}

// hold makes Writes wait in the write buffer until release.
func (c *conn) hold() {
	c.wmu.Lock()
	c.holds++
	c.wmu.Unlock()
}

// release ends a hold and sends what the write buffer holds.
func (c *conn) release() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.holds--
	return c.flushLocked()
}

func (c *conn) flushLocked() error {
	if c.werr != nil {
		return c.werr
	}
	if len(c.wbuf) > 0 {
		_, c.werr = c.send(c.wbuf)
		c.wbuf = c.wbuf[:0]
	}
	return c.werr
}

// send writes p to the network, in chunks that must each leave within the idle timeout.
func (c *conn) send(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > writeChunk+sendSlack {
			chunk = chunk[:writeChunk+sendSlack]
		}
		if c.idle > 0 {
			c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
		}
		n, err := c.Conn.Write(chunk)
		total += n
		if n > 0 {
			c.written.Add(int64(n))
			c.mu.Lock()
			c.awaiting = true
			c.applyReadDeadlineLocked()
			c.mu.Unlock()
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("could not send for %v: %w", c.idle, err)
			}
			return total, err
		}
		p = p[n:]
	}
	return total, nil
}

func (c *conn) applyReadDeadlineLocked() {
	if c.idle <= 0 {
		return
	}
	if c.readArmed || c.awaiting {
		c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	} else {
		c.Conn.SetReadDeadline(time.Time{})
	}
}

// SetReadDeadline arms (non-zero t) or disarms (zero t) the idle timeout for reads.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readArmed = !t.IsZero()
	c.applyReadDeadlineLocked()
	return nil
}

// SetWriteDeadline is ignored: writes are always bounded by the idle timeout.
func (c *conn) SetWriteDeadline(time.Time) error { return nil }

func (c *conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		unbind := c.unbind
		c.mu.Unlock()
		unbind()
		c.closeErr = c.Conn.Close()
	})
	return c.closeErr
}
