package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"imapcopy.dev/pkg/imapconn"
)

// parseAccountURL reads imaps://USER@HOST[:PORT] (implicit TLS, port 993),
// imap://USER@HOST[:PORT] (STARTTLS required, port 143) or
// imap+plain://USER@HOST[:PORT] (no TLS, only with allowPlaintext). USER may
// be a full address (alice@example.com@imap.example.com, or with %40). A
// password in the URL is refused: it would show in the process list and the
// shell history.
func parseAccountURL(flagName, raw string, allowPlaintext bool) (imapconn.Account, error) {
	var acct imapconn.Account
	u, err := url.Parse(raw)
	if err != nil {
		return acct, fmt.Errorf("--%s %q is not a URL like imaps://user@imap.example.com:993: %w", flagName, raw, err)
	}
	switch u.Scheme {
	case "imaps":
		acct.Security, acct.Port = imapconn.SecurityTLS, 993
	case "imap":
		acct.Security, acct.Port = imapconn.SecurityStartTLS, 143
	case "imap+plain":
		if !allowPlaintext {
			return acct, fmt.Errorf("--%s uses imap+plain:// (no encryption, the password travels in clear): add --allow-plaintext if you really mean it", flagName)
		}
		acct.Security, acct.Port = imapconn.SecurityPlaintext, 143
	default:
		return acct, fmt.Errorf("--%s %q: the scheme must be imaps:// (TLS), imap:// (STARTTLS) or imap+plain://", flagName, raw)
	}
	if u.User == nil || u.User.Username() == "" {
		return acct, fmt.Errorf("--%s %q names no user: write %s://USER@HOST:PORT", flagName, raw, u.Scheme)
	}
	if _, ok := u.User.Password(); ok {
		return acct, fmt.Errorf("--%s holds a password: remove it from the URL and set IMAPCOPY_%s_PASSWORD or use --%s-password-file", flagName, strings.ToUpper(flagName), flagName)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return acct, fmt.Errorf("--%s %q: only %s://USER@HOST:PORT is understood (no path or query)", flagName, raw, u.Scheme)
	}
	acct.Login = u.User.Username()
	acct.Host = u.Hostname()
	// A percent-encoded CR, LF or NUL would end the IMAP command early.
	if strings.ContainsFunc(acct.Login+acct.Host, unicode.IsControl) {
		return acct, fmt.Errorf("--%s %q: the user or host holds a control character (CR, LF, NUL...): remove it", flagName, raw)
	}
	if acct.Host == "" {
		return acct, fmt.Errorf("--%s %q names no host", flagName, raw)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return acct, fmt.Errorf("--%s %q: bad port %q", flagName, raw, p)
		}
		acct.Port = n
	}
	return acct, nil
}

// readPassword returns the password from the environment variable or, if the
// variable is empty, from the file (its first line; a trailing newline is
// not part of the password).
func readPassword(side, envName, file string, getenv func(string) string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read the %s password file: %w", side, err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("the %s password file %s is empty", side, file)
		}
		return pw, nil
	}
	if pw := getenv(envName); pw != "" {
		return pw, nil
	}
	return "", fmt.Errorf("no password for the %s account: set %s or use --%s-password-file", side, envName, map[string]string{"source": "from", "destination": "to"}[side])
}

// parseSize reads a byte count: 1000, 25MB, 25M, 1.5GB, 512KiB (kB/MB/GB are
// decimal, KiB/MiB/GiB binary, K/M/G decimal like providers state limits).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
		{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"B", 1},
	}
	mult := 1.0
	upper := strings.ToUpper(t)
	for _, u := range units {
		if strings.HasSuffix(upper, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v*mult > 1<<53 {
		return 0, fmt.Errorf("%q is not a size like 25MB, 512KiB or 1000000", s)
	}
	return int64(v * mult), nil
}

// parseDate reads YYYY-MM-DD as midnight UTC.
func parseDate(s string) (time.Time, error) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date like 2024-01-31", s)
	}
	return t, nil
}
