package mailcopy_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// The source of the mid-copy tests: "Busy", the biggest folder (copied first),
// 60 messages of about 2 KB; "Other", 5 messages.
const (
	busyCount   = 60
	changeAt    = 20 // the change lands before the 20th body sent to the copy
	chunkOfTest = 10 // messages per body FETCH: later FETCHes see the change
)

func busyMessage(i int) imaptest.Message {
	return msg(fmt.Sprintf("busy %d", i), fmt.Sprintf("busy%d@midcopy.test", i), 2_000, baseDate.Add(time.Duration(i)*time.Minute))
}

func midCopySource() imaptest.Mailbox {
	var busy, other []imaptest.Message
	for i := range busyCount {
		busy = append(busy, busyMessage(i))
	}
	for i := range 5 {
		other = append(other, msg(fmt.Sprintf("other %d", i), fmt.Sprintf("other%d@midcopy.test", i), 1_000, baseDate))
	}
	return imaptest.Mailbox{Folders: []imaptest.Folder{{Name: "Busy", Messages: busy}, {Name: "Other", Messages: other}}}
}

// changingSource loads the source and returns the account to copy from: the
// source's Dovecot behind a proxy that holds the copy's body stream before
// its changeAt-th message body while change runs on a connection of its own
// (straight to Dovecot, the source account logged in). It reports whether the
// change ran.
func changingSource(t *testing.T, src imapconn.Account, change func(ctx context.Context, c *imapclient.Client) error) (imapconn.Account, *atomic.Bool) {
	t.Helper()
	mustLoad(t, src, midCopySource())
	var fired atomic.Bool
	var once sync.Once
	px := servers[imaptest.FlavourSlash].ProfileProxy(t, imaptest.Profile{Name: "changing", BeforeBody: func(n int) {
		if n < changeAt {
			return
		}
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := imaptest.Dial(ctx, src)
			if err != nil {
				t.Errorf("change: %v", err)
				return
			}
			defer c.Close()
			if err := change(ctx, c); err != nil {
				t.Errorf("change: %v", err)
				return
			}
			fired.Store(true)
		})
	}})
	return px.Account(src), &fired
}

// midCopyConfig is the tests' Config with small body FETCHes.
func midCopyConfig(t *testing.T, src, dst imapconn.Account) mailcopy.Config {
	cfg := testConfig(t, src, dst)
	cfg.ChunkMessages = chunkOfTest
	cfg.Batching.Messages = chunkOfTest
	return cfg
}

// uidSet returns a set of these UIDs.
func uidSet(uids ...uint32) imap.UIDSet {
	var s imap.UIDSet
	for _, u := range uids {
		s.AddNum(imap.UID(u))
	}
	return s
}

// expunge removes the messages of folder with these UIDs.
func expunge(c *imapclient.Client, folder string, uids ...uint32) error {
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		return err
	}
	set := uidSet(uids...)
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return err
	}
	return c.UIDExpunge(set).Close()
}

