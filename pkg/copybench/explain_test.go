package copybench

import (
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"testing/iotest"
)

func TestHashStripped(t *testing.T) {
	orig := "From: a@example.org\r\nSubject: hi\r\n\r\nX-TUID: in the body stays\r\n"
	withTUID := "From: a@example.org\r\nX-TUID: 3sZnTgu8yLcR\r\nSubject: hi\r\n\r\nX-TUID: in the body stays\r\n"
	// In one write, and a byte at a time (the header line split across writes).
	for _, r := range []io.Reader{strings.NewReader(withTUID), iotest.OneByteReader(strings.NewReader(withTUID))} {
		raw, stripped, err := hashStripped(r)
		if err != nil {
			t.Fatal(err)
		}
		if want := sha256.Sum256([]byte(withTUID)); raw != want {
			t.Errorf("raw hash is not the hash of the message")
		}
		if want := sha256.Sum256([]byte(orig)); stripped != want {
			t.Errorf("stripped hash is not the hash of the message without its X-TUID header")
		}
	}
}

func TestExplainFolder(t *testing.T) {
	a := LoadedMessage{SHA256: [32]byte{1}, Flags: []string{"$Forwarded", "$label1", `\Seen`}, InternalUnix: 100}
	b := LoadedMessage{SHA256: [32]byte{2}, Flags: []string{`\Answered`}, InternalUnix: 200}
	c := LoadedMessage{SHA256: [32]byte{3}, InternalUnix: 300}
	for _, tc := range []struct {
		name string
		got  []explained
		want map[string]int
	}{
		{"identical", []explained{{raw: a.SHA256, flags: a.Flags, date: 100}, {raw: b.SHA256, flags: b.Flags, date: 200}, {raw: c.SHA256, date: 300}},
			map[string]int{DiffIdentical: 3}},
		{"mbsync", []explained{{raw: [32]byte{9}, stripped: a.SHA256, flags: []string{"$Forwarded", `\Seen`}, date: 100}, {raw: [32]byte{8}, stripped: b.SHA256, flags: nil, date: 201}},
			map[string]int{DiffHeaderAdded: 2, DiffKeywordsLost: 1, DiffFlags: 1, DiffDate: 1, DiffMissing: 1}},
		{"extra and duplicated", []explained{{raw: c.SHA256, date: 300}, {raw: c.SHA256, date: 300}, {raw: [32]byte{7}}},
			map[string]int{DiffIdentical: 1, DiffExtra: 2, DiffMissing: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]int{}
			explainFolder([]LoadedMessage{a, b, c}, tc.got, got)
			if !maps.Equal(got, tc.want) {
				t.Errorf("explainFolder = %v, want %v", got, tc.want)
			}
		})
	}
}

// hashStripped hashes a message as it is, and without its X-TUID header field.
func hashStripped(r io.Reader) (raw, stripped [32]byte, err error) {
	hr, hs := sha256.New(), sha256.New()
	strip := stripAddedHeader(hs).(*headerStripper)
	if _, err := io.Copy(io.MultiWriter(hr, strip), r); err != nil {
		return raw, stripped, fmt.Errorf("read body: %w", err)
	}
	if err := strip.Close(); err != nil {
		return raw, stripped, err
	}
	hr.Sum(raw[:0])
	hs.Sum(stripped[:0])
	return raw, stripped, nil
}
