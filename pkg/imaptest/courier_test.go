package imaptest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestCourier: a user logs in (not with a wrong password), sees Courier's
// namespace ("INBOX." and "."), its capabilities (no LITERAL+, MULTIAPPEND,
// SPECIAL-USE, CONDSTORE), and a message comes back as Courier stores it: a CRLF
// added when its last line has none. Courier answers CREATE of an existing folder
// with "NO Cannot create this folder.".
func TestCourier(t *testing.T) {
	t.Parallel()
	co := StartCourier(t)
	acct := co.AddUser(t)
	ctx := context.Background()
	wrong := acct
	wrong.Password = "not-" + acct.Password
	if c, err := Dial(ctx, wrong); err == nil {
		c.Close()
		t.Errorf("Dial with a wrong password succeeded")
	}
	c, err := Dial(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := readLayout(c)
	if err != nil {
		t.Fatal(err)
	}
	if l.prefix != "INBOX." || l.delim != "." {
		t.Errorf("namespace = (%q, %q), want (INBOX., .)", l.prefix, l.delim)
	}
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []imap.Cap{imap.CapLiteralPlus, "MULTIAPPEND", imap.CapSpecialUse, imap.CapCondStore} {
		if caps.Has(absent) {
			t.Errorf("capability %s announced", absent)
		}
	}
	if !caps.Has(imap.CapUIDPlus) {
		t.Errorf("UIDPLUS missing")
	}
	var folders []string
	for _, f := range l.folders {
		folders = append(folders, f.name)
	}
	t.Logf("courier: folders=%q capabilities=%v", folders, caps)
	if err := c.Create("INBOX.Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("INBOX.Work", nil).Wait(); err == nil || !strings.Contains(err.Error(), "Cannot create this folder") {
		t.Errorf("second CREATE = %v, want NO Cannot create this folder.", err)
	}
	c.Logout().Wait()

	raw := []byte("From: a@example.com\r\nSubject: no end\r\n\r\nlast line without its end")
	date := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	if _, err := AppendRaw(ctx, acct, "INBOX.Work", raw, date, `\Seen`, "$Label1"); err != nil {
		t.Fatal(err)
	}
	msgs, err := ReadFolder(ctx, acct, "INBOX.Work")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || string(msgs[0].Raw) != string(raw)+"\r\n" || !msgs[0].InternalDate.Equal(date) {
		t.Errorf("read back %q, want the message with a CRLF added", msgs)
	}
}
