package mailcopy

import (
	"slices"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapappend"
)

func TestNormalizeMessageID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<abc@example.com>", "abc@example.com"},
		{"  <abc@example.com>  ", "abc@example.com"},
		{"<abc@\r\n example.com>", "abc@example.com"},
		{"abc@example.com", "abc@example.com"},
		{"<ABC@example.com> (comment)", "ABC@example.com"},
		{"", ""},
		{"   ", ""},
		{"<>", ""},
	}
	for _, tt := range tests {
		if got := normalizeMessageID(tt.in); got != tt.want {
			t.Errorf("normalizeMessageID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseHeader(t *testing.T) {
	in := "Message-ID:\r\n <a@b>\r\nSubject: hello\r\n  world\r\nsubject: second\r\nbogus line\nFrom: x@y\n\r\nTo: after-end\r\n"
	got := parseHeader([]byte(in))
	want := map[string]string{"message-id": "<a@b>", "subject": "hello world", "from": "x@y"}
	if len(got) != len(want) {
		t.Fatalf("parseHeader = %q, want %q", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("parseHeader[%q] = %q, want %q", k, got[k], v)
		}
	}
}

func TestIdentity(t *testing.T) {
	d1 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	d2 := d1.Add(time.Hour)
	withID := []byte("Message-ID: <x@y>\r\nSubject: a\r\n\r\n")
	withIDFolded := []byte("Subject: b\r\nMessage-Id:\r\n\t<x@y>\r\n\r\n")
	noID := []byte("Date: Fri, 1 Mar 2024 10:00:00 +0000\r\nFrom: a@b\r\nSubject: s\r\n\r\n")
	noIDOther := []byte("Date: Fri, 1 Mar 2024 10:00:00 +0000\r\nFrom: a@b\r\nSubject: t\r\n\r\n")
	eightBit := []byte("Date: Fri, 1 Mar 2024 10:00:00 +0000\r\nFrom: Chlo\xc3\xa9 <c@soci\xc3\xa9t\xc3\xa9.example>\r\nSubject: R\xc3\xa9union\r\n\r\n")
	eightBitCyrus := []byte("Date: Fri, 1 Mar 2024 10:00:00 +0000\r\nFrom: ChloXX <c@sociXXtXX.example>\r\nSubject: RXXunion\r\n\r\n")
	idEightBit := []byte("Message-ID: <1.2@soci\xc3\xa9t\xc3\xa9.example>\r\n\r\n")
	idEightBitCyrus := []byte("Message-ID: <1.2@sociXXtXX.example>\r\n\r\n")
	tests := []struct {
		name string
		a, b key
		same bool
	}{
		// Cyrus stores raw 8-bit header bytes as 'X' (one per byte: the size stays).
		{"no id, 8-bit header as Cyrus stores it", identity(eightBit, 100, d1), identity(eightBitCyrus, 100, d1), true},
		{"8-bit id as Cyrus stores it", identity(idEightBit, 100, d1), identity(idEightBitCyrus, 100, d2), true},
		{"no id, 8-bit header, other size", identity(eightBit, 100, d1), identity(eightBitCyrus, 102, d1), false},
		{"same id, other headers and dates", identity(withID, 100, d1), identity(withIDFolded, 100, d2), true},
		{"same id, other size", identity(withID, 100, d1), identity(withID, 101, d1), false},
		{"no id, same headers", identity(noID, 100, d1), identity(noID, 100, d1), true},
		{"no id, other date", identity(noID, 100, d1), identity(noID, 100, d2), false},
		{"no id, other subject", identity(noID, 100, d1), identity(noIDOther, 100, d1), false},
		{"no id, other size", identity(noID, 100, d1), identity(noID, 99, d1), false},
		{"id vs no id", identity(withID, 100, d1), identity(noID, 100, d1), false},
		{"no id, zone does not matter", identity(noID, 1, d1), identity(noID, 1, d1.In(time.FixedZone("x", 3600))), true},
	}
	for _, tt := range tests {
		if got := tt.a == tt.b; got != tt.same {
			t.Errorf("%s: same = %v, want %v", tt.name, got, tt.same)
		}
	}
}

func TestDiff(t *testing.T) {
	k := func(b byte) key { return key{b} }
	src := func(keys ...byte) []srcMessage {
		var out []srcMessage
		for i, b := range keys {
			out = append(out, srcMessage{uid: uint32(i + 1), key: k(b)})
		}
		return out
	}
	tests := []struct {
		name        string
		src         []srcMessage
		dst         map[key]int
		wantMissing []uint32
		wantPresent int
	}{
		{"empty destination", src(1, 2, 3), nil, []uint32{1, 2, 3}, 0},
		{"all present", src(1, 2, 3), map[key]int{k(1): 1, k(2): 1, k(3): 1}, nil, 3},
		{"duplicates both missing", src(1, 1, 2), map[key]int{k(2): 1}, []uint32{1, 2}, 1},
		{"one of two duplicates present", src(1, 2, 1), map[key]int{k(1): 1}, []uint32{2, 3}, 1},
		{"destination has more", src(1), map[key]int{k(1): 3}, nil, 1},
		{"unrelated destination", src(1, 2), map[key]int{k(9): 1}, []uint32{1, 2}, 0},
		{"empty source", nil, map[key]int{k(1): 1}, nil, 0},
	}
	for _, tt := range tests {
		missing, present := diff(tt.src, tt.dst)
		var got []uint32
		for _, m := range missing {
			got = append(got, m.uid)
		}
		if !slices.Equal(got, tt.wantMissing) || present != tt.wantPresent {
			t.Errorf("%s: diff = %v, %d; want %v, %d", tt.name, got, present, tt.wantMissing, tt.wantPresent)
		}
	}
}

// TestDiffTwins: of a twin's occurrences, the ones found present are those that
// look like the destination's copies, by INTERNALDATE and flags, then by date,
// then by flags, then the first ones; a rerun finds all present.
func TestDiffTwins(t *testing.T) {
	d1 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	d2 := d1.Add(time.Hour)
	m := func(uid uint32, k byte, date time.Time, flags ...string) srcMessage {
		return srcMessage{uid: uid, key: key{k}, date: date, flags: flags}
	}
	src := []srcMessage{
		m(1, 1, d1, `\Seen`),
		m(2, 2, d1),
		m(3, 1, d2, `\Flagged`),
		m(4, 1, d2, `\Seen`),
	}
	tests := []struct {
		name        string
		dst         []srcMessage
		wantMissing []uint32
	}{
		{"no copy", nil, []uint32{1, 2, 3, 4}},
		{"a later twin appended", []srcMessage{m(9, 1, d2, `\Flagged`)}, []uint32{1, 2, 4}},
		{"date and flags first", []srcMessage{m(9, 1, d2, `\Seen`)}, []uint32{1, 2, 3}},
		{"then the date", []srcMessage{m(9, 1, d2, `\Answered`)}, []uint32{1, 2, 4}},
		{"then the flags, any case and order", []srcMessage{m(9, 1, d1.Add(time.Minute), `\flagged`)}, []uint32{1, 2, 4}},
		{"then the first", []srcMessage{m(9, 1, d1.Add(time.Minute))}, []uint32{2, 3, 4}},
		{"two of three", []srcMessage{m(8, 1, d2, `\Seen`), m(9, 1, d2, `\Flagged`), m(10, 2, d1)}, []uint32{1}},
		{"all there", []srcMessage{m(7, 1, d1), m(8, 1, d1), m(9, 1, d1), m(10, 2, d1)}, nil},
		{"a zone does not matter", []srcMessage{m(9, 1, d2.In(time.FixedZone("x", 3600)), `\Seen`)}, []uint32{1, 2, 3}},
	}
	for _, tt := range tests {
		dst, dst8 := destKeys(tt.dst)
		missing, present, _, _ := diffLeft(src, dst, dst8, tt.dst)
		var got []uint32
		for _, x := range missing {
			got = append(got, x.uid)
		}
		if !slices.Equal(got, tt.wantMissing) || present != len(src)-len(tt.wantMissing) {
			t.Errorf("%s: missing %v, present %d; want %v, %d", tt.name, got, present, tt.wantMissing, len(src)-len(tt.wantMissing))
		}
	}
}

// TestCleanFlags: the flags the engine hands to APPEND (metadata pass) are
// cleaned by imapappend.CleanFlags: these are the cases the copy relies on
// (docs/design.md, library hazards).
func TestCleanFlags(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{nil, []string{}},
		{[]string{`\Seen`, `\Recent`, `\*`, `$Label1`}, []string{`\Seen`, `$Label1`}},
		{[]string{`\SEEN`, `\seen`, `\answered`}, []string{`\Seen`, `\Answered`}},
		{[]string{`\Flagged`, `\Deleted`, `\Draft`}, []string{`\Flagged`, `\Deleted`, `\Draft`}},
		{[]string{`\Junk`, `Junk`, `$junk`, `$Junk`}, []string{`Junk`, `$junk`}},
		{[]string{`bad(kw`, `bad kw`, `bad]kw`, `bad"kw`, `bad%`, `bad*`, `{3}`, "caf\u00e9", "ctl\x01", ``}, []string{}},
		{[]string{`ok-kw_1.2+$&'!#`, `NonJunk`}, []string{`ok-kw_1.2+$&'!#`, `NonJunk`}},
	}
	for _, tt := range tests {
		if got := imapappend.CleanFlags(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("imapappend.CleanFlags(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestDiffAltered: a destination message with 2 bytes more (a CRLF added by
// the destination) accounts for a source message that has no exact match, only
// once, and after the exact matches; a source message with 8-bit header bytes
// matched only by a destination message without them is reported as altered.
func TestDiffAltered(t *testing.T) {
	m := func(uid uint32, base byte, size int64, eightBit bool) srcMessage {
		b := key{base}
		return srcMessage{uid: uid, base: b, size: size, key: withSize(b, size), eightBit: eightBit}
	}
	dstOf := func(msgs ...srcMessage) map[key]int {
		out := map[key]int{}
		for _, x := range msgs {
			out[x.key]++
		}
		return out
	}
	tests := []struct {
		name        string
		src         []srcMessage
		dst, dst8   map[key]int
		wantMissing []uint32
		wantPresent int
		wantAltered []uint32
	}{
		{"line end added", []srcMessage{m(1, 1, 100, false)}, dstOf(m(0, 1, 102, false)), nil, nil, 1, []uint32{1}},
		{"line end added once, the twin is missing", []srcMessage{m(1, 1, 100, false), m(2, 1, 100, false)}, dstOf(m(0, 1, 102, false)), nil, []uint32{2}, 1, []uint32{1}},
		{"exact match first", []srcMessage{m(1, 1, 100, false), m(2, 1, 102, false)}, dstOf(m(0, 1, 102, false)), nil, []uint32{1}, 1, nil},
		{"other size", []srcMessage{m(1, 1, 100, false)}, dstOf(m(0, 1, 101, false)), nil, []uint32{1}, 0, nil},
		{"8-bit kept", []srcMessage{m(1, 1, 100, true)}, dstOf(m(0, 1, 100, true)), dstOf(m(0, 1, 100, true)), nil, 1, nil},
		{"8-bit rewritten", []srcMessage{m(1, 1, 100, true)}, dstOf(m(0, 1, 100, false)), map[key]int{}, nil, 1, []uint32{1}},
		{"8-bit not looked at", []srcMessage{m(1, 1, 100, true)}, dstOf(m(0, 1, 100, false)), nil, nil, 1, nil},
	}
	for _, tt := range tests {
		missing, present, altered := diffAltered(tt.src, tt.dst, tt.dst8)
		var gotMissing, gotAltered []uint32
		for _, x := range missing {
			gotMissing = append(gotMissing, x.uid)
		}
		for _, a := range altered {
			gotAltered = append(gotAltered, a.m.uid)
		}
		if !slices.Equal(gotMissing, tt.wantMissing) || present != tt.wantPresent || !slices.Equal(gotAltered, tt.wantAltered) {
			t.Errorf("%s: missing %v, present %d, altered %v; want %v, %d, %v", tt.name, gotMissing, present, gotAltered, tt.wantMissing, tt.wantPresent, tt.wantAltered)
		}
	}
}
