package mailcopy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
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

// gmailProfile is ProfileGmail with folders named for lang and without the
// traits a test does not look at (throttling, cut sessions).
func gmailProfile(folders map[string]string) imaptest.Profile {
	p := imaptest.ProfileGmail
	p.ListAttrs = folders
	p.ThrottleEvery, p.CutAfterBytes, p.CutAfterCommands = 0, 0, 0
	// Dovecot's own special-use folders (FlavourSlash): Gmail has none of them.
	p.HideFolders = []string{"Sent", "Drafts", "Trash", "Junk", "Archive"}
	return p
}

// mustHold fails t unless folder of acct holds exactly msgs (bytes, flags, dates).
func mustHold(t *testing.T, acct imapconn.Account, folder string, msgs ...imaptest.Message) {
	t.Helper()
	got, err := imaptest.ReadFolder(testContext(t), acct, folder)
	if err != nil {
		t.Errorf("read %q: %v", folder, err)
		return
	}
	got = slices.DeleteFunc(got, func(m imaptest.Message) bool { return isReport(folder, m.Raw) })
	if g, w := describeAll(got), describeAll(msgs); !slices.Equal(g, w) {
		t.Errorf("%q holds\n  %s\nwant\n  %s", folder, strings.Join(g, "\n  "), strings.Join(w, "\n  "))
	}
}

// TestGmailLabels: a Gmail source as the profile proxy shows it (X-GM-EXT-1, the
// French names of its folders with Gmail's special-use attributes, which Dovecot
// does not have): its Sent, Drafts, Trash and Spam land in the destination's own,
// the views (Starred, Important) are skipped, All Mail gives only its archived
// message to the destination's Archive, a nested label stays a folder, and a
// message in three labels is copied once into each of them; the checker passes and
// a rerun appends nothing. The source cuts every session after 8 commands.
func TestGmailLabels(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src := d.AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)

	three := msg("in three labels", "three@example.com", 900, baseDate, `\Seen`)
	inbox := msg("inbox", "inbox@example.com", 800, baseDate.Add(time.Hour))
	work := msg("work", "work@example.com", 700, baseDate.Add(2*time.Hour), "$Label1")
	client := msg("client", "client@example.com", 1200, baseDate.Add(3*time.Hour), `\Flagged`)
	sent := msg("sent", "sent@example.com", 600, baseDate.Add(4*time.Hour), `\Seen`)
	draft := msg("draft", "draft@example.com", 500, baseDate.Add(5*time.Hour), `\Draft`)
	trash := msg("trash", "trash@example.com", 650, baseDate.Add(6*time.Hour), `\Seen`)
	spam := msg("spam", "spam@example.com", 750, baseDate.Add(7*time.Hour))
	archived := msg("archived", "archived@example.com", 1000, baseDate.Add(8*time.Hour), `\Seen`)
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{three, inbox}},
		{Name: "Work", Messages: []imaptest.Message{three, work}},
		{Name: "Work/Clients", Messages: []imaptest.Message{three, client}},
		{Name: "[Gmail]/Messages envoyés", Messages: []imaptest.Message{sent}},
		{Name: "[Gmail]/Brouillons", Messages: []imaptest.Message{draft}},
		{Name: "[Gmail]/Corbeille", Messages: []imaptest.Message{trash}},
		{Name: "[Gmail]/Spam", Messages: []imaptest.Message{spam}},
		{Name: "[Gmail]/Suivis", Messages: []imaptest.Message{client}},
		{Name: "[Gmail]/Important", Messages: []imaptest.Message{three, inbox}},
		// Gmail's All Mail has every message but those in Trash and Spam.
		{Name: "[Gmail]/Tous les messages", Messages: []imaptest.Message{three, inbox, work, client, sent, draft, archived}},
	}})
	// The copy's sessions are cut every 8 commands: All Mail's scan of the
	// labels (one EXAMINE and FETCH each) needs several sessions. The checker
	// reads through a proxy that does not cut.
	cutting := gmailProfile(imaptest.GmailFoldersFR)
	cutting.CutAfterCommands, cutting.CutReply = 8, imaptest.GmailBye
	px := d.ProfileProxy(t, cutting)
	gmail := d.ProfileProxy(t, gmailProfile(imaptest.GmailFoldersFR)).Account(src)

	cfg := testConfig(t, px.Account(src), dst)
	cfg.Provider = "gmail"
	res := mustCopy(t, cfg)
	// Each message once per label: 2+2+2 in the labels, 4 special, 1 archived.
	if !res.Complete() || res.Totals.Copied != 11 {
		t.Errorf("totals = %+v, failures %+v, want 11 copied", res.Totals, res.Failures)
	}
	mustHold(t, dst, "INBOX", three, inbox)
	mustHold(t, dst, "INBOX.Work", three, work)
	mustHold(t, dst, "INBOX.Work.Clients", three, client)
	mustHold(t, dst, "INBOX.Sent Messages", sent)
	mustHold(t, dst, "INBOX.Drafts", draft)
	mustHold(t, dst, "INBOX.Deleted Messages", trash)
	mustHold(t, dst, "INBOX.Spam", spam)
	mustHold(t, dst, "INBOX.Archive", archived)
	folders, err := imaptest.ListFolders(testContext(t), dst)
	if err != nil {
		t.Fatal(err)
	}
	for name := range folders {
		if strings.Contains(name, "Gmail") {
			t.Errorf("destination folder %q: Gmail's folders go onto the destination's own", name)
		}
	}
	views := map[string]bool{"[Gmail]/Tous les messages": true, "[Gmail]/Suivis": true, "[Gmail]/Important": true}
	mustCheck(t, gmail, dst, imaptest.CheckOptions{SkipSource: func(f string) bool { return views[f] }})

	cfg.NoReport = true
	again := mustCopy(t, cfg)
	if again.Totals.Copied != 0 || again.Totals.Present != 11 {
		t.Errorf("rerun totals = %+v, want 0 copied, 11 present", again.Totals)
	}
	if s := px.Stats(); s.Cuts < 2 {
		t.Errorf("proxy %+v: the test did not cut sessions", s)
	}
}

