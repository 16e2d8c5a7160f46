package mailcopy

import (
	"context"
	"net"
	"sync"

	"imapcopy.dev/pkg/imapappend"
	"imapcopy.dev/pkg/imapconn"
)

// dialPool opens the workers' first connections while the folders are
// planned: TLS and login cost several round trips each, which a distant
// server would otherwise make every worker wait for once planning is over.
// It dials at most Connections-1 of each side (planning holds the other
// one), so neither account sees more than Connections connections from the
// copy; the planning's source connection joins the pool once the folders are
// mapped (giveSource), while its destination connection creates the folders
// (workers dial none of their own meanwhile: see engine.awaitPlanning). It starts only once the planning's connections logged in: a
// refused login is tried once, not once per connection.
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

	mu               sync.Mutex
	srcLeft, appLeft int // connections in the pool or on their way
	started, closed  bool
	spare            *imapappend.Appender // a worker's write connection, for the report
}

// pooledConn is one dial's outcome: a client, its raw connection, or the
// dial's error (then the worker dials itself, with its retry policy).
type pooledConn[C any] struct {
	c    C
	conn net.Conn
	err  error
}

func newDialPool(e *engine, ctx context.Context) *dialPool {
	n := max(e.cfg.Connections, 1)
	return &dialPool{e: e, ctx: ctx,
		srcs: make(chan pooledConn[*imapconn.Client], n),
		apps: make(chan pooledConn[*imapappend.Appender], n)}
}

// dial starts the dials, once: sources source connections and appenders
// destination write connections.
func (p *dialPool) dial(sources, appenders int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.started {
		return
	}
	p.started = true
	sources = max(0, min(sources, cap(p.srcs)-1))
	appenders = max(0, min(appenders, cap(p.apps)-1))
	p.srcLeft += sources
	p.appLeft += appenders
	for range sources {
		p.wg.Go(func() {
			c, conn, err := p.e.dialSource(p.ctx)
			p.srcs <- pooledConn[*imapconn.Client]{c, conn, err}
		})
	}
	for range appenders {
		p.wg.Go(func() {
			a, conn, err := p.e.dialAppender(p.ctx)
			p.apps <- pooledConn[*imapappend.Appender]{a, conn, err}
		})
	}
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
	p.mu.Unlock()
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
