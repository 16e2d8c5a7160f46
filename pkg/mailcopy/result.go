package mailcopy

import "time"

// Counts are the message counters of a folder or of a whole copy.
type Counts struct {
	Total   int   `json:"total"`   // source messages in scope (after Since)
	Present int   `json:"present"` // already on the destination before this run
	Copied  int   `json:"copied"`  // appended by this run (in a dry run: would be)
	Failed  int   `json:"failed"`  // refused by the destination or unreadable
	Skipped int   `json:"skipped"` // left out on purpose (over MaxMessageSize)
	Bytes   int64 `json:"bytes"`   // bytes of the copied messages
	// TotalBytes is the RFC822.SIZE sum of the source messages in scope (Total).
	// Until a folder's metadata pass has run, it is the source's STATUS SIZE
	// when the server gives it, else 0.
	TotalBytes int64 `json:"total_bytes"`
}

func (c *Counts) add(o Counts) {
	c.Total += o.Total
	c.Present += o.Present
	c.Copied += o.Copied
	c.Failed += o.Failed
	c.Skipped += o.Skipped
	c.Bytes += o.Bytes
	c.TotalBytes += o.TotalBytes
}

// FolderResult is the outcome for one source folder.
type FolderResult struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Created     bool   `json:"created,omitempty"` // the destination folder was created by this run
	// ArchiveOnly: Source is Gmail's All Mail, and Counts are about its
	// archived messages only (those in no other folder; see foldermap).
	ArchiveOnly bool `json:"archive_only,omitempty"`
	// Unchanged: both sides were proven unchanged since the previous copy
	// completed the folder (Config.Previous): no metadata pass, nothing to copy.
	Unchanged bool `json:"unchanged,omitempty"`
	Counts
	Error string `json:"error,omitempty"` // the folder could not be copied (whole-folder failure)
	// Scanned, in a dry run of an ArchiveOnly folder: All Mail's messages in
	// scope before the archived ones are kept (each message of the account
	// once), so that a plan can tell how many copies the labels add.
	Scanned int `json:"scanned,omitempty"`
}

// MessageIssue names one message that was not copied, and why.
type MessageIssue struct {
	Folder string `json:"folder"` // source folder
	UID    uint32 `json:"uid"`    // source UID
	Size   int64  `json:"size"`
	Reason string `json:"reason"`
}

// Rename is a source folder that could not keep its name on the destination.
type Rename struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Reason      string `json:"reason"`
}

// Collision is a source folder whose destination name would have been taken
// by another (names compared case-insensitively): it went to Destination
// instead of Wanted, which Holder keeps. Nothing is merged.
type Collision struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Wanted      string `json:"wanted"`
	Holder      string `json:"holder"`
}

// FolderSkip is a source folder deliberately not copied.
type FolderSkip struct {
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// Result is the outcome of a copy. It is returned even when Copy fails, with
// what was done until then.
type Result struct {
	DryRun   bool           `json:"dry_run,omitempty"`
	Started  time.Time      `json:"started"`
	Duration time.Duration  `json:"-"`
	Seconds  float64        `json:"duration_seconds"` // Duration, for JSON
	Totals   Counts         `json:"totals"`
	Folders  []FolderResult `json:"folders"`

	Failures []MessageIssue `json:"failures,omitempty"`
	Skipped  []MessageIssue `json:"skipped,omitempty"`
	// Altered are messages copied with a difference (Reason says which):
	// keywords the destination could not take, a body longer or shorter than
	// the source's RFC822.SIZE (copied as sent: nothing is lost).
	Altered []MessageIssue `json:"altered,omitempty"`
	// Largest, in a dry run only: the largest source messages in scope,
	// biggest first (at most LargestKept; Reason empty).
	Largest []MessageIssue `json:"largest,omitempty"`

	Renames     []Rename     `json:"renames,omitempty"`
	Collisions  []Collision  `json:"collisions,omitempty"`
	FolderSkips []FolderSkip `json:"folder_skips,omitempty"`

	// Report says whether the report message was appended to the destination
	// INBOX; ReportError why not, when it was wanted.
	Report      bool   `json:"report"`
	ReportError string `json:"report_error,omitempty"`

	// State is what this copy proved of the folders it completed; handed to
	// the next copy of the same accounts (Config.Previous), it spares the
	// metadata passes of the folders unchanged since. Nil in a dry run.
	State *State `json:"state,omitempty"`
}

func (r *Result) setDuration(now time.Time) {
	r.Duration = now.Sub(r.Started)
	r.Seconds = r.Duration.Seconds()
}

// FailedFolders returns the folders that could not be copied as a whole.
func (r *Result) FailedFolders() []FolderResult {
	var out []FolderResult
	for _, f := range r.Folders {
		if f.Error != "" {
			out = append(out, f)
		}
	}
	return out
}

// Complete reports whether every message in scope is on the destination or
// was deliberately skipped: no failed message, no failed folder.
func (r *Result) Complete() bool {
	return r.Totals.Failed == 0 && len(r.FailedFolders()) == 0
}
