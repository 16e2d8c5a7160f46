package mailcopy_test

import (
	"fmt"
	"regexp"
	"testing"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/proxytest"
)

// metadataPasses returns, for each metadata pass (UID FETCH 1:*) that reached
// the server, the folder its connection's EXAMINE opened and whether it asked
// for the identity header fields.
func metadataPasses(l *connLog) map[string][]bool {
	out := map[string][]bool{}
	open := map[int64]string{}
	for _, c := range l.matching(commandRE) {
		switch cmd := commandRE.FindStringSubmatch(c.line)[1]; {
		case examineRE.MatchString(cmd):
			open[c.conn] = examineRE.FindStringSubmatch(cmd)[1]
		case metadataRE.MatchString(cmd):
			out[open[c.conn]] = append(out[open[c.conn]], headerFieldsRE.MatchString(cmd))
		}
	}
	return out
}

var (
	commandRE      = regexp.MustCompile(`^\S+ (.*)\r$`)
	examineRE      = regexp.MustCompile(`^EXAMINE "?([^"]*)"?$`)
	metadataRE     = regexp.MustCompile(`^UID FETCH 1:\* `)
	headerFieldsRE = regexp.MustCompile(`HEADER\.FIELDS`)
)

// TestFreshFolderUnkeyed: a folder whose destination is new or empty gets a
// metadata pass without the identity header fields on its first attempt (the
// source reads no message before the bodies); one whose destination holds
// messages gets them, and the copy appends only what is missing there. A
// rerun reads the identities of every folder and appends nothing.
func TestFreshFolderUnkeyed(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	a := msg("a", "a@example.com", 600, baseDate)
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{a, msg("b", "b@example.com", 600, baseDate)}},
		{Name: "Work", Messages: []imaptest.Message{msg("w1", "w1@example.com", 600, baseDate), msg("w2", "w2@example.com", 600, baseDate)}},
		{Name: "Old", Messages: []imaptest.Message{msg("o1", "o1@example.com", 600, baseDate)}},
	}})
	mustLoad(t, dst, imaptest.Mailbox{Folders: []imaptest.Folder{{Name: "INBOX", Messages: []imaptest.Message{a}}}})
	if err := imaptest.CreateFolder(testContext(t), dst, "Old"); err != nil {
		t.Fatal(err)
	}
	run := func() (map[string][]bool, int, int) {
		var log connLog
		sp := proxytest.New(t, d.PlainAddr, proxytest.WithObserver(proxytest.Upstream, log.observe))
		cfg := testConfig(t, via(d.Plaintext(src), sp), d.Plaintext(dst))
		cfg.NoReport = true
		res := mustCopy(t, cfg)
		if !res.Complete() {
			t.Fatalf("totals %+v, failed folders %+v", res.Totals, res.FailedFolders())
		}
		return metadataPasses(&log), res.Totals.Copied, res.Totals.Present
	}

	passes, copied, present := run()
	want := map[string]bool{"INBOX": true, "Work": false, "Old": false}
	for folder, keyed := range want {
		if got := passes[folder]; len(got) != 1 || got[0] != keyed {
			t.Errorf("first copy: metadata passes of %s asked for the header fields: %v, want [%v]", folder, got, keyed)
		}
	}
	if copied != 4 || present != 1 {
		t.Errorf("first copy: %d copied, %d present; want 4 and 1 (a is there)", copied, present)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})

	passes, copied, present = run()
	for folder := range want {
		if got := passes[folder]; len(got) != 1 || !got[0] {
			t.Errorf("rerun: metadata passes of %s asked for the header fields: %v, want [true]", folder, got)
		}
	}
	if copied != 0 || present != 5 {
		t.Errorf("rerun: %d copied, %d present; want 0 and 5", copied, present)
	}
}

// TestSplitFreshFolderUnkeyed: with SplitFolders, the first pass of a folder
// whose destination is new goes without the identities, whether the folder is
// split (INBOX, 7 chunks with two identical messages in different ones) or
// not (Small); the twins land once each, and the checker passes. A split needs
// the identities only on a retry (TestSplitTwinRetry).
func TestSplitFreshFolderUnkeyed(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	var big []imaptest.Message
	for i := range 20 {
		big = append(big, msg(fmt.Sprintf("big %d", i), fmt.Sprintf("big%d@example.com", i), 600, baseDate))
	}
	big = append(big, big[1]) // a twin, in another chunk
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: big},
		{Name: "Small", Messages: []imaptest.Message{msg("s1", "s1@example.com", 600, baseDate), msg("s2", "s2@example.com", 600, baseDate)}},
	}})
	var log connLog
	sp := proxytest.New(t, d.PlainAddr, proxytest.WithObserver(proxytest.Upstream, log.observe))
	cfg := testConfig(t, via(d.Plaintext(src), sp), d.Plaintext(dst))
	cfg.NoReport = true
	cfg.SplitFolders = true
	cfg.ChunkMessages = 3
	res := mustCopy(t, cfg)
	if !res.Complete() || res.Totals.Copied != 23 {
		t.Fatalf("totals %+v, failed folders %+v; want 23 copied", res.Totals, res.FailedFolders())
	}
	passes := metadataPasses(&log)
	for folder, keyed := range map[string]bool{"INBOX": false, "Small": false} {
		if got := passes[folder]; len(got) != 1 || got[0] != keyed {
			t.Errorf("metadata passes of %s asked for the header fields: %v, want [%v]", folder, got, keyed)
		}
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}

// TestCreateAppearingWithMessages: a folder the plan creates appears on the
// destination just before its CREATE, holding one of the source's messages
// (another client was faster). The source's metadata pass went without the
// identities (the folder was to be new); the copy reads them again, sees the
// message there, and appends only the other.
func TestCreateAppearingWithMessages(t *testing.T) {
	t.Parallel()
	src := dovecotSlash.addUser(t)
	w1 := msg("w1", "w1@example.com", 500, baseDate)
	dst := courierDest(t, "Work", w1.Raw)
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{msg("in inbox", "a@x", 500, baseDate)}},
		{Name: "Work", Messages: []imaptest.Message{w1, msg("w2", "w2@example.com", 500, baseDate)}},
	}})
	cfg := testConfig(t, src, dst)
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if !res.Complete() || res.Totals.Copied != 2 || res.Totals.Present != 1 {
		t.Errorf("totals %+v failed folders %+v, want 2 copied and 1 present", res.Totals, res.FailedFolders())
	}
	if got := subjects(t, dst, "Work"); len(got) != 2 {
		t.Errorf("destination Work holds %q, want w1 and w2 once each", got)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}
