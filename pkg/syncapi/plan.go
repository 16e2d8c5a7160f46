package syncapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/providers"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// The pre-flight verdict (PlanSync) and the part of it StartSync runs.
//
// PlanSync runs the engine's dry run (mailcopy.Config.DryRun) on both accounts, in the
// api and bounded by Options.PlanTimeout: the same LIST, folder mapping and metadata
// passes as the copy, so the folder plan, the renames, the messages already on the
// destination (the rerun estimate) and the messages to copy are the copy's own, not a
// guess. It writes nothing anywhere (the dry run creates and appends nothing), takes no
// lock, records no status and queues nothing.
//
// StartSync does not run the dry run: it would double the work of every start (a
// metadata pass of every folder on both sides, minutes on a large mailbox, while the
// caller waits). It runs only the quota check that costs no more than the account tests
// it already makes: the source's folder sizes (STATUS SIZE, the source test with
// details) against the destination's quota (GETQUOTAROOT, which the destination test
// always asks for); see quickPlan. The checks that need the metadata passes (the
// messages too large for the destination, the renames, the rerun estimate) are
// PlanSync's, and none of them blocks.

// quotaMargin multiplies the bytes to copy before they are compared with the
// destination's free quota. A server charges a stored message more than its
// RFC822.SIZE (Dovecot's maildir quota counts the file with its line endings,
// Cyrus and Exchange add per-message overhead) and its index and cache files grow
// with the folders; a copy that stops with a full destination after hours is worse
// than one refused before it starts. 10% is a judgement, not a measurement: enough
// for those overheads on ordinary mail (a few hundred bytes on messages of tens of
// kB), small enough not to refuse copies that fit; ignore_plan overrides it.
const quotaMargin = 1.1

// The throughput of the duration estimate, measured by `make bench` (BENCH_SIZE=small,
// the emulated WAN: a proxy adding 20 ms each way in front of each Dovecot, the
// copier's default 4 connections, on the 2-CPU development machine, one run with a
// load average of 4 from other work): 4.8 MB/s and 80 messages/s for a first copy
// (19.3 MB/s on loopback). The estimate assumes the throughput grows with the
// connections (each one waits on the network, not on the CPU), a quarter of the figure
// per connection; a real provider across the internet is rarely faster than the
// emulated WAN, so the estimate errs on the long side.
const (
	benchConnections       = 4
	benchBytesPerSecond    = 5_033_165 // 4.8 MB/s: the bench's MB are MiB
	benchMessagesPerSecond = 80
)

// defaultPlanConnections is the copier's default connections per account
// (syncworker.DefaultConnections) when neither the options nor a preset say.
const defaultPlanConnections = 4

// longCopy is the estimated duration from which the verdict mentions it.
const longCopy = 24 * time.Hour

// Planner runs the dry run of a copy for PlanSync; *Prober implements it.
type Planner interface {
	DryRun(ctx context.Context, cfg mailcopy.Config) (*mailcopy.Result, error)
}

// DryRun runs the copy engine's dry run with the prober's dialer (the network
// policy's in production) and logger: it lists, maps and compares both accounts and
// writes nothing.
func (p *Prober) DryRun(ctx context.Context, cfg mailcopy.Config) (*mailcopy.Result, error) {
	cfg.Dial = p.opts
	cfg.Logger = p.log
	cfg.DryRun, cfg.NoReport = true, true
	return mailcopy.Copy(ctx, cfg)
}

