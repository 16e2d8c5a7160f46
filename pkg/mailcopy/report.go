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
}

// buildReport renders the report: a UTF-8 text/plain message, quoted-printable
// encoded, with CRLF line ends.
func buildReport(r *Result, info reportInfo) []byte {
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
	switch {
	case info.stopped != "":
		return fmt.Sprintf("imapcopy: copy from %s stopped before the end", info.source)
	case r.DryRun:
		return fmt.Sprintf("imapcopy dry run from %s: %s messages to copy", info.source, num(r.Totals.Copied))
	case r.Complete():
		return fmt.Sprintf("imapcopy: copy from %s complete (%s messages copied)", info.source, num(r.Totals.Copied))
	default:
		return fmt.Sprintf("imapcopy: copy from %s finished, %s messages not copied", info.source, num(r.Totals.Failed))
	}
}

func writeReportBody(w *bytes.Buffer, r *Result, info reportInfo) {
	line := func(format string, args ...any) {
		fmt.Fprintf(w, format, args...)
		w.WriteString("\r\n")
	}
	line("imapcopy report")
	line("")
	line("Source:       %s", info.source)
	line("Destination:  %s", info.destination)
	line("Started:      %s", r.Started.UTC().Format("2006-01-02 15:04:05 MST"))
	line("Duration:     %s", r.Duration.Round(time.Second))
	switch {
	case info.stopped != "":
		line("Outcome:      stopped before the end: %s", info.stopped)
	case r.Complete():
		line("Outcome:      complete: every message in scope is on the destination")
	case r.Totals.Failed > 0:
		line("Outcome:      %s message(s) could not be copied; they are listed below", num(r.Totals.Failed))
	default:
		line("Outcome:      some folders could not be copied; they are listed below")
	}
	line("")
	line("Totals")
	t := r.Totals
	line("  messages in the source:      %s", num(t.Total))
	line("  copied:                      %s", num(t.Copied))
	line("  already on the destination:  %s", num(t.Present))
	line("  failed:                      %s", num(t.Failed))
	line("  skipped (too large):         %s", num(t.Skipped))
	line("  data in the source:          %s", byteSize(t.TotalBytes))
	line("  data copied:                 %s", byteSize(t.Bytes))
	line("")

	line("Folders")
	rows := [][]string{{"Source", "Destination", "Total", "Copied", "Present", "Failed", "Skipped", "Note"}}
	for _, f := range r.Folders {
		note := f.Error
		if note == "" && f.Created {
			note = "created"
		}
		if note == "" && f.ArchiveOnly {
			note = "archived mail only"
		}
		rows = append(rows, []string{f.Source, f.Destination, num(f.Total), num(f.Copied), num(f.Present), num(f.Failed), num(f.Skipped), note})
	}
	writeTable(w, rows, 2)
	for _, f := range r.Folders {
		if f.ArchiveOnly {
			line("  %s → %s: %s archived messages (messages only in All Mail)", f.Source, f.Destination, num(f.Total))
		}
	}

	if len(r.Renames) > 0 {
		line("")
		line("Renamed folders (the destination cannot hold the source name)")
		for _, rn := range r.Renames {
			line("  %q -> %q: %s", rn.Source, rn.Destination, rn.Reason)
		}
	}
	if len(r.Collisions) > 0 {
		line("")
		line("Folder name collisions (not merged)")
		for _, c := range r.Collisions {
			line("  %q -> %q (%q is taken by %q)", c.Source, c.Destination, c.Wanted, c.Holder)
		}
	}
	if len(r.FolderSkips) > 0 {
		line("")
		line("Folders not copied")
		for _, s := range r.FolderSkips {
			line("  %q: %s", s.Source, s.Reason)
		}
	}
	writeIssues(w, "Messages not copied", r.Failures)
	writeIssues(w, "Messages skipped", r.Skipped)
	writeIssues(w, "Messages copied with a change the destination imposed", r.Altered)
}

func writeIssues(w *bytes.Buffer, title string, issues []MessageIssue) {
	if len(issues) == 0 {
		return
	}
	fmt.Fprintf(w, "\r\n%s (%s)\r\n", title, num(len(issues)))
	rows := [][]string{{"Folder", "UID", "Size", "Reason"}}
	for i, m := range issues {
		if i == reportListLimit {
			break
		}
		rows = append(rows, []string{m.Folder, fmt.Sprint(m.UID), byteSize(m.Size), m.Reason})
	}
	writeTable(w, rows, 2)
	if len(issues) > reportListLimit {
		fmt.Fprintf(w, "  ... and %s more\r\n", num(len(issues)-reportListLimit))
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

// byteSize formats n bytes in decimal units (as providers state their limits).
func byteSize(n int64) string {
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
