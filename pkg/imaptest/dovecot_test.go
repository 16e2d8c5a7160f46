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

func TestDovecotLogin(t *testing.T) {
	t.Parallel()
	for _, f := range []Flavour{FlavourSlash, FlavourDot} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			d := StartDovecot(t, f)
			acct := d.AddUser(t)
			oauth := acct
			oauth.Password = ""
			oauth.OAuth2Token = d.OAuth2Token(acct.Login)
			for _, tc := range []struct {
				name string
				acct imapconn.Account
			}{
				{"tls", acct},
				{"starttls", d.StartTLS(acct)},
				{"xoauth2", oauth},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ctx := context.Background()
					c, err := Dial(ctx, tc.acct)
					if err != nil {
						t.Fatalf("Dial(%v) = %v", tc.acct, err)
					}
					defer c.Close()
					ns, err := c.Namespace().Wait()
					if err != nil {
						t.Fatalf("NAMESPACE: %v", err)
					}
					if len(ns.Personal) != 1 {
						t.Fatalf("personal namespaces = %+v, want one", ns.Personal)
					}
					gotPrefix, gotDelim := ns.Personal[0].Prefix, string(ns.Personal[0].Delim)
					if gotPrefix != f.Prefix() || gotDelim != f.Separator() {
						t.Errorf("personal namespace = (%q, %q), want (%q, %q)", gotPrefix, gotDelim, f.Prefix(), f.Separator())
					}
					list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
					if err != nil {
						t.Fatalf("LIST: %v", err)
					}
					var folders []string
					special := map[string]string{}
					for _, l := range list {
						folders = append(folders, l.Mailbox)
						for _, a := range l.Attrs {
							if strings.HasPrefix(string(a), `\`) && d.SpecialUse[string(a)] != "" {
								special[string(a)] = l.Mailbox
							}
						}
					}
					for attr, name := range d.SpecialUse {
						if attr == `\Archive` && f == FlavourDot {
							continue // created on demand on this flavour
						}
						if special[attr] != name {
							t.Errorf("folder with %s = %q, want %q", attr, special[attr], name)
						}
					}
					caps := c.Caps()
					for _, want := range []imap.Cap{imap.CapCondStore, imap.CapSpecialUse, imap.CapUIDPlus, imap.CapLiteralPlus, imap.CapMove, imap.CapQuota, "MULTIAPPEND"} {
						if !caps.Has(want) {
							t.Errorf("capability %s missing", want)
						}
					}
					var capNames []string
					for c := range caps {
						capNames = append(capNames, string(c))
					}
					slices.Sort(capNames)
					t.Logf("dovecot %s via %s as %s: namespace prefix=%q separator=%q; folders=%q; capabilities=%s",
						f, tc.name, tc.acct.Login, gotPrefix, gotDelim, folders, strings.Join(capNames, " "))
					if err := c.Logout().Wait(); err != nil {
						t.Errorf("LOGOUT: %v", err)
					}
				})
			}
		})
	}
}

func TestDovecotUsers(t *testing.T) {
	t.Parallel()
	d := StartDovecot(t, FlavourSlash)
	ctx := context.Background()

	a := d.AddUser(t)
	b := d.AddUser(t, WithQuota(1<<20))
	if a.Login == b.Login {
		t.Fatalf("two users named %q", a.Login)
	}
	for _, acct := range []imapconn.Account{a, b} {
		c, err := Dial(ctx, acct)
		if err != nil {
			t.Fatalf("Dial(%v) = %v", acct, err)
		}
		c.Close()
	}

	wrong := a
	wrong.Password = "not-" + a.Password
	if c, err := Dial(ctx, wrong); err == nil {
		c.Close()
		t.Errorf("Dial with a wrong password succeeded")
	} else if strings.Contains(err.Error(), wrong.Password) {
		t.Errorf("error %q contains the password", err)
	}
	unknown := d.Account("nosuchuser", "secret")
	if c, err := Dial(ctx, unknown); err == nil {
		c.Close()
		t.Errorf("Dial as an unknown user succeeded")
	} else if !strings.Contains(err.Error(), "AUTHENTICATIONFAILED") {
		t.Errorf("Dial as an unknown user = %v, want AUTHENTICATIONFAILED", err)
	}
	badToken := a
	badToken.OAuth2Token = "not-a-token"
	if c, err := Dial(ctx, badToken); err == nil {
		c.Close()
		t.Errorf("Dial with an unknown OAuth2 token succeeded")
	}

	c, err := Dial(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roots, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil {
		t.Fatalf("GETQUOTAROOT: %v", err)
	}
	var limit int64
	for _, r := range roots {
		if res, ok := r.Resources[imap.QuotaResourceStorage]; ok {
			limit = res.Limit
		}
	}
	if limit != 1024 {
		t.Errorf("storage quota limit = %d KiB, want 1024", limit)
	}
}

func TestDovecotMaxConnections(t *testing.T) {
	t.Parallel()
	d := StartDovecot(t, FlavourDot, WithMaxConnections(2))
	acct := d.AddUser(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		c, err := Dial(ctx, acct)
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		defer c.Close()
	}
	if c, err := Dial(ctx, acct); err == nil {
		c.Close()
		t.Errorf("third connection with WithMaxConnections(2) succeeded")
	} else {
		t.Logf("third connection: %v", err)
	}
}

// TestDovecotSetQuota: a user's quota raised, with its mail kept;
// an APPEND refused for quota before is accepted after.
func TestDovecotSetQuota(t *testing.T) {
	d := StartDovecot(t, FlavourDot)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	acct := d.AddUser(t, WithQuota(10<<10))
	small := []byte("Subject: small\r\n\r\n" + strings.Repeat("x", 4<<10) + "\r\n")
	if _, err := AppendRaw(ctx, acct, "INBOX", small, time.Now()); err != nil {
		t.Fatalf("APPEND under the quota: %v", err)
	}
	body := []byte("Subject: big\r\n\r\n" + strings.Repeat("x", 20<<10) + "\r\n")
	if _, err := AppendRaw(ctx, acct, "INBOX", body, time.Now()); err == nil || !strings.Contains(err.Error(), "OVERQUOTA") {
		t.Fatalf("APPEND over the quota = %v, want OVERQUOTA", err)
	}
	if err := d.SetQuota(ctx, acct, 100<<10); err != nil {
		t.Fatalf("SetQuota: %v\n%s", err, d.LogTail(20))
	}
	if _, err := AppendRaw(ctx, acct, "INBOX", body, time.Now()); err != nil {
		t.Fatalf("APPEND after the quota was raised: %v", err)
	}
	if msgs, err := ReadFolder(ctx, acct, "INBOX"); err != nil || len(msgs) != 2 {
		t.Errorf("INBOX: %d messages (%v), want 2", len(msgs), err)
	}
}