// PlanSync implements SyncService: validate as StartSync does (prepare), test both
// accounts, run the dry run bounded by Options.PlanTimeout and answer the verdict. A
// failed account test or a dry run that cannot log in is a blocking finding, not an
// error: the verdict says what to fix.
func (s *Service) PlanSync(ctx context.Context, req *imapcopyv1.StartSyncRequest) (*imapcopyv1.PlanSyncResponse, error) {
	if s.planner == nil {
		return nil, status.Error(codes.Unimplemented, "this api does not run pre-flight checks")
	}
	r, err := s.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	// The plan holds two test slots for its whole run: it bounds the plans running at
	// once as it bounds the tests.
	release, err := s.acquireSlots(ctx, 2)
	if err != nil {
		return nil, err
	}
	defer release()
	resp := &imapcopyv1.PlanSyncResponse{Margin: quotaMargin}
	results := s.testBoth(ctx, r.src, r.dst, false)
	for i, a := range []*account{r.src, r.dst} {
		if !results[i].GetOk() {
			resp.Findings = append(resp.Findings, &imapcopyv1.PlanFinding{
				Kind: imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_ACCOUNT, Blocking: true,
				Message: "the " + a.field + " account test failed: " + results[i].GetMessage(),
			})
		}
	}
	if len(resp.Findings) > 0 {
		resp.Blocking = true
		return resp, nil
	}

	in := planInputs{
		quota:       results[1].GetQuota(),
		appendLimit: appendLimit(results[1].GetCapabilities()),
		presetMax:   r.dst.server.Limits.MaxMessageSize,
		optionMax:   int64(min(r.options.GetMaxMessageSize(), math.MaxInt64)),
		connections: planConnections(r),
		src:         r.src.server.Limits,
		dst:         r.dst.server.Limits,
		gmail:       r.src.server.Provider == "gmail",
	}
	cfg := mailcopy.Config{
		Source: r.src.imap, Destination: r.dst.imap,
		Connections:       in.connections,
		Include:           r.options.GetIncludeFolders(),
		Exclude:           r.options.GetExcludeFolders(),
		Provider:          r.src.server.Provider,
		IncludeGmailViews: r.options.GetIncludeGmailViews(),
		MaxMessageSize:    minPositive(in.optionMax, in.presetMax),
		Reached:           true,
	}
	if r.options.GetSince() != nil {
		cfg.Since = r.options.GetSince().AsTime()
	}
	pctx, cancel := context.WithTimeout(ctx, s.opts.PlanTimeout)
	start := time.Now()
	res, err := s.planner.DryRun(pctx, cfg)
	cancel()
	if ctx.Err() != nil {
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	in.complete = err == nil
	switch {
	case err == nil:
	case mailcopy.IsPermanent(err):
		// Both logins just worked: a permanent failure now is the server's answer to the
		// plan itself (a listing it refuses, a login refused on a second connection).
		resp.Findings = append(resp.Findings, &imapcopyv1.PlanFinding{
			Kind: imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_ACCOUNT, Blocking: true,
			Message: "the copy could not be planned: " + redactBoth(r, err.Error()),
		})
	default:
		what := "a server failed during the plan: " + redactBoth(r, err.Error())
		if errors.Is(context.Cause(pctx), context.DeadlineExceeded) || mailcopy.KindOf(err) == mailcopy.KindCancelled {
			what = fmt.Sprintf("the plan did not finish within %s", s.opts.PlanTimeout)
		}
		resp.Findings = append(resp.Findings, &imapcopyv1.PlanFinding{
			Kind:    imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_INCOMPLETE,
			Message: what + ": the figures cover only the folders compared until then (the others count as empty); ask again, or start the copy, which has no such bound",
		})
	}
	if res != nil {
		verdict(resp, res, in)
	}
	slices.SortStableFunc(resp.Findings, func(a, b *imapcopyv1.PlanFinding) int {
		if a.GetBlocking() != b.GetBlocking() {
			if a.GetBlocking() {
				return -1
			}
			return 1
		}
		return 0
	})
	for _, f := range resp.Findings {
		resp.Blocking = resp.Blocking || f.GetBlocking()
	}
	s.log.InfoContext(ctx, "sync_planned", "source", r.source, "source_host", r.src.imap.Host,
		"destination_host", r.dst.imap.Host, "blocking", resp.GetBlocking(), "complete", resp.GetComplete(),
		"findings", len(resp.GetFindings()), "duration", time.Since(start))
	return resp, nil
}

// redactBoth removes both accounts' secrets from a message.
func redactBoth(r *startRequest, msg string) string {
	return r.dst.imap.Redact(r.src.imap.Redact(msg))
}

// planInputs is what the verdict needs besides the dry run's result.
type planInputs struct {
	quota       *imapcopyv1.Quota // the destination's, nil when its server has no QUOTA
	appendLimit int64             // the destination's APPENDLIMIT; 0: none
	presetMax   int64             // the destination preset's max_message_size; 0: none
	optionMax   int64             // options.max_message_size; 0: none
	connections int
	src, dst    providers.Limits
	gmail       bool
	complete    bool
}

// planConnections is the connections per account the copy would use: the options',
// else the copier's default, capped by both presets' limits (as the copier does).
func planConnections(r *startRequest) int {
	n := defaultPlanConnections
	if c := r.options.GetMaxConnections(); c > 0 {
		n = int(c)
	}
	for _, c := range []int{r.src.server.Limits.MaxConnections, r.dst.server.Limits.MaxConnections} {
		if c > 0 && c < n {
			n = c
		}
	}
	return n
}

// appendLimit reads APPENDLIMIT=n (RFC 7889) from a capability list; 0 when absent.
func appendLimit(caps []string) int64 {
	for _, c := range caps {
		if v, ok := strings.CutPrefix(strings.ToUpper(c), "APPENDLIMIT="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// minPositive is the smaller of the positive values; 0 when neither is.
func minPositive(a, b int64) int64 {
	switch {
	case a <= 0:
		return max(b, 0)
	case b <= 0:
		return a
	}
	return min(a, b)
}

// verdict fills resp with the figures and findings of a dry run's result.
func verdict(resp *imapcopyv1.PlanSyncResponse, res *mailcopy.Result, in planInputs) {
	resp.Complete = in.complete
	t := res.Totals
	resp.SourceMessages = uint64(max(t.Total, 0))
	resp.SourceBytes = uint64(max(t.TotalBytes, 0))
	resp.MessagesToCopy = uint64(max(t.Copied, 0))
	resp.BytesToCopy = uint64(max(t.Bytes, 0))
	resp.MessagesPresent = uint64(max(t.Present, 0))
	resp.DestinationMaxMessageSize = uint64(minPositive(in.appendLimit, in.presetMax))
	for _, m := range res.Largest {
		resp.LargestMessages = append(resp.LargestMessages, planMessage(m, ""))
	}

	// The quota.
	resp.RequiredBytes = uint64(math.Ceil(float64(resp.BytesToCopy) * quotaMargin))
	if q := in.quota; q != nil {
		resp.DestinationQuota = q
		if q.GetLimitBytes() > 0 {
			resp.DestinationFreeBytes = q.GetLimitBytes() - min(q.GetUsedBytes(), q.GetLimitBytes())
			if resp.RequiredBytes > resp.DestinationFreeBytes {
				atLeast := ""
				if !in.complete {
					atLeast = "at least "
				}
				resp.Findings = append(resp.Findings, &imapcopyv1.PlanFinding{
					Kind: imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_QUOTA, Blocking: true,
					Message: fmt.Sprintf("the destination is too small: the copy needs %s%s (%s to copy, plus %.0f%% margin) but the destination has %s free (%s of its %s quota used): raise its quota, free some space there, or leave folders out (options.exclude_folders)",
						atLeast, byteSize(resp.RequiredBytes), byteSize(resp.BytesToCopy), (quotaMargin-1)*100,
						byteSize(resp.DestinationFreeBytes), byteSize(q.GetUsedBytes()), byteSize(q.GetLimitBytes())),
				})
			}
		}
	}

	// The folders, with the renames, collisions and messages left out.
	renames := map[string]mailcopy.Rename{}
	for _, r := range res.Renames {
		renames[r.Source] = r
		resp.Findings = append(resp.Findings, &imapcopyv1.PlanFinding{
			Kind: imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_RENAME, Folder: r.Source,
			Message: fmt.Sprintf("folder %q is copied as %q: %s", r.Source, r.Destination, r.Reason),
		})
	}
	collisions := map[string]mailcopy.Collision{}
	for _, c := range res.Collisions {
		collisions[c.Source] = c
		resp.Findings = append(resp.Findings, &imapcopyv1.PlanFinding{
			Kind: imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_COLLISION, Folder: c.Source,
			Message: fmt.Sprintf("folder %q would become %q, which folder %q becomes too (the destination compares names without case): it is copied into %q, nothing is merged", c.Source, c.Wanted, c.Holder, c.Destination),
		})
	}
	for _, sk := range res.FolderSkips {
		resp.Findings = append(resp.Findings, &imapcopyv1.PlanFinding{
			Kind: imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_FOLDER_SKIPPED, Folder: sk.Source,
			Message: fmt.Sprintf("folder %q is not copied: %s", sk.Source, sk.Reason),
		})
	}
	tooLarge := map[string][]*imapcopyv1.PlanMessage{}
	limit := byteSize(uint64(resp.DestinationMaxMessageSize))
	for _, m := range res.Failures { // a dry run fails only what APPENDLIMIT refuses
		tooLarge[m.Folder] = append(tooLarge[m.Folder], planMessage(m, m.Reason))
	}
	var onPurpose int
	for _, m := range res.Skipped {
		if in.optionMax > 0 && m.Size > in.optionMax {
			onPurpose++ // over options.max_message_size: the caller asked for it
			continue
		}
		tooLarge[m.Folder] = append(tooLarge[m.Folder], planMessage(m,
			fmt.Sprintf("larger than the destination accepts (max_message_size %s)", byteSize(uint64(in.presetMax)))))
	}
	if onPurpose > 0 {
		resp.Findings = append(resp.Findings, &imapcopyv1.PlanFinding{
			Kind:    imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_SKIPPED,
			Message: fmt.Sprintf("%d messages larger than options.max_message_size (%s) are left out, as asked", onPurpose, byteSize(uint64(in.optionMax))),
		})
	}
	var labels []string
	var folderMessages, distinct uint64
	for _, f := range res.Folders {
		pf := &imapcopyv1.PlanFolder{
			SourceName:          f.Source,
			DestinationName:     f.Destination,
			ExistsOnDestination: !f.Created && f.Error == "",
			Messages:            uint64(max(f.Total, 0)),
			Bytes:               uint64(max(f.TotalBytes, 0)),
			MessagesPresent:     uint64(max(f.Present, 0)),
			MessagesToCopy:      uint64(max(f.Copied, 0)),
			BytesToCopy:         uint64(max(f.Bytes, 0)),
			MessagesSkipped:     uint64(max(f.Skipped+f.Failed, 0)),
			TooLarge:            tooLarge[f.Source],
			ArchiveOnly:         f.ArchiveOnly,
			Error:               f.Error,
		}
		if r, ok := renames[f.Source]; ok {
			pf.RenameReason = r.Reason
		}
		if c, ok := collisions[f.Source]; ok {
			pf.Collision, pf.CollisionWith = true, c.Holder
		}
		resp.Folders = append(resp.Folders, pf)
		if n := len(pf.TooLarge); n > 0 {
			biggest := slices.MaxFunc(pf.TooLarge, func(a, b *imapcopyv1.PlanMessage) int { return cmp.Compare(a.GetSize(), b.GetSize()) })
			resp.Findings = append(resp.Findings, &imapcopyv1.PlanFinding{
				Kind: imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_TOO_LARGE, Folder: f.Source,
				Message: fmt.Sprintf("%d messages of folder %q are larger than the destination accepts (%s): they will not be copied (the largest: %s, UID %d); the rest of the folder is",
					n, f.Source, limit, byteSize(biggest.GetSize()), biggest.GetUid()),
			})
		}
		folderMessages += pf.GetMessages()
		if f.ArchiveOnly {
			distinct = uint64(max(f.Scanned, 0))
		} else {
			labels = append(labels, f.Source)
		}
	}

	if in.gmail {
		g := &imapcopyv1.PlanGmail{Labels: labels, FolderMessages: folderMessages, DistinctMessages: distinct}
		if distinct > 0 && folderMessages > distinct {
			g.MessagesInSeveralFolders = folderMessages - distinct
			resp.Findings = append(resp.Findings, &imapcopyv1.PlanFinding{
				Kind: imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_GMAIL_GROWTH,
				Message: fmt.Sprintf("Gmail shows a message once per label: the %d folders hold %d copies of %d messages, so the destination gets %d messages more than Gmail counts (Spam and Trash, not in All Mail, count among them)",
					len(labels), folderMessages, distinct, g.MessagesInSeveralFolders),
			})
		}
		resp.Gmail = g
	}

	resp.Estimate = estimate(resp.BytesToCopy, resp.MessagesToCopy, in)
	if time.Duration(resp.Estimate.GetSeconds())*time.Second >= longCopy {
		resp.Findings = append(resp.Findings, &imapcopyv1.PlanFinding{
			Kind:    imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_DURATION,
			Message: fmt.Sprintf("the copy should take about %s: %s", roughDuration(resp.Estimate.GetSeconds()), resp.Estimate.GetMethod()),
		})
	}
}

func planMessage(m mailcopy.MessageIssue, reason string) *imapcopyv1.PlanMessage {
	return &imapcopyv1.PlanMessage{Folder: m.Folder, Uid: m.UID, Size: uint64(max(m.Size, 0)), Reason: reason}
}

// estimate is the copy's duration from the bench's throughput, the connections and
// the providers' daily allowances (the source's download, the destination's upload).
func estimate(bytes, messages uint64, in planInputs) *imapcopyv1.PlanEstimate {
	conns := max(in.connections, 1)
	bps := float64(benchBytesPerSecond) / benchConnections * float64(conns)
	mps := float64(benchMessagesPerSecond) / benchConnections * float64(conns)
	secs := max(float64(bytes)/bps, float64(messages)/mps)
	method := fmt.Sprintf("%d messages, %s to copy at %s/s and %.0f messages/s with %d connections (make bench over a 20 ms WAN: %s/s, %d messages/s with %d)",
		messages, byteSize(bytes), byteSize(uint64(bps)), mps, conns,
		byteSize(uint64(benchBytesPerSecond)), benchMessagesPerSecond, benchConnections)
	daily, who := int64(0), ""
	for _, l := range []struct {
		n    int64
		name string
	}{{in.src.DailyDownloadBytes, "the source lets IMAP download"}, {in.dst.DailyUploadBytes, "the destination lets IMAP upload"}} {
		if l.n > 0 && (daily == 0 || l.n < daily) {
			daily, who = l.n, l.name
		}
	}
	if daily > 0 && bytes > uint64(daily) {
		days := float64(bytes) / float64(daily)
		secs = max(secs, days*86400)
		method += fmt.Sprintf("; %s %s a day, so %.1f days", who, byteSize(uint64(daily)), days)
	}
	if bytes == 0 && messages == 0 {
		secs, method = 0, "nothing to copy"
	}
	return &imapcopyv1.PlanEstimate{
		Seconds: uint64(math.Ceil(secs)), Method: method,
		Connections: uint32(conns), BytesPerSecond: uint64(bps),
	}
}

// roughDuration says a duration in the unit a person plans with.
func roughDuration(secs uint64) string {
	switch d := time.Duration(secs) * time.Second; {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	case d >= 2*time.Hour:
		return fmt.Sprintf("%.0f hours", d.Hours())
	case d >= 2*time.Minute:
		return fmt.Sprintf("%.0f minutes", d.Minutes())
	}
	return fmt.Sprintf("%d seconds", secs)
}

// byteSize is mailcopy.ByteSize of a proto's unsigned size.
func byteSize(n uint64) string { return mailcopy.ByteSize(int64(min(n, math.MaxInt64))) }

// quickPlanApplies says whether StartSync runs the quick quota check: only when the
// source's folder sizes bound the copy from below. Patterns, since and
// max_message_size leave some of the source out, and Gmail's folders count a message
// once per label and All Mail once more: the sizes say nothing sure then (PlanSync
// knows). A dry run needs no space, and ignore_plan turns the check off.
func quickPlanApplies(src *account, o *imapcopyv1.SyncOptions) bool {
	return !o.GetIgnorePlan() && !o.GetDryRun() && len(o.GetIncludeFolders()) == 0 &&
		len(o.GetExcludeFolders()) == 0 && o.GetSince() == nil && o.GetMaxMessageSize() == 0 &&
		src.server.Provider != "gmail"
}

// quickPlan is StartSync's blocking check: the source's bytes (its test's total of
// STATUS SIZE) against the destination's free quota, with the margin. It must never
// refuse a copy that fits, and a rerun finds most of the source on the destination
// already: so it counts as already there as much of the source as the destination
// holds (used bytes), and refuses only when even then the rest cannot fit. A
// destination without a quota, or a source whose sizes are unknown, passes.
func quickPlan(src, dst *imapcopyv1.TestAccountResponse) *imapcopyv1.PlanFinding {
	q, total := dst.GetQuota(), src.GetTotalBytes()
	if q.GetLimitBytes() == 0 || total == 0 {
		return nil
	}
	used := min(q.GetUsedBytes(), q.GetLimitBytes())
	free := q.GetLimitBytes() - used
	need := uint64(math.Ceil(float64(total-min(used, total)) * quotaMargin))
	if need <= free {
		return nil
	}
	return &imapcopyv1.PlanFinding{
		Kind: imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_QUOTA, Blocking: true,
		Message: fmt.Sprintf("the destination is too small: the source holds %s, the copy needs about %s with the %.0f%% margin, but the destination has %s free (%s of its %s quota used): raise its quota or free some space there",
			byteSize(total), byteSize(need), (quotaMargin-1)*100, byteSize(free), byteSize(used), byteSize(q.GetLimitBytes())),
	}
}

// planBlocked is StartSync's FailedPrecondition answer to a blocking finding, with the
// finding's kind as an ErrorInfo detail for programs.
func planBlocked(f *imapcopyv1.PlanFinding) error {
	st := status.New(codes.FailedPrecondition, "pre-flight check: "+f.GetMessage()+
		"; PlanSync gives the whole verdict, and options.ignore_plan starts the copy all the same")
	info := &errdetails.ErrorInfo{
		Reason:   f.GetKind().String(),
		Domain:   "imapcopy.dev",
		Metadata: map[string]string{"override": "options.ignore_plan"},
	}
	if withInfo, err := st.WithDetails(info); err == nil {
		st = withInfo
	}
	return st.Err()
}
