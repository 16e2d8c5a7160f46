package imapconn

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestIsOverQuota(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota, Text: "Quota exceeded (mailbox for user is full)"}, true},
		{fmt.Errorf("append: %w", &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Quota exceeded"}), true},
		{&imap.Error{Type: imap.StatusResponseTypeNo, Text: "Mailbox is full"}, true},
		{&imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "Mailbox doesn't exist"}, false},
		{&imap.Error{Type: imap.StatusResponseTypeBad, Text: "quota syntax"}, false},
		{errors.New("quota"), false},
		{nil, false},
	} {
		if got := IsOverQuota(tc.err); got != tc.want {
			t.Errorf("IsOverQuota(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestKindString(t *testing.T) {
	if got := KindAuth.String(); got != "auth" {
		t.Errorf("KindAuth.String() = %q, want auth", got)
	}
}

func TestAccountRedacts(t *testing.T) {
	acct := Account{Host: "h", Port: 1, Login: "bob", Password: "s3cret-pass", OAuth2Token: "tok-en-123"}
	for _, s := range []string{acct.String(), fmt.Sprint(acct), fmt.Sprintf("%+v", acct.LogValue())} {
		if strings.Contains(s, acct.Password) || strings.Contains(s, acct.OAuth2Token) {
			t.Errorf("%q contains a secret", s)
		}
	}
}
