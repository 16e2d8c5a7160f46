package mailcopy_test

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// TestUnconfirmedAppendSettles makes the race between a late commit and the
// next metadata pass certain: the destination's first append connection runs
// through a proxy that delays every byte to the server by upstreamDelay, and
// it is closed by the client the moment it has written its first whole
// APPEND command. The engine sees a lost connection with the command
// unanswered and reconnects (20 ms backoff) on a direct connection, while
// the proxy still holds the command and hands it to Dovecot, which commits
// it, upstreamDelay after it was written. Without the engine's wait
// (Config.CommitSettle, longer than upstreamDelay here) the metadata pass
// after the reconnect runs before that commit, finds the batch missing and
// appends it again: a duplicate. With it, the checker finds every message
// exactly once.
func TestUnconfirmedAppendSettles(t *testing.T) {
	t.Parallel()
	const upstreamDelay = 500 * time.Millisecond
	srcServer, dstServer := servers[imaptest.FlavourSlash], servers[imaptest.FlavourDot]
	src := srcServer.Plaintext(srcServer.AddUser(t))
	dst := dstServer.Plaintext(dstServer.AddUser(t))
	mb := imaptest.Generate(71, imaptest.Spec{Count: 30, Sizes: []imaptest.SizeClass{{Weight: 1, Min: 600, Max: 6_000}}})
	mustLoad(t, src, mb)
	dp := proxytest.New(t, dstServer.PlainAddr, proxytest.WithDirLatency(proxytest.Upstream, upstreamDelay))

	d := &appendCutter{dst: dstServer.PlainAddr, slow: dp.Addr()}
	cfg := testConfig(t, src, dst)
	cfg.Connections = 1
	cfg.CommitSettle = 3 * upstreamDelay
	cfg.Dial.Dialer = d
	res := mustCopy(t, cfg)

	cutAt := d.cutAt.Load()
	if cutAt == nil {
		t.Fatalf("no APPEND was cut: the test did not set up the race (state %d)", d.state.Load())
	}
	t.Logf("APPEND cut after %d bytes written through the proxy", d.written.Load())
	// The command reached Dovecot after the client gave up: the proxy
	// forwarded every byte written to it.
	for dp.Stats().Active > 0 && time.Since(*cutAt) < time.Minute {
		time.Sleep(20 * time.Millisecond)
	}
	if got, want := dp.Stats().Upstream, d.written.Load(); got != want {
		t.Errorf("bytes the proxy forwarded to the destination = %d, want %d (all the client wrote)", got, want)
	}
	if !res.Complete() || res.Totals.Copied != mb.Count() {
		t.Errorf("totals = %+v, want %d copied", res.Totals, mb.Count())
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}

// appendCutter dials the destination directly, except its second connection
// (the first write connection: the first is the planning's, and with one
// connection the worker's is dialed once the planning's was closed): that one
// goes through the slow proxy, and is closed by the client right after it
// wrote its first whole APPEND command.
type appendCutter struct {
	d         net.Dialer
	dst, slow string

	dstDials atomic.Int32 // destination connections dialed
	state    atomic.Int32 // 0: direct; 1: armed, through the slow proxy; 2: cut, direct
	cutAt    atomic.Pointer[time.Time]
	written  atomic.Int64 // bytes written to the slow proxy
}

func (a *appendCutter) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if addr != a.dst {
		return a.d.DialContext(ctx, network, addr)
	}
	if a.dstDials.Add(1) == 2 {
		a.state.CompareAndSwap(0, 1)
	}
	if a.state.Load() != 1 {
		return a.d.DialContext(ctx, network, addr)
	}
	conn, err := a.d.DialContext(ctx, network, a.slow)
	if err != nil {
		return nil, err
	}
	var cmds commandWatch
	w := &watchedConn{Conn: conn}
	w.onWrite = func(p []byte) {
		a.written.Add(int64(len(p)))
		if cmds.feed(p) && a.state.CompareAndSwap(1, 2) {
			now := time.Now()
			a.cutAt.Store(&now)
			conn.Close()
		}
	}
	return w, nil
}

// watchedConn calls onWrite with the bytes of each write, once written.
type watchedConn struct {
	net.Conn
	mu      sync.Mutex
	onWrite func(p []byte)
}

func (c *watchedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.onWrite(p[:n])
	c.mu.Unlock()
	return n, err
}

// commandWatch follows the IMAP commands a client writes, literals
// included, and tells when an APPEND command has been written whole.
type commandWatch struct {
	line      []byte // the current line, up to its LF
	skip      int64  // literal bytes still to come
	inCommand bool
	isAppend  bool
}

var literalAtEnd = regexp.MustCompile(`\{(\d+)\+?\}\r\n$`)

func (c *commandWatch) feed(p []byte) (appendDone bool) {
	for len(p) > 0 {
		if c.skip > 0 {
			n := min(int64(len(p)), c.skip)
			p, c.skip = p[n:], c.skip-n
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.line = append(c.line, p...)
			return appendDone
		}
		c.line, p = append(c.line, p[:i+1]...), p[i+1:]
		if !c.inCommand {
			c.inCommand = true
			c.isAppend = bytes.Contains(bytes.ToUpper(c.line), []byte(" APPEND "))
		}
		m := literalAtEnd.FindSubmatch(c.line)
		c.line = c.line[:0]
		if m != nil {
			c.skip, _ = strconv.ParseInt(string(m[1]), 10, 64)
			continue
		}
		appendDone = appendDone || c.isAppend
		c.inCommand = false
	}
	return appendDone
}

// TestReportAppendCut cuts the connection that appends the report right
// after the client wrote the whole APPEND: Dovecot stores the report anyway,
// so the engine, which saw no answer, must look for it before appending it
// again. The destination INBOX ends with one report.
func TestReportAppendCut(t *testing.T) {
	t.Parallel()
	srcServer, dstServer := servers[imaptest.FlavourSlash], servers[imaptest.FlavourDot]
	src := srcServer.AddUser(t) // empty: the report is the only APPEND
	dst := dstServer.Plaintext(dstServer.AddUser(t))

	d := &appendCutter{dst: dstServer.PlainAddr, slow: dstServer.PlainAddr}
	d.state.Store(1)
	cfg := testConfig(t, src, dst)
	cfg.Dial.Dialer = d
	res := mustCopy(t, cfg)
	if d.cutAt.Load() == nil {
		t.Fatalf("the report's APPEND was not cut: the test did not set up the race")
	}
	if !res.Report {
		t.Errorf("Result.Report = false (%s), want true", res.ReportError)
	}
	c, err := imaptest.Dial(testContext(t), dst)
	if err != nil {
		t.Fatalf("dial the destination: %v", err)
	}
	defer c.Close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("select INBOX: %v", err)
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{{Key: mailcopy.ReportHeader}},
	}, nil).Wait()
	if err != nil {
		t.Fatalf("search for reports: %v", err)
	}
	if got := len(found.AllUIDs()); got != 1 {
		t.Errorf("reports in the destination INBOX = %d, want 1", got)
	}
}
