package mailcopy_test

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// TestStalledBodyFetch: a source that starts sending a body and then says nothing
// more, on every connection. The idle deadline ends each stalled connection, the
// worker reconnects, and after its retries the copy ends with a temporary failure
// that names the source: no hang. (In a sync, the task is then retried later and
// ends FAILED with that reason on its last delivery: pkg/syncworker TestDecide.)
func TestStalledBodyFetch(t *testing.T) {
	t.Parallel()
	srv := servers[imaptest.FlavourSlash]
	src := srv.AddUser(t)
	mustLoad(t, src, imaptest.Generate(1701, imaptest.Spec{Count: 6, Folders: -1, Sizes: []imaptest.SizeClass{{Weight: 1, Min: 20_000, Max: 40_000}}}))
	dst := servers[imaptest.FlavourDot].AddUser(t)

	release := make(chan struct{})
	var stalls atomic.Int64
	sp := proxytest.New(t, srv.PlainAddr, proxytest.WithObserver(proxytest.Downstream, func(_ int64, b []byte) {
		if bytes.Contains(b, []byte("BODY[] {")) {
			stalls.Add(1)
			<-release // the rest of this connection's answers never come
		}
	}))
	t.Cleanup(func() { close(release) }) // before the proxy's own Close

	cfg := testConfig(t, via(srv.Plaintext(src), sp), dst)
	cfg.Connections = 1
	cfg.Dial.IdleTimeout = time.Second
	ctx, cancel := context.WithTimeout(testContext(t), 2*time.Minute)
	defer cancel()
	res, err := mailcopy.Copy(ctx, cfg)
	if ctx.Err() != nil {
		t.Fatalf("the copy hung on a stalled body FETCH: %v", err)
	}
	t.Logf("copy: %v; %d stalled body FETCHes", err, stalls.Load())
	if err == nil && res.Complete() {
		t.Fatalf("the copy completed though every body FETCH stalled")
	}
	if err != nil && mailcopy.KindOf(err) != mailcopy.KindTemporary {
		t.Errorf("kind %v, want temporary (retried later)", mailcopy.KindOf(err))
	}
	if err != nil && !strings.Contains(err.Error(), "source") {
		t.Errorf("error %q does not name the source", err)
	}
	if n := stalls.Load(); n < 2 {
		t.Errorf("%d stalled body FETCHes, want the retries to meet the stall again", n)
	}
	if res != nil && res.Totals.Copied != 0 {
		t.Errorf("copied %d messages through a source that never finished a body", res.Totals.Copied)
	}
}
