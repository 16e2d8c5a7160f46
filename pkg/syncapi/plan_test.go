package syncapi_test

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/providers"
	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// load fills an account with mb and returns the messages' count and bytes.
func load(t *testing.T, acct imapconn.Account, mb imaptest.Mailbox) (count int, bytes uint64) {
	t.Helper()
	ctx := t.Context()
	if err := imaptest.Load(ctx, acct, mb); err != nil {
		t.Fatalf("load the mailbox: %v", err)
	}
	for _, f := range mb.Folders {
		for _, m := range f.Messages {
			count++
			bytes += uint64(len(m.Raw))
		}
	}
	return count, bytes
}

// body is a message with its subject as Message-ID and size bytes of text.
func body(subject string, size int) imaptest.Message {
	raw := "From: a@example.test\r\nTo: b@example.test\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@example.test>\r\n\r\n" +
		strings.Repeat("x", size) + "\r\n"
	return imaptest.Message{Raw: []byte(raw)}
}

// smallMessages is a mailbox of n messages of 2 to 4 kB in INBOX and two folders.
func smallMessages(seed int64, n int) imaptest.Mailbox {
	return imaptest.Generate(seed, imaptest.Spec{Count: n, Folders: 2, Sizes: []imaptest.SizeClass{{Weight: 1, Min: 2000, Max: 4000}}})
}

// assertNothingWritten checks that no status exists for the source and that its lock
// is free (taken and given back here), and that nothing was queued.
func (e *env) assertNothingWritten(source string) {
	e.t.Helper()
	if st, err := e.store.Get(e.ctx(), source); !errors.Is(err, syncstatus.ErrNotFound) {
		e.t.Errorf("status of %s = %v, %v, want none (ErrNotFound)", source, st, err)
	}
	token, err := e.store.Acquire(e.ctx(), source, time.Minute)
	if err != nil {
		e.t.Errorf("the lock of %s is not free: %v", source, err)
	} else if err := e.store.Release(e.ctx(), source, token); err != nil {
		e.t.Errorf("release: %v", err)
	}
	if n := len(e.tasks()); n != 0 {
		e.t.Errorf("tasks queued = %d, want 0", n)
	}
}

// The check of issue 13: PlanSync on a destination whose quota is smaller than the
// source says so with the figures, writes nothing, and StartSync of the same request
// is refused, unless ignore_plan.
func TestPlanSyncQuota(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			src := newUser(t)
			count, bytes := load(t, src.acct, smallMessages(1, 20))
			const quota = 30 << 10 // Dovecot counts the quota in KiB
			dst := newUser(t, imaptest.WithQuota(quota))
			req := &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()}

			plan, err := e.client.PlanSync(e.ctx(), req)
			if err != nil {
				t.Fatalf("PlanSync: %v", err)
			}
			if !plan.GetBlocking() || !plan.GetComplete() {
				t.Fatalf("PlanSync: blocking %v, complete %v, want blocking and complete: %v", plan.GetBlocking(), plan.GetComplete(), plan)
			}
			f := plan.GetFindings()[0]
			if f.GetKind() != imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_QUOTA || !f.GetBlocking() ||
				!strings.Contains(f.GetMessage(), "destination is too small") || !strings.Contains(f.GetMessage(), "raise its quota") {
				t.Errorf("first finding = %v, want the blocking quota finding saying what to do", f)
			}
			if plan.GetSourceMessages() != uint64(count) || plan.GetSourceBytes() != bytes ||
				plan.GetMessagesToCopy() != uint64(count) || plan.GetBytesToCopy() != bytes || plan.GetMessagesPresent() != 0 {
				t.Errorf("figures: source %d messages %d bytes, to copy %d %d, present %d; want %d messages, %d bytes, all to copy",
					plan.GetSourceMessages(), plan.GetSourceBytes(), plan.GetMessagesToCopy(), plan.GetBytesToCopy(), plan.GetMessagesPresent(), count, bytes)
			}
			if q := plan.GetDestinationQuota(); q.GetLimitBytes() != quota || plan.GetDestinationFreeBytes() != quota-q.GetUsedBytes() {
				t.Errorf("quota = %v, free %d, want limit %d", q, plan.GetDestinationFreeBytes(), quota)
			}
			if want := uint64(math.Ceil(float64(bytes) * 1.1)); plan.GetMargin() != 1.1 || plan.GetRequiredBytes() != want {
				t.Errorf("margin %v, required %d, want 1.1 and %d", plan.GetMargin(), plan.GetRequiredBytes(), want)
			}
			e.assertNothingWritten(src.email)

			// StartSync refuses the same request, naming the finding and the way out.
			_, err = e.client.StartSync(e.ctx(), req)
			st := status.Convert(err)
			if st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "destination is too small") ||
				!strings.Contains(st.Message(), "options.ignore_plan") {
				t.Fatalf("StartSync = %v, want FailedPrecondition naming the quota and options.ignore_plan", err)
			}
			var reason string
			for _, d := range st.Details() {
				if info, ok := d.(*errdetails.ErrorInfo); ok {
					reason = info.GetReason()
				}
			}
			if reason != "PLAN_FINDING_KIND_QUOTA" {
				t.Errorf("StartSync error reason = %q, want PLAN_FINDING_KIND_QUOTA", reason)
			}
			e.assertNothingWritten(src.email)

			// A dry run needs no space; ignore_plan starts all the same.
			for _, o := range []*imapcopyv1.SyncOptions{{DryRun: true}, {IgnorePlan: true}} {
				req.Options = o
				resp, err := e.client.StartSync(e.ctx(), req)
				if err != nil {
					t.Fatalf("StartSync(%v): %v", o, err)
				}
				e.finish(e.queuedTask(resp.GetTaskId()), imapcopyv1.SyncState_SYNC_STATE_COMPLETED)
			}
		})
	}
}

