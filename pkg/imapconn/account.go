package imapconn

import (
	"crypto/x509"
	"fmt"
	"log/slog"
)

// Security says how a connection to an IMAP server is secured.
type Security int

const (
	SecurityTLS       Security = iota + 1 // implicit TLS
	SecurityStartTLS                      // STARTTLS required; never falls back to plaintext
	SecurityPlaintext                     // only when the caller explicitly allows it
)

// Account names an IMAP account and how to reach it. Password and OAuth2Token are
// secrets: String and LogValue redact them.
type Account struct {
	Host     string
	Port     int
	Security Security

	Login, Password string
	OAuth2Token     string // if set: AUTHENTICATE XOAUTH2 instead of the password

	InsecureSkipVerify bool
	RootCAs            *x509.CertPool // nil: system roots (the CA-file option loads into this)
}

// String describes the account without its secrets.
func (a Account) String() string {
	return fmt.Sprintf("%s@%s:%d (security=%d password=%s oauth2=%s)",
		a.Login, a.Host, a.Port, a.Security, redact(a.Password), redact(a.OAuth2Token))
}

// LogValue logs the account without its secrets.
func (a Account) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("login", a.Login),
		slog.String("host", a.Host),
		slog.Int("port", a.Port),
		slog.Int("security", int(a.Security)),
		slog.String("password", redact(a.Password)),
		slog.String("oauth2_token", redact(a.OAuth2Token)),
	)
}

func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return "REDACTED"
}
