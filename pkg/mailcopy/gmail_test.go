package mailcopy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// TestGmailArchivedMail: from a source laid out like Gmail (every message is
// also in "[Gmail]/All Mail"), the messages that are only in All Mail (archived:
// no label left) land in the destination's Archive folder, exactly once each
// (a duplicate pair twice), byte-identical with their flags and dates; nothing
// else gets extras; a rerun appends nothing.
func TestGmailArchivedMail(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)

	labelled := msg("in inbox and work", "both@example.com", 900, baseDate, `\Seen`)
	inboxOnly := msg("in inbox", "inbox@example.com", 800, baseDate.Add(time.Hour))
	work := msg("work", "work@example.com", 700, baseDate.Add(2*time.Hour), "$Label1")
	sent := msg("sent", "sent@example.com", 600, baseDate.Add(3*time.Hour), `\Seen`)
	archivedA := msg("archived twice", "archived@example.com", 1000, baseDate.Add(4*time.Hour), `\Seen`)
	archivedB := archivedA
	archivedB.Flags = []string{`\Seen`, `\Flagged`}
	archivedNoID := msg("archived, no id", "", 1100, baseDate.Add(5*time.Hour), `\Answered`)
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{labelled, inboxOnly}},
		{Name: "Work", Messages: []imaptest.Message{labelled, work}},
		{Name: "[Gmail]/Sent Mail", Messages: []imaptest.Message{sent}},
		// A view: an archived starred message is there too, and still archived.
		{Name: "[Gmail]/Starred", Messages: []imaptest.Message{archivedB}},
		{Name: "[Gmail]/All Mail", Messages: []imaptest.Message{
			labelled, inboxOnly, archivedA, work, sent, archivedNoID, archivedB,
		}},
	}})
	const archive = "INBOX.Archive" // the dot server's \Archive folder, created

	cfg := testConfig(t, src, dst)
	cfg.Provider = "gmail"
	res := mustCopy(t, cfg)
	var all *mailcopy.FolderResult
	for i, f := range res.Folders {
		if f.Source == "[Gmail]/All Mail" {
			all = &res.Folders[i]
		}
	}
	if all == nil || !all.ArchiveOnly || all.Destination != archive || all.Total != 3 || all.Copied != 3 {
		t.Fatalf("All Mail result = %+v, want archive only onto %q, 3 in total, 3 copied", all, archive)
	}
	if !res.Complete() || res.Totals.Total != 8 || res.Totals.Copied != 8 {
		t.Errorf("totals = %+v, want 8 in total, 8 copied", res.Totals)
	}

	got, err := imaptest.ReadFolder(testContext(t), dst, archive)
	if err != nil {
		t.Fatalf("read %q: %v", archive, err)
	}
	want := []imaptest.Message{archivedA, archivedB, archivedNoID}
	if g, w := describeAll(got), describeAll(want); !slices.Equal(g, w) {
		t.Errorf("destination %q holds\n  %s\nwant\n  %s", archive, strings.Join(g, "\n  "), strings.Join(w, "\n  "))
	}
	views := map[string]bool{"[Gmail]/All Mail": true, "[Gmail]/Starred": true, "Archive": true}
	mustCheck(t, src, dst, imaptest.CheckOptions{SkipSource: func(f string) bool { return views[f] }})

	cfg.NoReport = true
	again := mustCopy(t, cfg)
	if again.Totals.Copied != 0 || again.Totals.Present != 8 {
		t.Errorf("rerun totals = %+v, want 0 copied, 8 present", again.Totals)
	}
	if got, err := imaptest.ReadFolder(testContext(t), dst, archive); err != nil || len(got) != 3 {
		t.Errorf("after the rerun %q holds %d messages (%v), want 3", archive, len(got), err)
	}
}

// describeAll lists messages as sorted comparable lines: bytes, flags, date.
func describeAll(msgs []imaptest.Message) []string {
	var out []string
	for _, m := range msgs {
		flags := slices.Clone(m.Flags)
		slices.Sort(flags)
		out = append(out, fmt.Sprintf("%q flags %q date %d", m.Raw, flags, m.InternalDate.Unix()))
	}
	slices.Sort(out)
	return out
}
