package imapconn

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestRedact: the password and token go in clear and in their SASL forms, and a
// server text cut at its bound keeps no part of a secret that straddled the cut.
func TestRedact(t *testing.T) {
	acct := Account{Login: "alice@example.test", Password: "correct-horse-battery", OAuth2Token: "ya29.token-value"}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice@example.test\x00correct-horse-battery"))
	for _, s := range []string{
		"NO [AUTHENTICATIONFAILED] bad password correct-horse-battery",
		"BAD unexpected " + plain,
		"NO token ya29.token-value expired",
	} {
		got := acct.Redact(s)
		for _, secret := range []string{acct.Password, acct.OAuth2Token, plain} {
			if strings.Contains(got, secret) {
				t.Errorf("Redact(%q) = %q: still holds a secret", s, got)
			}
		}
		if !strings.Contains(got, "REDACTED") {
			t.Errorf("Redact(%q) = %q: nothing redacted", s, got)
		}
	}

	// The password starts a few characters before the 200-byte cut.
	echo := strings.Repeat("x", 195) + acct.Password + " and more"
	got := serverText(echo, acct)
	if strings.Contains(got, acct.Password[:5]) {
		t.Errorf("serverText kept the start of a password that straddled the cut: %q", got)
	}
	// Invisible characters inside an echoed secret do not hide it.
	hidden := "NO correct-horse\u200b-battery"
	if got := serverText(hidden, acct); strings.Contains(got, acct.Password) {
		t.Errorf("serverText(%q) = %q: the password shows once the invisible character is gone", hidden, got)
	}
}
