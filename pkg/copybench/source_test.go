package copybench

import (
	"context"
	"testing"

	"imapcopy.dev/pkg/imaptest"
)

// TestLoadSource writes a small generated mailbox straight into the Maildir of a real
// Dovecot account, of each flavour, and checks over IMAP that every folder holds the
// right messages with their bytes, flags, keywords and internal dates (Verify), and
// that the server lists the folders under the expected names.
func TestLoadSource(t *testing.T) {
	t.Parallel()
	mb, err := Generate(Spec{Seed: 7, Count: 120, Bytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []imaptest.Flavour{imaptest.FlavourSlash, imaptest.FlavourDot} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			d := imaptest.StartDovecot(t, f)
			ctx := context.Background()
			acct, loaded, err := LoadSource(ctx, d, mb)
			if err != nil {
				t.Fatalf("LoadSource: %v", err)
			}
			if loaded.Messages != len(mb.Messages) {
				t.Errorf("loaded %d messages, want %d", loaded.Messages, len(mb.Messages))
			}
			c, err := imaptest.Dial(ctx, acct)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			list, err := c.List("", "*", nil).Collect()
			if err != nil {
				t.Fatalf("LIST: %v", err)
			}
			listed := map[string]bool{}
			for _, l := range list {
				listed[l.Mailbox] = true
			}
			for _, lf := range loaded.Folders {
				if !listed[lf.Name] {
					t.Errorf("folder %q not listed; LIST gave %v", lf.Name, listed)
				}
			}
			want := map[string]string{
				"Sent":                       map[imaptest.Flavour]string{imaptest.FlavourSlash: "Sent", imaptest.FlavourDot: "INBOX.Sent Messages"}[f],
				"Work/Projects/Réunions été": map[imaptest.Flavour]string{imaptest.FlavourSlash: "Work/Projects/Réunions été", imaptest.FlavourDot: "INBOX.Work.Projects.Réunions été"}[f],
			}
			for i, g := range mb.Folders {
				if w, ok := want[g.Name]; ok && loaded.Folders[i].Name != w {
					t.Errorf("folder %q loaded as %q, want %q", g.Name, loaded.Folders[i].Name, w)
				}
			}
		})
	}
}
