package imaptest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/imapconn"
)

// TestCyrus: both flavours start, a user logs in over TLS and STARTTLS (and not with
// a wrong password), sees the flavour's namespace and its special-use folders, and the
// server announces what the engine relies on. The capabilities are logged.
func TestCyrus(t *testing.T) {
	t.Parallel()
	for _, f := range []Flavour{FlavourSlash, FlavourDot} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			cy := StartCyrus(t, f)
			acct := cy.AddUser(t)
			other := cy.AddUser(t)
			if acct.Login == other.Login {
				t.Fatalf("two users named %q", acct.Login)
			}
			ctx := context.Background()
			wrong := acct
			wrong.Password = "not-" + acct.Password
			if c, err := Dial(ctx, wrong); err == nil {
				c.Close()
				t.Errorf("Dial with a wrong password succeeded")
			}
			for _, tc := range []struct {
				name string
				acct imapconn.Account
			}{{"tls", acct}, {"starttls", cy.StartTLS(acct)}} {
				t.Run(tc.name, func(t *testing.T) {
					c, err := Dial(ctx, tc.acct)
					if err != nil {
						t.Fatalf("Dial: %v", err)
					}
					defer c.Close()
					l, err := readLayout(c)
					if err != nil {
						t.Fatal(err)
					}
					if l.prefix != f.Prefix() || l.delim != f.Separator() {
						t.Errorf("namespace = (%q, %q), want (%q, %q)", l.prefix, l.delim, f.Prefix(), f.Separator())
					}
					for attr, name := range cy.SpecialUse {
						if l.special[attr] != name {
							t.Errorf("folder with %s = %q, want %q", attr, l.special[attr], name)
						}
					}
					caps := c.Caps()
					for _, want := range []imap.Cap{imap.CapCondStore, imap.CapSpecialUse, imap.CapUIDPlus,
						imap.CapLiteralPlus, imap.CapMove, "MULTIAPPEND", "COMPRESS=DEFLATE"} {
						if !caps.Has(want) {
							t.Errorf("capability %s missing", want)
						}
					}
					var names []string
					for c := range caps {
						names = append(names, string(c))
					}
					slices.Sort(names)
					var folders []string
					for _, f := range l.folders {
						folders = append(folders, f.name)
					}
					t.Logf("cyrus %s via %s: folders=%q; capabilities=%s", f, tc.name, folders, strings.Join(names, " "))
				})
			}

			// A message goes in and comes back byte for byte in a new nested folder.
			folder := f.MailboxName("Projects/2024")
			if err := CreateFolder(ctx, acct, folder); err != nil {
				t.Fatal(err)
			}
			raw := []byte("From: a@example.com\r\nSubject: hello\r\nMessage-ID: <1@example.com>\r\n\r\nbody\r\n")
			date := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
			if _, err := AppendRaw(ctx, acct, folder, raw, date, `\Seen`, "$Label1"); err != nil {
				t.Fatal(err)
			}
			msgs, err := ReadFolder(ctx, acct, folder)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 1 || string(msgs[0].Raw) != string(raw) || !msgs[0].InternalDate.Equal(date) {
				t.Errorf("read back %+v", msgs)
			}
		})
	}
}

// TestCyrusMissing: without the unpacked packages the harness fails and says how to
// get them.
func TestCyrusMissing(t *testing.T) {
	t.Setenv(CyrusDirEnv, t.TempDir())
	_, err := RunCyrus(FlavourSlash)
	if err == nil || !strings.Contains(err.Error(), "make test-deps") || !strings.Contains(err.Error(), "apt-get download cyrus-common cyrus-imapd") {
		t.Errorf("RunCyrus without Cyrus = %v, want the command that installs it", err)
	}
}
