// Package batchstart starts the syncs of a batch file (a CSV of accounts) through the
// api, as a hosting company moving a whole domain needs:
//
//   - Every rule stays in the api: each row is one StartSync (or one PlanSync in a dry
//     run: the pre-flight verdict, nothing started), validated, limited, locked and
//     tested there. The file's passwords go
//     nowhere else, and results carry the source login and the api's message only.
//   - Resumable: a row whose source already has a sync (in any state) is skipped, so
//     running the same file again starts only the rows not started yet, and a row
//     refused before (a wrong password, since corrected) is tried again.
//   - Gentle with providers: rows are grouped by source server (the host, or the
//     preset), each group started one row at a time with at least Options.PerHost
//     between two starts, so a thousand Gmail rows do not log in to Gmail at once.
//     Groups run side by side, at most Options.Concurrency calls at a time.
//   - An answer "too many requests" (RESOURCE_EXHAUSTED) is waited out as its
//     RetryInfo says, and an api that is briefly unavailable is tried again.
package batchstart

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Client is the part of the api a batch calls; imapcopyv1.SyncServiceClient
// implements it.
type Client interface {
	StartSync(ctx context.Context, in *imapcopyv1.StartSyncRequest, opts ...grpc.CallOption) (*imapcopyv1.StartSyncResponse, error)
	GetSyncStatus(ctx context.Context, in *imapcopyv1.GetSyncStatusRequest, opts ...grpc.CallOption) (*imapcopyv1.GetSyncStatusResponse, error)
	PlanSync(ctx context.Context, in *imapcopyv1.StartSyncRequest, opts ...grpc.CallOption) (*imapcopyv1.PlanSyncResponse, error)
}

// Options tune a run; the zero value takes the defaults.
type Options struct {
	// DryRun asks the pre-flight verdict (PlanSync) of each row instead of starting it.
	DryRun bool
	// PerHost is the least time between two starts on one source server (default 2s).
	PerHost time.Duration
	// Concurrency bounds the calls in flight (default 4).
	Concurrency int
	// MaxRetries bounds the retries of one row after RESOURCE_EXHAUSTED or
	// UNAVAILABLE (default 5); Backoff is the wait before retrying UNAVAILABLE
	// (default 5s).
	MaxRetries int
	Backoff    time.Duration
}

func (o Options) withDefaults() Options {
	if o.PerHost <= 0 {
		o.PerHost = 2 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 5 * time.Second
	}
	return o
}

// Outcome is what became of a row.
type Outcome string

const (
	Started Outcome = "started" // queued now
	Skipped Outcome = "skipped" // the source already has a sync (any state): nothing done
	Refused Outcome = "refused" // the api refused the row (the detail says why and what to fix)
	Failed  Outcome = "error"   // the api could not be reached or answered an error
	Planned Outcome = "planned" // dry run: the verdict lets the copy start (the detail sums it up)
	Blocked Outcome = "blocked" // dry run: the verdict blocks the copy (the detail says why)
)

// Result is the outcome of one row.
type Result struct {
	Line    int
	Source  string
	Outcome Outcome
	TaskID  string // when Started
	Detail  string // the state of a skipped sync, the api's message for the others
}

// Run starts the rows and reports each result as it comes (report is called from one
// goroutine at a time). It returns when every row has a result or ctx ends.
func Run(ctx context.Context, c Client, rows []Row, opts Options, report func(Result)) {
	opts = opts.withDefaults()
	var groups []string
	byHost := map[string][]Row{}
	for _, r := range rows {
		h := hostOf(r.Request.GetSource())
		if _, ok := byHost[h]; !ok {
			groups = append(groups, h)
		}
		byHost[h] = append(byHost[h], r)
	}
	var mu sync.Mutex
	emit := func(r Result) {
		mu.Lock()
		defer mu.Unlock()
		report(r)
	}
	slots := make(chan struct{}, opts.Concurrency)
	b := &batch{c: c, opts: opts, slots: slots}
	var wg sync.WaitGroup
	for _, h := range groups {
		limiter := rate.NewLimiter(rate.Every(opts.PerHost), 1)
		wg.Go(func() {
			for _, r := range byHost[h] {
				if ctx.Err() != nil {
					emit(Result{Line: r.Line, Source: r.Source(), Outcome: Failed, Detail: "not tried: " + ctx.Err().Error()})
					continue
				}
				emit(b.row(ctx, r, limiter))
			}
		})
	}
	wg.Wait()
}

