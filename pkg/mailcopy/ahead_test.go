package mailcopy_test

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// TestRefusedBatchWithChunkAhead: a folder of three chunks, the second of
// which is one MULTIAPPEND batch that the destination refuses for the one
// message over its quota. By then the third chunk's body FETCH was sent
// ahead on the source connection: it is read and dropped before the refused
// batch's messages are fetched again by UID and appended alone, then fetched
// again for the third chunk. Through the appender, the second chunk's bodies
// are read twice, the others once; the checker finds nothing lost, nothing
// twice.
func TestRefusedBatchWithChunkAhead(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourSlash].AddUser(t, imaptest.WithQuota(900_000))
	const n, chunk = 120, 40
	var msgs []imaptest.Message
	for i := range n {
		msgs = append(msgs, msg(fmt.Sprintf("m %d", i), fmt.Sprintf("m%d@example.com", i), 2_000, baseDate))
	}
	big := msg("big", "big@example.com", 1_000_000, baseDate)
	msgs = slices.Insert(msgs, 60, big) // in the second chunk
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{{Name: "INBOX", Messages: msgs}}})

	var mu sync.Mutex
	reads := map[string]int{}
	cfg := mailcopy.WithBodyWrapper(testConfig(t, src, dst), func(_ uint32, body io.Reader) io.Reader {
		return &subjectReader{r: body, seen: func(s string) {
			mu.Lock()
			defer mu.Unlock()
			reads[s]++
		}}
	})
	cfg.Connections = 1
	cfg.ChunkMessages = chunk
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if res.Totals.Copied != n || res.Totals.Failed != 1 {
		t.Errorf("totals = %+v, want %d copied, 1 failed", res.Totals, n)
	}
	mu.Lock()
	for i := range n {
		want := 1
		if i >= chunk && i < 2*chunk-1 { // the big message takes a place of the second chunk
			want = 2
		}
		if k := reads[fmt.Sprintf("m %d", i)]; k != want {
			t.Errorf("message %d: body read %d times, want %d", i, k, want)
		}
	}
	mu.Unlock()
	mustCheck(t, src, dst, imaptest.CheckOptions{AllowMissing: func(_ string, size int64) bool { return size > 900_000 }})
}

// TestFirstChunkAhead: on one connection, each folder after the first goes
// into a new destination folder, so its first chunk is known from the source's
// metadata pass alone: that pass is read, and the chunk's body FETCH sent,
// while the destination answers the folder before (prefetchNext). The source
// gets exactly one body FETCH per chunk (none read and dropped, none sent
// again), every body goes through the appender once, the checker finds
// nothing lost, nothing twice, and a rerun appends nothing.
func TestFirstChunkAhead(t *testing.T) {
	t.Parallel()
	srcServer := servers[imaptest.FlavourSlash]
	src := srcServer.AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)
	var folders []imaptest.Folder
	total := 0
	for f, name := range []string{"INBOX", "A", "B", "C"} {
		var msgs []imaptest.Message
		for i := range 20 + 5*f {
			msgs = append(msgs, msg(fmt.Sprintf("%s %d", name, i), fmt.Sprintf("%s%d@example.com", name, i), 1_000+100*f, baseDate))
		}
		total += len(msgs)
		folders = append(folders, imaptest.Folder{Name: name, Messages: msgs})
	}
	mustLoad(t, src, imaptest.Mailbox{Folders: folders})
	tp := imaptest.NewTap(t, srcServer.PlainAddr)
	viaTap := srcServer.Plaintext(src)
	viaTap.Host, viaTap.Port = splitAddr(t, tp.Addr())

	var mu sync.Mutex
	reads := map[string]int{}
	cfg := mailcopy.WithBodyWrapper(testConfig(t, viaTap, dst), func(_ uint32, body io.Reader) io.Reader {
		return &subjectReader{r: body, seen: func(s string) {
			mu.Lock()
			defer mu.Unlock()
			reads[s]++
		}}
	})
	cfg.Connections = 1
	cfg.ChunkMessages = 16 // two or three chunks a folder: the others are fetched ahead too
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if res.Totals.Copied != total {
		t.Errorf("totals = %+v, want %d copied", res.Totals, total)
	}
	mu.Lock()
	for _, f := range folders {
		for i := range f.Messages {
			if k := reads[fmt.Sprintf("%s %d", f.Name, i)]; k != 1 {
				t.Errorf("%s message %d: body read %d times, want 1", f.Name, i, k)
			}
		}
	}
	mu.Unlock()
	bodies := 0
	for _, c := range tp.Commands() {
		if v, args := imaptest.Verb(c); v == "UID FETCH" && strings.Contains(args, "BODY.PEEK[]") {
			bodies++
		}
	}
	want := 0
	for _, f := range folders {
		want += (len(f.Messages) + 15) / 16
	}
	if bodies != want {
		t.Errorf("body FETCHes: %d, want %d (one per chunk)", bodies, want)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})

	cfg = testConfig(t, viaTap, dst)
	cfg.NoReport = true
	if res := mustCopy(t, cfg); res.Totals.Copied != 0 {
		t.Errorf("rerun totals = %+v, want nothing copied", res.Totals)
	}
}