// TestGmailDestination: onto a Gmail-like destination (the proxy gives its German
// "[Google Mail]/" folders Gmail's special-use attributes), a copy from a plain
// Dovecot puts Sent, Drafts, Trash and Junk into the localized special-use folders,
// creates the other folders as labels (a nested one nested), and appends nothing
// to All Mail nor to the views; the checker passes and a rerun appends nothing.
func TestGmailDestination(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourDot].AddUser(t)
	d := servers[imaptest.FlavourSlash]
	dst := d.AddUser(t)

	inbox := msg("inbox", "inbox@example.com", 800, baseDate, `\Seen`)
	client := msg("client", "client@example.com", 1200, baseDate.Add(time.Hour), `\Flagged`)
	sent := msg("sent", "sent@example.com", 600, baseDate.Add(2*time.Hour), `\Seen`)
	draft := msg("draft", "draft@example.com", 500, baseDate.Add(3*time.Hour), `\Draft`)
	trash := msg("trash", "trash@example.com", 650, baseDate.Add(4*time.Hour), `\Seen`)
	junk := msg("junk", "junk@example.com", 750, baseDate.Add(5*time.Hour))
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{inbox}},
		{Name: "Work/Clients", Messages: []imaptest.Message{client}},
		{Name: "Sent", SpecialUse: `\Sent`, Messages: []imaptest.Message{sent}},
		{Name: "Drafts", SpecialUse: `\Drafts`, Messages: []imaptest.Message{draft}},
		{Name: "Trash", SpecialUse: `\Trash`, Messages: []imaptest.Message{trash}},
		{Name: "Junk", SpecialUse: `\Junk`, Messages: []imaptest.Message{junk}},
	}})
	var gmailFolders []imaptest.Folder
	for name := range imaptest.GmailFoldersDE {
		gmailFolders = append(gmailFolders, imaptest.Folder{Name: name})
	}
	mustLoad(t, dst, imaptest.Mailbox{Folders: gmailFolders})
	px := d.ProfileProxy(t, gmailProfile(imaptest.GmailFoldersDE))
	gmail := px.Account(dst)

	cfg := testConfig(t, src, gmail)
	res := mustCopy(t, cfg)
	if !res.Complete() || res.Totals.Copied != 6 {
		t.Errorf("totals = %+v, failures %+v, want 6 copied", res.Totals, res.Failures)
	}
	mustHold(t, dst, "INBOX", inbox)
	mustHold(t, dst, "Work/Clients", client)
	mustHold(t, dst, "[Google Mail]/Gesendet", sent)
	mustHold(t, dst, "[Google Mail]/Entwürfe", draft)
	mustHold(t, dst, "[Google Mail]/Papierkorb", trash)
	mustHold(t, dst, "[Google Mail]/Spam", junk)
	for _, view := range []string{"[Google Mail]/Alle Nachrichten", "[Google Mail]/Markiert", "[Google Mail]/Wichtig"} {
		mustHold(t, dst, view)
	}
	// Dovecot's own folders behind the proxy, which the copy cannot see.
	for _, hidden := range []string{"Sent", "Drafts", "Trash", "Junk", "Archive"} {
		mustHold(t, dst, hidden)
	}
	mustCheck(t, src, gmail, imaptest.CheckOptions{})

	cfg.NoReport = true
	again := mustCopy(t, cfg)
	if again.Totals.Copied != 0 || again.Totals.Present != 6 {
		t.Errorf("rerun totals = %+v, want 0 copied, 6 present", again.Totals)
	}
}

