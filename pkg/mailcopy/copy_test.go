package mailcopy_test

import (
	"bytes"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strings"
	"testing"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

var flavourPairs = []struct {
	name     string
	src, dst imaptest.Flavour
}{
	{"slash to slash", imaptest.FlavourSlash, imaptest.FlavourSlash},
	{"dot to dot", imaptest.FlavourDot, imaptest.FlavourDot},
	{"slash to dot", imaptest.FlavourSlash, imaptest.FlavourDot},
	{"dot to slash", imaptest.FlavourDot, imaptest.FlavourSlash},
}

// TestCopy copies a generated mailbox (nested and non-ASCII folders,
// special-use folders, an empty folder, flags and keywords, messages without
// Message-ID, identical duplicates) within and across flavours; checks every
// invariant with the harness's checker, that the source is unchanged, that
// the report is in the destination INBOX, and that a rerun appends nothing.
func TestCopy(t *testing.T) {
	for i, pair := range flavourPairs {
		t.Run(pair.name, func(t *testing.T) {
			t.Parallel()
			src := servers[pair.src].AddUser(t)
			dst := servers[pair.dst].AddUser(t)
			mb := imaptest.Generate(int64(100+i), imaptest.Spec{Count: 150})
			mustLoad(t, src, mb)
			srcSnap := mustSnapshot(t, src)

			res := mustCopy(t, testConfig(t, src, dst))
			if !res.Complete() || res.Totals.Copied != mb.Count() || res.Totals.Total != mb.Count() {
				t.Errorf("first copy: totals %+v complete=%v, want %d copied", res.Totals, res.Complete(), mb.Count())
			}
			if !res.Report {
				t.Errorf("first copy: no report: %s", res.ReportError)
			}
			mustCheck(t, src, dst, imaptest.CheckOptions{})
			if err := srcSnap.Unchanged(testContext(t), src); err != nil {
				t.Errorf("source changed: %v", err)
			}
			checkReport(t, dst, res)

			// A rerun of the unchanged mailbox appends nothing.
			dstSnap := mustSnapshot(t, dst)
			cfg := testConfig(t, src, dst)
			cfg.NoReport = true
			again := mustCopy(t, cfg)
			if again.Totals.Copied != 0 || again.Totals.Present != mb.Count() {
				t.Errorf("rerun: totals %+v, want 0 copied, %d present", again.Totals, mb.Count())
			}
			if err := dstSnap.Unchanged(testContext(t), dst); err != nil {
				t.Errorf("rerun changed the destination: %v", err)
			}
			mustCheck(t, src, dst, imaptest.CheckOptions{})
		})
	}
}

// checkReport finds the report in the destination INBOX: unseen, well-formed.
func checkReport(t *testing.T, dst imapconn.Account, res *mailcopy.Result) {
	t.Helper()
	msgs, err := imaptest.ReadFolder(testContext(t), dst, "INBOX")
	if err != nil {
		t.Fatalf("read destination INBOX: %v", err)
	}
	var reports []imaptest.Message
	for _, m := range msgs {
		if isReport("INBOX", m.Raw) {
			reports = append(reports, m)
		}
	}
	if len(reports) != 1 {
		t.Fatalf("destination INBOX has %d reports, want 1", len(reports))
	}
	r := reports[0]
	if slices.Contains(r.Flags, `\Seen`) {
		t.Errorf("report flags = %q, want it unseen", r.Flags)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(r.Raw))
	if err != nil {
		t.Fatalf("report does not parse: %v", err)
	}
	for _, h := range []string{"From", "To", "Date", "Subject", "Message-Id", "Mime-Version"} {
		if msg.Header.Get(h) == "" {
			t.Errorf("report lacks a %s header", h)
		}
	}
	if ct := msg.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("report Content-Type = %q", ct)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("report body: %v", err)
	}
	for _, f := range res.Folders {
		if !strings.Contains(string(body), f.Source) {
			t.Errorf("report does not list folder %q", f.Source)
		}
	}
}