// hostOf is the source server a row logs in to: its host, or its preset.
func hostOf(a *imapcopyv1.Account) string {
	if h := strings.ToLower(strings.TrimSuffix(a.GetHost(), ".")); h != "" {
		return h
	}
	return "preset:" + a.GetProvider()
}

type batch struct {
	c     Client
	opts  Options
	slots chan struct{}
}

// call runs f in a slot, retrying RESOURCE_EXHAUSTED (after its RetryInfo delay) and
// UNAVAILABLE (after the backoff).
func (b *batch) call(ctx context.Context, f func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		select {
		case b.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		err := f(ctx)
		<-b.slots
		wait, again := b.retryAfter(err)
		if !again || attempt >= b.opts.MaxRetries {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *batch) retryAfter(err error) (time.Duration, bool) {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.ResourceExhausted:
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
				return ri.GetRetryDelay().AsDuration(), true
			}
		}
		return b.opts.Backoff, true
	case codes.Unavailable:
		return b.opts.Backoff, true
	}
	return 0, false
}

// row starts one row unless its source already has a sync.
func (b *batch) row(ctx context.Context, r Row, limiter *rate.Limiter) Result {
	res := Result{Line: r.Line, Source: r.Source()}
	var existing *imapcopyv1.SyncStatus
	err := b.call(ctx, func(ctx context.Context) error {
		resp, err := b.c.GetSyncStatus(ctx, &imapcopyv1.GetSyncStatusRequest{SourceEmail: r.Source()})
		existing = resp.GetStatus()
		return err
	})
	switch {
	case err == nil:
		res.Outcome, res.Detail = Skipped, "already "+stateName(existing.GetState())
		return res
	case status.Code(err) != codes.NotFound:
		return failed(res, err)
	}
	if err := limiter.Wait(ctx); err != nil {
		return failed(res, err)
	}
	if b.opts.DryRun {
		return b.plan(ctx, r, res)
	}
	var started *imapcopyv1.StartSyncResponse
	err = b.call(ctx, func(ctx context.Context) error {
		var err error
		started, err = b.c.StartSync(ctx, r.Request)
		return err
	})
	if status.Code(err) == codes.AlreadyExists {
		res.Outcome, res.Detail = Skipped, "already queued or running"
		return res
	}
	if err != nil {
		return failed(res, err)
	}
	res.Outcome, res.TaskID = Started, started.GetTaskId()
	return res
}

// failed is res refused (the api said no, for a reason of the row) or failed (the
// api could not answer).
func failed(res Result, err error) Result {
	st, _ := status.FromError(err)
	res.Detail = st.Message()
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.PermissionDenied, codes.NotFound, codes.OutOfRange:
		res.Outcome = Refused
	default:
		res.Outcome = Failed
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			res.Detail = err.Error()
		}
	}
	return res
}

// stateName is "COMPLETED" for SYNC_STATE_COMPLETED.
func stateName(s imapcopyv1.SyncState) string {
	return strings.TrimPrefix(s.String(), "SYNC_STATE_")
}

// plan asks the verdict of one row.
func (b *batch) plan(ctx context.Context, r Row, res Result) Result {
	var v *imapcopyv1.PlanSyncResponse
	err := b.call(ctx, func(ctx context.Context) error {
		var err error
		v, err = b.c.PlanSync(ctx, r.Request)
		return err
	})
	if err != nil {
		return failed(res, err)
	}
	if v.GetBlocking() {
		var why []string
		for _, f := range v.GetFindings() {
			if f.GetBlocking() {
				why = append(why, f.GetMessage())
			}
		}
		res.Outcome, res.Detail = Blocked, strings.Join(why, "; ")
		return res
	}
	res.Outcome = Planned
	res.Detail = fmt.Sprintf("%d messages (%s) to copy, %d already there", v.GetMessagesToCopy(), megabytes(v.GetBytesToCopy()), v.GetMessagesPresent())
	if e := v.GetEstimate(); e.GetSeconds() > 0 {
		res.Detail += ", about " + (time.Duration(e.GetSeconds()) * time.Second).String()
	}
	var warnings int
	for _, f := range v.GetFindings() {
		if f.GetKind() != imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_DURATION && f.GetKind() != imapcopyv1.PlanFindingKind_PLAN_FINDING_KIND_FOLDER_SKIPPED {
			warnings++
		}
	}
	if warnings > 0 {
		res.Detail += fmt.Sprintf("; %d findings to read (PlanSync)", warnings)
	}
	return res
}

func megabytes(n uint64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
