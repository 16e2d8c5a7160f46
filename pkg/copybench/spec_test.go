package copybench

import (
	"bytes"
	"slices"
	"testing"
)

// TestGenerateFolders checks the huge presets' layout on a smaller mailbox: with
// Folders 1 every message is in INBOX, with Folders 20 they are spread evenly over 20
// folders, and both hold the same messages, byte for byte, small ones only, flags sorted.
func TestGenerateFolders(t *testing.T) {
	one, err := Generate(Spec{Seed: 3, Count: 400, Bytes: 400 * 4000, Folders: 1})
	if err != nil {
		t.Fatal(err)
	}
	spread, err := Generate(Spec{Seed: 3, Count: 400, Bytes: 400 * 4000, Folders: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Folders) != 1 || one.Folders[0].Name != "INBOX" {
		t.Errorf("Folders 1: folders %v, want INBOX only", one.Folders)
	}
	if len(spread.Folders) != 20 {
		t.Errorf("Folders 20: %d folders", len(spread.Folders))
	}
	per := make([]int, len(spread.Folders))
	for i := range spread.Messages {
		per[spread.Messages[i].Folder]++
		if !slices.IsSorted(spread.Messages[i].Flags) {
			t.Errorf("message %d: flags %v not sorted (the loader's verification wants them sorted)", i, spread.Messages[i].Flags)
		}
		a, b := one.Render(nil, i), spread.Render(nil, i)
		if !bytes.Equal(a, b) {
			t.Fatalf("message %d differs between the layouts", i)
		}
		if len(a) > 8000 {
			t.Errorf("message %d: %d bytes, want a small message", i, len(a))
		}
	}
	for f, n := range per {
		if n != 20 {
			t.Errorf("folder %d holds %d messages, want 20", f, n)
		}
	}
}
