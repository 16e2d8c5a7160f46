package mailcopy

import (
	"bytes"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
	"unicode/utf8"
)

// ReportHeader is the header field that marks the report message appended to
// the destination INBOX. A checker comparing source and destination ignores
// messages that carry it (e.g. imaptest.CheckOptions.IgnoreDest).
const ReportHeader = "X-Imapcopy-Report"

// reportListLimit bounds the failed and skipped messages listed one by one.
const reportListLimit = 1000

// reportInfo is what the report says beyond the Result.
type reportInfo struct {
	source, destination string // "login@host", never a secret
	from, to            string // addresses for the header fields
	messageID           string // without angle brackets
	now                 time.Time
	stopped             string // why the copy stopped before the end; "" if it did not
	text                *reportText
}

// buildReport renders the report: a UTF-8 text/plain message, quoted-printable
// encoded, with CRLF line ends.
func buildReport(r *Result, info reportInfo) []byte {
	if info.text == nil {
		info.text = reportTexts["en"]
	}
	var body bytes.Buffer
	writeReportBody(&body, r, info)

	var msg bytes.Buffer
	h := func(name, value string) { fmt.Fprintf(&msg, "%s: %s\r\n", name, value) }
	h("From", fmt.Sprintf("imapcopy <%s>", info.from))
	h("To", fmt.Sprintf("<%s>", info.to))
	h("Date", info.now.Format(time.RFC1123Z))
	h("Subject", mime.QEncoding.Encode("utf-8", reportSubject(r, info)))
	h("Message-ID", "<"+info.messageID+">")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	h(ReportHeader, "1")
	msg.WriteString("\r\n")

	qp := quotedprintable.NewWriter(&msg)
	// The body's line ends are CRLF already; the writer keeps them as line breaks.
	_, _ = qp.Write(body.Bytes()) // into a bytes.Buffer: cannot fail
	qp.Close()
	if !bytes.HasSuffix(msg.Bytes(), []byte("\r\n")) {
		msg.WriteString("\r\n")
	}
	return msg.Bytes()
}

func reportSubject(r *Result, info reportInfo) string {
	tx := info.text
	switch {
	case info.stopped != "":
		return fmt.Sprintf(tx.subjectStopped, info.source)
	case r.DryRun:
		return fmt.Sprintf(tx.subjectDryRun, info.source, num(r.Totals.Copied))
	case r.Complete():
		return fmt.Sprintf(tx.subjectComplete, info.source, num(r.Totals.Copied))
	default:
		return fmt.Sprintf(tx.subjectPartial, info.source, num(r.Totals.Failed))
	}
}

func writeReportBody(w *bytes.Buffer, r *Result, info reportInfo) {
	tx := info.text
	line := func(format string, args ...any) {
		fmt.Fprintf(w, format, args...)
		w.WriteString("\r\n")
	}
	// field writes "Label:  value" with the values of one block aligned.
	field := func(labels []string, label, value string) {
		width := 0
		for _, l := range labels {
			width = max(width, utf8.RuneCountInString(l))
		}
		line("%s:%s%s", label, strings.Repeat(" ", width-utf8.RuneCountInString(label)+2), value)
	}
	head := []string{tx.source, tx.destination, tx.started, tx.duration, tx.outcome}
	line("%s", tx.title)
	line("")
	field(head, tx.source, info.source)
	field(head, tx.destination, info.destination)
	field(head, tx.started, r.Started.UTC().Format("2006-01-02 15:04:05 MST"))
	field(head, tx.duration, r.Duration.Round(time.Second).String())
	switch {
	case info.stopped != "":
		field(head, tx.outcome, fmt.Sprintf(tx.outcomeStopped, info.stopped))
	case r.Complete():
		field(head, tx.outcome, tx.outcomeComplete)
	case r.Totals.Failed > 0:
		field(head, tx.outcome, fmt.Sprintf(tx.outcomeFailed, num(r.Totals.Failed)))
	default:
		field(head, tx.outcome, tx.outcomeFolders)
	}
	line("")
	line("%s", tx.totals)
	t := r.Totals
	totals := []string{tx.total, tx.copied, tx.present, tx.failed, tx.skipped, tx.dataTotal, tx.dataCopied}
	for i, v := range []string{num(t.Total), num(t.Copied), num(t.Present), num(t.Failed), num(t.Skipped), ByteSize(t.TotalBytes), ByteSize(t.Bytes)} {
		w.WriteString("  ")
		field(totals, totals[i], v)
	}
	line("")

	line("%s", tx.folders)
	rows := [][]string{tx.folderHeader}
	for _, f := range r.Folders {
		note := f.Error
		if note == "" && f.Created {
			note = tx.created
		}
		if note == "" && f.ArchiveOnly {
			note = tx.archiveOnly
		}
		rows = append(rows, []string{f.Source, f.Destination, num(f.Total), num(f.Copied), num(f.Present), num(f.Failed), num(f.Skipped), note})
	}
	writeTable(w, rows, 2)
	for _, f := range r.Folders {
		if f.ArchiveOnly {
			line("  "+tx.archiveLine, f.Source, f.Destination, num(f.Total))
		}
	}

	if len(r.Renames) > 0 {
		line("")
		line("%s", tx.renames)
		for _, rn := range r.Renames {
			line("  %q -> %q: %s", rn.Source, rn.Destination, rn.Reason)
		}
	}
	if len(r.Collisions) > 0 {
		line("")
		line("%s", tx.collisions)
		for _, c := range r.Collisions {
			line("  "+tx.collisionLine, c.Source, c.Destination, c.Wanted, c.Holder)
		}
	}
	if len(r.FolderSkips) > 0 {
		line("")
		line("%s", tx.folderSkips)
		for _, s := range r.FolderSkips {
			line("  %q: %s", s.Source, s.Reason)
		}
	}
	writeIssues(w, tx, tx.notCopied, r.Failures)
	writeIssues(w, tx, tx.skippedMessages, r.Skipped)
	writeIssues(w, tx, tx.altered, r.Altered)
}

func writeIssues(w *bytes.Buffer, tx *reportText, title string, issues []MessageIssue) {
	if len(issues) == 0 {
		return
	}
	fmt.Fprintf(w, "\r\n%s (%s)\r\n", title, num(len(issues)))
	rows := [][]string{tx.issueHeader}
	for i, m := range issues {
		if i == reportListLimit {
			break
		}
		rows = append(rows, []string{m.Folder, fmt.Sprint(m.UID), ByteSize(m.Size), m.Reason})
	}
	writeTable(w, rows, 2)
	if len(issues) > reportListLimit {
		fmt.Fprintf(w, "  "+tx.more+"\r\n", num(len(issues)-reportListLimit))
	}
}

// writeTable writes rows as aligned columns (by runes: folder names may be
// non-ASCII). The last column is not padded.
func writeTable(w *bytes.Buffer, rows [][]string, indent int) {
	if len(rows) == 0 {
		return
	}
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		b.WriteString(strings.Repeat(" ", indent))
		for i, cell := range row {
			if i == len(row)-1 {
				b.WriteString(cell)
				break
			}
			b.WriteString(cell)
			b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)+2))
		}
		w.WriteString(strings.TrimRight(b.String(), " "))
		w.WriteString("\r\n")
	}
}

// num formats n with thousands separators.
func num(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + num(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// ByteSize formats n bytes in decimal units (as providers state their limits), as the
// report and the api's messages show sizes.
func ByteSize(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	default:
		return fmt.Sprintf("%d B", n)
	}
}
