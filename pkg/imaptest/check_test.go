package imaptest

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/imapconn"
)

// servers starts one Dovecot per flavour for a test.
func servers(t *testing.T) map[Flavour]*Dovecot {
	return map[Flavour]*Dovecot{
		FlavourSlash: StartDovecot(t, FlavourSlash),
		FlavourDot:   StartDovecot(t, FlavourDot),
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mb := Generate(3, Spec{Count: 60})
	for f, d := range servers(t) {
		t.Run(f.String(), func(t *testing.T) {
			acct := d.AddUser(t)
			if err := Load(ctx, acct, mb); err != nil {
				t.Fatalf("Load: %v", err)
			}
			folders, err := ListFolders(ctx, acct)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for n := range folders {
				names = append(names, n)
			}
			slices.Sort(names)
			t.Logf("%s folders after Load: %q", f, names)

			for _, mf := range mb.Folders {
				name := f.MailboxName(mf.Name)
				if mf.SpecialUse != "" {
					name = d.SpecialUse[mf.SpecialUse]
				}
				if mf.Name == "Archive/2023" {
					name = d.SpecialUse[`\Archive`] + f.Separator() + "2023"
				}
				if _, ok := folders[name]; !ok {
					t.Errorf("folder %q (logical %q) missing after Load; have %q", name, mf.Name, names)
					continue
				}
				if mf.SpecialUse != "" && !slices.Contains(folders[name], mf.SpecialUse) {
					t.Errorf("folder %q attributes = %q, want %s", name, folders[name], mf.SpecialUse)
				}
				got, err := ReadFolder(ctx, acct, name)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(mf.Messages) {
					t.Errorf("folder %q has %d messages, want %d", name, len(got), len(mf.Messages))
					continue
				}
				for i, m := range got {
					want := mf.Messages[i]
					wantFlags := slices.Sorted(slices.Values(want.Flags))
					if !bytes.Equal(m.Raw, want.Raw) || !slices.Equal(m.Flags, wantFlags) || !m.InternalDate.Equal(want.InternalDate) {
						t.Errorf("folder %q message %d = (%d bytes, %q, %v), want (%d bytes, %q, %v)",
							name, i, len(m.Raw), m.Flags, m.InternalDate, len(want.Raw), wantFlags, want.InternalDate)
					}
				}
			}
		})
	}
}

func TestCheckIdentical(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ds := servers(t)
	mb := Generate(5, Spec{Count: 50})
	accts := map[Flavour]struct{ a, b imapconn.Account }{}
	for f, d := range ds {
		a, b := d.AddUser(t), d.AddUser(t)
		for _, acct := range []imapconn.Account{a, b} {
			if err := Load(ctx, acct, mb); err != nil {
				t.Fatalf("Load: %v", err)
			}
		}
		accts[f] = struct{ a, b imapconn.Account }{a, b}
	}
	for _, pair := range [][2]Flavour{{FlavourSlash, FlavourSlash}, {FlavourSlash, FlavourDot}, {FlavourDot, FlavourSlash}, {FlavourDot, FlavourDot}} {
		src, dst := accts[pair[0]].a, accts[pair[1]].b
		var opts CheckOptions
		if pair[0] == FlavourDot && pair[1] == FlavourSlash {
			// On a dot server INBOX's children are top-level folders: a faithful copy
			// makes "Factures" of it; the loader put the original under INBOX.
			opts.FolderMap = map[string]string{"INBOX.Factures": "INBOX/Factures"}
		}
		res, err := Check(ctx, src, dst, opts)
		if err != nil {
			t.Fatalf("Check(%s -> %s): %v", pair[0], pair[1], err)
		}
		if !res.OK() || res.Messages != mb.Count() || res.Folders != len(mb.Folders) {
			t.Errorf("Check(%s -> %s) = %v; want OK with %d folders and %d messages", pair[0], pair[1], res, len(mb.Folders), mb.Count())
		}
		t.Logf("Check(%s -> %s): %v", pair[0], pair[1], res)
	}
}

func TestCheckFindsProblems(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, f := range []Flavour{FlavourSlash, FlavourDot} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			d := StartDovecot(t, f)
			src, dst := d.AddUser(t), d.AddUser(t)
			mb := Generate(9, Spec{Count: 40, Sizes: []SizeClass{{Weight: 1, Min: 500, Max: 3000}}})
			if err := Load(ctx, src, mb); err != nil {
				t.Fatal(err)
			}

			// The destination: the same, with one of each kind of fault.
			bad := cloneMailbox(mb)
			inbox := bad.Folder("INBOX")
			if len(inbox.Messages) < 6 {
				t.Fatalf("INBOX has %d messages, want 6 or more", len(inbox.Messages))
			}
			missing := inbox.Messages[0]
			inbox.Messages[1].Flags = toggle(inbox.Messages[1].Flags, "$Label1")
			inbox.Messages[2].InternalDate = inbox.Messages[2].InternalDate.Add(time.Hour)
			inbox.Messages = append(inbox.Messages, inbox.Messages[3]) // duplicated
			altered := inbox.Messages[4]
			altered.Raw = append(bytes.Clone(altered.Raw[:len(altered.Raw)-2]), "!\r\n"...)
			inbox.Messages[4] = altered // missing + extra
			inbox.Messages = inbox.Messages[1:]
			report := Message{Raw: []byte("Subject: imapcopy report\r\n\r\nAll done.\r\n"), InternalDate: time.Now().Truncate(time.Second)}
			inbox.Messages = append(inbox.Messages, report)
			var without Mailbox
			for _, fo := range bad.Folders {
				if fo.Name != emptyFolder {
					without.Folders = append(without.Folders, fo)
				}
			}
			if err := Load(ctx, dst, without); err != nil {
				t.Fatal(err)
			}

			res, err := Check(ctx, src, dst, CheckOptions{
				IgnoreDest: func(folder string, raw []byte) bool {
					return folder == "INBOX" && bytes.Contains(raw, []byte("Subject: imapcopy report"))
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%v", res)
			for _, want := range []string{
				"missing on destination: uid 1 " + identify(missing.Raw),
				"flags differ",
				"INTERNALDATE differs",
				"duplicated on destination",
				"extra message on destination",
				"destination folder missing",
			} {
				if !slices.ContainsFunc(res.Problems, func(p string) bool { return strings.Contains(p, want) }) {
					t.Errorf("Check problems lack %q", want)
				}
			}
			if got, want := len(res.Problems), 7; got != want {
				t.Errorf("Check found %d problems, want %d", got, want)
			}
			if slices.ContainsFunc(res.Problems, func(p string) bool { return strings.Contains(p, "imapcopy report") }) {
				t.Errorf("IgnoreDest did not hide the report")
			}

			// AllowMissing forgives what the destination refused.
			res, err = Check(ctx, src, dst, CheckOptions{AllowMissing: func(string, int64) bool { return true }})
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(res.Problems, func(p string) bool { return strings.Contains(p, "missing on destination") }) {
				t.Errorf("AllowMissing: problems still report missing messages:\n%v", res)
			}
		})
	}
}

func TestSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := StartDovecot(t, FlavourDot)
	src, dst := d.AddUser(t), d.AddUser(t)
	mb := Generate(11, Spec{Count: 30, Sizes: []SizeClass{{Weight: 1, Min: 500, Max: 3000}}})
	if err := Load(ctx, src, mb); err != nil {
		t.Fatal(err)
	}
	snap, err := TakeSnapshot(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	// Reading everything (as Check does) changes nothing.
	if _, err := Check(ctx, src, dst, CheckOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := snap.Unchanged(ctx, src); err != nil {
		t.Errorf("after a read-only pass: %v", err)
	}
	if fs := snap.Folders["INBOX"]; fs.Recent == 0 || fs.HighestModSeq == 0 {
		t.Errorf("INBOX snapshot = %+v, want \\Recent messages and a HIGHESTMODSEQ", fs)
	}

	// Each kind of change is seen.
	c, err := Dial(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil { // takes \Recent away
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$Touched"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("INBOX.New", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := AppendRaw(ctx, src, d.SpecialUse[`\Sent`], []byte("Subject: x\r\n\r\nx\r\n"), time.Now()); err != nil {
		t.Fatal(err)
	}
	err = snap.Unchanged(ctx, src)
	if err == nil {
		t.Fatalf("Unchanged after changes = nil, want an error")
	}
	t.Logf("Unchanged: %v", err)
	for _, want := range []string{"was SELECTed", "flags [", "$Touched", `folder "INBOX.New" created`, "added", "UIDNEXT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Unchanged error lacks %q", want)
		}
	}
}

func cloneMailbox(mb Mailbox) Mailbox {
	var out Mailbox
	for _, f := range mb.Folders {
		f.Messages = slices.Clone(f.Messages)
		for i := range f.Messages {
			f.Messages[i].Flags = slices.Clone(f.Messages[i].Flags)
		}
		out.Folders = append(out.Folders, f)
	}
	return out
}
