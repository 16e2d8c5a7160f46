package mailcopy_test

import (
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// panicReader panics once its message has given after bytes.
type panicReader struct {
	r     io.Reader
	after int
	n     int
}

func (p *panicReader) Read(b []byte) (int, error) {
	if p.n >= p.after {
		panic("injected panic in the body stream")
	}
	n, err := p.r.Read(b[:min(len(b), p.after-p.n)])
	p.n += n
	return n, err
}

// TestAppendPanic: a panic in the middle of a body being appended (with the
// source's FETCH literal half read) becomes an error: both connections are
// dropped without hanging, the folder is tried again, and the destination ends
// up with every message exactly once, none truncated.
func TestAppendPanic(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)
	var msgs []imaptest.Message
	for i := range 5 {
		msgs = append(msgs, msg(fmt.Sprintf("big %d", i), fmt.Sprintf("big%d@example.com", i), 60_000, baseDate))
	}
	mustLoad(t, src, inbox(msgs...))
	var panicked atomic.Bool
	cfg := mailcopy.WithBodyWrapper(testConfig(t, src, dst), func(uid uint32, body io.Reader) io.Reader {
		if uid == 3 && !panicked.Swap(true) {
			return &panicReader{r: body, after: 10_000}
		}
		return body
	})
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if !panicked.Load() {
		t.Fatalf("the injected panic never happened")
	}
	if !res.Complete() || res.Totals.Copied != 5 {
		t.Errorf("totals = %+v, want 5 copied", res.Totals)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}
