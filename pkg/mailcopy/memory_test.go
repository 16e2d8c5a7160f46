package mailcopy_test

import (
	"bytes"
	"fmt"
	"testing"

	"imapcopy.dev/pkg/imapappend"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// bigMessage is a message of size bytes with a base64-looking attachment.
func bigMessage(n, size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 100)
	fmt.Fprintf(&b, "From: a@example.com\r\nTo: b@example.com\r\nSubject: big %d\r\nMessage-ID: <big%d@example.com>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n", n, n)
	line := []byte("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n")
	for b.Len()+len(line) <= size {
		line[0] = byte('A' + (b.Len()/len(line))%26)
		b.Write(line)
	}
	return b.Bytes()
}

// TestMemoryBigMessages copies three 20 MB messages and measures the peak of
// the heap in use above what it was before the copy (sampled every 2 ms).
// The engine streams bodies from the source into the destination: the peak
// must stay within the budget of a connection (mailcopy.ConnectionMemory),
// well below one message. Not parallel: it measures the process.
func TestMemoryBigMessages(t *testing.T) {
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)
	const size, count = 20 << 20, 3
	for i := range count {
		if _, err := imaptest.AppendRaw(testContext(t), src, "INBOX", bigMessage(i, size), baseDate); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	peak := imaptest.PeakHeapGrowth(func() {
		cfg := testConfig(t, src, dst)
		cfg.NoReport = true
		res := mustCopy(t, cfg)
		if res.Totals.Copied != count {
			t.Errorf("copied %d, want %d", res.Totals.Copied, count)
		}
	})
	t.Logf("peak heap in use above the baseline while copying %d messages of %d MiB: %.1f MiB", count, size>>20, float64(peak)/(1<<20))
	if peak > mailcopy.ConnectionMemory {
		t.Errorf("peak heap growth %d bytes, over the budget of a connection (%d): a message of %d bytes seems to be held in memory", peak, mailcopy.ConnectionMemory, size)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}

// TestMemoryBigBatch copies 24 messages of 900 KiB in one MULTIAPPEND batch
// (limits raised to 50 messages and 64 MiB: about 21 MiB in one command): the
// peak of the heap in use stays within the budget of a connection, below a
// third of the batch, so no batch's bodies are held (the engine keeps none for a
// refused batch's retry, imapappend.Config.NoResend). Not parallel: it measures
// the process.
func TestMemoryBigBatch(t *testing.T) {
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)
	const size, count = 900 << 10, 24
	for i := range count {
		if _, err := imaptest.AppendRaw(testContext(t), src, "INBOX", bigMessage(i, size), baseDate); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	peak := imaptest.PeakHeapGrowth(func() {
		cfg := testConfig(t, src, dst)
		cfg.NoReport = true
		cfg.Batching = imapappend.Batching{Messages: 50, Bytes: 64 << 20}
		res := mustCopy(t, cfg)
		if res.Totals.Copied != count {
			t.Errorf("copied %d, want %d", res.Totals.Copied, count)
		}
	})
	t.Logf("peak heap in use above the baseline while copying a batch of %d messages of %d KiB: %.1f MiB", count, size>>10, float64(peak)/(1<<20))
	if peak > mailcopy.ConnectionMemory {
		t.Errorf("peak heap growth %d bytes, over the budget of a connection (%d): the batch of %d bytes seems to be held in memory", peak, mailcopy.ConnectionMemory, count*size)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}
