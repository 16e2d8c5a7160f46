package mailcopy

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// FolderState is where a folder stands in a copy.
type FolderState string

const (
	FolderPending FolderState = "pending"
	FolderRunning FolderState = "running"
	FolderDone    FolderState = "done"
	FolderFailed  FolderState = "failed"
)

// FolderProgress is one folder in a Progress snapshot. Until its metadata pass
// has run, Total is the source's message count from LIST-STATUS (0 when the
// server lacks it).
type FolderProgress struct {
	Source      string      `json:"source"`
	Destination string      `json:"destination"`
	State       FolderState `json:"state"`
	// ThrottledUntil: the folder waits until then, the server having
	// throttled the copy (zero when it does not wait).
	ThrottledUntil time.Time `json:"throttled_until,omitzero"`
	Counts
}

// Progress is a snapshot of a running copy, given to Config.Progress. The
// snapshot is the receiver's: it is not modified afterwards.
type Progress struct {
	Elapsed time.Duration    `json:"elapsed"`
	Totals  Counts           `json:"totals"`
	Folders []FolderProgress `json:"folders"`
	// ThrottledUntil is the latest ThrottledUntil of the folders: the copy is
	// "throttled until" then (zero when no folder waits for a server).
	ThrottledUntil time.Time `json:"throttled_until,omitzero"`
}

// tracker aggregates the workers' counters and hands snapshots to the
// caller's callback: at most one every interval, plus one whenever a folder
// ends. Callbacks are serialised and never see an older snapshot after a
// newer one.
type tracker struct {
	emit     func(Progress)
	interval time.Duration
	now      func() time.Time
	start    time.Time

	emitMu sync.Mutex // held while snapshotting and emitting: keeps snapshots in order

	// moved counts the updates that showed progress: messages copied or found
	// present, or a folder done (loginGuard).
	moved atomic.Int64

	mu      sync.Mutex
	folders []FolderProgress
	until   time.Time // the whole copy waits for a server until then (see throttled)
	last    time.Time // last emission
}

func newTracker(emit func(Progress), interval time.Duration, now func() time.Time, folders []FolderProgress) *tracker {
	t := &tracker{emit: emit, interval: interval, now: now, folders: folders}
	t.start = now()
	t.last = t.start
	return t
}

// setFolders gives the tracker the copy's folders, once they are planned.
func (t *tracker) setFolders(folders []FolderProgress) {
	t.mu.Lock()
	t.folders = folders
	t.mu.Unlock()
}

// throttled says that the copy as a whole (not one folder: the planning, the
// report) waits for a server until then, or no longer with the zero time, and
// emits a snapshot that says so.
func (t *tracker) throttled(until time.Time) {
	t.mu.Lock()
	t.until = until
	t.mu.Unlock()
	t.flush()
}

// update applies f to folder i and emits a snapshot if the interval has passed.
func (t *tracker) update(i int, f func(*FolderProgress)) {
	t.mu.Lock()
	before := t.folders[i]
	f(&t.folders[i])
	after := t.folders[i]
	if after.Copied > before.Copied || after.Present > before.Present || after.State == FolderDone && before.State != FolderDone {
		t.moved.Add(1)
	}
	due := t.now().Sub(t.last) >= t.interval
	t.mu.Unlock()
	if due && t.emit != nil && t.emitMu.TryLock() {
		t.emitLocked()
		t.emitMu.Unlock()
	}
}

// flush emits a snapshot now (a folder ended, or the copy did).
func (t *tracker) flush() {
	if t.emit == nil {
		return
	}
	t.emitMu.Lock()
	defer t.emitMu.Unlock()
	t.emitLocked()
}

func (t *tracker) emitLocked() {
	p := t.snapshot()
	t.mu.Lock()
	t.last = t.now()
	t.mu.Unlock()
	t.emit(p)
}

func (t *tracker) snapshot() Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := Progress{Elapsed: t.now().Sub(t.start), Folders: slices.Clone(t.folders), ThrottledUntil: t.until}
	for _, f := range p.Folders {
		p.Totals.add(f.Counts)
		if f.ThrottledUntil.After(p.ThrottledUntil) {
			p.ThrottledUntil = f.ThrottledUntil
		}
	}
	return p
}
