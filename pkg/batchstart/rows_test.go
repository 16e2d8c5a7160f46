package batchstart

import (
	"strings"
	"testing"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

func TestReadRows(t *testing.T) {
	const file = `# a comment
source_login, source_password, source_provider, destination_login, destination_password, destination_host, destination_port, destination_security, language
alice@gmail.com, app-password-1, gmail, alice@example.com, pw2, imap.example.com, 993, tls, fr

bob@old.example, pw3, ovh, bob@example.com, pw4, imap.example.com, 143, STARTTLS,
`
	rows, err := ReadRows(strings.NewReader(file))
	if err != nil {
		t.Fatalf("ReadRows: %v", err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	a := rows[0].Request
	if rows[0].Line != 3 || a.GetSource().GetProvider() != "gmail" || a.GetSource().GetPassword() != "app-password-1" ||
		a.GetDestination().GetPort() != 993 || a.GetDestination().GetSecurity() != imapcopyv1.Security_SECURITY_TLS ||
		a.GetOptions().GetLanguage() != "fr" {
		t.Errorf("row 1 = line %d %v", rows[0].Line, a)
	}
	if b := rows[1].Request; rows[1].Line != 5 || b.GetDestination().GetSecurity() != imapcopyv1.Security_SECURITY_STARTTLS || b.GetOptions() != nil {
		t.Errorf("row 2 = line %d %v", rows[1].Line, b)
	}
	// Without a provider, the host makes it "other".
	rows, err = ReadRows(strings.NewReader("source_login,source_password,source_host,destination_login,destination_password,destination_provider\na@x.example,p,imap.x.example,a@y.example,q,gmail\n"))
	if err != nil || rows[0].Request.GetSource().GetProvider() != "other" {
		t.Errorf("a row with a host and no provider: %v, %v", rows, err)
	}
}

// Errors name the line and the column, never a value: a value may be a password.
func TestReadRowsErrors(t *testing.T) {
	const secret = "Canary-Secret-91"
	const header = "source_login,source_password,source_provider,destination_login,destination_password,destination_provider\n"
	tests := []struct{ name, file, want string }{
		{"empty", "", "empty file"},
		{"unknown column", "source_login,source_pasword\n", `unknown column "source_pasword"`},
		{"no destination", "source_login,source_password\n", "no destination_login column"},
		{"no password", header + "a@x.example,,gmail,b@y.example," + secret + ",gmail\n", "line 2: source_password and source_oauth2_token are both empty"},
		{"no server", header + "a@x.example," + secret + ",,b@y.example,p,gmail\n", "line 2: source_provider and source_host are both empty"},
		{"bad port", "source_login,source_password,source_host,source_port,destination_login,destination_password,destination_provider\na@x.example," + secret + ",h.example,99999,b@y.example,p,gmail\n", "line 2: source_port is not a port number"},
		{"bad security", "source_login,source_password,source_host,source_security,destination_login,destination_password,destination_provider\na@x.example," + secret + ",h.example,ssl3,b@y.example,p,gmail\n", "line 2: source_security: use tls or starttls"},
		{"fields", header + "a@x.example," + secret + ",gmail\n", "line 2: 3 fields, the header has 6"},
		{"quote", header + `a@x.example,"` + secret + `,gmail,b@y.example,p,gmail` + "\n", "line 2"},
		{"same source twice", header + "a@x.example,p,gmail,b@y.example,q,gmail\nA@X.example,p,gmail,c@y.example,q,gmail\n", "line 3: source_login is the same as on line 2"},
	}
	for _, tt := range tests {
		_, err := ReadRows(strings.NewReader(tt.file))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows a value: %v", tt.name, err)
		}
	}
}
