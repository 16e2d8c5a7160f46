package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
)

func TestParseAccountURL(t *testing.T) {
	tests := []struct {
		in             string
		plain          bool
		want           imapconn.Account
		wantErrContain string
	}{
		{in: "imaps://alice@imap.example.com", want: imapconn.Account{Host: "imap.example.com", Port: 993, Security: imapconn.SecurityTLS, Login: "alice"}},
		{in: "imaps://alice@example.com@imap.example.com:1993", want: imapconn.Account{Host: "imap.example.com", Port: 1993, Security: imapconn.SecurityTLS, Login: "alice@example.com"}},
		{in: "imap://bob%40example.com@127.0.0.1:1143/", want: imapconn.Account{Host: "127.0.0.1", Port: 1143, Security: imapconn.SecurityStartTLS, Login: "bob@example.com"}},
		{in: "imap://bob@[::1]", want: imapconn.Account{Host: "::1", Port: 143, Security: imapconn.SecurityStartTLS, Login: "bob"}},
		{in: "imap+plain://bob@h", plain: true, want: imapconn.Account{Host: "h", Port: 143, Security: imapconn.SecurityPlaintext, Login: "bob"}},
		{in: "imap+plain://bob@h", wantErrContain: "--allow-plaintext"},
		{in: "imaps://alice:secret@imap.example.com", wantErrContain: "IMAPCOPY_FROM_PASSWORD"},
		{in: "https://alice@imap.example.com", wantErrContain: "scheme"},
		{in: "imaps://imap.example.com", wantErrContain: "no user"},
		{in: "imaps://alice@imap.example.com:99999", wantErrContain: "port"},
		{in: "imaps://alice@imap.example.com/INBOX", wantErrContain: "no path"},
	}
	for _, tt := range tests {
		got, err := parseAccountURL("from", tt.in, tt.plain)
		if tt.wantErrContain != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErrContain) {
				t.Errorf("parseAccountURL(%q) error = %v, want one containing %q", tt.in, err, tt.wantErrContain)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("parseAccountURL(%q) error shows the password: %v", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseAccountURL(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"1000", 1000}, {"25MB", 25_000_000}, {"25mb", 25_000_000}, {"25M", 25_000_000},
		{"1.5GB", 1_500_000_000}, {"512KiB", 512 << 10}, {"20MiB", 20 << 20}, {"10 kB", 10_000}, {"7B", 7},
	}
	for _, tt := range tests {
		if got, err := parseSize(tt.in); err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "MB", "-1", "0", "ten", "25XB", "1e30"} {
		if got, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", bad, got)
		}
	}
}

func TestParseDate(t *testing.T) {
	got, err := parseDate("2024-02-29")
	if want := time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC); err != nil || !got.Equal(want) {
		t.Errorf("parseDate = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"2024-13-01", "01/02/2024", ""} {
		if _, err := parseDate(bad); err == nil {
			t.Errorf("parseDate(%q): want an error", bad)
		}
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	env := func(v string) func(string) string { return func(string) string { return v } }

	if got, err := readPassword("source", "IMAPCOPY_FROM_PASSWORD", file, env("fromenv")); err != nil || got != "s3cret" {
		t.Errorf("from file = %q, %v; want s3cret", got, err)
	}
	if got, err := readPassword("source", "IMAPCOPY_FROM_PASSWORD", "", env("fromenv")); err != nil || got != "fromenv" {
		t.Errorf("from env = %q, %v; want fromenv", got, err)
	}
	if _, err := readPassword("source", "IMAPCOPY_FROM_PASSWORD", "", env("")); err == nil || !strings.Contains(err.Error(), "--from-password-file") {
		t.Errorf("no password: error = %v, want one naming --from-password-file", err)
	}
	if _, err := readPassword("destination", "IMAPCOPY_TO_PASSWORD", empty, env("")); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: error = %v, want one saying it is empty", err)
	}
}
