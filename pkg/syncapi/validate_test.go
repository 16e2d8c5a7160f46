package syncapi

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

func TestCheckAddress(t *testing.T) {
	tests := []struct {
		addr string
		want string // "" when valid, else a part of the message
	}{
		{"bob@example.com", ""},
		{"bob.smith+tag@mail.example.co.uk", ""},
		{"élodie@exemple.fr", ""},
		{"bob@bücher.example", ""},
		{"", "missing"},
		{"bob", "not an email address: expected user@domain"},
		{"@example.com", "not an email address"},
		{"bob@", "not an email address"},
		{"bob@@example.com", "not an email address"},
		{"bob smith@example.com", "white space"},
		{"bob@exa mple.com", "white space"},
		{"bob@example..com", "not a valid domain"},
		{"bob@-example.com", "not a valid domain"},
		{"bob@example.com\r\nA1 LOGOUT", "CR, LF or NUL"},
		{"bob\x00@example.com", "CR, LF or NUL"},
		{"bob\t@example.com", "control character"},
		{".bob@example.com", "not an email address"},
		{"bo..b@example.com", "not an email address"},
		{"<bob@example.com>", "not an email address"},
		{strings.Repeat("a", 65) + "@example.com", "before @ is too long"},
		{"bob@" + strings.Repeat("a", 250) + ".com", "too long"},
		{"bob@exa\xffmple.com", "UTF-8"},
	}
	for _, tt := range tests {
		err := checkAddress("source.login", tt.addr)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("checkAddress(%q) = %v, want nil", tt.addr, err)
		case tt.want != "" && err == nil:
			t.Errorf("checkAddress(%q) = nil, want an error containing %q", tt.addr, tt.want)
		case tt.want != "" && !strings.Contains(err.Error(), tt.want):
			t.Errorf("checkAddress(%q) = %q, want it to contain %q", tt.addr, err, tt.want)
		case err != nil && !strings.HasPrefix(err.Error(), "source.login: "):
			t.Errorf("checkAddress(%q) = %q, want it to name the field", tt.addr, err)
		}
	}
}

func TestCheckHost(t *testing.T) {
	tests := []struct {
		host string
		ok   bool
	}{
		{"imap.example.com", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"[2001:db8::1]", true},
		{"imap.gmail.com.", true},
		{"imap_1.example.com", true},
		{"fe80::1%eth0", false},
		{"imap.example.com:993", false},
		{"imaps://imap.example.com", false},
		{"imap..example.com", false},
		{"imap example.com", false},
		{"imap.example.com\n", false},
		{strings.Repeat("a.", 127) + "com", false},
		{"2130706433", false},
		{"0177.0.0.1", false},
		{"0x7f000001", false},
		{"127.1", false},
		{"1e100.net", true},
	}
	for _, tt := range tests {
		err := checkHost("source.host", tt.host)
		if (err == nil) != tt.ok {
			t.Errorf("checkHost(%q) = %v, want ok=%v", tt.host, err, tt.ok)
		}
	}
}

