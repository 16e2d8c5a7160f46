package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"imapcopy.dev/pkg/mailcopy"
)

// progressPrinter shows the copy's progress on stderr: a bar redrawn in place
// on a terminal, plain lines otherwise (one per finished folder, and the
// totals every plainEvery).
type progressPrinter struct {
	mu        sync.Mutex
	w         io.Writer
	tty       bool
	lastPlain time.Duration
	finished  map[string]bool
	drawn     bool
}

const plainEvery = 10 * time.Second

func newProgressPrinter(w io.Writer, tty bool) *progressPrinter {
	return &progressPrinter{w: w, tty: tty, finished: map[string]bool{}}
}

func (p *progressPrinter) show(pr mailcopy.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := pr.Totals
	handled := t.Present + t.Copied + t.Failed + t.Skipped
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", barLine(handled, t, pr))
		p.drawn = true
		return
	}
	for _, f := range pr.Folders {
		if (f.State == mailcopy.FolderDone || f.State == mailcopy.FolderFailed) && !p.finished[f.Source] {
			p.finished[f.Source] = true
			fmt.Fprintf(p.w, "folder %q -> %q %s: %d messages, %d copied, %d present, %d failed, %d skipped\n",
				f.Source, f.Destination, f.State, f.Total, f.Copied, f.Present, f.Failed, f.Skipped)
		}
	}
	if pr.Elapsed-p.lastPlain >= plainEvery {
		p.lastPlain = pr.Elapsed
		fmt.Fprintf(p.w, "[%s] %d/%d messages handled, %d copied, %.1f MB\n",
			pr.Elapsed.Round(time.Second), handled, t.Total, t.Copied, float64(t.Bytes)/1e6)
	}
}

func barLine(handled int, t mailcopy.Counts, pr mailcopy.Progress) string {
	const width = 30
	frac := 0.0
	if t.Total > 0 {
		frac = min(1, float64(handled)/float64(t.Total))
	}
	n := int(frac * width)
	done := 0
	for _, f := range pr.Folders {
		if f.State == mailcopy.FolderDone || f.State == mailcopy.FolderFailed {
			done++
		}
	}
	rate := 0.0
	if s := pr.Elapsed.Seconds(); s > 0 {
		rate = float64(t.Bytes) / 1e6 / s
	}
	return fmt.Sprintf("[%s%s] %3.0f%% %d/%d msgs, %d/%d folders, %.1f MB (%.1f MB/s)",
		strings.Repeat("#", n), strings.Repeat(" ", width-n), frac*100,
		handled, t.Total, done, len(pr.Folders), float64(t.Bytes)/1e6, rate)
}

// done ends the bar's line.
func (p *progressPrinter) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}

// writeSummary prints the outcome for a person: totals, then every message
// and folder that was not copied, and the messages the destination changed.
func writeSummary(w io.Writer, r *mailcopy.Result) {
	t := r.Totals
	verb := "copied"
	if r.DryRun {
		verb = "to copy (dry run)"
	}
	fmt.Fprintf(w, "%d messages in %d folders: %d %s (%.1f MB), %d already present, %d failed, %d skipped, in %s\n",
		t.Total, len(r.Folders), t.Copied, verb, float64(t.Bytes)/1e6, t.Present, t.Failed, t.Skipped,
		r.Duration.Round(time.Millisecond))
	for _, rn := range r.Renames {
		fmt.Fprintf(w, "renamed: %q -> %q (%s)\n", rn.Source, rn.Destination, rn.Reason)
	}
	for _, c := range r.Collisions {
		fmt.Fprintf(w, "name collision: %q -> %q (%q is taken by %q)\n", c.Source, c.Destination, c.Wanted, c.Holder)
	}
	for _, f := range r.FailedFolders() {
		fmt.Fprintf(w, "folder not copied: %q: %s\n", f.Source, f.Error)
	}
	for _, m := range r.Failures {
		fmt.Fprintf(w, "failed: folder %q UID %d (%d bytes): %s\n", m.Folder, m.UID, m.Size, m.Reason)
	}
	for _, m := range r.Skipped {
		fmt.Fprintf(w, "skipped: folder %q UID %d (%d bytes): %s\n", m.Folder, m.UID, m.Size, m.Reason)
	}
	for _, m := range r.Altered {
		fmt.Fprintf(w, "changed by the destination: folder %q UID %d (%d bytes): %s\n", m.Folder, m.UID, m.Size, m.Reason)
	}
	if r.ReportError != "" {
		fmt.Fprintf(w, "the report could not be appended: %s\n", r.ReportError)
	}
}
