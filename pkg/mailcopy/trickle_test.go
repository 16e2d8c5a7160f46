package mailcopy_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// bigBody is the size from which the trickle tests' messages are big.
const bigBody = 10_000

// trickleMailbox is INBOX with small messages first (the lower UIDs) and big
// ones after them, so that the small ones are appended before the first big one.
func trickleMailbox(t *testing.T, seed int64, spec imaptest.Spec) (mb imaptest.Mailbox, small int) {
	t.Helper()
	var msgs []imaptest.Message
	for _, f := range imaptest.Generate(seed, spec).Folders {
		msgs = append(msgs, f.Messages...)
	}
	slices.SortStableFunc(msgs, func(a, b imaptest.Message) int { return len(a.Raw) - len(b.Raw) })
	for _, m := range msgs {
		if len(m.Raw) < bigBody {
			small++
		}
	}
	return imaptest.Mailbox{Folders: []imaptest.Folder{{Name: "INBOX", Messages: msgs}}}, small
}

// TestTrickledBody: a source behind a link that trickles every answer at 5 kB/s,
// in pieces of 100 bytes (a piece every 20 ms: the idle deadline never fires),
// with a minimum body rate of 50 kB/s after a 1 s grace. The small messages
// arrive within the grace and are copied; each big one (250 to 400 kB: 50 s or
// more each at that rate) is cut once it falls under the minimum,
// the folder is retried within its own budget (MaxRetries reconnects in a row
// without progress), and the copy ends, long before the big bodies could have
// arrived, with a temporary failure that names the source, the message's UID,
// the bytes received and the rates. Nothing is stored twice nor truncated, and a
// rerun on a good link copies the rest.
func TestTrickledBody(t *testing.T) {
	t.Parallel()
	srv := servers[imaptest.FlavourSlash]
	src := srv.AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)
	mb, small := trickleMailbox(t, 1703, imaptest.Spec{Count: 6, Folders: -1, Sizes: []imaptest.SizeClass{
		{Weight: 1, Min: 400, Max: 1_000}, {Weight: 1, Min: 250_000, Max: 400_000},
	}})
	if small == 0 || small == mb.Count() {
		t.Fatalf("%d small messages of %d: the test needs both kinds", small, mb.Count())
	}
	firstBig := mb.Folders[0].Messages[small]
	mustLoad(t, src, mb)

	sp := proxytest.New(t, srv.PlainAddr,
		proxytest.WithDirBandwidth(proxytest.Downstream, 5_000), proxytest.WithDirMaxWrite(proxytest.Downstream, 100))
	cfg := testConfig(t, via(srv.Plaintext(src), sp), dst)
	cfg.Connections = 1
	cfg.MaxRetries = 2
	cfg.MinBodyRate = 50_000
	cfg.BodyRateGrace = time.Second
	cfg.NoReport = true
	cfg.Include = []string{"INBOX"} // the server's empty special-use folders would take connections of their own
	// The source connections opened once the small messages are copied: the
	// attempts after the last progress.
	var atProgress atomic.Int64
	atProgress.Store(-1)
	cfg.ProgressInterval = time.Nanosecond // every update
	cfg.Progress = func(p mailcopy.Progress) {
		if p.Totals.Copied == small {
			atProgress.CompareAndSwap(-1, sp.Stats().Accepted)
		}
	}
	// Less than the big bodies take at 5 kB/s: without a minimum rate, the
	// copy would still be waiting for them.
	ctx, cancel := context.WithTimeout(testContext(t), 60*time.Second)
	defer cancel()
	start := time.Now()
	res, err := mailcopy.Copy(ctx, cfg)
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("the copy was still waiting for a trickled body after %v: %v", took.Round(time.Millisecond), err)
	}
	st := sp.Stats()
	t.Logf("copy: %v in %v; %d source connections, %d bytes down", err, took.Round(time.Millisecond), st.Accepted, st.Downstream)
	if err == nil {
		t.Fatalf("the copy succeeded though its big bodies trickled far under the minimum rate")
	}
	if strings.Contains(err.Error(), "logins in a row") {
		t.Errorf("error %q: the login guard stopped the copy, want the folder's own retry budget to", err)
	}
	if k := mailcopy.KindOf(err); k != mailcopy.KindTemporary {
		t.Errorf("kind %v, want temporary (a slow link may recover: retried later)", k)
	}
	// UIDs follow the load order: the first big message is the one cut.
	want := fmt.Sprintf("source: source message UID %d: ", small+1)
	for _, w := range []string{want, fmt.Sprintf(" of %s bytes in ", num(len(firstBig.Raw))), "/s), under the minimum of 50.0 kB/s"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if res == nil {
		t.Fatal("no result")
	}
	if res.Totals.Copied != small {
		t.Errorf("copied %d, want the %d small messages that arrived within the grace", res.Totals.Copied, small)
	}
	// The attempt that copied the small messages reset the folder's budget:
	// after it, MaxRetries attempts at most, each on a new source connection.
	if n := atProgress.Load(); n < 0 {
		t.Errorf("the progress never showed the %d small messages copied", small)
	} else if after := st.Accepted - n; after > int64(cfg.MaxRetries) {
		t.Errorf("%d source connections after the last progress, want at most MaxRetries (%d): the folder's retry budget does not bound a trickle", after, cfg.MaxRetries)
	} else {
		t.Logf("%d source connections after the last progress (MaxRetries %d)", after, cfg.MaxRetries)
	}
	// Nothing doubled, nothing truncated: only the big ones are missing.
	onlyInbox := func(folder string) bool { return folder != "INBOX" }
	mustCheck(t, src, dst, imaptest.CheckOptions{SkipSource: onlyInbox, AllowMissing: func(_ string, size int64) bool { return size >= bigBody }})

	cfg.Source = srv.Plaintext(src)
	again := mustCopy(t, cfg)
	if n := mb.Count() - small; again.Totals.Copied != n {
		t.Errorf("the rerun on a good link copied %d, want the %d big messages", again.Totals.Copied, n)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{SkipSource: onlyInbox})
}

// TestSlowDestinationIsNotTheSource: the minimum body rate counts only the time
// spent waiting for the source. A destination that takes the bodies slowly (here
// 1 kB per read, 100 ms between reads: 10 kB/s, under the test's 20 kB/s
// minimum) holds the body reads back, while the source's bytes wait in the
// socket: no body is cut, and the copy completes.
func TestSlowDestinationIsNotTheSource(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)
	mb := imaptest.Generate(1704, imaptest.Spec{Count: 2, Folders: -1, Sizes: []imaptest.SizeClass{{Weight: 1, Min: 30_000, Max: 40_000}}})
	mustLoad(t, src, mb)
	cfg := testConfig(t, src, dst)
	cfg.Connections = 1
	cfg.MinBodyRate = 20_000
	cfg.BodyRateGrace = time.Second
	cfg.NoReport = true
	cfg = mailcopy.WithBodyWrapper(cfg, func(_ uint32, body io.Reader) io.Reader { return &slowReader{r: body} })
	res := mustCopy(t, cfg)
	if res.Totals.Copied != mb.Count() {
		t.Errorf("copied %d, want %d", res.Totals.Copied, mb.Count())
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}

// slowReader is a destination that takes a body slowly: 1 kB per read, 100 ms
// before each.
type slowReader struct{ r io.Reader }

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(100 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 1_000)])
}

// num formats n with thousands separators, as the engine's messages do.
func num(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