// A rerun fits: StartSync counts what the destination holds as already there, so a
// destination that holds the whole source and has little room left is not refused.
func TestStartSyncQuotaRerun(t *testing.T) {
	e := newEnv(t, "redis")
	src := newUser(t)
	mb := smallMessages(2, 20)
	_, bytes := load(t, src.acct, mb)
	dst := newUser(t, imaptest.WithQuota(int64(bytes)*3/2))
	load(t, dst.acct, mb)
	req := &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()}
	resp, err := e.client.StartSync(e.ctx(), req)
	if err != nil {
		t.Fatalf("StartSync of a rerun: %v", err)
	}
	e.finish(e.queuedTask(resp.GetTaskId()), imapcopyv1.SyncState_SYNC_STATE_COMPLETED)
	plan, err := e.client.PlanSync(e.ctx(), req)
	if err != nil || plan.GetBlocking() || plan.GetMessagesToCopy() != 0 || plan.GetMessagesPresent() != uint64(mb.Count()) {
		t.Errorf("PlanSync of a rerun = %v, %v, want not blocking, nothing to copy, all present", plan, err)
	}
}

// PlanSync on a good pair: the folder mapping with a rename (a "/" source folder whose
// name holds the "." of the destination), the messages too large for the destination
// preset, the largest messages, the estimate; after a copy, the rerun estimate.
func TestPlanSyncFolders(t *testing.T) {
	dot := imaptest.StartDovecot(t, imaptest.FlavourDot)
	catalogue, err := providers.Parse([]byte(`{"providers": [
		{"id": "other", "display_name": "Other IMAP server", "host_required": true, "source": true, "destination": true},
		{"id": "smallbox", "display_name": "Small Box", "host_required": true, "port": 993, "security": "tls",
		 "destination": true, "limits": {"max_message_size": 20000, "max_connections": 3}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "redis", withDeps(func(d *syncapi.Deps) { d.Providers = catalogue }))
	src := newUser(t)
	big := body("big", 30000)
	count, bytes := load(t, src.acct, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{body("one", 100), body("two", 200)}},
		{Name: "Releases/v1.2", Messages: []imaptest.Message{body("release", 300)}},
		{Name: "Big", Messages: []imaptest.Message{body("small", 400), big}},
	}})
	dstAcct := dot.AddUser(t)
	dst := &imapcopyv1.Account{
		Provider: "smallbox", Login: dstAcct.Login + "@example.test", Password: dstAcct.Password,
		Host: dstAcct.Host, Port: uint32(dstAcct.Port), Security: imapcopyv1.Security_SECURITY_TLS, InsecureSkipVerify: true, // another test CA
	}
	req := &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst}
	foldersBefore, err := imaptest.ListFolders(e.ctx(), withCA(dstAcct, dot))
	if err != nil {
		t.Fatal(err)
	}

	plan, err := e.client.PlanSync(e.ctx(), req)
	if err != nil {
		t.Fatalf("PlanSync: %v", err)
	}
	if plan.GetBlocking() || !plan.GetComplete() {
		t.Fatalf("PlanSync: blocking %v, complete %v, want neither blocking nor incomplete: %v", plan.GetBlocking(), plan.GetComplete(), plan)
	}
	folders := map[string]*imapcopyv1.PlanFolder{}
	for _, f := range plan.GetFolders() {
		folders[f.GetSourceName()] = f
	}
	rel := folders["Releases/v1.2"]
	if rel.GetDestinationName() != "INBOX.Releases.v1_2" || !strings.Contains(rel.GetRenameReason(), "delimiter") ||
		rel.GetExistsOnDestination() || rel.GetMessagesToCopy() != 1 {
		t.Errorf("folder Releases/v1.2 = %v, want renamed to INBOX.Releases.v1_2 for the delimiter, created, 1 message to copy", rel)
	}
	if in := folders["INBOX"]; in.GetDestinationName() != "INBOX" || !in.GetExistsOnDestination() || in.GetMessages() != 2 {
		t.Errorf("folder INBOX = %v, want INBOX, existing, 2 messages", in)
	}
	bigFolder := folders["Big"]
	if tl := bigFolder.GetTooLarge(); len(tl) != 1 || tl[0].GetSize() != uint64(len(big.Raw)) || tl[0].GetUid() == 0 ||
		tl[0].GetFolder() != "Big" || !strings.Contains(tl[0].GetReason(), "max_message_size") {
		t.Errorf("folder Big too large = %v, want the big message with its uid and size %d", tl, len(big.Raw))
	}
	if bigFolder.GetMessagesToCopy() != 1 || bigFolder.GetMessagesSkipped() != 1 {
		t.Errorf("folder Big = %v, want 1 to copy and 1 left out", bigFolder)
	}
	kinds := map[imapcopyv1.PlanFindingKind]*imapcopyv1.PlanFinding{}
	for _, f := range plan.GetFindings() {
		kinds[f.GetKind()] = f
		if f.GetBlocking() {
			t.Errorf("blocking finding %v", f)
		}
	}
	if f := kinds[imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_RENAME]; f.GetFolder() != "Releases/v1.2" || !strings.Contains(f.GetMessage(), "INBOX.Releases.v1_2") {
		t.Errorf("rename finding = %v", f)
	}
	if f := kinds[imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_TOO_LARGE]; f.GetFolder() != "Big" || !strings.Contains(f.GetMessage(), "20.0 kB") {
		t.Errorf("too large finding = %v, want folder Big and the 20 kB limit", f)
	}
	if plan.GetDestinationMaxMessageSize() != 20000 || plan.GetSourceMessages() != uint64(count) || plan.GetSourceBytes() != bytes ||
		plan.GetMessagesToCopy() != uint64(count-1) {
		t.Errorf("figures = max %d, source %d/%d, to copy %d; want 20000, %d/%d, %d", plan.GetDestinationMaxMessageSize(),
			plan.GetSourceMessages(), plan.GetSourceBytes(), plan.GetMessagesToCopy(), count, bytes, count-1)
	}
	if l := plan.GetLargestMessages(); len(l) != count || l[0].GetSize() != uint64(len(big.Raw)) || l[0].GetFolder() != "Big" {
		t.Errorf("largest messages = %v, want all %d, the big one first", l, count)
	}
	if est := plan.GetEstimate(); est.GetConnections() != 3 || est.GetSeconds() == 0 || !strings.Contains(est.GetMethod(), "make bench") {
		t.Errorf("estimate = %v, want 3 connections (the preset's), a duration and its method", est)
	}
	if plan.GetGmail() != nil {
		t.Errorf("gmail = %v for a source that is not Gmail", plan.GetGmail())
	}
	e.assertNothingWritten(src.email)
	if folders, err := imaptest.ListFolders(e.ctx(), withCA(dstAcct, dot)); err != nil || len(folders) != len(foldersBefore) {
		t.Errorf("destination folders after PlanSync = %v, %v, want those before: %v", folders, err, foldersBefore)
	}

	// After a copy (the copier's part, played here), the plan is the rerun estimate.
	res, err := mailcopy.Copy(e.ctx(), mailcopy.Config{Source: src.acct, Destination: withCA(dstAcct, dot), NoReport: true})
	if err != nil || !res.Complete() {
		t.Fatalf("copy: %v, %+v", err, res)
	}
	plan, err = e.client.PlanSync(e.ctx(), req)
	if err != nil {
		t.Fatalf("PlanSync after the copy: %v", err)
	}
	if plan.GetBlocking() || plan.GetMessagesPresent() != uint64(count) || plan.GetMessagesToCopy() != 0 || plan.GetEstimate().GetSeconds() != 0 {
		t.Errorf("PlanSync after the copy: blocking %v, present %d, to copy %d, estimate %v; want all %d present, nothing to copy",
			plan.GetBlocking(), plan.GetMessagesPresent(), plan.GetMessagesToCopy(), plan.GetEstimate(), count)
	}
	for _, f := range plan.GetFolders() {
		if !f.GetExistsOnDestination() || f.GetMessagesPresent() != f.GetMessages() || len(f.GetTooLarge()) != 0 {
			t.Errorf("folder after the copy = %v, want existing with every message present", f)
		}
	}
}

// withCA is a destination account on another test server, trusting that server's CA.
func withCA(a imapconn.Account, d *imaptest.Dovecot) imapconn.Account {
	a.RootCAs = d.CAPool
	return a
}

// PlanSync validates as StartSync does, and a failed login is a blocking finding.
func TestPlanSyncInvalidAndFailedLogin(t *testing.T) {
	e := newEnv(t, "redis")
	src, dst := newUser(t), newUser(t)
	_, err := e.client.PlanSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: src.proto()})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "the same account as the source") {
		t.Errorf("PlanSync(same account) = %v, want InvalidArgument", err)
	}
	_, err = e.client.PlanSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto(),
		Options: &imapcopyv1.SyncOptions{Language: "xx"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "options.language") {
		t.Errorf("PlanSync(language xx) = %v, want InvalidArgument naming options.language", err)
	}
	plan, err := e.client.PlanSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.withPassword("wrong")})
	if err != nil {
		t.Fatalf("PlanSync(wrong password): %v", err)
	}
	if f := plan.GetFindings(); !plan.GetBlocking() || len(f) != 1 || f[0].GetKind() != imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_ACCOUNT ||
		!strings.Contains(f[0].GetMessage(), "destination account test failed") || strings.Contains(f[0].GetMessage(), dst.acct.Password) {
		t.Errorf("PlanSync(wrong password) = %v, want one blocking account finding about the destination", plan)
	}
	e.assertNothingWritten(src.email)
}

// PlanSync over JSON/HTTP: the body of StartSync to /v1/syncs:plan, the verdict in
// protobuf's JSON mapping; nothing written.
func TestHTTPPlanSync(t *testing.T) {
	e := newEnv(t, "redis", withHTTP(syncapi.HTTPOptions{}))
	panel := httpClient{t: t, base: e.httpURL, token: testToken}
	src := newUser(t)
	count, _ := load(t, src.acct, smallMessages(3, 10))
	dst := newUser(t, imaptest.WithQuota(8<<10))
	req := &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()}

	a := panel.do("POST", "/v1/syncs:plan", req)
	panel.want(a, 200, "plan")
	findings, _ := a.body["findings"].([]any)
	first, _ := findings[0].(map[string]any)
	folders, _ := a.body["folders"].([]any)
	if a.body["blocking"] != true || first["kind"] != "PLAN_FINDING_KIND_QUOTA" || len(folders) == 0 ||
		a.str("sourceMessages") != strconv.Itoa(count) || a.body["estimate"] == nil {
		t.Errorf("plan: %s", a.raw)
	}
	a = panel.do("POST", "/v1/syncs", req)
	panel.want(a, 400, "start refused by the plan") // FailedPrecondition
	if !strings.Contains(a.str("message"), "options.ignore_plan") {
		t.Errorf("start refused by the plan: %s", a.raw)
	}
	a = panel.do("POST", "/v1/syncs:plan", `{"source": {"login": "x@example.test"}}`)
	panel.want(a, 400, "plan of an invalid request")
	e.assertNothingWritten(src.email)
}

// A plan that runs out of time answers what it learnt, marked incomplete, rather than
// an error. (The bound has passed before the dry run starts: nothing here is timed.)
func TestPlanSyncIncomplete(t *testing.T) {
	e := newEnv(t, "redis", withOptions(func(o *syncapi.Options) { o.PlanTimeout = time.Nanosecond }))
	src, dst := newUser(t), newUser(t)
	load(t, src.acct, smallMessages(4, 5))
	plan, err := e.client.PlanSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()})
	if err != nil {
		t.Fatalf("PlanSync: %v", err)
	}
	f := plan.GetFindings()
	if plan.GetComplete() || plan.GetBlocking() || len(f) == 0 || f[0].GetKind() != imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_INCOMPLETE ||
		!strings.Contains(f[0].GetMessage(), "did not finish within 1ns") {
		t.Errorf("PlanSync = %v, want an incomplete, non-blocking verdict saying so", plan)
	}
	e.assertNothingWritten(src.email)
}

// A source laid out like Gmail (every message also in "[Gmail]/All Mail"), behind a
// preset with Gmail's id (the Gmail folder rules) on the test Dovecot: the labels, the
// copies a message with two labels adds, the archived messages, and an estimate bound
// by the preset's daily download allowance.
func TestPlanSyncGmail(t *testing.T) {
	catalogue, err := providers.Parse([]byte(`{"providers": [
		{"id": "other", "display_name": "Other IMAP server", "host_required": true, "source": true, "destination": true},
		{"id": "gmail", "display_name": "Gmail on the test server", "host_required": true, "source": true,
		 "limits": {"daily_download_bytes": 1000}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "redis", withDeps(func(d *syncapi.Deps) { d.Providers = catalogue }))
	src, dst := newUser(t), newUser(t)
	labelled, inbox, work, sent, archived := body("labelled", 900), body("inbox", 800), body("work", 700), body("sent", 600), body("archived", 1000)
	load(t, src.acct, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{labelled, inbox}},
		{Name: "Work", Messages: []imaptest.Message{labelled, work}},
		{Name: "[Gmail]/Sent Mail", Messages: []imaptest.Message{sent}},
		{Name: "[Gmail]/All Mail", Messages: []imaptest.Message{labelled, inbox, work, sent, archived}},
	}})
	source := src.proto()
	source.Provider = "gmail"
	plan, err := e.client.PlanSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: source, Destination: dst.proto()})
	if err != nil {
		t.Fatalf("PlanSync: %v", err)
	}
	g := plan.GetGmail()
	// The test server's empty special-use folders (Drafts, Trash, …) are labels too.
	labels := g.GetLabels()
	if !slices.Contains(labels, "INBOX") || !slices.Contains(labels, "Work") || !slices.Contains(labels, "[Gmail]/Sent Mail") ||
		slices.Contains(labels, "[Gmail]/All Mail") || g.GetDistinctMessages() != 5 || g.GetFolderMessages() != 6 || g.GetMessagesInSeveralFolders() != 1 {
		t.Errorf("gmail = %v, want INBOX, Work and Sent Mail among the labels (not All Mail), 6 copies of 5 messages: 1 more", g)
	}
	var archive *imapcopyv1.PlanFolder
	kinds := map[imapcopyv1.PlanFindingKind]*imapcopyv1.PlanFinding{}
	for _, f := range plan.GetFolders() {
		if f.GetArchiveOnly() {
			archive = f
		}
	}
	for _, f := range plan.GetFindings() {
		kinds[f.GetKind()] = f
	}
	if archive.GetSourceName() != "[Gmail]/All Mail" || archive.GetMessagesToCopy() != 1 {
		t.Errorf("archive folder = %v, want All Mail with its 1 archived message", archive)
	}
	if plan.GetMessagesToCopy() != 6 || kinds[imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_GMAIL_GROWTH] == nil {
		t.Errorf("to copy %d, findings %v: want 6 and the growth finding", plan.GetMessagesToCopy(), plan.GetFindings())
	}
	if d := kinds[imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_DURATION]; d == nil || !strings.Contains(d.GetMessage(), "1.0 kB a day") ||
		plan.GetEstimate().GetSeconds() < 86400 {
		t.Errorf("duration finding %v, estimate %v: want days, from the 1 kB a day the source allows", d, plan.GetEstimate())
	}
}
