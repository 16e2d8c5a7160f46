package syncapi_test

import (
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/syncapi"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

func TestListProviders(t *testing.T) {
	e := newEnv(t, "redis")
	ids := func(role imapcopyv1.AccountRole) []string {
		resp, err := e.client.ListProviders(e.ctx(), &imapcopyv1.ListProvidersRequest{Role: role})
		if err != nil {
			t.Fatalf("ListProviders(%v): %v", role, err)
		}
		var ids []string
		for _, p := range resp.GetProviders() {
			ids = append(ids, p.GetId())
		}
		return ids
	}
	all := ids(imapcopyv1.AccountRole_ACCOUNT_ROLE_UNSPECIFIED)
	for _, want := range []string{"gmail", "aol", "yahoo", "free", "sfr", "laposte", "orange", "ovh-hosting", "exchange-private", "exchange-25gb", "other"} {
		if !slices.Contains(all, want) {
			t.Errorf("ListProviders() = %v, want it to contain %q", all, want)
		}
	}
	if src := ids(imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE); slices.Contains(src, "exchange-25gb") || !slices.Contains(src, "gmail") {
		t.Errorf("ListProviders(SOURCE) = %v, want gmail and not exchange-25gb (a destination only)", src)
	}
	if dst := ids(imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION); !slices.Contains(dst, "exchange-25gb") {
		t.Errorf("ListProviders(DESTINATION) = %v, want exchange-25gb", dst)
	}
	_, err := e.client.ListProviders(e.ctx(), &imapcopyv1.ListProvidersRequest{Role: 9})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("ListProviders(role 9) = %v, want InvalidArgument", err)
	}
}

func TestTestAccount(t *testing.T) {
	e := newEnv(t, "redis")
	u := newUser(t)
	mb := imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{{Raw: []byte("Subject: one\r\n\r\nhello\r\n")}, {Raw: []byte("Subject: two\r\n\r\nhello again\r\n")}}},
		{Name: "Sent", SpecialUse: `\Sent`, Messages: []imaptest.Message{{Raw: []byte("Subject: sent\r\n\r\nbye\r\n")}}},
		{Name: "Projects/2024"},
	}}
	if err := imaptest.Load(e.ctx(), u.acct, mb); err != nil {
		t.Fatalf("load: %v", err)
	}

	resp, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: u.proto(), Role: imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE})
	if err != nil {
		t.Fatalf("TestAccount: %v", err)
	}
	if !resp.GetOk() {
		t.Fatalf("TestAccount = not ok (%v: %s), want ok", resp.GetFailure(), resp.GetMessage())
	}
	if got := resp.GetMessageCount(); got != 3 {
		t.Errorf("message_count = %d, want 3", got)
	}
	if resp.GetTotalBytes() == 0 {
		t.Errorf("total_bytes = 0, want the size of the 3 messages")
	}
	if got := resp.GetFolderCount(); got < 4 {
		t.Errorf("folder_count = %d, want at least 4 (INBOX, Sent, Projects, Projects/2024)", got)
	}
	if resp.GetSeparator() != "/" || resp.GetNamespacePrefix() != "" {
		t.Errorf("separator, prefix = %q, %q, want \"/\", \"\"", resp.GetSeparator(), resp.GetNamespacePrefix())
	}
	var sent string
	for _, f := range resp.GetSpecialUseFolders() {
		if f.GetAttribute() == `\Sent` {
			sent = f.GetName()
		}
	}
	if sent != "Sent" {
		t.Errorf("special-use folders = %v, want Sent as \\Sent", resp.GetSpecialUseFolders())
	}
	if !slices.Contains(resp.GetCapabilities(), "IMAP4rev1") {
		t.Errorf("capabilities = %v, want IMAP4rev1 among them", resp.GetCapabilities())
	}
	if resp.GetServerId()["name"] != "Dovecot" {
		t.Errorf("server_id = %v, want name Dovecot", resp.GetServerId())
	}

	// STARTTLS on the plain port works too.
	st := dovecot.StartTLS(u.acct)
	acct := u.proto()
	acct.Port, acct.Security = uint32(st.Port), imapcopyv1.Security_SECURITY_STARTTLS
	resp, err = e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: acct, Role: imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION})
	if err != nil || !resp.GetOk() {
		t.Errorf("TestAccount(STARTTLS) = %v, %v, want ok", resp, err)
	}
}

func TestTestAccountFailures(t *testing.T) {
	e := newEnv(t, "redis")
	u := newUser(t)
	dst := imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION
	closedPort := func() uint32 {
		// A port nothing listens on: listen, note, close.
		l, err := netListen()
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return uint32(l.Addr().(interface{ AddrPort() netipAddrPort }).AddrPort().Port())
	}()
	tests := []struct {
		name    string
		acct    func() *imapcopyv1.Account
		failure imapcopyv1.TestFailure
	}{
		{"wrong password", func() *imapcopyv1.Account { return u.withPassword("not-the-password") }, imapcopyv1.TestFailure_TEST_FAILURE_AUTH_FAILED},
		{"unknown user", func() *imapcopyv1.Account {
			a := u.proto()
			a.Login = "nobody-here@example.test"
			return a
		}, imapcopyv1.TestFailure_TEST_FAILURE_AUTH_FAILED},
		{"nothing listens", func() *imapcopyv1.Account {
			a := u.proto()
			a.Port = closedPort
			return a
		}, imapcopyv1.TestFailure_TEST_FAILURE_UNREACHABLE},
		{"TLS to the plain port", func() *imapcopyv1.Account {
			a := u.proto()
			a.Port = uint32(dovecot.StartTLS(u.acct).Port)
			return a
		}, imapcopyv1.TestFailure_TEST_FAILURE_TLS_FAILED},
	}
	for _, tt := range tests {
		resp, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: tt.acct(), Role: dst})
		if err != nil {
			t.Errorf("%s: TestAccount error %v, want an answer", tt.name, err)
			continue
		}
		if resp.GetOk() || resp.GetFailure() != tt.failure {
			t.Errorf("%s: TestAccount = ok %v, %v (%s), want %v", tt.name, resp.GetOk(), resp.GetFailure(), resp.GetMessage(), tt.failure)
		}
		if resp.GetMessage() == "" {
			t.Errorf("%s: empty message, want one a person can act on", tt.name)
		}
	}
}

