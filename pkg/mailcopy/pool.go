package mailcopy

import (
	"context"
	"errors"
	"net"
	"sync"

	"imapcopy.dev/pkg/imapappend"
	"imapcopy.dev/pkg/imapconn"
)

// dialPool opens the workers' first connections while the folders are
// planned: TLS and login cost several round trips each, which a distant
// server would otherwise make every worker wait for once planning is over.
//
// The dials start once the planning's own logged in (start): Connections-1
// to each side, so that neither server sees more than Connections
// connections of the copy at once. Each stops once the server greeted it,
// before the login (imapconn.Options.BeforeLogin), until the plan says
// whether it is wanted (want): a source connection for each worker that has a folder to copy but
// one (the planning's joins the pool: giveSource), and a write connection
// for each such worker whose first folder is new or empty on the
// destination (it needs no metadata pass there). One not wanted closes
// without a login: an account sees only the logins the copy needs, and a
// refused password is tried once, by the planning, not once per connection.
// Workers dial no destination connection of their own while the planning's
// destination connection creates folders (see engine.awaitPlanning).
//
// A worker takes a connection from the pool before dialing one itself
// (takeSource, takeAppender), and waits for a dial in progress rather than
// start another. What no worker took is closed by close, before the report's
// connection is opened.
type dialPool struct {
	e    *engine
	ctx  context.Context
	wg   sync.WaitGroup
	srcs chan pooledConn[*imapconn.Client]
	apps chan pooledConn[*imapappend.Appender]

	// dialCtx bounds the dials in progress: close cancels it.
	dialCtx     context.Context
	cancelDials context.CancelFunc
	// planned is closed once want said which dials log in, or the pool closed.
	planned chan struct{}

	mu               sync.Mutex
	srcLeft, appLeft int // connections in the pool or on their way
	early            int // dials to each side: Connections-1
	started          map[Side]bool
	// over is closed once every dial to its side ended (see awaitDials).
	over             map[Side]chan struct{}
	wantSrc, wantApp int // of those, the ones that log in
	wanted, closed   bool
	spare            *imapappend.Appender // a worker's write connection, for the report
}

// errUnwanted ends a pool's dial that the plan does not need, before its login.
var errUnwanted = errors.New("connection not needed")

// pooledConn is one dial's outcome: a client, its raw connection, or the
// dial's error (then the worker dials itself, with its retry policy).
type pooledConn[C any] struct {
	c    C
	conn net.Conn
	err  error
}

func newDialPool(e *engine, ctx context.Context) *dialPool {
	n := max(e.cfg.Connections, 1)
	dctx, cancel := context.WithCancel(ctx)
	return &dialPool{e: e, ctx: ctx, dialCtx: dctx, cancelDials: cancel,
		planned: make(chan struct{}), early: n - 1, started: map[Side]bool{}, over: map[Side]chan struct{}{},
		srcs: make(chan pooledConn[*imapconn.Client], n),
		apps: make(chan pooledConn[*imapappend.Appender], n)}
}

// start starts side's dials (see dialPool), once, as soon as the planning's
// connection to that side logged in: their handshakes then run while it lists
// the folders, and a server that refuses the password, or cannot be reached
// at all, meets one connection, not Connections. No write connection in a dry
// run.
func (p *dialPool) start(side Side) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.started[side] || side == SideDestination && p.e.cfg.DryRun {
		return
	}
	p.started[side] = true
	over := make(chan struct{})
	p.over[side] = over
	var dials sync.WaitGroup
	for i := range p.early {
		dials.Add(1)
		if side == SideSource {
			p.wg.Go(func() {
				defer dials.Done()
				c, conn, err := p.e.dialSource(p.dialCtx, p.gate(func() bool { return i < p.wantSrc }))
				if !errors.Is(err, errUnwanted) {
					p.srcs <- pooledConn[*imapconn.Client]{c, conn, err}
				}
			})
			continue
		}
		p.wg.Go(func() {
			defer dials.Done()
			a, conn, err := p.e.dialAppender(p.dialCtx, p.gate(func() bool { return i < p.wantApp }))
			if !errors.Is(err, errUnwanted) {
				p.apps <- pooledConn[*imapappend.Appender]{a, conn, err}
			}
		})
	}
	p.wg.Go(func() {
		dials.Wait()
		close(over)
	})
}

