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

// TestRefusedBatchAfterPrefetch: on one connection, the first folder's last
// chunk is one MULTIAPPEND batch of 121 messages (more than the old batch of
// 50), which the destination refuses for the one message over its quota.
// By then the worker has sent the next folder's metadata pass on the source
// connection (prefetchNext), so the source has the next folder open: the
// batch's messages, fetched again by UID to be appended alone, must come from
// the first folder, opened again, not from the next one under the same UIDs.
// Every body is read twice in the first folder and once in the other; the
// checker finds nothing lost, nothing twice, nothing from the wrong folder.
func TestRefusedBatchAfterPrefetch(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourSlash].AddUser(t, imaptest.WithQuota(900_000))
	const n = 120
	var first, next []imaptest.Message
	for i := range n {
		first = append(first, msg(fmt.Sprintf("first %d", i), fmt.Sprintf("f%d@example.com", i), 2_000, baseDate))
		next = append(next, msg(fmt.Sprintf("next %d", i), fmt.Sprintf("n%d@example.com", i), 1_000, baseDate))
	}
	big := msg("big", "big@example.com", 1_000_000, baseDate)
	first = slices.Insert(first, n/2, big)
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: first},
		{Name: "Next", Messages: next},
	}})

	var mu sync.Mutex
	reads := map[string]int{} // bodies handed to the appender, by subject
	cfg := mailcopy.WithBodyWrapper(testConfig(t, src, dst), func(_ uint32, body io.Reader) io.Reader {
		return &subjectReader{r: body, seen: func(s string) {
			mu.Lock()
			defer mu.Unlock()
			reads[s]++
		}}
	})
	cfg.Connections = 1
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if res.Totals.Copied != 2*n || res.Totals.Failed != 1 {
		t.Errorf("totals = %+v, want %d copied, 1 failed", res.Totals, 2*n)
	}
	mu.Lock()
	for i := range n {
		if k := reads[fmt.Sprintf("first %d", i)]; k != 2 {
			t.Errorf("INBOX message %d: body read %d times, want 2 (in the refused batch, then alone)", i, k)
		}
		if k := reads[fmt.Sprintf("next %d", i)]; k != 1 {
			t.Errorf("Next message %d: body read %d times, want 1", i, k)
		}
	}
	mu.Unlock()
	mustCheck(t, src, dst, imaptest.CheckOptions{AllowMissing: func(_ string, size int64) bool { return size > 900_000 }})
}

// subjectReader reports the Subject of the body read through it, once its
// header has been read.
type subjectReader struct {
	r    io.Reader
	head []byte
	seen func(subject string)
	done bool
}

func (s *subjectReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if !s.done {
		s.head = append(s.head, p[:n]...)
		if end := strings.Index(string(s.head), "\r\n\r\n"); end >= 0 || err != nil {
			s.done = true
			for line := range strings.SplitSeq(string(s.head), "\r\n") {
				if v, ok := strings.CutPrefix(line, "Subject: "); ok {
					s.seen(v)
					break
				}
			}
		}
	}
	return n, err
}
