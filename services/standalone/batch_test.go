package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"imapcopy.dev/pkg/batchstart"
	"imapcopy.dev/pkg/imaptest"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// TestBatchStart: a dry run of a batch file of 50 accounts gives 50 verdicts and starts
// nothing; the file then starts 50 syncs that all complete, and a
// row with a wrong password is refused with the reason and without the password;
// ListSyncs pages through the completed syncs; running the same file again starts
// none of the 50 and tries the refused row again.
func TestBatchStart(t *testing.T) {
	t.Parallel()
	_, grpcAddr := startStandalone(t)
	c := dial(t, grpcAddr)

	const n = 50
	const wrong = "Wrong-Password-Canary-7f3a"
	var file strings.Builder
	file.WriteString("source_login,source_password,source_host,source_port,source_security,destination_login,destination_password,destination_host,destination_port,destination_security\n")
	row := func(srcLogin, srcPassword string, srcPort int, dstLogin, dstPassword string, dstPort int) {
		fmt.Fprintf(&file, "%s,%s,127.0.0.1,%d,tls,%s,%s,127.0.0.1,%d,tls\n", srcLogin, srcPassword, srcPort, dstLogin, dstPassword, dstPort)
	}
	for i := range n {
		src, dst := shared.slash.AddUser(t), shared.dot.AddUser(t)
		if err := imaptest.Load(t.Context(), src, imaptest.Generate(int64(i), imaptest.Spec{Count: 3})); err != nil {
			t.Fatalf("load source %d: %v", i, err)
		}
		row(src.Login+"@source.test", src.Password, src.Port, dst.Login+"@destination.test", dst.Password, dst.Port)
	}
	bad, badDst := shared.slash.AddUser(t), shared.dot.AddUser(t)
	row(bad.Login+"@source.test", wrong, bad.Port, badDst.Login+"@destination.test", badDst.Password, badDst.Port)
	rows, err := batchstart.ReadRows(strings.NewReader(file.String()))
	if err != nil {
		t.Fatalf("ReadRows: %v", err)
	}

	start := func(dryRun bool) map[batchstart.Outcome][]batchstart.Result {
		got := map[batchstart.Outcome][]batchstart.Result{}
		batchstart.Run(t.Context(), c, rows, batchstart.Options{PerHost: 10 * time.Millisecond, DryRun: dryRun}, func(r batchstart.Result) {
			got[r.Outcome] = append(got[r.Outcome], r)
			if strings.Contains(fmt.Sprint(r), wrong) {
				t.Errorf("a result shows the password: %+v", r)
			}
		})
		return got
	}
	// A dry run: the verdict of every row, nothing started.
	plan := start(true)
	if len(plan[batchstart.Planned]) != n || len(plan[batchstart.Blocked]) != 1 {
		t.Fatalf("dry run: %d planned, %d blocked (%v), want %d and 1", len(plan[batchstart.Planned]), len(plan[batchstart.Blocked]), plan, n)
	}
	if r := plan[batchstart.Planned][0]; !strings.Contains(r.Detail, "3 messages") {
		t.Errorf("dry run: a planned row says %q, want its 3 messages to copy", r.Detail)
	}
	if list, err := c.ListSyncs(t.Context(), &imapcopyv1.ListSyncsRequest{}); err != nil || len(list.GetSyncs()) != 0 {
		t.Fatalf("after the dry run: %d syncs (%v), want none", len(list.GetSyncs()), err)
	}

	first := start(false)
	if len(first[batchstart.Started]) != n || len(first[batchstart.Refused]) != 1 {
		t.Fatalf("first run: %d started, %d refused (%v), want %d and 1", len(first[batchstart.Started]), len(first[batchstart.Refused]), first, n)
	}
	if r := first[batchstart.Refused][0]; r.Line != n+2 || !strings.Contains(r.Detail, "source account test failed") {
		t.Errorf("the wrong password's row: %+v, want line %d refused by the source's test", r, n+2)
	}

	completed := []imapcopyv1.SyncState{imapcopyv1.SyncState_SYNC_STATE_COMPLETED}
	deadline := time.Now().Add(5 * waitEnd) // 50 syncs, on a shared machine
	for {
		resp, err := c.ListSyncs(t.Context(), &imapcopyv1.ListSyncsRequest{States: completed, PageSize: 1})
		if err != nil {
			t.Fatalf("ListSyncs: %v", err)
		}
		done := 0
		for _, tot := range resp.GetTotals() {
			if tot.GetState() == completed[0] {
				done = int(tot.GetCount())
			}
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d syncs completed after %v (totals %v)", done, n, 5*waitEnd, resp.GetTotals())
		}
		time.Sleep(500 * time.Millisecond)
	}
	seen := map[string]bool{}
	req := &imapcopyv1.ListSyncsRequest{States: completed, PageSize: 20}
	for pages := 1; ; pages++ {
		resp, err := c.ListSyncs(t.Context(), req)
		if err != nil {
			t.Fatalf("ListSyncs page %d: %v", pages, err)
		}
		for _, st := range resp.GetSyncs() {
			seen[st.GetSourceEmail()] = true
		}
		if resp.GetNextPageToken() == "" {
			if pages != 3 || len(seen) != n {
				t.Errorf("ListSyncs of the completed syncs by pages of 20: %d pages, %d syncs; want 3 and %d", pages, len(seen), n)
			}
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}

	second := start(false)
	if len(second[batchstart.Started]) != 0 || len(second[batchstart.Skipped]) != n || len(second[batchstart.Refused]) != 1 {
		t.Errorf("second run: %d started, %d skipped, %d refused; want 0, %d, 1", len(second[batchstart.Started]), len(second[batchstart.Skipped]), len(second[batchstart.Refused]), n)
	}
	for _, r := range second[batchstart.Skipped] {
		if r.Detail != "already COMPLETED" {
			t.Errorf("second run: %+v, want skipped as already COMPLETED", r)
			break
		}
	}
}
