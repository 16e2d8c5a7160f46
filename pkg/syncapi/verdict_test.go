package syncapi

import (
	"strings"
	"testing"

	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/providers"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// A 10 GB Gmail source: labels and the copies they add, a multi-day estimate from
// Gmail's daily download allowance. (A Gmail server is not among the test servers:
// the dry run's result is written here as the engine gives it for Gmail, its All Mail
// folder ArchiveOnly with the messages it scanned.)
func TestVerdictGmail(t *testing.T) {
	const gb = 1_000_000_000
	res := &mailcopy.Result{
		Totals: mailcopy.Counts{Total: 1300, Copied: 1300, Bytes: 10 * gb, TotalBytes: 10 * gb},
		Folders: []mailcopy.FolderResult{
			{Source: "INBOX", Destination: "INBOX", Counts: mailcopy.Counts{Total: 600, Copied: 600}},
			{Source: "Work", Destination: "Work", Created: true, Counts: mailcopy.Counts{Total: 500, Copied: 500}},
			{Source: "[Gmail]/All Mail", Destination: "Archive", ArchiveOnly: true, Scanned: 1000, Counts: mailcopy.Counts{Total: 200, Copied: 200}},
		},
		FolderSkips: []mailcopy.FolderSkip{{Source: "[Gmail]/Important", Reason: "a view"}},
	}
	gmail, _ := providers.Builtin().Get("gmail")
	resp := &imapcopyv1.PlanSyncResponse{}
	verdict(resp, res, planInputs{connections: 4, src: gmail.Limits, gmail: true, complete: true})

	g := resp.GetGmail()
	if strings.Join(g.GetLabels(), ",") != "INBOX,Work" || g.GetDistinctMessages() != 1000 || g.GetFolderMessages() != 1300 || g.GetMessagesInSeveralFolders() != 300 {
		t.Errorf("gmail = %v, want labels INBOX and Work, 1300 copies of 1000 messages, 300 more", g)
	}
	est := resp.GetEstimate()
	// 10 GB at Gmail's 2.62 GB a day: 3.8 days, far longer than the throughput says.
	if days := float64(est.GetSeconds()) / 86400; days < 3.7 || days > 3.9 || !strings.Contains(est.GetMethod(), "a day") {
		t.Errorf("estimate = %v (%.1f days), want about 3.8 days from the daily allowance", est, days)
	}
	var kinds []string
	for _, f := range resp.GetFindings() {
		kinds = append(kinds, f.GetKind().String())
		if f.GetBlocking() {
			t.Errorf("blocking finding %v", f)
		}
	}
	for _, want := range []string{"PLAN_FINDING_KIND_GMAIL_GROWTH", "PLAN_FINDING_KIND_DURATION", "PLAN_FINDING_KIND_FOLDER_SKIPPED"} {
		if !strings.Contains(strings.Join(kinds, " "), want) {
			t.Errorf("findings %v lack %s", kinds, want)
		}
	}
	if resp.GetBlocking() || resp.GetDestinationQuota() != nil {
		t.Errorf("blocking %v, quota %v: no quota known, nothing blocks", resp.GetBlocking(), resp.GetDestinationQuota())
	}
}

// The estimate without a daily allowance: the bench's throughput per connection.
func TestEstimate(t *testing.T) {
	est := estimate(4*benchBytesPerSecond*60, 10, planInputs{connections: 2})
	// Two connections: half the bench's four, so 8 minutes for 4 minutes' worth at the bench's rate.
	if est.GetSeconds() != 8*60 || est.GetConnections() != 2 {
		t.Errorf("estimate = %v, want 480 s with 2 connections", est)
	}
	if est := estimate(0, 0, planInputs{connections: 4}); est.GetSeconds() != 0 || est.GetMethod() != "nothing to copy" {
		t.Errorf("estimate of nothing = %v", est)
	}
}

// StartSync's quick check never refuses a copy that fits: the destination's used bytes
// count as already copied (a rerun).
func TestQuickPlan(t *testing.T) {
	src := &imapcopyv1.TestAccountResponse{TotalBytes: 1000}
	for _, c := range []struct {
		used, limit uint64
		block       bool
	}{
		{0, 0, false},       // no limit
		{0, 2000, false},    // fits
		{0, 1050, true},     // fits without the margin only
		{1000, 1010, false}, // a rerun: everything is there
		{500, 1000, true},   // half there, 550 needed, 500 free
	} {
		dst := &imapcopyv1.TestAccountResponse{Quota: &imapcopyv1.Quota{UsedBytes: c.used, LimitBytes: c.limit}}
		if f := quickPlan(src, dst); (f != nil) != c.block {
			t.Errorf("used %d of %d: finding %v, want blocking %v", c.used, c.limit, f, c.block)
		}
	}
	if f := quickPlan(&imapcopyv1.TestAccountResponse{}, &imapcopyv1.TestAccountResponse{Quota: &imapcopyv1.Quota{LimitBytes: 1}}); f != nil {
		t.Errorf("unknown source size: %v, want no finding", f)
	}
}
