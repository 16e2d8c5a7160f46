package syncapi

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// FuzzCheckAccount: validation never panics, every refusal is an InvalidArgument naming a
// field of the account, and an accepted account has no CR, LF or NUL in the login, host,
// password or token it goes on with (they would end an IMAP command early) and a port in
// range. The login and host are trimmed of surrounding white space (a pasted "alice\r\n"
// is alice), so the property holds for the trimmed values the service uses.
func FuzzCheckAccount(f *testing.F) {
	f.Add("alice@example.com", "secret", "imap.example.com", uint32(993), "", true)
	f.Add("bob", "pa\"ss{3}", "127.0.0.1", uint32(0), "", false)
	f.Add("a@b.c\r\nA1 DELETE INBOX", "x", "[::1]", uint32(70000), "", true)
	f.Add("user@domain\\shared@domain", "", "h\x00st", uint32(143), "tok en", false)
	f.Add("\xff@example.com", "\xfe", "éxample.com", uint32(1), "", true)
	f.Fuzz(func(t *testing.T, login, password, host string, port uint32, token string, source bool) {
		role := imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION
		if source {
			role = imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE
		}
		a := &imapcopyv1.Account{Login: login, Password: password, Host: host, Port: port, Oauth2AccessToken: token}
		err := checkAccount("source", a, role)
		if err != nil {
			var inv *invalid
			if !errors.As(err, &inv) || status.Code(err) != codes.InvalidArgument {
				t.Fatalf("refusal %v is not an InvalidArgument", err)
			}
			if !strings.Contains(err.Error(), "source") {
				t.Fatalf("refusal %q does not name the field", err)
			}
			return
		}
		used := map[string]string{"login": strings.TrimSpace(login), "host": strings.TrimSpace(host), "password": password, "token": token}
		for name, v := range used {
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("accepted a %s with CR, LF or NUL: %q", name, v)
			}
		}
		if port > 65535 {
			t.Fatalf("accepted port %d", port)
		}
	})
}
