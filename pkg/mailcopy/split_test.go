package mailcopy_test

import (
	"bytes"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// oneFolder is a generated mailbox of count small messages, all in INBOX, with
// identical duplicates next to each other (Generate's) and far apart: copies of
// its first ten messages at the end, so that a key's occurrences fall in
// different ranges of a split folder.
func oneFolder(seed int64, count int) imaptest.Mailbox {
	gen := imaptest.Generate(seed, imaptest.Spec{
		Count: count - 10, Folders: -1,
		Sizes: []imaptest.SizeClass{{Weight: 1, Min: 600, Max: 4000}},
	})
	inbox := imaptest.Folder{Name: "INBOX"}
	for _, f := range gen.Folders {
		inbox.Messages = append(inbox.Messages, f.Messages...)
	}
	inbox.Messages = append(inbox.Messages, inbox.Messages[:10]...)
	return imaptest.Mailbox{Folders: []imaptest.Folder{inbox}}
}

// TestSplitFolder copies one folder of 3,000 small messages with 4
// connections: its missing messages are cut into ranges (chunks of 100) that
// the idle workers append too. Several destination connections append at once,
// never more than Connections; the checker finds every message once, with its
// flags and date; a rerun appends nothing. Without SplitFolders, one
// connection appends the folder.
func TestSplitFolder(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src := d.AddUser(t)
	dst := d.StartTLS(d.AddUser(t)) // another port: the sides are told apart
	mb := oneFolder(61, 3000)
	mustLoad(t, src, mb)
	srcSnap := mustSnapshot(t, src)

	dialer := &countingDialer{open: map[string]int{}, max: map[string]int{}}
	cfg := testConfig(t, src, dst)
	cfg.Connections = 4
	cfg.ChunkMessages = 100
	cfg.SplitFolders = true
	cfg.Dial.Dialer = dialer
	res := mustCopy(t, cfg)
	if !res.Complete() || res.Totals.Copied != mb.Count() {
		t.Errorf("totals %+v, want %d copied", res.Totals, mb.Count())
	}
	dstAddr := net.JoinHostPort(dst.Host, strconv.Itoa(dst.Port))
	dialer.mu.Lock()
	appenders := dialer.busy[dstAddr]
	t.Logf("at most %v connections at once; %v wrote %d KiB or more", dialer.max, dialer.busy, busyBytes>>10)
	for addr, m := range dialer.max {
		if m > cfg.Connections {
			t.Errorf("%d connections at once to %s, want at most %d", m, addr, cfg.Connections)
		}
	}
	dialer.mu.Unlock()
	if appenders < 2 {
		t.Errorf("%d destination connection appended: the folder was not split", appenders)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
	if err := srcSnap.Unchanged(testContext(t), src); err != nil {
		t.Errorf("source changed: %v", err)
	}

	cfg = testConfig(t, src, dst)
	cfg.ChunkMessages = 100
	cfg.NoReport = true
	again := mustCopy(t, cfg)
	if again.Totals.Copied != 0 || again.Totals.Present != mb.Count() {
		t.Errorf("rerun: totals %+v, want 0 copied, %d present", again.Totals, mb.Count())
	}

	// Without SplitFolders (the default), one connection appends the folder.
	other := d.StartTLS(d.AddUser(t))
	dialer = &countingDialer{open: map[string]int{}, max: map[string]int{}}
	cfg = testConfig(t, src, other)
	cfg.ChunkMessages = 100
	cfg.Dial.Dialer = dialer
	if res := mustCopy(t, cfg); res.Totals.Copied != mb.Count() {
		t.Errorf("no split: totals %+v, want %d copied", res.Totals, mb.Count())
	}
	if n := dialer.busy[net.JoinHostPort(other.Host, strconv.Itoa(other.Port))]; n != 1 {
		t.Errorf("no split: %d destination connections appended, want 1", n)
	}
	mustCheck(t, src, other, imaptest.CheckOptions{})
}

// TestSplitFaults cuts single connections of a split folder's copy in the
// middle of ranges, alternately a source connection (in the bodies it sends)
// and a destination connection (in the APPENDs it gets), while the other
// connections go on appending their ranges. The copy completes; the checker
// finds nothing lost, nothing twice; a rerun appends nothing.
func TestSplitFaults(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src := d.AddUser(t)
	dst := d.AddUser(t)
	mb := oneFolder(62, 2500)
	mustLoad(t, src, mb)
	srcSnap := mustSnapshot(t, src)
	sp := proxytest.New(t, d.TLSAddr)
	dp := proxytest.New(t, d.TLSAddr)

	cfg := testConfig(t, via(src, sp), via(dst, dp))
	cfg.Connections = 4
	cfg.ChunkMessages = 100
	cfg.SplitFolders = true
	cfg.MaxRetries = 10
	rng := rand.New(rand.NewPCG(62, 4))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := range 6 {
			p, dir := sp, proxytest.Downstream
			if n%2 == 1 {
				p, dir = dp, proxytest.Upstream
			}
			before := p.Stats().Cuts
			p.CutConnAfter(dir, 100_000+rng.Int64N(1_500_000))
			for p.Stats().Cuts == before {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
	})
	res, err := mailcopy.Copy(testContext(t), cfg)
	close(stop)
	wg.Wait()
	t.Logf("connections cut: source %d, destination %d", sp.Stats().Cuts, dp.Stats().Cuts)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if cuts := sp.Stats().Cuts + dp.Stats().Cuts; cuts < 3 {
		t.Errorf("only %d cuts happened during the copy, want at least 3", cuts)
	}
	if !res.Complete() || res.Totals.Copied != mb.Count() {
		t.Errorf("totals %+v, want %d copied", res.Totals, mb.Count())
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
	if err := srcSnap.Unchanged(testContext(t), src); err != nil {
		t.Errorf("source changed: %v", err)
	}

	cfg = testConfig(t, src, dst)
	cfg.ChunkMessages = 100
	cfg.NoReport = true
	again := mustCopy(t, cfg)
	if again.Totals.Copied != 0 || again.Totals.Present != mb.Count() {
		t.Errorf("rerun: totals %+v, want 0 copied, %d present", again.Totals, mb.Count())
	}
}

// TestSplitTwinRetry: a folder split in two ranges holds twins (one Message-ID
// and size) with other flags and dates, the first in range 0 behind a big
// message, the second in range 1. Range 1 is stored; range 0 fails before any
// of its messages is (its source connection is cut in the big message's body,
// once the destination holds range 1). The retry reads the identities, finds
// the destination's copy to be the second twin (its date and flags), and
// appends the first: the checker finds each once, with its own flags and date.
// The split folder's first metadata pass read no identities (but onto
// Courier). Onto Dovecot, Cyrus (MULTIAPPEND) and Courier (one APPEND per
// message, no LITERAL+).
func TestSplitTwinRetry(t *testing.T) {
	for _, to := range []testServer{dovecotSlash, cyrusSlash, courier} {
		t.Run(to.name, func(t *testing.T) {
			t.Parallel()
			d := servers[imaptest.FlavourSlash]
			src, dst := d.AddUser(t), to.addUser(t)
			first := msg("twin", "twin@example.com", 600, baseDate, `\Seen`)
			second := first
			second.InternalDate, second.Flags = baseDate.Add(time.Hour), []string{`\Flagged`}
			mustLoad(t, src, inbox(
				msg("range0-big", "big@example.com", 300_000, baseDate), first, msg("c", "c@example.com", 600, baseDate),
				msg("d", "d@example.com", 600, baseDate), msg("e", "e@example.com", 600, baseDate), second,
			))

			ctx := testContext(t)
			var log connLog
			var sp *proxytest.Proxy
			var blocked atomic.Bool
			sp = proxytest.New(t, d.PlainAddr,
				proxytest.WithObserver(proxytest.Upstream, log.observe),
				proxytest.WithObserver(proxytest.Downstream, func(_ int64, b []byte) {
					// Range 0's bodies wait until the destination holds range 1,
					// then fail.
					if !bytes.Contains(b, []byte("Subject: range0-big")) || !blocked.CompareAndSwap(false, true) {
						return
					}
					for ctx.Err() == nil {
						if msgs, err := imaptest.ReadFolder(ctx, dst, "INBOX"); err == nil && len(msgs) >= 3 {
							break
						}
						time.Sleep(10 * time.Millisecond)
					}
					sp.CutConnAfter(proxytest.Downstream, 0)
				}))

			cfg := testConfig(t, via(d.Plaintext(src), sp), dst)
			cfg.NoReport = true
			cfg.Connections = 2
			cfg.ChunkMessages = 3
			cfg.SplitFolders = true
			res := mustCopy(t, cfg)
			if !res.Complete() || res.Totals.Copied != 6 {
				t.Errorf("totals %+v, failed folders %+v; want 6 copied", res.Totals, res.FailedFolders())
			}
			if cuts := sp.Stats().Cuts; cuts != 1 {
				t.Errorf("%d source connections cut, want 1 (range 0)", cuts)
			}
			// Courier has no LIST-STATUS: its INBOX is not known to be empty, and
			// the first pass reads the identities too.
			if got, want := metadataPasses(&log)["INBOX"], []bool{to.courier, true}; !slices.Equal(got, want) {
				t.Errorf("metadata passes of INBOX asked for the header fields: %v, want %v (the retry's)", got, want)
			}
			mustCheck(t, src, dst, imaptest.CheckOptions{})
		})
	}
}
