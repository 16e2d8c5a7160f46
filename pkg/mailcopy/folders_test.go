package mailcopy_test

import (
	"slices"
	"sync"
	"testing"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// TestFolderRenames: a "/" source folder whose name holds the "." of the
// destination is renamed predictably and reported; two source folders that
// land on the same "." name collide, are reported and not merged; nothing is
// lost. The source logs in with XOAUTH2, the destination with STARTTLS.
func TestFolderRenames(t *testing.T) {
	t.Parallel()
	slash, dot := servers[imaptest.FlavourSlash], servers[imaptest.FlavourDot]
	src := slash.AddUser(t)
	dst := dot.StartTLS(dot.AddUser(t))
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{msg("in inbox", "a@x", 500, baseDate)}},
		{Name: "Releases"},
		{Name: "Releases/v1.2", Messages: []imaptest.Message{msg("release", "r@x", 500, baseDate, "$Label1")}},
		{Name: "Receipts", Messages: []imaptest.Message{msg("receipt", "c@x", 500, baseDate)}},
		{Name: "INBOX/Receipts", Messages: []imaptest.Message{msg("inbox receipt", "d@x", 500, baseDate)}},
	}})
	oauth := src
	oauth.Password, oauth.OAuth2Token = "", slash.OAuth2Token(src.Login)

	res := mustCopy(t, testConfig(t, oauth, dst))
	if !res.Complete() || res.Totals.Copied != 4 {
		t.Errorf("totals = %+v, want 4 copied", res.Totals)
	}
	wantRename := mailcopy.Rename{Source: "Releases/v1.2", Destination: "INBOX.Releases.v1_2",
		Reason: "a name component contains the destination's delimiter"}
	if !slices.Contains(res.Renames, wantRename) {
		t.Errorf("renames = %+v, want %+v", res.Renames, wantRename)
	}
	if len(res.Collisions) != 1 || res.Collisions[0].Wanted != "INBOX.Receipts" {
		t.Fatalf("collisions = %+v, want one on INBOX.Receipts", res.Collisions)
	}
	moved := res.Collisions[0]
	mustCheck(t, src, dst, imaptest.CheckOptions{FolderMap: map[string]string{
		"Releases/v1.2": "INBOX.Releases.v1_2",
		moved.Source:    moved.Destination,
	}})
}

// TestProgress: snapshots arrive while the copy runs, their counts never go
// back, and the last one says what the result says.
func TestProgress(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourDot].AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)
	mb := imaptest.Generate(21, imaptest.Spec{Count: 100})
	mustLoad(t, src, mb)
	var mu sync.Mutex
	var snaps []mailcopy.Progress
	cfg := testConfig(t, src, dst)
	cfg.Progress = func(p mailcopy.Progress) {
		mu.Lock()
		snaps = append(snaps, p)
		mu.Unlock()
	}
	res := mustCopy(t, cfg)
	mu.Lock()
	defer mu.Unlock()
	if len(snaps) < len(res.Folders) {
		t.Fatalf("%d snapshots, want at least one per folder (%d)", len(snaps), len(res.Folders))
	}
	for i := 1; i < len(snaps); i++ {
		if snaps[i].Totals.Copied < snaps[i-1].Totals.Copied {
			t.Errorf("snapshot %d: copied went back from %d to %d", i, snaps[i-1].Totals.Copied, snaps[i].Totals.Copied)
		}
	}
	if got, want := res.Totals.TotalBytes, mb.Size(); got != want || res.Totals.Bytes != want {
		t.Errorf("result total bytes = %d, bytes copied = %d, want both %d (the mailbox's size)", got, res.Totals.Bytes, want)
	}
	last := snaps[len(snaps)-1]
	if last.Totals != res.Totals {
		t.Errorf("last snapshot totals = %+v, result totals = %+v", last.Totals, res.Totals)
	}
	for _, f := range last.Folders {
		if f.State != mailcopy.FolderDone {
			t.Errorf("last snapshot: folder %q is %s, want done", f.Source, f.State)
		}
	}
}
