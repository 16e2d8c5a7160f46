package mailcopy_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// TestQuotaThenSpaceFreed (docs/faults.md, destination over quota): a copy
// into a destination whose quota holds half of the mailbox stops at the quota
// with an over-quota error on the destination side that says the account is
// full; the message bigger than the whole quota is listed as too large for the
// space left, and no message that merely met the full account is listed. The
// quota is then raised (Dovecot's userdb quota rule, the mail kept): a rerun
// copies the rest, the big message is listed again, the checker passes but
// for it, and a third run appends nothing.
//
// Dovecot 2.3 answers both refusals alike: `NO [OVERQUOTA] Quota exceeded
// (mailbox for user is full)`; the engine tells the message too big for the
// space left from a full account by the message's size and by refusals in a
// row (see quotaWatch).
func TestQuotaThenSpaceFreed(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dstServer := servers[imaptest.FlavourDot]
	dst := dstServer.AddUser(t, imaptest.WithQuota(60_000))
	var inboxMsgs, work []imaptest.Message
	for i := range 20 {
		inboxMsgs = append(inboxMsgs, msg(fmt.Sprintf("inbox %d", i), fmt.Sprintf("q%d@x", i), 3_000, baseDate))
		work = append(work, msg(fmt.Sprintf("work %d", i), fmt.Sprintf("w%d@x", i), 3_000, baseDate))
	}
	const bigSize = 300_000
	big := msg("bigger than the whole quota", "big@x", bigSize, baseDate)
	inboxMsgs = append(inboxMsgs[:2], append([]imaptest.Message{big}, inboxMsgs[2:]...)...)
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: inboxMsgs},
		{Name: "Work", Messages: work},
	}})
	isBig := func(_ string, size int64) bool { return size >= bigSize }

	res, err := mailcopy.Copy(testContext(t), testConfig(t, src, dst))
	var merr *mailcopy.Error
	if !errors.As(err, &merr) || merr.Kind != mailcopy.KindOverQuota || merr.Side != mailcopy.SideDestination ||
		!strings.Contains(err.Error(), "full") || !strings.Contains(err.Error(), "OVERQUOTA") {
		t.Fatalf("Copy error = %v (kind %v), want an over-quota error on the destination saying it is full, with the server's answer", err, mailcopy.KindOf(err))
	}
	t.Logf("first run: %v; totals %+v; failures %+v", err, res.Totals, res.Failures)
	if res.Totals.Copied == 0 || res.Totals.Copied >= 40 {
		t.Errorf("first run: totals %+v, want some of the 40 small messages copied before the quota", res.Totals)
	}
	for _, f := range res.Failures {
		if f.Size < bigSize {
			t.Errorf("first run: failure %+v: a message that met the full account is listed as failed", f)
		}
	}

	if err := dstServer.SetQuota(testContext(t), dst, 250_000); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, src, dst)
	again := mustCopy(t, cfg)
	t.Logf("after the quota was raised: totals %+v; failures %+v", again.Totals, again.Failures)
	// The stop cuts the answers another connection had in flight: a message
	// stored then is not counted by the first run, and the rerun finds it
	// present (never appends it again: the checker below).
	if again.Totals.Copied+again.Totals.Present != 40 || again.Totals.Present < res.Totals.Copied ||
		again.Totals.Failed != 1 || again.Complete() {
		t.Errorf("rerun: totals %+v, want the 40 small messages there (at least the %d the first run copied present, the rest copied) and the big one failed",
			again.Totals, res.Totals.Copied)
	}
	if len(again.Failures) != 1 || again.Failures[0].Folder != "INBOX" || again.Failures[0].UID != 3 ||
		!strings.Contains(again.Failures[0].Reason, "too large for the space left") || !strings.Contains(again.Failures[0].Reason, "OVERQUOTA") {
		t.Errorf("rerun: failures %+v, want INBOX UID 3, too large for the space left, with Dovecot's answer", again.Failures)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{AllowMissing: isBig})

	cfg.NoReport = true
	third := mustCopy(t, cfg)
	if third.Totals.Copied != 0 || third.Totals.Present != 40 || third.Totals.Failed != 1 {
		t.Errorf("third run: totals %+v, want 0 copied, 40 present, the big one failed", third.Totals)
	}
}
