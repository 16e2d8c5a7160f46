package mailcopy

import (
	"fmt"
	"testing"
)

func TestChunks(t *testing.T) {
	msgs := func(sizes ...int64) []srcMessage {
		var out []srcMessage
		for i, s := range sizes {
			out = append(out, srcMessage{uid: uint32(i + 1), size: s})
		}
		return out
	}
	tests := []struct {
		name     string
		in       []srcMessage
		maxMsgs  int
		maxBytes int64
		want     string
	}{
		{"none", nil, 2, 100, "[]"},
		{"one", msgs(10), 2, 100, "[[1]]"},
		{"by count", msgs(1, 1, 1, 1, 1), 2, 100, "[[1 2] [3 4] [5]]"},
		{"by bytes", msgs(40, 40, 40, 40), 10, 100, "[[1 2] [3 4]]"},
		{"exact bytes", msgs(50, 50, 50), 10, 100, "[[1 2] [3]]"},
		{"big alone", msgs(10, 500, 10), 10, 100, "[[1] [2] [3]]"},
		{"big first", msgs(500, 10, 10), 10, 100, "[[1] [2 3]]"},
	}
	for _, tt := range tests {
		var got [][]uint32
		for _, b := range chunks(tt.in, tt.maxMsgs, tt.maxBytes) {
			var uids []uint32
			for _, m := range b {
				uids = append(uids, m.uid)
			}
			got = append(got, uids)
		}
		if s := fmt.Sprint(got); s != tt.want {
			t.Errorf("%s: chunks = %s, want %s", tt.name, s, tt.want)
		}
	}
}

// TestKeepTwinsTogether: the occurrences of an identity end in the range of the
// first, in UID order; a range left empty goes.
func TestKeepTwinsTogether(t *testing.T) {
	m := func(uid uint32, id byte) srcMessage { return srcMessage{uid: uid, key: key{id}} }
	in := [][]srcMessage{
		{m(1, 'a'), m(2, 'b')},
		{m(3, 'a'), m(4, 'c')},
		{m(5, 'b')},
		{m(6, 'c'), m(7, 'd')},
	}
	var got [][]uint32
	for _, r := range keepTwinsTogether(in) {
		var uids []uint32
		for _, x := range r {
			uids = append(uids, x.uid)
		}
		got = append(got, uids)
	}
	if want := "[[1 2 3 5] [4 6] [7]]"; fmt.Sprint(got) != want {
		t.Errorf("keepTwinsTogether = %v, want %s", got, want)
	}
}
