package imapconn

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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
		// Gmail's bandwidth limit comes under OVERQUOTA: the account is not full.
		{&imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota, Text: "Account exceeded command or bandwidth limits. (Failure)"}, false},
		{&imap.Error{Type: imap.StatusResponseTypeBad, Text: "quota syntax"}, false},
		{errors.New("quota"), false},
		{nil, false},
	} {
		if got := IsOverQuota(tc.err); got != tc.want {
			t.Errorf("IsOverQuota(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestThrottled(t *testing.T) {
	no := func(code, text string) error {
		return fmt.Errorf("append: %w", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCode(code), Text: text})
	}
	for _, tc := range []struct {
		err  error
		ok   bool
		wait time.Duration
	}{
		{no("THROTTLED", "Request is throttled. Suggested Backoff Time: 2000 milliseconds"), true, 2 * time.Second},
		{no("", "Request is throttled. Suggested Backoff Time: 45 seconds"), true, 45 * time.Second},
		{no("THROTTLED", "Request is throttled. Suggested Backoff Time: 99999999999 milliseconds"), true, time.Hour},
		{no("THROTTLED", "slow down"), true, 0},
		{no("OVERQUOTA", "Account exceeded command or bandwidth limits. (Failure)"), true, 0},
		{no("ALERT", "Account exceeded bandwidth limits"), true, 0},
		{no("OVERQUOTA", "Quota exceeded"), false, 0},
		{&imap.Error{Type: imap.StatusResponseTypeBad, Text: "throttled"}, false, 0},
		{errors.New("throttled"), false, 0},
		{nil, false, 0},
	} {
		wait, ok := Throttled(tc.err)
		if ok != tc.ok || wait != tc.wait {
			t.Errorf("Throttled(%v) = %v, %v; want %v, %v", tc.err, wait, ok, tc.wait, tc.ok)
		}
	}
}

func TestTooManyConnections(t *testing.T) {
	status := func(typ imap.StatusResponseType, code, text string) error {
		return fmt.Errorf("log in: %w", &imap.Error{Type: typ, Code: imap.ResponseCode(code), Text: text})
	}
	for _, tc := range []struct {
		err error
		ok  bool
	}{
		{status("BYE", "UNAVAILABLE", "Too many simultaneous connections. (Failure)"), true},                                 // Gmail
		{status("NO", "LIMIT", "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2)"), true}, // Dovecot
		{status("BYE", "", "Too many connections from your IP address"), true},                                               // Courier
		{status("NO", "", "Connection limit reached"), true},
		{status("NO", "LIMIT", "Too many flags"), false},
		{status("NO", "UNAVAILABLE", "Server Unavailable. 15"), false},
		{errors.New("too many connections"), false}, // not the server's words
		{nil, false},
	} {
		if got := TooManyConnections(tc.err); got != tc.ok {
			t.Errorf("TooManyConnections(%v) = %v, want %v", tc.err, got, tc.ok)
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
