package mailcopy

import (
	"fmt"
	"sync"
)

// loginGuard bounds the logins a copy makes to a side without any progress in
// between. A server that lets the copier log in and then drops every session
// (broken, hostile, or down behind a login proxy) would otherwise get a login
// per folder and per retry: thousands for a mailbox of many folders, which its
// provider takes for password guessing and may answer by locking the account.
// Progress is a message copied or found present, or a folder done.
type loginGuard struct {
	limit int // logins in a row without progress, per side

	mu    sync.Mutex
	epoch int64 // the tracker's progress count at the last reset
	idle  map[Side]int
	last  error // the last error that made a worker reconnect (note)
}

// note records the error that made a worker reconnect: the refusal says it, for
// the side that keeps failing may be the other one (a stalled source makes the
// worker log in to both again).
func (g *loginGuard) note(err error) {
	g.mu.Lock()
	g.last = err
	g.mu.Unlock()
}

func newLoginGuard(cfg Config) *loginGuard {
	// A folder's attempt logs in to the destination up to twice (the metadata
	// connection and the appender): the limit lets every worker's retries
	// (MaxRetries) run out first, so a copy that ends for a folder's
	// failure says that failure, not this.
	return &loginGuard{limit: 3 * (cfg.MaxRetries + 2) * cfg.Connections, idle: map[Side]int{}}
}

// admit refuses a dial to side once the limit is reached, before any packet.
func (g *loginGuard) admit(side Side, moved int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if moved == g.epoch && g.idle[side] >= g.limit {
		return g.refusal(side)
	}
	return nil
}

func (g *loginGuard) refusal(side Side) error {
	why := ""
	if g.last != nil {
		why = "; the last session ended with: " + g.last.Error()
	}
	return &Error{Kind: KindTemporary, Side: side, Err: fmt.Errorf(
		"%d logins in a row without copying anything; stopped so as not to look like password guessing (try again later)%s", g.limit, why)}
}

// login counts one successful login to side, with moved the tracker's progress
// count now.
func (g *loginGuard) login(side Side, moved int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if moved != g.epoch {
		g.epoch = moved
		clear(g.idle)
	}
	g.idle[side]++
}
