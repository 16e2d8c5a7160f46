package mailcopy_test

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// loginCounter is a proxy in front of a server in plain text that counts the
// logins that went through it.
type loginCounter struct {
	*proxytest.Proxy
	logins atomic.Int64
}

func countLogins(t *testing.T, addr string) *loginCounter {
	lc := &loginCounter{}
	lc.Proxy = proxytest.New(t, addr, proxytest.WithObserver(proxytest.Upstream, func(_ int64, b []byte) {
		if bytes.Contains(b, []byte(" AUTHENTICATE ")) || bytes.Contains(b, []byte(" LOGIN ")) {
			lc.logins.Add(1)
		}
	}))
	return lc
}

// TestPoolLogsInWhatIsNeeded: the workers' connections are dialed with the
// planning's and log in only once the plan says they are needed. A copy of
// two folders with messages (and the new account's empty special-use ones)
// at 4 connections logs in to the source four times (the planning's
// connection and three workers') and to the destination three times (the
// planning's and the write connections of the two workers with messages to
// copy; the report uses one of them). A rerun
// after one new message in A needs one worker, for A: the source sees the
// planning's login only (the worker takes that connection), though the pool
// dialed another (closed without a login); the destination sees the
// planning's, and the worker's metadata and write connections. Every message
// is copied once.
func TestPoolLogsInWhatIsNeeded(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	var folders []imaptest.Folder
	for _, name := range []string{"INBOX", "A"} {
		var msgs []imaptest.Message
		for i := range 5 {
			msgs = append(msgs, msg(fmt.Sprintf("%s %d", name, i), fmt.Sprintf("%s%d@pool.test", name, i), 900, baseDate))
		}
		folders = append(folders, imaptest.Folder{Name: name, Messages: msgs})
	}
	mustLoad(t, src, imaptest.Mailbox{Folders: folders})

	// The same proxies for both: the State is of these addresses.
	sp, dp := countLogins(t, d.PlainAddr), countLogins(t, d.PlainAddr)
	run := func(what string, wantSrc, wantDst int64, copied int, prev *mailcopy.State) *mailcopy.State {
		t.Helper()
		sp.logins.Store(0)
		dp.logins.Store(0)
		cfg := testConfig(t, via(d.Plaintext(src), sp.Proxy), via(d.Plaintext(dst), dp.Proxy))
		cfg.Connections = 4
		cfg.Previous = prev
		res := mustCopy(t, cfg)
		if !res.Complete() || res.Totals.Copied != copied {
			t.Errorf("%s: totals %+v, want %d copied", what, res.Totals, copied)
		}
		var full []string
		for _, f := range res.Folders {
			if !f.Unchanged {
				full = append(full, f.Source)
			}
		}
		got := [2]int64{sp.logins.Load(), dp.logins.Load()}
		t.Logf("%s: full metadata pass of %q", what, full)
		t.Logf("%s: logins %v", what, got)
		if got != [2]int64{wantSrc, wantDst} {
			t.Errorf("%s: logins to the source and the destination %v, want [%d %d]", what, got, wantSrc, wantDst)
		}
		return res.State
	}
	state := run("copy", 4, 3, 10, nil)
	mustCheck(t, src, dst, imaptest.CheckOptions{IgnoreDest: isReport})
	appendOwn(t, src, "A", "pool-new")
	run("rerun", 1, 3, 1, state)
	mustCheck(t, src, dst, imaptest.CheckOptions{IgnoreDest: isReport})
}