// TestGmailSessionsCut: Gmail drops long sessions. With every session cut once it
// carried 64 KiB (more than any message of the mailbox), with Gmail's BYE or a plain
// close, mid-command as it falls, the copy from and to Gmail completes, the checker
// finds every message once and intact, and a rerun appends nothing.
func TestGmailSessionsCut(t *testing.T) {
	mb := imaptest.Generate(720, imaptest.Spec{Count: 80, Folders: 2, Sizes: []imaptest.SizeClass{{Weight: 1, Min: 2_000, Max: 30_000}}})
	for i, side := range []string{"source", "destination"} {
		for j, reply := range []string{imaptest.GmailBye, ""} {
			name := side + " with BYE"
			if reply == "" {
				name = side + " closed"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				d := servers[imaptest.FlavourSlash]
				src, dst := d.AddUser(t), servers[imaptest.FlavourDot].AddUser(t)
				if side == "destination" {
					d = servers[imaptest.FlavourDot]
					src, dst = servers[imaptest.FlavourSlash].AddUser(t), d.AddUser(t)
				}
				mustLoad(t, src, mb)
				p := imaptest.ProfileGmail
				p.ThrottleEvery, p.CutAfterCommands = 0, 0
				p.ListAttrs = nil // the generated folders are not Gmail's
				p.CutAfterBytes, p.CutReply = 64<<10, reply
				px := d.ProfileProxy(t, p)
				copySrc, copyDst := src, dst
				if side == "source" {
					copySrc = px.Account(src)
				} else {
					copyDst = px.Account(dst)
				}
				cfg := testConfig(t, copySrc, copyDst)
				cfg.Connections = 2 + i + j
				res := mustCopy(t, cfg)
				if !res.Complete() || res.Totals.Copied != mb.Count() {
					t.Errorf("copy: totals %+v, failures %+v, want %d copied", res.Totals, res.Failures, mb.Count())
				}
				mustCheck(t, src, dst, imaptest.CheckOptions{})
				cfg.NoReport = true
				again := mustCopy(t, cfg)
				if again.Totals.Copied != 0 || again.Totals.Present != mb.Count() {
					t.Errorf("rerun: totals %+v, want 0 copied, %d present", again.Totals, mb.Count())
				}
				s := px.Stats()
				t.Logf("proxy: %+v", s)
				if s.Cuts < 3 {
					t.Errorf("%d sessions cut: the test did not test it", s.Cuts)
				}
			})
		}
	}
}
