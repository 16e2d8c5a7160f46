package mailcopy_test

import (
	"fmt"
	"slices"
	"testing"

	"imapcopy.dev/pkg/imaptest"
)

// TestCreateCutSubscribes: the destination cuts every session after 8
// commands, so the planning's connection is lost between the CREATEs of the
// folders and their SUBSCRIBEs, and again within later waves. The folders a
// lost connection created are subscribed by the next (a client that shows
// only subscribed folders must see the copy), and everything is copied.
func TestCreateCutSubscribes(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	var folders []imaptest.Folder
	var want []string
	for _, top := range []string{"A", "B", "C", "D"} {
		for _, name := range []string{top, top + "/x"} {
			folders = append(folders, imaptest.Folder{Name: name, Messages: []imaptest.Message{
				msg(name, fmt.Sprintf("%s@example.com", name), 700, baseDate)}})
			want = append(want, name)
		}
	}
	folders = append(folders, imaptest.Folder{Name: "INBOX", Messages: []imaptest.Message{msg("in", "in@example.com", 700, baseDate)}})
	mustLoad(t, src, imaptest.Mailbox{Folders: folders})
	px := d.ProfileProxy(t, imaptest.Profile{CutAfterCommands: 8})
	cfg := testConfig(t, src, px.Account(dst))
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if !res.Complete() || res.Totals.Copied != len(folders) {
		t.Errorf("totals %+v failed folders %+v, want %d copied", res.Totals, res.FailedFolders(), len(folders))
	}
	subs := subscribed(t, dst)
	for _, name := range want {
		if !slices.Contains(subs, name) {
			t.Errorf("folder %s is not subscribed (subscribed: %q)", name, subs)
		}
	}
	if s := px.Stats(); s.Cuts < 2 {
		t.Errorf("%d sessions cut: the test did not test it", s.Cuts)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}
