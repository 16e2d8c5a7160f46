package mailcopy_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// TestRerunState reruns a copy with the State of the one before it (Config.Previous):
// a folder unchanged on both sides is skipped, and each change that the shortcut must
// not miss sends its folder through the full metadata pass again: an expunge plus an
// append that keep the source's count, a message deleted on the destination, and the
// source folder recreated (new UIDVALIDITY) with as many messages and the same UIDNEXT.
// The checker runs after every copy.
func TestRerunState(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	mustLoad(t, src, imaptest.Generate(41, imaptest.Spec{Count: 60}))
	if err := imaptest.CreateFolder(testContext(t), src, "Rerun"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		appendOwn(t, src, "Rerun", fmt.Sprintf("rerun-%d", i))
	}
	appendOwn(t, src, "INBOX", "inbox-0")

	// Messages the source no longer has stay on the destination: the checker is told.
	var gone []string
	check := func() {
		t.Helper()
		mustCheck(t, src, dst, imaptest.CheckOptions{IgnoreDest: func(folder string, raw []byte) bool {
			for _, id := range gone {
				if bytes.Contains(raw, []byte("<"+id+"@rerun.test>")) {
					return true
				}
			}
			return isReport(folder, raw)
		}})
	}
	cfg := testConfig(t, src, dst)
	first := mustCopy(t, cfg)
	check()
	if first.State == nil || len(first.State.Folders) != len(first.Folders) {
		t.Fatalf("first copy: State = %+v, want every one of its %d folders", first.State, len(first.Folders))
	}

	// rerun copies with the last State and says which folders got the full pass.
	prev := first
	rerun := func(what string, wantCopied int, fullPass ...string) {
		t.Helper()
		cfg := testConfig(t, src, dst)
		cfg.Previous = prev.State
		res := mustCopy(t, cfg)
		var full []string
		for _, f := range res.Folders {
			if !f.Unchanged {
				full = append(full, f.Source)
			}
		}
		if fmt.Sprint(full) != fmt.Sprint(fullPass) {
			t.Errorf("%s: full metadata pass of %q, want %q", what, full, fullPass)
		}
		if res.Totals.Copied != wantCopied || !res.Complete() {
			t.Errorf("%s: totals %+v complete=%v, want %d copied", what, res.Totals, res.Complete(), wantCopied)
		}
		if res.Totals.Present+res.Totals.Copied != res.Totals.Total {
			t.Errorf("%s: totals %+v: present and copied do not add up to the total", what, res.Totals)
		}
		check()
		prev = res
	}

	// Unchanged, even though each copy appends its report to the destination INBOX.
	dstSnap := mustSnapshot(t, dst)
	rerun("unchanged", 0)
	rerun("unchanged again", 0)
	if err := dstSnap.Unchanged(testContext(t), dst); err == nil {
		t.Errorf("the reruns appended no report to the destination INBOX")
	}

	// The source loses a message and gains another: same count, UIDNEXT moved.
	before := status(t, src, "Rerun")
	expungeOwn(t, src, "Rerun", "rerun-0")
	gone = append(gone, "rerun-0")
	appendOwn(t, src, "Rerun", "rerun-5")
	if after := status(t, src, "Rerun"); *after.NumMessages != *before.NumMessages {
		t.Fatalf("source Rerun holds %d messages, want %d as before", *after.NumMessages, *before.NumMessages)
	}
	rerun("expunge plus append on the source", 1, "Rerun")

	// A copied message deleted on the destination.
	expungeOwn(t, dst, "INBOX", "inbox-0")
	rerun("message deleted on the destination", 1, "INBOX")
	rerun("unchanged after the repairs", 0)

	// The source folder deleted and created again with one message replaced: the same
	// count and UIDNEXT, another UIDVALIDITY.
	before = status(t, src, "Rerun")
	deleteFolder(t, src, "Rerun")
	if err := imaptest.CreateFolder(testContext(t), src, "Rerun"); err != nil {
		t.Fatal(err)
	}
	gone = append(gone, "rerun-1")
	for _, id := range []string{"rerun-6", "rerun-2", "rerun-3", "rerun-4", "rerun-5", "rerun-7"} {
		appendOwn(t, src, "Rerun", id)
	}
	expungeOwn(t, src, "Rerun", "rerun-7") // UIDNEXT as before
	after := status(t, src, "Rerun")
	if after.UIDValidity == before.UIDValidity || after.UIDNext != before.UIDNext || *after.NumMessages != *before.NumMessages {
		t.Fatalf("recreated source Rerun: UIDVALIDITY %d UIDNEXT %d MESSAGES %d, want another UIDVALIDITY than %d and UIDNEXT %d, MESSAGES %d as before",
			after.UIDValidity, after.UIDNext, *after.NumMessages, before.UIDValidity, before.UIDNext, *before.NumMessages)
	}
	rerun("source UIDVALIDITY changed", 1, "Rerun")
	rerun("unchanged at the end", 0)

	// A state is about one scope and one pair of accounts: with another Since, or
	// another destination account's state, every folder gets the full pass.
	other := *prev.State
	other.Destination = "someone-else@" + other.Destination
	for what, modify := range map[string]func(*mailcopy.Config){
		"another Since":   func(c *mailcopy.Config) { c.Since = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC) },
		"another account": func(c *mailcopy.Config) { c.Previous = &other },
	} {
		cfg := testConfig(t, src, dst)
		cfg.Previous = prev.State
		modify(&cfg)
		res := mustCopy(t, cfg)
		for _, f := range res.Folders {
			if f.Unchanged {
				t.Errorf("%s: folder %q taken as unchanged", what, f.Source)
			}
		}
		if res.Totals.Copied != 0 {
			t.Errorf("%s: totals %+v, want 0 copied", what, res.Totals)
		}
		check()
	}
}

