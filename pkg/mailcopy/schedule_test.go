package mailcopy_test

import (
	"fmt"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/proxytest"
)

// connLog records the command lines a proxy forwards upstream, by connection,
// in the order they reach the server.
type connLog struct {
	mu    sync.Mutex
	lines []connLine
	part  map[int64][]byte // a line not ended yet, by connection
}

type connLine struct {
	conn int64
	line string
}

func (l *connLog) observe(conn int64, b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.part == nil {
		l.part = map[int64][]byte{}
	}
	buf := append(l.part[conn], b...)
	for {
		i := slices.Index(buf, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, connLine{conn, string(buf[:i])})
		buf = buf[i+1:]
	}
	l.part[conn] = buf
}

// matching returns the lines that match re, in order.
func (l *connLog) matching(re *regexp.Regexp) []connLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []connLine
	for _, c := range l.lines {
		if re.MatchString(c.line) {
			out = append(out, c)
		}
	}
	return out
}

var (
	listAllRE    = regexp.MustCompile(`^\S+ LIST "" "\*"`)
	examineAnyRE = regexp.MustCompile(`^\S+ EXAMINE "?([^"\r]*)"?\r?$`)
	bodyFetchAny = regexp.MustCompile(`^\S+ UID FETCH \S+ \(UID BODY\.PEEK\[\]\)\r?$`)
)

// TestBiggestFolderFirst: the planning's source connection is logged in a
// round trip before the others; the worker that gets it copies the biggest
// folder (which ends the copy), whichever worker that is. The source is
// 50 ms away: not a timed assertion, the delay only makes certain that the
// pool's connections log in after the planning's was taken.
func TestBiggestFolderFirst(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	sizes := map[string]int{"INBOX": 2_000, "Big": 60_000, "Mid": 20_000, "Small": 5_000}
	var folders []imaptest.Folder
	for name, size := range sizes {
		folders = append(folders, imaptest.Folder{Name: name, Messages: []imaptest.Message{
			msg(name, fmt.Sprintf("%s@example.com", name), size, baseDate)}})
	}
	mustLoad(t, src, imaptest.Mailbox{Folders: folders})
	var log connLog
	sp := proxytest.New(t, d.PlainAddr, proxytest.WithLatency(50*time.Millisecond),
		proxytest.WithObserver(proxytest.Upstream, log.observe))
	for run := range 3 {
		if run > 0 {
			dst = d.AddUser(t)
			log = connLog{}
		}
		cfg := testConfig(t, via(d.Plaintext(src), sp), d.Plaintext(dst))
		cfg.Connections = 4
		cfg.NoReport = true
		res := mustCopy(t, cfg)
		if !res.Complete() || res.Totals.Copied != len(folders) {
			t.Fatalf("run %d: totals %+v, failed folders %+v", run, res.Totals, res.FailedFolders())
		}
		lists := log.matching(listAllRE)
		if len(lists) != 1 {
			t.Fatalf("run %d: LIST commands %v, want the planning's", run, lists)
		}
		planning := lists[0].conn
		var first string
		for _, c := range log.matching(examineAnyRE) {
			if c.conn == planning {
				first = examineAnyRE.FindStringSubmatch(c.line)[1]
				break
			}
		}
		if first != "Big" {
			t.Errorf("run %d: the planning's source connection opened %q first, want Big", run, first)
		}
		mustCheck(t, src, dst, imaptest.CheckOptions{})
	}
}

// TestSmallFolderEarly: with one connection, a small folder left at the end
// of the copy is taken while the folder before it starts its last chunk: its
// metadata pass goes to the source before that chunk's body FETCH (its
// answer then comes first, and the small folder's bodies right behind).
func TestSmallFolderEarly(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	var inbox []imaptest.Message
	for i := range 6 {
		inbox = append(inbox, msg(fmt.Sprintf("inbox %d", i), fmt.Sprintf("i%d@example.com", i), 3_000, baseDate))
	}
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: inbox},
		{Name: "Small", Messages: []imaptest.Message{msg("small", "s@example.com", 1_000, baseDate)}},
	}})
	var log connLog
	sp := proxytest.New(t, d.PlainAddr, proxytest.WithObserver(proxytest.Upstream, log.observe))
	cfg := testConfig(t, via(d.Plaintext(src), sp), d.Plaintext(dst))
	cfg.Connections = 1
	cfg.ChunkMessages = 3 // INBOX: two chunks
	// Only these two (not the server's own empty folders): one folder is
	// left, no more than the workers, when INBOX's last chunk starts.
	cfg.Include = []string{"INBOX", "Small"}
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if !res.Complete() || res.Totals.Copied != len(inbox)+1 {
		t.Fatalf("totals %+v, failed folders %+v", res.Totals, res.FailedFolders())
	}
	var order []string
	for _, c := range log.matching(regexp.MustCompile(`EXAMINE|BODY\.PEEK\[\]`)) {
		if m := examineAnyRE.FindStringSubmatch(c.line); m != nil {
			order = append(order, "EXAMINE "+m[1])
		} else if bodyFetchAny.MatchString(c.line) {
			order = append(order, "bodies")
		}
	}
	// INBOX opened, its first chunk's bodies, then Small's metadata pass and
	// INBOX opened again before its last chunk's bodies.
	want := []string{"EXAMINE INBOX", "bodies", "EXAMINE Small", "EXAMINE INBOX", "bodies"}
	if len(order) < len(want) || !slices.Equal(order[:len(want)], want) {
		t.Errorf("source commands %q, want them to begin with %q", order, want)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{SkipSource: func(f string) bool { return f != "INBOX" && f != "Small" }})
}
