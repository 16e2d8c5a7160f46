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
