package imaptest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
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
		p.ThrottleEvery, p.ByeAfter, p.PasswordRefused = 2, 0, false
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
		p.ThrottleEvery, p.ByeAfter, p.PasswordRefused = 0, 3, false // LOGIN, SELECT, then the BYE
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
	t.Run("size lie", func(t *testing.T) {
		// sizes returns each INBOX message's RFC822.SIZE and body length.
		sizes := func(c *imapclient.Client) []int64 {
			t.Helper()
			msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{RFC822Size: true,
				BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, m := range msgs {
				out = append(out, m.RFC822Size, int64(len(m.FindBodySection(&imap.FetchItemBodySection{}))))
			}
			return out
		}
		direct, err := Dial(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		defer direct.Close()
		px := d.ProfileProxy(t, Profile{Name: "sizes", SizeLie: 5, SizeLieEvery: 2})
		c, err := Dial(ctx, px.Account(acct))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, cl := range []*imapclient.Client{direct, c} {
			if _, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
				t.Fatal(err)
			}
		}
		want, got := sizes(direct), sizes(c)
		if len(want) != len(got) || len(want) < 4 {
			t.Fatalf("%d sizes through the proxy, %d direct", len(got), len(want))
		}
		for i := 0; i < len(want); i += 2 {
			lie := int64(0)
			if (i/2+1)%2 == 0 {
				lie = 5
			}
			if got[i] != want[i]+lie || got[i+1] != want[i+1] || want[i] != want[i+1] {
				t.Errorf("message %d: RFC822.SIZE %d and body %d through the proxy, %d and %d direct", i/2+1, got[i], got[i+1], want[i], want[i+1])
			}
		}
		if s := px.Stats(); s.Sizes != len(want)/4 {
			t.Errorf("stats %+v, want %d sizes misreported", s, len(want)/4)
		}
	})

	t.Run("password refused", func(t *testing.T) {
		px := d.ProfileProxy(t, Profile{Name: "oauth", PasswordRefused: true})
		_, err := Dial(ctx, px.Account(acct))
		if err == nil || !strings.Contains(err.Error(), "LOGIN failed.") {
			t.Errorf("LOGIN through the proxy: %v, want NO LOGIN failed.", err)
		}
		oauth := acct
		oauth.Password, oauth.OAuth2Token = "", d.OAuth2Token(acct.Login)
		c, err := Dial(ctx, px.Account(oauth))
		if err != nil {
			t.Fatalf("XOAUTH2 through the proxy: %v", err)
		}
		defer c.Close()
		if err := c.Noop().Wait(); err != nil {
			t.Error(err)
		}
		if s := px.Stats(); s.Logins != 1 {
			t.Errorf("stats %+v, want 1 password login refused", s)
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
	t.Run("before body", func(t *testing.T) {
		var mu sync.Mutex
		var seen []int
		px := d.ProfileProxy(t, Profile{BeforeBody: func(n int) { mu.Lock(); seen = append(seen, n); mu.Unlock() }})
		c, err := Dial(ctx, px.Account(acct))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		// A metadata FETCH (sizes, a header field) carries no whole message.
		meta := &imap.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}}}
		if _, err := c.Fetch(imap.SeqSetNum(1, 2, 3), meta).Collect(); err != nil {
			t.Fatal(err)
		}
		bodies := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
		msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), bodies).Collect()
		if err != nil || len(msgs) != 3 {
			t.Fatalf("FETCH BODY.PEEK[] = %d messages, %v", len(msgs), err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(seen, []int{1, 2, 3}) {
			t.Errorf("BeforeBody called with %v, want 1 2 3 (the bodies only)", seen)
		}
	})
}