func TestTestAccountQuota(t *testing.T) {
	e := newEnv(t, "redis")
	u := newUser(t, imaptest.WithQuota(10<<20))
	resp, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: u.proto(), Role: imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION})
	if err != nil || !resp.GetOk() {
		t.Fatalf("TestAccount = %v, %v, want ok", resp, err)
	}
	if got := resp.GetQuota().GetLimitBytes(); got != 10<<20 {
		t.Errorf("quota limit = %d, want %d", got, 10<<20)
	}

	full := newUser(t, imaptest.WithQuota(2048))
	for range 2 {
		if _, err := imaptest.AppendRaw(e.ctx(), full.acct, "INBOX", []byte("Subject: filler\r\n\r\n"+strings.Repeat("x", 1000)+"\r\n"), time.Now()); err != nil {
			t.Fatalf("fill the destination: %v", err)
		}
	}
	resp, err = e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: full.proto(), Role: imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION})
	if err != nil {
		t.Fatalf("TestAccount(full): %v", err)
	}
	if resp.GetOk() || resp.GetFailure() != imapcopyv1.TestFailure_TEST_FAILURE_OVER_QUOTA {
		t.Errorf("TestAccount(full destination) = ok %v, %v (%s), quota %v, want OVER_QUOTA", resp.GetOk(), resp.GetFailure(), resp.GetMessage(), resp.GetQuota())
	}
}

// An IMAP server whose certificate the api does not trust fails the test with a TLS
// failure.
func TestTestAccountUntrustedCertificate(t *testing.T) {
	e := newEnv(t, "redis", withOptions(func(o *syncapi.Options) { o.RootCAs = x509.NewCertPool() }))
	u := newUser(t)
	resp, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: u.proto()})
	if err != nil {
		t.Fatalf("TestAccount: %v", err)
	}
	if resp.GetOk() || resp.GetFailure() != imapcopyv1.TestFailure_TEST_FAILURE_TLS_FAILED {
		t.Errorf("TestAccount = ok %v, %v (%s), want TLS_FAILED", resp.GetOk(), resp.GetFailure(), resp.GetMessage())
	}
	// The customer may accept the certificate for such a server.
	acct := u.proto()
	acct.InsecureSkipVerify = true
	resp, err = e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: acct})
	if err != nil || !resp.GetOk() {
		t.Errorf("TestAccount(insecure_skip_verify) = %v, %v, want ok", resp, err)
	}
}

func TestTestAccountInvalid(t *testing.T) {
	e := newEnv(t, "redis")
	u := newUser(t)
	src := imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE
	tests := []struct {
		name   string
		change func(*imapcopyv1.Account)
		role   imapcopyv1.AccountRole
		want   string
	}{
		{"no account", nil, src, "account: missing"},
		{"source login not an address", func(a *imapcopyv1.Account) { a.Login = "bob" }, src, "account.login: not an email address: expected user@domain"},
		{"no password", func(a *imapcopyv1.Account) { a.Password = "" }, src, "account.password: missing"},
		{"CRLF in password", func(a *imapcopyv1.Account) { a.Password = "x\r\nA1 LOGOUT" }, src, "account.password: contains CR, LF or NUL"},
		{"unknown provider", func(a *imapcopyv1.Account) { a.Provider = "compuserve" }, src, "account.provider: unknown provider"},
		{"no provider", func(a *imapcopyv1.Account) { a.Provider = "" }, src, "account.provider: required"},
		{"other without host", func(a *imapcopyv1.Account) { a.Host = "" }, src, "account.host: required"},
		{"preset with another host", func(a *imapcopyv1.Account) { a.Provider = "gmail" }, src, "account.host: Gmail uses the server imap.gmail.com"},
		{"destination-only preset as source", func(a *imapcopyv1.Account) { a.Provider = "exchange-25gb" }, src, "account.provider:"},
		{"plaintext", func(a *imapcopyv1.Account) { a.Security = imapcopyv1.Security_SECURITY_PLAINTEXT }, src, "account.security: IMAP without encryption is not allowed here"},
		{"host with port", func(a *imapcopyv1.Account) { a.Host = "127.0.0.1:993" }, src, "account.host"},
		{"bad role", func(*imapcopyv1.Account) {}, 7, "role: unknown value"},
	}
	for _, tt := range tests {
		var acct *imapcopyv1.Account
		if tt.change != nil {
			acct = u.proto()
			tt.change(acct)
		}
		_, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: acct, Role: tt.role})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.want) {
			t.Errorf("%s: TestAccount = %v, want InvalidArgument containing %q", tt.name, err, tt.want)
		}
	}
}

// errorInfo returns the ErrorInfo detail of err.
func errorInfo(err error) *errdetails.ErrorInfo {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

var _ = time.Second
