package mailcopy_test

import (
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/proxytest"
)

// wireLog records the bytes a proxy forwards, both ways, in the order it
// forwards them: the upstream bytes (commands) as they reach the server, the
// downstream ones (answers) as they reach the client.
type wireLog struct {
	mu     sync.Mutex
	seq    int
	stream [2][]byte // by direction, all connections (the test uses one)
	at     [2][]int  // seq of each byte's chunk, by direction
}

func (l *wireLog) observer(dir proxytest.Direction) func(int64, []byte) {
	d := 0
	if dir == proxytest.Downstream {
		d = 1
	}
	return func(_ int64, b []byte) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.seq++
		l.stream[d] = append(l.stream[d], b...)
		for range b {
			l.at[d] = append(l.at[d], l.seq)
		}
	}
}

// appendRE matches an APPEND command line (imapappend's tags).
var appendRE = regexp.MustCompile(`(?m)^(W[0-9a-f]+\.\d+) APPEND (\S+) `)

// appends returns the APPEND commands that reached the server, in order:
// their tag, their folder and when they went through.
func (l *wireLog) appends() (tags, folders []string, at []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	up := l.stream[0]
	for _, m := range appendRE.FindAllSubmatchIndex(up, -1) {
		tags = append(tags, string(up[m[2]:m[3]]))
		folders = append(folders, string(up[m[4]:m[5]]))
		at = append(at, l.at[0][m[1]-1])
	}
	return tags, folders, at
}

// bodyFetchRE matches go-imap's body FETCH command line.
var bodyFetchRE = regexp.MustCompile(`(?m)^(\S+) UID FETCH \S+ \(UID BODY\.PEEK\[\]\)\r\n`)

type sentCommand struct {
	tag string
	at  int
}

// bodyFetches returns the body FETCH commands that reached the server, in order.
func (l *wireLog) bodyFetches() []sentCommand {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sentCommand
	for _, m := range bodyFetchRE.FindAllSubmatchIndex(l.stream[0], -1) {
		out = append(out, sentCommand{tag: string(l.stream[0][m[2]:m[3]]), at: l.at[0][m[1]-1]})
	}
	return out
}

// answered returns when the tagged answer to tag reached the client.
func (l *wireLog) answered(tag string) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	down := l.stream[1]
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tag) + ` OK `).FindIndex(down)
	if m == nil {
		return 0, false
	}
	return l.at[1][m[1]-1], true
}

// TestAppendsOvertakeAnswers: on one connection to each side, the destination
// answering 800 ms late, the worker sends each chunk without waiting for the
// answers to the chunk before: INBOX's second chunk goes out before the
// answer to its first reaches the copy, and the next folder's first chunk
// before the answer to INBOX's last (a copy that awaited each chunk's answers
// could only send it after). On the source, the next folder's bodies are
// asked for before INBOX's last ones arrive (its metadata pass was sent ahead
// of INBOX's last chunk). Everything arrives once, and a rerun appends
// nothing.
func TestAppendsOvertakeAnswers(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	var inbox, next []imaptest.Message
	for i := range 8 {
		size := 1_500
		if i >= 5 {
			size = 100_000 // the second chunk takes a while to come from the source
		}
		inbox = append(inbox, msg(fmt.Sprintf("inbox %d", i), fmt.Sprintf("i%d@example.com", i), size, baseDate))
	}
	for i := range 3 {
		next = append(next, msg(fmt.Sprintf("next %d", i), fmt.Sprintf("n%d@example.com", i), 1_500, baseDate))
	}
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: inbox},
		{Name: "Next", Messages: next},
	}})
	// There already, empty: the copy knows it from its folder plan, before
	// the first bodies go (a folder it creates is known once every folder is).
	if err := imaptest.CreateFolder(testContext(t), dst, "Next"); err != nil {
		t.Fatal(err)
	}
	// Not a timed assertion: the delays only make the order certain for a
	// copy that pipelines (its next command follows the previous one at
	// once, hundreds of milliseconds before the answers it could wait for);
	// a copy that awaited the answers could never show it. The source is
	// nearer than the destination, and slow enough that INBOX's second chunk
	// takes some 300 ms to come.
	var log, srcLog wireLog
	proxy := func(l *wireLog, opts ...proxytest.Option) *proxytest.Proxy {
		return proxytest.New(t, d.PlainAddr, append(opts,
			proxytest.WithObserver(proxytest.Upstream, l.observer(proxytest.Upstream)),
			proxytest.WithObserver(proxytest.Downstream, l.observer(proxytest.Downstream)))...)
	}
	sp := proxy(&srcLog, proxytest.WithDirLatency(proxytest.Downstream, 100*time.Millisecond),
		proxytest.WithDirBandwidth(proxytest.Downstream, 1_000_000))
	dp := proxy(&log, proxytest.WithDirLatency(proxytest.Downstream, 800*time.Millisecond))
	cfg := testConfig(t, via(d.Plaintext(src), sp), via(d.Plaintext(dst), dp))
	cfg.Connections = 1
	cfg.ChunkMessages = 5 // INBOX: two chunks, one MULTIAPPEND each
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if !res.Complete() || res.Totals.Copied != len(inbox)+len(next) {
		t.Fatalf("totals %+v, failed folders %+v; want %d copied", res.Totals, res.FailedFolders(), len(inbox)+len(next))
	}

	tags, folders, at := log.appends()
	var inboxCmds, nextCmds []int
	for i, f := range folders {
		switch f {
		case `"INBOX"`:
			inboxCmds = append(inboxCmds, i)
		case `"Next"`:
			nextCmds = append(nextCmds, i)
		}
	}
	if len(inboxCmds) != 2 || len(nextCmds) != 1 {
		t.Fatalf("APPENDs to %q; want two to INBOX (a MULTIAPPEND a chunk), then one to Next", folders)
	}
	answered := func(i int) int {
		a, ok := log.answered(tags[i])
		if !ok {
			t.Fatalf("no OK for %s (APPEND to %s)", tags[i], folders[i])
		}
		return a
	}
	if sent, a := at[inboxCmds[1]], answered(inboxCmds[0]); sent > a {
		t.Errorf("INBOX's second chunk reached the server (at %d) after the answer to its first reached the copy (%d)", sent, a)
	}
	if sent, a := at[nextCmds[0]], answered(inboxCmds[1]); sent > a {
		t.Errorf("Next's first chunk reached the server (at %d) after the answer to INBOX's last reached the copy (%d)", sent, a)
	}
	// On the source, Next's metadata pass went before INBOX's last body
	// FETCH, and Next's body FETCH reached the server before INBOX's last
	// bodies had all reached the copy: they come one behind the other.
	fetches := srcLog.bodyFetches()
	if len(fetches) != 3 {
		t.Fatalf("source body FETCHes %+v; want INBOX's two chunks, then Next's", fetches)
	}
	if a, ok := srcLog.answered(fetches[1].tag); !ok || fetches[2].at > a {
		t.Errorf("Next's body FETCH reached the source (at %d) after INBOX's last bodies reached the copy (%d)", fetches[2].at, a)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})

	cfg = testConfig(t, d.Plaintext(src), d.Plaintext(dst))
	cfg.NoReport = true
	if res := mustCopy(t, cfg); res.Totals.Copied != 0 {
		t.Errorf("rerun totals = %+v, want nothing copied", res.Totals)
	}
}
