package mailcopy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
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

// TestFirstChunk: the first chunk a worker fetches ahead is the first of
// chunks over the messages in scope and not too big, without copying the
// rest; with SplitFolders, a folder of splitMinRanges chunks or more has none
// (its ranges are shared), and so has a folder with nothing to append.
func TestFirstChunk(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	since := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for round := range 300 {
		msgs := make([]srcMessage, rng.IntN(40))
		for i := range msgs {
			msgs[i] = srcMessage{uid: uint32(i + 1), size: 1 + rng.Int64N(300),
				date: since.AddDate(0, rng.IntN(5)-2, 0)}
		}
		cfg := Config{ChunkMessages: 1 + rng.IntN(6), ChunkBytes: 100 + rng.Int64N(600),
			SplitFolders: rng.IntN(2) == 0, MaxMessageSize: 250}
		if rng.IntN(2) == 0 {
			cfg.Since = since
		}
		w := &worker{e: &engine{cfg: cfg, appendLimit: int64(rng.IntN(2)) * 280}}
		var toCopy []srcMessage
		for _, m := range inScope(msgs, cfg.Since) {
			if m.size <= cfg.MaxMessageSize && (w.e.appendLimit == 0 || m.size <= w.e.appendLimit) {
				toCopy = append(toCopy, m)
			}
		}
		var want []srcMessage
		cs := chunks(toCopy, cfg.ChunkMessages, cfg.ChunkBytes)
		if len(cs) > 0 && !(cfg.SplitFolders && len(cs) >= splitMinRanges) {
			want = cs[0]
		}
		got, whole := w.firstChunk(msgs)
		if !slices.EqualFunc(got, want, func(a, b srcMessage) bool { return a.uid == b.uid }) {
			t.Fatalf("round %d, %+v: firstChunk = %v, want %v", round, cfg, uids(got), uids(want))
		}
		if len(got) > 0 && whole != (len(cs) == 1) {
			t.Fatalf("round %d, %+v: firstChunk says whole %v for %d chunks", round, cfg, whole, len(cs))
		}
	}
}

func uids(msgs []srcMessage) []uint32 {
	var out []uint32
	for _, m := range msgs {
		out = append(out, m.uid)
	}
	return out
}