// appendTo appends msgs to folder.
func appendTo(c *imapclient.Client, folder string, msgs ...imaptest.Message) error {
	for _, m := range msgs {
		cmd := c.Append(folder, int64(len(m.Raw)), &imap.AppendOptions{Time: m.InternalDate})
		if _, err := cmd.Write(m.Raw); err != nil {
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		if _, err := cmd.Wait(); err != nil {
			return err
		}
	}
	return nil
}

// ignoreBusy tells the checker that destination messages "busy i" for these
// i may be there though the source lost them: expunged on the source after
// they were copied. A copy never deletes on the destination, by design.
func ignoreBusy(gone ...int) func(string, []byte) bool {
	return func(folder string, raw []byte) bool {
		for _, i := range gone {
			if bytes.Contains(raw, []byte(fmt.Sprintf("<busy%d@midcopy.test>", i))) {
				return true
			}
		}
		return isReport(folder, raw)
	}
}

// TestSourceChangedMidCopy (docs/faults.md, the source changed mid-copy): a
// change lands on the source folder being copied, after its metadata pass,
// while its bodies stream (before the 20th body; bodies are fetched 10 at a
// time, so the FETCHes after it see the change). Each time the copy ends —
// completed, or the folder listed as failed with the server's reason — without
// a hang or a crash, the other folder is copied, a rerun completes, and the
// checker against the source as it is then finds nothing lost and nothing
// doubled. Messages expunged from the source after they were copied stay on
// the destination: a copy never deletes (the checker is told).
func TestSourceChangedMidCopy(t *testing.T) {
	t.Run("messages appended", func(t *testing.T) {
		t.Parallel()
		direct, dst := servers[imaptest.FlavourSlash].AddUser(t), servers[imaptest.FlavourDot].AddUser(t)
		src, fired := changingSource(t, direct, func(_ context.Context, c *imapclient.Client) error {
			return appendTo(c, "Busy", busyMessage(busyCount), busyMessage(busyCount+1), busyMessage(busyCount+2))
		})
		first := mustCopy(t, midCopyConfig(t, src, dst))
		if !fired.Load() {
			t.Fatal("the change did not run")
		}
		if !first.Complete() || first.Totals.Copied != busyCount+5 {
			t.Errorf("first run: totals %+v, want the %d messages of the metadata pass copied", first.Totals, busyCount+5)
		}
		// The rerun with the first run's State: the folder's UIDNEXT moved,
		// so it is not taken as unchanged.
		cfg := midCopyConfig(t, src, dst)
		cfg.Previous = first.State
		again := mustCopy(t, cfg)
		if !again.Complete() || again.Totals.Copied != 3 {
			t.Errorf("rerun: totals %+v, want the 3 appended messages copied", again.Totals)
		}
		mustCheck(t, direct, dst, imaptest.CheckOptions{})
	})

	t.Run("messages expunged", func(t *testing.T) {
		t.Parallel()
		direct, dst := servers[imaptest.FlavourSlash].AddUser(t), servers[imaptest.FlavourDot].AddUser(t)
		// UIDs 3 and 4 (busy 2, 3) are copied by then; 31 to 40 (busy 30
		// to 39) are not fetched yet.
		gone := []int{2, 3}
		uids := []uint32{3, 4}
		for i := 30; i < 40; i++ {
			gone = append(gone, i)
			uids = append(uids, uint32(i+1))
		}
		src, fired := changingSource(t, direct, func(_ context.Context, c *imapclient.Client) error {
			return expunge(c, "Busy", uids...)
		})
		first := mustCopy(t, midCopyConfig(t, src, dst))
		if !fired.Load() {
			t.Fatal("the change did not run")
		}
		t.Logf("first run: totals %+v, failures %+v", first.Totals, first.Failures)
		if !first.Complete() || len(first.Failures) != 0 {
			t.Errorf("first run: totals %+v, failures %+v: want complete, the expunged messages not listed", first.Totals, first.Failures)
		}
		mustCheck(t, direct, dst, imaptest.CheckOptions{IgnoreDest: ignoreBusy(gone...)})
		again := mustCopy(t, midCopyConfig(t, src, dst))
		if !again.Complete() || again.Totals.Copied != 0 {
			t.Errorf("rerun: totals %+v, want nothing to copy", again.Totals)
		}
		mustCheck(t, direct, dst, imaptest.CheckOptions{IgnoreDest: ignoreBusy(gone...)})
	})

	t.Run("folder deleted", func(t *testing.T) {
		t.Parallel()
		direct, dst := servers[imaptest.FlavourSlash].AddUser(t), servers[imaptest.FlavourDot].AddUser(t)
		src, fired := changingSource(t, direct, func(_ context.Context, c *imapclient.Client) error {
			return c.Delete("Busy").Wait()
		})
		first, err := mailcopy.Copy(testContext(t), midCopyConfig(t, src, dst))
		if !fired.Load() {
			t.Fatal("the change did not run")
		}
		t.Logf("first run: error %v, folders %+v", err, first.Folders)
		wantBusyFailed(t, first, err)
		again := mustCopy(t, midCopyConfig(t, src, dst))
		if !again.Complete() || again.Totals.Copied != 0 {
			t.Errorf("rerun: totals %+v, failed folders %+v: want complete, nothing to copy", again.Totals, again.FailedFolders())
		}
		mustCheck(t, direct, dst, imaptest.CheckOptions{})
	})

	t.Run("folder renamed", func(t *testing.T) {
		t.Parallel()
		direct, dst := servers[imaptest.FlavourSlash].AddUser(t), servers[imaptest.FlavourDot].AddUser(t)
		src, fired := changingSource(t, direct, func(_ context.Context, c *imapclient.Client) error {
			return c.Rename("Busy", "Renamed", nil).Wait()
		})
		first, err := mailcopy.Copy(testContext(t), midCopyConfig(t, src, dst))
		if !fired.Load() {
			t.Fatal("the change did not run")
		}
		t.Logf("first run: error %v, folders %+v", err, first.Folders)
		wantBusyFailed(t, first, err)
		again := mustCopy(t, midCopyConfig(t, src, dst))
		if !again.Complete() || again.Totals.Copied != busyCount {
			t.Errorf("rerun: totals %+v, failed folders %+v: want complete, Renamed copied", again.Totals, again.FailedFolders())
		}
		// The destination's Busy keeps what the first run copied into it.
		mustCheck(t, direct, dst, imaptest.CheckOptions{})
	})

	t.Run("UIDVALIDITY changed", func(t *testing.T) {
		t.Parallel()
		direct, dst := servers[imaptest.FlavourSlash].AddUser(t), servers[imaptest.FlavourDot].AddUser(t)
		// Busy deleted and created again with other messages of the same
		// size under the same UIDs: busy 0 to 9 (copied by then), busy 100
		// to 149 (new), busy 10 to 14 (maybe copied): a new UIDVALIDITY.
		var recreated []imaptest.Message
		var gone []int
		for i := range 10 {
			recreated = append(recreated, busyMessage(i))
		}
		for i := 100; i < 150; i++ {
			recreated = append(recreated, busyMessage(i))
		}
		for i := 10; i < 15; i++ {
			recreated = append(recreated, busyMessage(i))
		}
		for i := 15; i < busyCount; i++ {
			gone = append(gone, i)
		}
		src, fired := changingSource(t, direct, func(_ context.Context, c *imapclient.Client) error {
			if err := c.Delete("Busy").Wait(); err != nil {
				return err
			}
			if err := c.Create("Busy", nil).Wait(); err != nil {
				return err
			}
			return appendTo(c, "Busy", recreated...)
		})
		first, err := mailcopy.Copy(testContext(t), midCopyConfig(t, src, dst))
		if !fired.Load() {
			t.Fatal("the change did not run")
		}
		t.Logf("first run: error %v, totals %+v, folders %+v", err, first.Totals, first.Folders)
		if err != nil {
			t.Fatalf("first run: %v", err)
		}
		again := mustCopy(t, midCopyConfig(t, src, dst))
		if !again.Complete() {
			t.Errorf("rerun: totals %+v, failed folders %+v: want complete", again.Totals, again.FailedFolders())
		}
		mustCheck(t, direct, dst, imaptest.CheckOptions{IgnoreDest: ignoreBusy(gone...)})
	})
}

// wantBusyFailed checks a first run whose source folder Busy went away
// mid-copy: the run ended without error, Busy is listed as failed with the
// server's reason, Other is copied.
func wantBusyFailed(t *testing.T, res *mailcopy.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("first run: %v, want the folder listed as failed", err)
	}
	failed := res.FailedFolders()
	if len(failed) != 1 || failed[0].Source != "Busy" || !strings.Contains(failed[0].Error, "Busy") {
		t.Errorf("first run: failed folders %+v, want Busy with the server's reason", failed)
	}
	for _, f := range res.Folders {
		if f.Source == "Other" && (f.Error != "" || f.Copied != 5) {
			t.Errorf("first run: Other %+v, want its 5 messages copied", f)
		}
	}
}
