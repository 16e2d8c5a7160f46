package mailcopy

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestBuildReport(t *testing.T) {
	r := &Result{
		Started:  time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC),
		Duration: 83 * time.Second,
		Totals:   Counts{Total: 1234, Copied: 1200, Present: 30, Failed: 2, Skipped: 2, Bytes: 12_345_678},
		Folders: []FolderResult{
			{Source: "INBOX", Destination: "INBOX", Counts: Counts{Total: 1000, Copied: 998, Failed: 2}},
			{Source: "Envoyés", Destination: "Sent", Created: true, Counts: Counts{Total: 234, Copied: 202, Present: 30, Skipped: 2}},
			{Source: "[Gmail]/All Mail", Destination: "Archive", ArchiveOnly: true, Counts: Counts{Total: 3, Copied: 3}},
		},
		Failures: []MessageIssue{{Folder: "INBOX", UID: 17, Size: 30_000_000, Reason: "refused by the destination: message too large"}},
		Skipped:  []MessageIssue{{Folder: "Envoyés", UID: 3, Size: 40_000_000, Reason: "larger than the maximum message size"}},
		Renames:  []Rename{{Source: "Releases/v1.2", Destination: "Releases_v1.2", Reason: "contains the destination's separator"}},
	}
	raw := buildReport(r, reportInfo{
		source: "alice@old.example", destination: "alice@new.example",
		from: "imapcopy@new.example", to: "alice@new.example",
		messageID: "report.1@imapcopy.invalid", now: time.Date(2025, 5, 1, 10, 1, 23, 0, time.UTC),
	})

	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Errorf("report has a bare LF line end")
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("report does not parse as a message: %v", err)
	}
	for name, want := range map[string]string{
		"From":                      "imapcopy <imapcopy@new.example>",
		"To":                        "<alice@new.example>",
		"Message-Id":                "<report.1@imapcopy.invalid>",
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
		ReportHeader:                "1",
	} {
		if got := msg.Header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if d, err := msg.Header.Date(); err != nil || !d.Equal(time.Date(2025, 5, 1, 10, 1, 23, 0, time.UTC)) {
		t.Errorf("Date = %v, %v; want 2025-05-01 10:01:23 UTC", d, err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || !strings.Contains(subject, "2 messages not copied") {
		t.Errorf("Subject = %q (%v), want it to say 2 messages not copied", subject, err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("body is not valid quoted-printable: %v", err)
	}
	for _, want := range []string{
		"alice@old.example", "1,234", "1m23s", "12.3 MB",
		"Envoyés", "created",
		`"Releases/v1.2" -> "Releases_v1.2"`,
		"INBOX   17   30.0 MB  refused by the destination: message too large",
		"larger than the maximum message size",
		"archived mail only",
		"[Gmail]/All Mail → Archive: 3 archived messages (messages only in All Mail)",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("report body lacks %q:\n%s", want, body)
		}
	}
}

func TestNum(t *testing.T) {
	for in, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := num(in); got != want {
			t.Errorf("num(%d) = %q, want %q", in, got, want)
		}
	}
}