// awaitDials waits until every dial of the pool to side ended: logged in
// (and pooled), or closed because the plan did not want it. A worker that
// found no connection in the pool dials its own only then: a dial not
// wanted, still in its handshake, and the worker's would otherwise be open at
// once, one more than Connections (once the planning's connection closed
// early, the folders created in one round trip).
func (p *dialPool) awaitDials(ctx context.Context, side Side) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	over := p.over[side]
	p.mu.Unlock()
	if over == nil {
		return nil
	}
	select {
	case <-over:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gate is a dial's BeforeLogin: it waits for the plan, then logs in if want
// says so (called under the pool's lock).
func (p *dialPool) gate(want func() bool) func(context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-p.planned:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed || !want() {
			return errUnwanted
		}
		return nil
	}
}

// want says, once the plan is known, which dials log in: sources source
// connections (besides the planning's) and appenders write connections, at
// most Connections-1 of each.
func (p *dialPool) want(sources, appenders int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.wanted {
		return
	}
	p.wanted = true
	if p.started[SideSource] {
		p.wantSrc = max(0, min(sources, p.early))
	}
	if p.started[SideDestination] {
		p.wantApp = max(0, min(appenders, p.early))
	}
	p.srcLeft += p.wantSrc
	p.appLeft += p.wantApp
	close(p.planned)
}

// giveSource adds a logged-in source connection to the pool; false when the
// pool is closed (the caller keeps it).
func (p *dialPool) giveSource(c *imapconn.Client, conn net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.srcLeft >= cap(p.srcs) {
		return false
	}
	p.srcLeft++
	p.srcs <- pooledConn[*imapconn.Client]{c: c, conn: conn}
	return true
}

// takeSource returns a source connection of the pool, bound to ctx from now
// on, or ok false when the pool has none left (or its dial failed).
func (p *dialPool) takeSource(ctx context.Context) (c *imapconn.Client, conn net.Conn, ok bool) {
	if p == nil || !p.take(&p.srcLeft) {
		return nil, nil, false
	}
	select {
	case r := <-p.srcs:
		if r.err != nil {
			return nil, nil, false
		}
		rebind(r.conn, ctx)
		return r.c, r.conn, true
	case <-ctx.Done():
		return nil, nil, false // close closes what was dialed
	}
}

// takeAppender is takeSource for destination write connections.
func (p *dialPool) takeAppender(ctx context.Context) (a *imapappend.Appender, conn net.Conn, ok bool) {
	if p == nil || !p.take(&p.appLeft) {
		return nil, nil, false
	}
	select {
	case r := <-p.apps:
		if r.err != nil {
			return nil, nil, false
		}
		rebind(r.conn, ctx)
		return r.c, r.conn, true
	case <-ctx.Done():
		return nil, nil, false
	}
}

func (p *dialPool) take(left *int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || *left == 0 {
		return false
	}
	*left--
	return true
}

// close waits for the dials in progress and closes every connection no
// worker took. The pool gives nothing afterwards.
func (p *dialPool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.closed = true
	if !p.wanted {
		p.wanted = true
		close(p.planned)
	}
	p.mu.Unlock()
	p.cancelDials() // a dial in progress ends at once
	p.wg.Wait()
	for {
		select {
		case r := <-p.srcs:
			if r.c != nil {
				r.c.Close()
			}
		case r := <-p.apps:
			if r.c != nil {
				r.c.Close()
			}
		default:
			return
		}
	}
}

// rebind ties a connection dialed for the pool (bound to the copy's
// context) to the context of the worker that took it, as if the worker had
// dialed it.
func rebind(conn net.Conn, ctx context.Context) {
	if bc, ok := conn.(*boundConn); ok {
		bc.rebind(ctx)
	}
}

// keepSpare keeps a worker's usable write connection for the report, which
// then needs no dial of its own: the first one offered is kept, bound to the
// copy's context from now on. false: the caller closes it.
func (p *dialPool) keepSpare(a *imapappend.Appender, conn net.Conn) bool {
	if p == nil || a == nil || !a.Usable() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.spare != nil {
		return false
	}
	rebind(conn, p.ctx)
	p.spare = a
	return true
}

// takeSpare returns the write connection keepSpare kept, if any; the caller
// closes it.
func (p *dialPool) takeSpare() *imapappend.Appender {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.spare
	p.spare = nil
	return a
}

// closeSpare closes the write connection kept for the report when the
// report did not use it.
func (p *dialPool) closeSpare() {
	if a := p.takeSpare(); a != nil {
		a.Close()
	}
}
