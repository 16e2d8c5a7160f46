package mailcopy_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// stopBound is how long a cancelled Copy may take to return: a hang
// detector, not a speed assertion (it returns in milliseconds).
const stopBound = 10 * time.Second

// cancelPoint is where a round of TestCancel cancels the copy.
type cancelPoint struct {
	name string
	// arm starts watching for the point and calls cancel there; it returns
	// a function that stops watching.
	arm func(cancel func(), cfg *mailcopy.Config) (stop func())
}

// TestCancel cancels Copy at many points (before it starts, while it plans,
// after n progress snapshots, after n bytes of bodies left the source, after
// n bytes of APPEND reached the destination, and just after a connection was
// cut), through proxies slow enough that the cancel lands in the middle of
// FETCH and APPEND literals. Each time, Copy returns within stopBound with a
// cancellation and leaves no goroutine behind; in the end a Copy completes
// and the destination holds every message once, intact.
//
// Each Copy starts at least testCommitSettle after the previous one
// returned, as production does (pkg/syncworker hands a cancelled task back
// with a delay): an APPEND that Dovecot got whole just before the cancel is
// still committed after the connection ended, and a Copy that read the
// folder before that commit would append the batch again (see
// "Delivery semantics" in doc.go).
//
// Not parallel: it counts the process's goroutines.
func TestCancel(t *testing.T) {
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)
	mb := imaptest.Generate(61, imaptest.Spec{Count: 120, Folders: 3})
	mustLoad(t, src, mb)
	srcSnap := mustSnapshot(t, src)
	sp := proxytest.New(t, servers[imaptest.FlavourSlash].TLSAddr,
		proxytest.WithLatency(time.Millisecond), proxytest.WithDirBandwidth(proxytest.Downstream, 3<<20))
	dp := proxytest.New(t, servers[imaptest.FlavourDot].TLSAddr,
		proxytest.WithLatency(time.Millisecond), proxytest.WithDirBandwidth(proxytest.Upstream, 3<<20))

	afterTime := func(d time.Duration) cancelPoint {
		return cancelPoint{fmt.Sprintf("after %v", d), func(cancel func(), _ *mailcopy.Config) func() {
			tm := time.AfterFunc(d, cancel)
			return func() { tm.Stop() }
		}}
	}
	afterProgress := func(n int64) cancelPoint {
		return cancelPoint{fmt.Sprintf("after %d progress snapshots", n), func(cancel func(), cfg *mailcopy.Config) func() {
			var seen atomic.Int64
			cfg.ProgressInterval = time.Millisecond
			cfg.Progress = func(mailcopy.Progress) {
				if seen.Add(1) == n {
					cancel()
				}
			}
			return func() {}
		}}
	}
	// afterBytes cancels once n more bytes went through p in dir; with cut,
	// it cuts p's connections there and cancels a moment later (the copy is
	// then reconnecting, or failing an APPEND, when the cancel comes).
	afterBytes := func(p *proxytest.Proxy, side string, dir proxytest.Direction, n int64, cut bool) cancelPoint {
		name := fmt.Sprintf("after %d bytes %s of the %s", n, dir, side)
		if cut {
			name = fmt.Sprintf("cut after %d bytes %s of the %s", n, dir, side)
		}
		return cancelPoint{name, func(cancel func(), _ *mailcopy.Config) func() {
			bytesOf := func() int64 {
				s := p.Stats()
				if dir == proxytest.Upstream {
					return s.Upstream
				}
				return s.Downstream
			}
			start := bytesOf()
			if cut {
				p.CutAfter(dir, n)
			}
			done := make(chan struct{})
			go func() {
				tick := time.NewTicker(200 * time.Microsecond)
				defer tick.Stop()
				for {
					select {
					case <-done:
						return
					case <-tick.C:
					}
					if bytesOf()-start >= n {
						if cut {
							time.Sleep(3 * time.Millisecond)
						}
						cancel()
						return
					}
				}
			}()
			return func() {
				close(done)
				if cut {
					p.CutAfter(dir, 1<<62) // disarm, if it did not fire
				}
			}
		}}
	}
	points := []cancelPoint{
		afterTime(0),
		afterTime(3 * time.Millisecond),
		afterTime(15 * time.Millisecond),
		afterTime(40 * time.Millisecond),
		afterProgress(1),
		afterProgress(2),
		afterProgress(4),
		afterProgress(9),
		afterBytes(sp, "source", proxytest.Downstream, 30_000, false),
		afterBytes(sp, "source", proxytest.Downstream, 250_000, false),
		afterBytes(sp, "source", proxytest.Downstream, 700_000, false),
		afterBytes(dp, "destination", proxytest.Upstream, 20_000, false),
		afterBytes(dp, "destination", proxytest.Upstream, 400_000, false),
		afterBytes(dp, "destination", proxytest.Upstream, 150_000, true),
		afterBytes(sp, "source", proxytest.Downstream, 150_000, true),
		afterProgress(17),
	}

	base := runtime.NumGoroutine()
	cancelled := 0
	var lastEnd time.Time // when the previous Copy returned
	settle := func() { time.Sleep(time.Until(lastEnd.Add(testCommitSettle))) }
	for _, pt := range points {
		settle()
		ctx, cancel := context.WithCancel(testContext(t))
		var cancelledAt atomic.Pointer[time.Time]
		cancelNow := func() {
			now := time.Now()
			cancelledAt.CompareAndSwap(nil, &now)
			cancel()
		}
		cfg := testConfig(t, via(src, sp), via(dst, dp))
		stop := pt.arm(cancelNow, &cfg)

		type outcome struct {
			res *mailcopy.Result
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			res, err := mailcopy.Copy(ctx, cfg)
			done <- outcome{res, err}
		}()
		var o outcome
		select {
		case o = <-done:
		case <-ctx.Done():
			select {
			case o = <-done:
			case <-time.After(stopBound):
				t.Fatalf("%s: Copy did not return within %v of the cancel; engine goroutines:\n%s",
					pt.name, stopBound, engineStacks())
			}
		}
		lastEnd = time.Now()
		stop()
		cancel()

		switch at := cancelledAt.Load(); {
		case o.err == nil:
			t.Logf("%s: the copy ended before the cancel (%d copied)", pt.name, o.res.Totals.Copied)
		case mailcopy.KindOf(o.err) != mailcopy.KindCancelled:
			t.Errorf("%s: Copy error = %v (kind %v), want kind %v", pt.name, o.err, mailcopy.KindOf(o.err), mailcopy.KindCancelled)
		case o.res == nil:
			t.Errorf("%s: Copy returned a nil Result with %v", pt.name, o.err)
		default:
			cancelled++
			t.Logf("%s: cancelled, returned %v after the cancel, %d copied", pt.name, time.Since(*at).Round(time.Millisecond), o.res.Totals.Copied)
		}
		if leaked := settleGoroutines(base); leaked != "" {
			t.Fatalf("%s: goroutines left behind after Copy returned (%d, were %d):\n%s",
				pt.name, runtime.NumGoroutine(), base, leaked)
		}
	}
	if cancelled < len(points)/2 {
		t.Errorf("only %d of %d copies were cancelled while running, want at least half", cancelled, len(points))
	}

	settle()
	res := mustCopy(t, testConfig(t, src, dst))
	if !res.Complete() {
		t.Errorf("final copy incomplete: %+v", res.Totals)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
	if err := srcSnap.Unchanged(testContext(t), src); err != nil {
		t.Errorf("source changed: %v", err)
	}
}

// settleGoroutines waits a few seconds for the goroutine count to come back
// to base (connections and proxy links wind down asynchronously). It returns
// the stacks of the engine's goroutines still running, or "" once settled.
func settleGoroutines(base int) string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if runtime.NumGoroutine() <= base {
			return ""
		}
		if time.Now().After(deadline) {
			s := engineStacks()
			if s == "" {
				s = allStacks()
			}
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// engineStacks returns the stacks of the goroutines that run code of the
// engine, its connections or go-imap.
func engineStacks() string {
	var out bytes.Buffer
	for _, g := range strings.Split(allStacks(), "\n\n") {
		for _, pkg := range []string{"go-imap/v2/", "pkg/imapappend.", "pkg/imapconn.", "pkg/mailcopy."} {
			if strings.Contains(g, pkg) {
				out.WriteString(g + "\n\n")
				break
			}
		}
	}
	return out.String()
}
