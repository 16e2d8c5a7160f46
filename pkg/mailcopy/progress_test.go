package mailcopy

import (
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestTrackerThrottles(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	var got []Progress
	tr := newTracker(func(p Progress) { got = append(got, p) }, 500*time.Millisecond, clock.now,
		[]FolderProgress{{Source: "INBOX", Destination: "INBOX"}, {Source: "Sent", Destination: "Sent"}})

	tr.update(0, func(f *FolderProgress) { f.Total = 10; f.Copied = 1 })
	if len(got) != 0 {
		t.Fatalf("after an update within the interval: %d snapshots, want 0", len(got))
	}
	clock.advance(600 * time.Millisecond)
	tr.update(0, func(f *FolderProgress) { f.Copied = 2; f.Bytes = 200 })
	tr.update(1, func(f *FolderProgress) { f.Total = 5; f.Present = 5 })
	if len(got) != 1 {
		t.Fatalf("after the interval: %d snapshots, want 1", len(got))
	}
	if c := got[0].Totals; c.Total != 10 || c.Copied != 2 || c.Bytes != 200 {
		t.Errorf("first snapshot totals = %+v, want total 10, copied 2, bytes 200", c)
	}
	tr.update(1, func(f *FolderProgress) { f.State = FolderDone })
	tr.flush()
	if len(got) != 2 {
		t.Fatalf("after flush: %d snapshots, want 2", len(got))
	}
	last := got[1]
	if c := last.Totals; c.Total != 15 || c.Present != 5 || c.Copied != 2 {
		t.Errorf("last snapshot totals = %+v, want total 15, present 5, copied 2", c)
	}
	if last.Folders[1].State != FolderDone {
		t.Errorf("folder state = %q, want %q", last.Folders[1].State, FolderDone)
	}
	if last.Elapsed != 600*time.Millisecond {
		t.Errorf("elapsed = %v, want 600ms", last.Elapsed)
	}
	// Snapshots are copies: later updates do not change them.
	tr.update(0, func(f *FolderProgress) { f.Copied = 9 })
	if got[1].Folders[0].Copied != 2 {
		t.Errorf("an emitted snapshot changed: copied = %d, want 2", got[1].Folders[0].Copied)
	}
}
