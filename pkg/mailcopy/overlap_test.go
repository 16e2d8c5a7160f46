package mailcopy_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// TestCreateOverlapsSource: the workers start on the source while the
// destination folders are created. A proxy holds the destination's commands
// once the first CREATE went through, so that the last CREATE (of a child
// folder, sent after its parent's answer) cannot be answered, until the source
// received an EXAMINE: the copy gets there (a copy that waited for its folders
// before opening any source folder would be released by the fallback only),
// then completes, every folder created and every message copied once.
func TestCreateOverlapsSource(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	var folders []imaptest.Folder
	total := 0
	for f, name := range []string{"INBOX", "A", "A/B", "C"} {
		var msgs []imaptest.Message
		for i := range 5 + f {
			msgs = append(msgs, msg(fmt.Sprintf("%s %d", name, i), fmt.Sprintf("%s%d@example.com", name, i), 800+100*f, baseDate))
		}
		total += len(msgs)
		folders = append(folders, imaptest.Folder{Name: name, Messages: msgs})
	}
	mustLoad(t, src, imaptest.Mailbox{Folders: folders})

	examined := make(chan struct{})
	var once sync.Once
	sp := proxytest.New(t, d.PlainAddr, proxytest.WithObserver(proxytest.Upstream, func(_ int64, b []byte) {
		if bytes.Contains(b, []byte(" EXAMINE ")) {
			once.Do(func() { close(examined) })
		}
	}))
	var held sync.Once
	var releasedBy string
	dp := proxytest.New(t, d.PlainAddr, proxytest.WithObserver(proxytest.Upstream, func(_ int64, b []byte) {
		if !bytes.Contains(b, []byte(" CREATE ")) {
			return
		}
		held.Do(func() {
			// Not a timed assertion: the fallback only keeps a copy that
			// never examines anything meanwhile from hanging the test.
			select {
			case <-examined:
				releasedBy = "EXAMINE"
			case <-time.After(30 * time.Second):
				releasedBy = "fallback"
			}
		})
	}))
	cfg := testConfig(t, via(d.Plaintext(src), sp), via(d.Plaintext(dst), dp))
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if releasedBy != "EXAMINE" {
		t.Errorf("the destination's CREATEs were held until the %s: no source folder was examined before the last CREATE was answered", releasedBy)
	}
	if !res.Complete() || res.Totals.Copied != total {
		t.Errorf("totals %+v, failed folders %+v; want %d copied", res.Totals, res.FailedFolders(), total)
	}
	for _, f := range res.Folders {
		// The special-use folders are there on a new Dovecot account.
		if want := f.Source == "A" || f.Source == "A/B" || f.Source == "C"; f.Created != want {
			t.Errorf("folder %q: Created %v, want %v", f.Source, f.Created, want)
		}
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}

// TestCreateRefusedAfterSourcePass: Cyrus refuses to create "100% done" (and
// so its child) while the workers run their source passes: the source pass of
// that folder runs (its EXAMINE reaches the source), yet nothing is appended
// there; the folder fails as when the workers started after the creation (the
// server's answer in its error, FolderFailed in the progress, folder_not_created
// logged, not Created), and the others are copied.
func TestCreateRefusedAfterSourcePass(t *testing.T) {
	t.Parallel()
	srcServer := servers[imaptest.FlavourSlash]
	src := srcServer.AddUser(t)
	dst := cyrusSlash.addUser(t)
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{msg("in inbox", "a@x", 500, baseDate)}},
		{Name: "100% done", Messages: []imaptest.Message{msg("done", "d@x", 500, baseDate), msg("done 2", "e@x", 700, baseDate)}},
		{Name: "100% done/inner", Messages: []imaptest.Message{msg("inner", "i@x", 500, baseDate)}},
		{Name: "Projects", Messages: []imaptest.Message{msg("project", "p@x", 500, baseDate)}},
	}})
	refused := func(folder string) bool { return strings.HasPrefix(folder, "100% done") }
	tp := imaptest.NewTap(t, srcServer.PlainAddr)
	viaTap := srcServer.Plaintext(src)
	viaTap.Host, viaTap.Port = splitAddr(t, tp.Addr())

	var logs syncBuffer
	cfg := testConfig(t, viaTap, dst)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.NoReport = true
	var mu sync.Mutex
	var last mailcopy.Progress
	cfg.Progress = func(p mailcopy.Progress) {
		mu.Lock()
		defer mu.Unlock()
		last = p
	}
	res := mustCopy(t, cfg)
	t.Logf("log:\n%s", logs.String())

	examined := false
	for _, c := range tp.Commands() {
		if v, args := imaptest.Verb(c); v == "EXAMINE" && args == `"100% done"` {
			examined = true
		}
	}
	if !examined {
		t.Errorf("no EXAMINE of \"100%% done\" reached the source: its source pass did not run")
	}
	if res.Complete() || res.Totals.Copied != 2 || len(res.Failures) > 0 {
		t.Errorf("totals %+v complete=%v failures %+v; want 2 copied, none refused, the result incomplete", res.Totals, res.Complete(), res.Failures)
	}
	failed := res.FailedFolders()
	if len(failed) != 2 {
		t.Fatalf("failed folders %+v, want 100%% done and its child", failed)
	}
	for _, f := range failed {
		want := fmt.Sprintf("the destination refused to create folder %q: NO ", f.Destination)
		if !refused(f.Source) || !strings.HasPrefix(f.Error, want) || !strings.Contains(f.Error, "Invalid mailbox name") ||
			f.Created || f.Copied != 0 {
			t.Errorf("failed folder %+v, want one of 100%% done, not created, nothing copied, its error %q and Cyrus's answer", f, want)
		}
		if !strings.Contains(logs.String(), fmt.Sprintf("msg=folder_not_created folder=%q", f.Destination)) {
			t.Errorf("no folder_not_created logged for %q", f.Destination)
		}
	}
	for _, f := range res.Folders {
		if f.Source == "Projects" && !f.Created {
			t.Errorf("folder %+v, want Created", f)
		}
	}
	mu.Lock()
	for _, f := range last.Folders {
		if want := map[bool]mailcopy.FolderState{true: mailcopy.FolderFailed, false: mailcopy.FolderDone}[refused(f.Source)]; f.State != want {
			t.Errorf("last progress: folder %q %v, want %v", f.Source, f.State, want)
		}
	}
	mu.Unlock()
	// The created folders are subscribed, the refused ones are not.
	if subs := subscribed(t, dst); !slices.Contains(subs, "Projects") || slices.ContainsFunc(subs, refused) {
		t.Errorf("subscribed folders %q, want Projects and neither 100%% done nor its child", subs)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{SkipSource: refused})
}

// subscribed lists the account's subscribed folders.
func subscribed(t *testing.T, acct imapconn.Account) []string {
	t.Helper()
	c, err := imaptest.Dial(testContext(t), acct)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	boxes, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
	}
	return names
}

// syncBuffer is a bytes.Buffer for a logger that several goroutines write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
