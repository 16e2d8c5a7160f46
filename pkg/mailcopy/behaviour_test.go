package mailcopy_test

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// rawMessage builds a message of about size bytes; an empty msgID leaves the
// Message-ID field out.
func rawMessage(subject, msgID string, size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n")
	b.WriteString("Date: Mon, 3 Mar 2025 10:00:00 +0100\r\n")
	b.WriteString("Subject: " + subject + "\r\n")
	if msgID != "" {
		b.WriteString("Message-ID: <" + msgID + ">\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	line := strings.Repeat("lorem ipsum dolor sit amet ", 2)[:50] + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

var baseDate = time.Date(2024, 6, 1, 12, 0, 0, 0, time.FixedZone("", 2*3600))

func msg(subject, msgID string, size int, date time.Time, flags ...string) imaptest.Message {
	return imaptest.Message{Raw: rawMessage(subject, msgID, size), InternalDate: date, Flags: flags}
}

// inbox is a mailbox with only these messages in INBOX.
func inbox(msgs ...imaptest.Message) imaptest.Mailbox {
	return imaptest.Mailbox{Folders: []imaptest.Folder{{Name: "INBOX", Messages: msgs}}}
}

func subjects(t *testing.T, acct imapconn.Account, folder string) []string {
	t.Helper()
	msgs, err := imaptest.ReadFolder(testContext(t), acct, folder)
	if err != nil {
		t.Fatalf("read %q: %v", folder, err)
	}
	var out []string
	for _, m := range msgs {
		if isReport(folder, m.Raw) {
			continue
		}
		for _, line := range strings.Split(string(m.Raw), "\r\n") {
			if s, ok := strings.CutPrefix(line, "Subject: "); ok {
				out = append(out, s)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestDuplicatesAndNoMessageID: messages without Message-ID are copied unchanged, identical
// duplicates as many times as they occur, and what the destination already
// has (as many times as it has it) is not copied again.
func TestDuplicatesAndNoMessageID(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)
	dup := msg("twice", "twice@example.com", 800, baseDate, `\Seen`)
	noID := msg("no id, three times", "", 900, baseDate.Add(time.Hour), "$Label1")
	noIDOther := msg("no id, other", "", 900, baseDate.Add(time.Hour))
	noIDLater := msg("no id, three times", "", 900, baseDate.Add(2*time.Hour)) // same bytes, other INTERNALDATE
	single := msg("single", "single@example.com", 700, baseDate)
	mustLoad(t, src, inbox(dup, dup, noID, noID, noID, noIDOther, noIDLater, single))
	mustLoad(t, dst, inbox(dup, noID)) // already there once each

	cfg := testConfig(t, src, dst)
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if got, want := res.Totals, (mailcopy.Counts{Total: 8, Present: 2, Copied: 6}); got.Total != want.Total || got.Present != want.Present || got.Copied != want.Copied {
		t.Errorf("totals = %+v, want total 8, present 2, copied 6", got)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
	again := mustCopy(t, cfg)
	if again.Totals.Copied != 0 || again.Totals.Present != 8 {
		t.Errorf("rerun totals = %+v, want 0 copied, 8 present", again.Totals)
	}
}

// TestInjection: a small message whose body holds IMAP command lines, copied
// from a source that shows \Recent (EXAMINE on Dovecot keeps it), arrives
// byte-identical and nothing else happens on the destination.
func TestInjection(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourDot].AddUser(t)
	dst := servers[imaptest.FlavourSlash].AddUser(t)
	raw := []byte("From: mallory@example.com\r\nSubject: injection\r\nMessage-ID: <inj@example.com>\r\n\r\n" +
		"A1 CREATE Injected\r\nA2 APPEND INBOX {5+}\r\nhello\r\nA3 LOGOUT\r\n)\r\n* BYE\r\n")
	mustLoad(t, src, inbox(imaptest.Message{Raw: raw, InternalDate: baseDate, Flags: []string{"$Forwarded", "Work"}}))

	cfg := testConfig(t, src, dst)
	res := mustCopy(t, cfg)
	if res.Totals.Copied != 1 || !res.Complete() {
		t.Errorf("totals = %+v, want 1 copied", res.Totals)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
	folders, err := imaptest.ListFolders(testContext(t), dst)
	if err != nil {
		t.Fatal(err)
	}
	for name := range folders {
		if strings.Contains(strings.ToLower(name), "injected") {
			t.Errorf("destination has a folder %q", name)
		}
	}
	if got := subjects(t, dst, "INBOX"); !slices.Equal(got, []string{"injection"}) {
		t.Errorf("destination INBOX subjects = %q, want only the injection message (and the report)", got)
	}
}

// TestRefusedMessage: a message too big for the space left on the
// destination is listed (folder, UID, size, reason); the rest is copied. The
// MULTIAPPEND batch it is part of is refused whole, and no body is kept for
// the retry: each message of the batch is fetched from the source again and
// appended alone.
func TestRefusedMessage(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourSlash].AddUser(t, imaptest.WithQuota(200_000))
	var msgs []imaptest.Message
	for i := range 10 {
		msgs = append(msgs, msg(fmt.Sprintf("small %d", i), fmt.Sprintf("s%d@example.com", i), 2_000, baseDate))
	}
	big := msg("big", "big@example.com", 400_000, baseDate)
	msgs = slices.Insert(msgs, 5, big)
	mustLoad(t, src, inbox(msgs...))

	var mu sync.Mutex
	reads := map[uint32]int{} // bodies handed to the appender, by source UID
	cfg := mailcopy.WithBodyWrapper(testConfig(t, src, dst), func(uid uint32, body io.Reader) io.Reader {
		mu.Lock()
		defer mu.Unlock()
		reads[uid]++
		return body
	})
	res, err := mailcopy.Copy(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	for uid := uint32(1); uid <= 11; uid++ {
		if reads[uid] != 2 {
			t.Errorf("UID %d: body fetched %d times, want 2 (in the refused batch, then alone)", uid, reads[uid])
		}
	}
	if res.Totals.Copied != 10 || res.Totals.Failed != 1 || res.Complete() {
		t.Errorf("totals = %+v, want 10 copied, 1 failed", res.Totals)
	}
	if len(res.Failures) != 1 {
		t.Fatalf("failures = %+v, want one", res.Failures)
	}
	f := res.Failures[0]
	if f.Folder != "INBOX" || f.UID != 6 || f.Size != int64(len(big.Raw)) || !strings.Contains(f.Reason, "quota") {
		t.Errorf("failure = %+v, want INBOX UID 6, %d bytes, a reason about quota", f, len(big.Raw))
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{AllowMissing: func(_ string, size int64) bool { return size > 300_000 }})
}

// TestDestinationFull: when even small messages are refused for quota, the
// copy stops with a permanent over-quota error.
func TestDestinationFull(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t, imaptest.WithQuota(20_000))
	var msgs []imaptest.Message
	for i := range 30 {
		msgs = append(msgs, msg(fmt.Sprintf("m%d", i), fmt.Sprintf("m%d@example.com", i), 2_000, baseDate))
	}
	mustLoad(t, src, inbox(msgs...))
	res, err := mailcopy.Copy(testContext(t), testConfig(t, src, dst))
	if !mailcopy.IsPermanent(err) || mailcopy.KindOf(err) != mailcopy.KindOverQuota {
		t.Fatalf("Copy error = %v (kind %v), want a permanent over-quota error", err, mailcopy.KindOf(err))
	}
	if res == nil || res.Totals.Copied == 0 || res.Totals.Copied >= 30 {
		t.Errorf("result = %+v, want some messages copied before the destination was full", res)
	}
}

// TestDryRun plans and counts but writes nothing.
func TestDryRun(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourDot].AddUser(t)
	dst := servers[imaptest.FlavourSlash].AddUser(t)
	mb := imaptest.Generate(3, imaptest.Spec{Count: 60})
	mustLoad(t, src, mb)
	mustLoad(t, dst, imaptest.Mailbox{Folders: []imaptest.Folder{mb.Folders[0]}}) // some already there
	before := mustSnapshot(t, dst)
	foldersBefore, err := imaptest.ListFolders(testContext(t), dst)
	if err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t, src, dst)
	cfg.DryRun = true
	res := mustCopy(t, cfg)
	if err := before.Unchanged(testContext(t), dst); err != nil {
		t.Errorf("dry run changed the destination: %v", err)
	}
	foldersAfter, err := imaptest.ListFolders(testContext(t), dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(foldersAfter) != len(foldersBefore) {
		t.Errorf("dry run: destination folders %d -> %d", len(foldersBefore), len(foldersAfter))
	}
	present := len(mb.Folders[0].Messages)
	if res.Totals.Total != mb.Count() || res.Totals.Present != present || res.Totals.Copied != mb.Count()-present || res.Report {
		t.Errorf("dry run totals = %+v report=%v, want total %d, present %d, to copy %d, no report",
			res.Totals, res.Report, mb.Count(), present, mb.Count()-present)
	}
	created := 0
	for _, f := range res.Folders {
		if f.Created {
			created++
		}
	}
	if created == 0 {
		t.Errorf("dry run: no folder would be created")
	}
	// The dry run lists the largest source messages, biggest first.
	var sizes []int64
	for _, f := range mb.Folders {
		for _, m := range f.Messages {
			sizes = append(sizes, int64(len(m.Raw)))
		}
	}
	slices.Sort(sizes)
	slices.Reverse(sizes)
	if len(res.Largest) != mailcopy.LargestKept {
		t.Errorf("dry run: %d largest messages listed, want %d", len(res.Largest), mailcopy.LargestKept)
	}
	for i, m := range res.Largest {
		if m.Size != sizes[i] || m.Folder == "" || m.UID == 0 {
			t.Errorf("dry run: largest[%d] = %+v, want size %d with its folder and uid", i, m, sizes[i])
		}
	}

	// The real copy does what the dry run said.
	cfg.DryRun = false
	real := mustCopy(t, cfg)
	if real.Totals != res.Totals {
		t.Errorf("real copy totals = %+v, dry run said %+v", real.Totals, res.Totals)
	}
	if len(real.Largest) != 0 {
		t.Errorf("a copy lists the largest messages: %+v (only a dry run does)", real.Largest)
	}
}

// TestFolderSelection: include and exclude patterns.
func TestFolderSelection(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)
	mb := imaptest.Generate(5, imaptest.Spec{Count: 80})
	mustLoad(t, src, mb)
	cfg := testConfig(t, src, dst)
	cfg.Include = []string{"INBOX", "Projects", "Projects/*"}
	cfg.Exclude = []string{"Projects/2024/Q1"}
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	var copied []string
	for _, f := range res.Folders {
		copied = append(copied, f.Source)
	}
	if want := []string{"INBOX", "Projects", "Projects/2024"}; !slices.Equal(copied, want) {
		t.Errorf("copied folders = %q, want %q", copied, want)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{SkipSource: func(f string) bool { return !slices.Contains(copied, f) }})
	folders, err := imaptest.ListFolders(testContext(t), dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := folders["INBOX.Projects.2024.Q1"]; ok {
		t.Errorf("excluded folder created on the destination")
	}
}

// TestMessageSelection: --since and --max-message-size.
func TestMessageSelection(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourDot].AddUser(t)
	dst := servers[imaptest.FlavourSlash].AddUser(t)
	mustLoad(t, src, inbox(
		msg("old", "old@x", 1_000, baseDate.AddDate(-1, 0, 0)),
		msg("old big", "oldbig@x", 50_000, baseDate.AddDate(-1, 0, 0)),
		msg("new", "new@x", 1_000, baseDate),
		msg("new big", "newbig@x", 50_000, baseDate),
		msg("newer", "newer@x", 2_000, baseDate.AddDate(0, 1, 0)),
	))
	cfg := testConfig(t, src, dst)
	cfg.Since = baseDate.AddDate(0, 0, -1)
	cfg.MaxMessageSize = 20_000
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if got := subjects(t, dst, "INBOX"); !slices.Equal(got, []string{"new", "newer"}) {
		t.Errorf("copied = %q, want new and newer", got)
	}
	if res.Totals.Total != 3 || res.Totals.Copied != 2 || res.Totals.Skipped != 1 || len(res.Skipped) != 1 || !res.Complete() {
		t.Errorf("totals = %+v skipped = %+v, want 3 in scope, 2 copied, 1 skipped", res.Totals, res.Skipped)
	}
	if len(res.Skipped) == 1 && (res.Skipped[0].UID != 4 || !strings.Contains(res.Skipped[0].Reason, "maximum message size")) {
		t.Errorf("skipped = %+v, want UID 4 over the maximum message size", res.Skipped[0])
	}
}
