package main

import (
	"strings"
	"testing"
)

// FuzzParseAccountURL: the parser never panics; an accepted URL gives a login and a host,
// a port in range, no CR, LF or NUL in the login or host, and plaintext only when allowed.
func FuzzParseAccountURL(f *testing.F) {
	for _, s := range []string{
		"imaps://alice@imap.example.com:993", "imap://alice%40example.com@imap.example.com",
		"imap+plain://u@127.0.0.1:1143", "imaps://u:pw@h", "imaps://u@[::1]:993", "imaps://u@h:0",
		"imaps://u@h:65536", "imaps://u%0d%0aA1%20DELETE%20INBOX@h", "imaps://u@h%00x", "imaps://@h", "",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, allowPlaintext bool) {
		acct, err := parseAccountURL("source", raw, allowPlaintext)
		if err != nil {
			if !strings.Contains(err.Error(), "--source") {
				t.Fatalf("error %q does not name the flag", err)
			}
			return
		}
		if acct.Login == "" || acct.Host == "" {
			t.Fatalf("%q accepted without login or host: %+v", raw, acct)
		}
		if acct.Port < 1 || acct.Port > 65535 {
			t.Fatalf("%q accepted with port %d", raw, acct.Port)
		}
		if strings.Contains(raw, "@") && strings.HasPrefix(raw, "imap+plain:") && !allowPlaintext {
			t.Fatalf("%q accepted without --allow-plaintext", raw)
		}
		for name, v := range map[string]string{"login": acct.Login, "host": acct.Host} {
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("%q accepted with CR, LF or NUL in the %s: %q", raw, name, v)
			}
		}
	})
}