// ownMessage is a small message whose Message-ID is <id@rerun.test>.
func ownMessage(id string) []byte {
	return fmt.Appendf(nil, "Message-ID: <%s@rerun.test>\r\nFrom: a@example.com\r\nTo: b@example.com\r\n"+
		"Subject: %s\r\nDate: Mon, 1 Dec 2025 10:00:00 +0000\r\n\r\nThis is %s.\r\n", id, id, id)
}

func appendOwn(t *testing.T, acct imapconn.Account, folder, id string) {
	t.Helper()
	date := time.Date(2025, 12, 1, 10, 0, 0, 0, time.UTC)
	if _, err := imaptest.AppendRaw(testContext(t), acct, folder, ownMessage(id), date); err != nil {
		t.Fatalf("append %s to %s: %v", id, folder, err)
	}
}

// withFolder runs fn on folder, selected read-write.
func withFolder(t *testing.T, acct imapconn.Account, folder string, fn func(c *imapclient.Client)) {
	t.Helper()
	c, err := imaptest.Dial(testContext(t), acct)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatalf("select %s: %v", folder, err)
	}
	fn(c)
}

// findOwn returns the UID of the message <id@rerun.test> of the selected folder.
func findOwn(t *testing.T, c *imapclient.Client, id string) imap.UID {
	t.Helper()
	found, err := c.UIDSearch(&imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "<" + id + "@rerun.test>"}},
	}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	uids := found.AllUIDs()
	if len(uids) != 1 {
		t.Fatalf("%d messages %s, want 1", len(uids), id)
	}
	return uids[0]
}

func expungeOwn(t *testing.T, acct imapconn.Account, folder, id string) {
	t.Helper()
	withFolder(t, acct, folder, func(c *imapclient.Client) {
		uid := findOwn(t, c, id)
		if err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		// UID EXPUNGE: the folder may hold other messages flagged \Deleted.
		if err := c.UIDExpunge(imap.UIDSetNum(uid)).Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func deleteFolder(t *testing.T, acct imapconn.Account, folder string) {
	t.Helper()
	c, err := imaptest.Dial(testContext(t), acct)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Delete(folder).Wait(); err != nil {
		t.Fatalf("delete %s: %v", folder, err)
	}
}

func status(t *testing.T, acct imapconn.Account, folder string) *imap.StatusData {
	t.Helper()
	c, err := imaptest.Dial(testContext(t), acct)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Status(folder, &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true}).Wait()
	if err != nil {
		t.Fatalf("status %s: %v", folder, err)
	}
	return st
}
