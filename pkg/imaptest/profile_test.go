package imaptest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestProfileProxy: each trait of a profile, seen by go-imap's client through the proxy.
func TestProfileProxy(t *testing.T) {
	t.Parallel()
	d := StartDovecot(t, FlavourSlash)
	acct := d.AddUser(t)
	ctx := context.Background()
	if err := Load(ctx, acct, Generate(3, Spec{Count: 30, Folders: 2})); err != nil {
		t.Fatal(err)
	}

	t.Run("capabilities", func(t *testing.T) {
		px := d.ProfileProxy(t, ProfileOldServer)
		c, err := Dial(ctx, px.Account(acct))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, cp := range []imap.Cap{imap.CapIMAP4rev2, imap.CapLiteralPlus, imap.CapCondStore, imap.CapSpecialUse, imap.CapMultiAppend, imap.CapUIDPlus, imap.CapQResync} {
			if c.Caps().Has(cp) {
				t.Errorf("capability %s offered", cp)
			}
		}
		if !c.Caps().Has(imap.CapIMAP4rev1) {
			t.Errorf("IMAP4rev1 not offered: %v", c.Caps())
		}
		list, err := c.List("", "*", nil).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range list {
			for _, a := range l.Attrs {
				if _, ok := isSpecialUse(string(a)); ok {
					t.Errorf("LIST %s has %s", l.Mailbox, a)
				}
			}
		}
	})

	t.Run("connection cap", func(t *testing.T) {
		p := ProfileYahoo
		p.MaxConnections = 2
		px := d.ProfileProxy(t, p)
		for range 2 {
			c, err := Dial(ctx, px.Account(acct))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		conn, err := tls.Dial("tcp", px.Addr, &tls.Config{RootCAs: d.CAPool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		greeting, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(greeting) != TooManyBye {
			t.Errorf("third connection greeted %q", greeting)
		}
		if s := px.Stats(); s.Peak != 2 || s.Refused != 1 {
			t.Errorf("stats = %+v, want peak 2, 1 refused", s)
		}
	})

	t.Run("throttle", func(t *testing.T) {
		p := ProfileM365
		p.ThrottleEvery, p.ByeAfter = 2, 0
		px := d.ProfileProxy(t, p)
		c, err := Dial(ctx, px.Account(acct))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		seq := imap.SeqSetNum(1)
		if _, err := c.Fetch(seq, &imap.FetchOptions{Flags: true}).Collect(); err != nil {
			t.Fatalf("first FETCH: %v", err)
		}
		_, err = c.Fetch(seq, &imap.FetchOptions{Flags: true}).Collect()
		var imapErr *imap.Error
		if !errors.As(err, &imapErr) || imapErr.Code != "THROTTLED" {
			t.Fatalf("second FETCH: %v, want NO [THROTTLED]", err)
		}
		// The third command is forwarded, the fourth refused and swallowed whole,
		// its literal with it: the session goes on.
		msg := "Subject: t\r\n\r\nbody\r\n"
		for i, want := range []string{"", "THROTTLED"} {
			cmd := c.Append("INBOX", int64(len(msg)), nil)
			cmd.Write([]byte(msg))
			cmd.Close()
			_, err := cmd.Wait()
			var imapErr *imap.Error
			switch {
			case want == "" && err != nil:
				t.Fatalf("APPEND %d: %v", i, err)
			case want != "" && (!errors.As(err, &imapErr) || string(imapErr.Code) != want):
				t.Fatalf("APPEND %d: %v, want NO [%s]", i, err, want)
			}
		}
		if err := c.Noop().Wait(); err != nil {
			t.Fatalf("NOOP after the throttled APPEND: %v", err)
		}
		if s := px.Stats(); s.Throttled != 2 {
			t.Errorf("stats = %+v, want 2 throttled", s)
		}
	})

	t.Run("split writes", func(t *testing.T) {
		snap, err := TakeSnapshot(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		px := d.ProfileProxy(t, ProfileYahoo)
		if err := snap.Unchanged(ctx, px.Account(acct)); err != nil {
			t.Errorf("read through the splitting proxy: %v", err)
		}
	})

	t.Run("bye", func(t *testing.T) {
		p := ProfileM365
		p.ThrottleEvery, p.ByeAfter = 0, 3 // LOGIN, SELECT, then the BYE
		px := d.ProfileProxy(t, p)
		c, err := Dial(ctx, px.Account(acct))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Noop().Wait(); err == nil {
			t.Error("NOOP answered after the BYE")
		}
		if s := px.Stats(); s.Byes != 1 {
			t.Errorf("stats = %+v, want 1 BYE", s)
		}
	})

	t.Run("gmail folders", func(t *testing.T) {
		acct := d.AddUser(t)
		for _, name := range []string{"[Gmail]/Messages envoyés", "[Gmail]/Tous les messages", "Work/Clients"} {
			if err := CreateFolder(ctx, acct, name); err != nil {
				t.Fatal(err)
			}
		}
		p := ProfileGmail
		p.ListAttrs = GmailFoldersFR
		p.HideFolders = []string{"Trash", "Work/Clients"}
		px := d.ProfileProxy(t, p)
		c, err := Dial(ctx, px.Account(acct))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !c.Caps().Has("X-GM-EXT-1") {
			t.Errorf("X-GM-EXT-1 not offered: %v", c.Caps())
		}
		list, err := c.List("", "*", nil).Collect()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, l := range list {
			if l.Mailbox == "Trash" || l.Mailbox == "Work/Clients" {
				t.Errorf("hidden folder %q listed", l.Mailbox)
			}
			for _, a := range l.Attrs {
				if slices.Contains(specialUseAttrs, string(a)) {
					got[l.Mailbox] += string(a)
				}
			}
		}
		// Dovecot's own Sent, Trash... lose theirs.
		want := map[string]string{"[Gmail]/Messages envoyés": `\Sent`, "[Gmail]/Tous les messages": `\All`}
		if !maps.Equal(got, want) {
			t.Errorf("special-use attributes %q, want %q", got, want)
		}
	})

	t.Run("cut", func(t *testing.T) {
		for _, reply := range []string{GmailBye, ""} {
			p := Profile{CutAfterBytes: 4 << 10, CutReply: reply}
			px := d.ProfileProxy(t, p)
			c, err := Dial(ctx, px.Account(acct))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			// The bodies are more than 4 KiB: the session ends within the FETCH.
			_, err = c.Fetch(imap.SeqSetNum(1, 2, 3, 4, 5), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
			if err == nil {
				err = c.Noop().Wait()
			}
			if err == nil {
				t.Errorf("reply %q: the session went on", reply)
			}
			if s := px.Stats(); s.Cuts != 1 {
				t.Errorf("reply %q: stats = %+v, want 1 cut", reply, s)
			}
		}
	})
}
