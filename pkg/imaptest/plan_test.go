package imaptest

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

// digest renders every message of the plan and hashes them all, with their metadata.
func digest(t *testing.T, mb *Plan) [32]byte {
	t.Helper()
	h := sha256.New()
	var buf []byte
	for i, m := range mb.Messages {
		buf = mb.Render(buf[:0], i)
		h.Write(buf)
		h.Write([]byte(mb.Folders[m.Folder].Name + strings.Join(m.Flags, " ") + m.InternalDate.String()))
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

func TestPlanSizedDeterministic(t *testing.T) {
	spec := struct {
		Seed  uint64
		Count int
		Bytes int64
	}{Seed: 42, Count: 300, Bytes: 12 << 20}
	a, err := PlanSized(spec.Seed, spec.Count, spec.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	b, err := PlanSized(spec.Seed, spec.Count, spec.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if da, db := digest(t, a), digest(t, b); da != db {
		t.Errorf("PlanSized(%+v) twice: digests %x and %x, want equal", spec, da[:8], db[:8])
	}
	// Rendering out of order gives the same bytes.
	first := b.Render(nil, 0)
	b.Render(nil, len(b.Messages)-1)
	if again := b.Render(nil, 0); !bytes.Equal(first, again) {
		t.Errorf("Render(0) changed after rendering another message")
	}
	other := spec
	other.Seed++
	c, err := PlanSized(other.Seed, other.Count, other.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if da, dc := digest(t, a), digest(t, c); da == dc {
		t.Errorf("seeds %d and %d give the same mailbox", spec.Seed, other.Seed)
	}
}

// TestPlanSizedMix checks the shape of the benchmark's default-sized mix on a smaller
// count: sizes, classes, duplicates, messages without Message-ID, CRLF-only text, flags
// and keywords.
func TestPlanSizedMix(t *testing.T) {
	spec := struct {
		Count int
		Bytes int64
	}{Count: 1000, Bytes: 60 << 20}
	mb, err := PlanSized(1, spec.Count, spec.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	kinds := map[Kind]int{}
	dups, noID, keywords := 0, 0, 0
	folders := map[int]bool{}
	var buf []byte
	for i, m := range mb.Messages {
		buf = mb.Render(buf[:0], i)
		total += int64(len(buf))
		kinds[m.Kind]++
		folders[m.Folder] = true
		if m.DuplicateOf >= 0 {
			dups++
			if dup := mb.Render(nil, m.DuplicateOf); !bytes.Equal(dup, buf) || mb.Messages[m.DuplicateOf].Folder != m.Folder {
				t.Errorf("message %d: not an identical copy in the same folder of message %d", i, m.DuplicateOf)
			}
		}
		if m.NoMessageID {
			noID++
			if bytes.Contains(buf, []byte("\r\nMessage-ID:")) {
				t.Errorf("message %d: has a Message-ID, want none", i)
			}
		}
		if bytes.Contains(bytes.ReplaceAll(buf, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(bytes.ReplaceAll(buf, []byte("\r\n"), nil), []byte("\r")) {
			t.Errorf("message %d: bare CR or LF", i)
		}
		if !bytes.HasSuffix(buf, []byte("\r\n")) {
			t.Errorf("message %d: does not end with CRLF", i)
		}
		size := int64(len(buf))
		switch lo, hi := sizeRange(m.Kind); {
		case size < lo || size > hi:
			t.Errorf("message %d (%v): %d bytes, want %d–%d", i, m.Kind, size, lo, hi)
		}
		for _, f := range m.Flags {
			if !strings.HasPrefix(f, `\`) {
				keywords++
				break
			}
		}
	}
	if lo, hi := spec.Bytes*8/10, spec.Bytes*12/10; total < lo || total > hi {
		t.Errorf("total %d bytes, want %d–%d", total, lo, hi)
	}
	if kinds[KindHuge] < 1 || kinds[KindAttachment] < 10 || kinds[KindText]+kinds[KindAlternative] < 800 {
		t.Errorf("kinds = %v, want ≥1 huge, ≥10 with attachments, ≥800 small", kinds)
	}
	if dups < 2 || noID < 5 || keywords < 20 {
		t.Errorf("duplicates %d, without Message-ID %d, with keywords %d: want ≥2, ≥5, ≥20", dups, noID, keywords)
	}
	if len(folders) < len(mb.Folders)-1 { // "Lists" is an empty parent
		t.Errorf("messages in %d folders, want %d", len(folders), len(mb.Folders)-1)
	}
}

func sizeRange(k Kind) (int64, int64) {
	switch k {
	case KindHuge:
		return hugeMin, hugeMax + 8<<10
	case KindAttachment:
		return mediumMin, mediumMax + 8<<10
	}
	return smallMin, smallMax + 8<<10
}
