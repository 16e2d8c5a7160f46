package mailcopy_test

import (
	"context"
	"testing"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// TestHandshakeCutRetried: a sync's accounts were reached before (the api logs in to
// both before it queues the sync), so a destination connection cut during its TLS
// handshake, as by a network failure at the start of a retry, is temporary: the copier
// retries it. It used to be read as "this port does not speak TLS" and end the sync
// FAILED for good.
func TestHandshakeCutRetried(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)
	mb := imaptest.Generate(77, imaptest.Spec{Count: 20})
	mustLoad(t, src, mb)
	dp := proxytest.New(t, servers[imaptest.FlavourDot].TLSAddr)
	dp.CutConnAfter(proxytest.Downstream, 0) // the server's first handshake bytes
	ctx := context.Background()
	cfg := mailcopy.Config{Source: src, Destination: via(dst, dp), Reached: true, NoReport: true}

	_, err := mailcopy.Copy(ctx, cfg)
	if err != nil && mailcopy.KindOf(err) != mailcopy.KindTemporary {
		t.Fatalf("Copy with the destination's handshake cut: %v (kind %v), want success or a temporary failure", err, mailcopy.KindOf(err))
	}
	if dp.Stats().Cuts != 1 {
		t.Fatalf("proxy cuts = %d, want 1", dp.Stats().Cuts)
	}
	if _, err := mailcopy.Copy(ctx, cfg); err != nil { // the retry a copier makes
		t.Fatalf("retry: %v", err)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}
