package mailcopy

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"reflect"
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

// TestReportLanguages writes the report in each language: the subject and the body
// are in that language, and every wording takes the arguments the English one does.
func TestReportLanguages(t *testing.T) {
	verbs := func(s string) string {
		var v []string
		for i := 0; i+1 < len(s); i++ {
			if s[i] == '%' {
				v = append(v, s[i:i+2])
				i++
			}
		}
		return strings.Join(v, "")
	}
	en := reflect.ValueOf(*reportTexts["en"])
	for _, lang := range ReportLanguages {
		tx := reflect.ValueOf(*reportTexts[lang])
		for i := range en.NumField() {
			name := en.Type().Field(i).Name
			if en.Field(i).Kind() == reflect.String {
				if got, want := verbs(tx.Field(i).String()), verbs(en.Field(i).String()); got != want || tx.Field(i).String() == "" {
					t.Errorf("%s.%s = %q: verbs %q, want %q as in English", lang, name, tx.Field(i).String(), got, want)
				}
			} else if tx.Field(i).Len() != en.Field(i).Len() {
				t.Errorf("%s.%s has %d entries, want %d", lang, name, tx.Field(i).Len(), en.Field(i).Len())
			}
		}
	}

	r := &Result{
		Totals:   Counts{Total: 3, Copied: 2, Failed: 1},
		Folders:  []FolderResult{{Source: "INBOX", Destination: "INBOX", Counts: Counts{Total: 3, Copied: 2, Failed: 1}}},
		Failures: []MessageIssue{{Folder: "INBOX", UID: 7, Size: 10, Reason: "refused"}},
	}
	for lang, want := range map[string][]string{
		"fr": {"1 messages non copiés", "Rapport imapcopy", "Résultat", "Messages non copiés"},
		"pl": {"nie skopiowano 1 wiadomości", "Raport imapcopy", "Wynik", "Wiadomości nieskopiowane"},
		"":   {"1 messages not copied", "imapcopy report", "Outcome", "Messages not copied"},
	} {
		raw := buildReport(r, reportInfo{source: "a@old.example", destination: "a@new.example", from: "x@new.example",
			to: "a@new.example", messageID: "m@x", now: time.Now(), text: textFor(lang)})
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		body, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
		text := subject + "\n" + string(body)
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("language %q: the report lacks %q:\n%s", lang, w, text)
			}
		}
	}
	for tag, want := range map[string]string{"fr-FR": "fr", "PL": "pl", "en_GB": "en", "": "en"} {
		if got, ok := ReportLanguage(tag); !ok || got != want {
			t.Errorf("ReportLanguage(%q) = %q, %v; want %q", tag, got, ok, want)
		}
	}
	if _, ok := ReportLanguage("de"); ok {
		t.Errorf("ReportLanguage(de) accepted a language the report does not have")
	}
}