func TestCheckAccount(t *testing.T) {
	good := func() *imapcopyv1.Account {
		return &imapcopyv1.Account{Provider: "other", Login: "bob@example.com", Password: "secret", Host: "imap.example.com", Port: 993, Security: imapcopyv1.Security_SECURITY_TLS}
	}
	src := imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE
	dst := imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION
	tests := []struct {
		name   string
		change func(*imapcopyv1.Account)
		role   imapcopyv1.AccountRole
		want   string
	}{
		{"good source", func(*imapcopyv1.Account) {}, src, ""},
		{"login with spaces around", func(a *imapcopyv1.Account) { a.Login = "  Bob@Example.com " }, src, ""},
		{"oauth instead of password", func(a *imapcopyv1.Account) { a.Password = ""; a.Oauth2AccessToken = "ya29.token" }, src, ""},
		{"password with spaces and symbols", func(a *imapcopyv1.Account) { a.Password = `p a"s\s{3}` }, src, ""},
		{"exchange shared mailbox login as destination", func(a *imapcopyv1.Account) { a.Login = `me@example.com\shared@example.com` }, dst, ""},
		{"no login", func(a *imapcopyv1.Account) { a.Login = "" }, src, "x.login: missing"},
		{"destination without login", func(a *imapcopyv1.Account) { a.Login = " " }, dst, "x.login: missing"},
		{"source login not an address", func(a *imapcopyv1.Account) { a.Login = "bob" }, src, "x.login: not an email address: expected user@domain"},
		{"no secret", func(a *imapcopyv1.Account) { a.Password = "" }, src, "x.password: missing"},
		{"password with CRLF", func(a *imapcopyv1.Account) { a.Password = "pw\r\nA1 DELETE INBOX" }, src, "x.password: contains CR, LF or NUL"},
		{"password too long", func(a *imapcopyv1.Account) { a.Password = strings.Repeat("p", maxPasswordLen+1) }, src, "x.password: too long"},
		{"token with newline", func(a *imapcopyv1.Account) { a.Oauth2AccessToken = "tok\nen" }, src, "x.oauth2_access_token"},
		{"provider with NUL", func(a *imapcopyv1.Account) { a.Provider = "gm\x00ail" }, src, "x.provider"},
		{"bad host", func(a *imapcopyv1.Account) { a.Host = "imap.example.com:993" }, src, "x.host: not a host name"},
		{"port out of range", func(a *imapcopyv1.Account) { a.Port = 70000 }, src, "x.port: out of range"},
		{"unknown security", func(a *imapcopyv1.Account) { a.Security = 42 }, src, "x.security: unknown value"},
	}
	for _, tt := range tests {
		a := good()
		tt.change(a)
		err := checkAccount("x", a, tt.role)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: checkAccount = %v, want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: checkAccount = %v, want an error containing %q", tt.name, err, tt.want)
		}
		if err != nil {
			if got := status.Code(err); got != codes.InvalidArgument {
				t.Errorf("%s: code = %v, want InvalidArgument", tt.name, got)
			}
			if a.Password != "" && strings.Contains(err.Error(), a.Password) {
				t.Errorf("%s: error %q contains the password", tt.name, err)
			}
		}
	}
	if err := checkAccount("source", nil, src); err == nil || !strings.Contains(err.Error(), "source: missing") {
		t.Errorf("checkAccount(nil) = %v, want source: missing", err)
	}
}

func TestCheckOptions(t *testing.T) {
	many := make([]string, maxPatterns+1)
	for i := range many {
		many[i] = "x"
	}
	tests := []struct {
		name string
		opts *imapcopyv1.SyncOptions
		want string
	}{
		{"nil", nil, ""},
		{"patterns", &imapcopyv1.SyncOptions{IncludeFolders: []string{"INBOX", "Archives/*", "Sent Items"}, ExcludeFolders: []string{"Trash"}}, ""},
		{"since", &imapcopyv1.SyncOptions{Since: timestamppb.New(timestamppb.Now().AsTime())}, ""},
		{"empty pattern", &imapcopyv1.SyncOptions{ExcludeFolders: []string{"Trash", ""}}, "options.exclude_folders[1]: empty"},
		{"pattern with LF", &imapcopyv1.SyncOptions{IncludeFolders: []string{"a\nb"}}, "options.include_folders[0]: contains CR, LF or NUL"},
		{"too many patterns", &imapcopyv1.SyncOptions{IncludeFolders: many}, "options.include_folders: too many patterns"},
		{"too many connections", &imapcopyv1.SyncOptions{MaxConnections: 1000}, "options.max_connections"},
		{"bad since", &imapcopyv1.SyncOptions{Since: &timestamppb.Timestamp{Seconds: -1 << 62}}, "options.since"},
	}
	for _, tt := range tests {
		err := checkOptions(tt.opts)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: checkOptions = %v, want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: checkOptions = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestCheckSourceEmail(t *testing.T) {
	got, err := checkSourceEmail("  Bob.Smith@Example.COM ")
	if err != nil || got != "bob.smith@example.com" {
		t.Errorf("checkSourceEmail = %q, %v, want bob.smith@example.com, nil", got, err)
	}
	if _, err := checkSourceEmail("nobody"); status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(err.Error(), "source_email: ") {
		t.Errorf("checkSourceEmail(nobody) = %v, want InvalidArgument naming source_email", err)
	}
}
