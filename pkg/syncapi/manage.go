package syncapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/taskqueue"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// The operator's calls over many syncs: listing them and retrying one.

// ListSyncs implements SyncService. An admin (or open access) lists every sync,
// another caller the syncs it started; the public page's anonymous callers may not
// list: the addresses of other customers are not theirs to see.
func (s *Service) ListSyncs(ctx context.Context, req *imapcopyv1.ListSyncsRequest) (*imapcopyv1.ListSyncsResponse, error) {
	if public(ctx) {
		return nil, status.Error(codes.PermissionDenied, "listing syncs needs an API token or a client certificate")
	}
	q, err := listQuery(req)
	if err != nil {
		return nil, err
	}
	if c, _ := ctx.Value(callerKey{}).(caller); !c.all {
		q.OnlyCaller, q.Caller = true, c.name
	}
	page, err := s.store.List(ctx, q)
	if errors.Is(err, syncstatus.ErrBadPageToken) {
		return nil, invalidf("page_token", "not a token of this listing", "pass the next_page_token of the previous page, unchanged, with the same filters")
	}
	if err != nil {
		return nil, s.storeError(ctx, "list syncs", err)
	}
	resp := &imapcopyv1.ListSyncsResponse{NextPageToken: page.NextPageToken}
	for _, st := range page.Statuses {
		resp.Syncs = append(resp.Syncs, view(ctx, s.unstick(ctx, st.GetSourceEmail(), st)))
	}
	for state := range imapcopyv1.SyncState_name {
		if n := page.Totals[imapcopyv1.SyncState(state)]; n > 0 {
			resp.Totals = append(resp.Totals, &imapcopyv1.StateCount{State: imapcopyv1.SyncState(state), Count: uint32(n)})
		}
	}
	slices.SortFunc(resp.Totals, func(a, b *imapcopyv1.StateCount) int { return cmp.Compare(a.GetState(), b.GetState()) })
	return resp, nil
}

// listQuery validates a ListSyncsRequest.
func listQuery(req *imapcopyv1.ListSyncsRequest) (syncstatus.ListQuery, error) {
	q := syncstatus.ListQuery{PageToken: req.GetPageToken()}
	for _, st := range req.GetStates() {
		if _, known := imapcopyv1.SyncState_name[int32(st)]; !known || st == imapcopyv1.SyncState_SYNC_STATE_UNSPECIFIED {
			return q, invalidf("states", fmt.Sprintf("unknown state %d", st), "use SYNC_STATE_QUEUED, _RUNNING, _COMPLETED, _COMPLETED_WITH_ERRORS, _FAILED or _CANCELLED")
		}
		q.States = append(q.States, st)
	}
	if d := req.GetDestinationDomain(); d != "" {
		if err := checkPrintable("destination_domain", d, maxHostLen, false); err != nil {
			return q, err
		}
		q.DestinationDomain = d
	}
	if n := req.GetPageSize(); n > syncstatus.MaxPageSize {
		return q, invalidf("page_size", fmt.Sprintf("%d is too large", n), fmt.Sprintf("ask for at most %d and follow next_page_token", syncstatus.MaxPageSize))
	}
	q.PageSize = int(req.GetPageSize())
	if t := req.GetCreatedAfter(); t != nil {
		q.CreatedAfter = t.AsTime()
	}
	if t := req.GetCreatedBefore(); t != nil {
		q.CreatedBefore = t.AsTime()
	}
	if !q.CreatedAfter.IsZero() && !q.CreatedBefore.IsZero() && !q.CreatedAfter.Before(q.CreatedBefore) {
		return q, invalidf("created_before", "not after created_after", "give a created_before later than created_after")
	}
	return q, nil
}

// RetrySync implements SyncService: it opens the task kept from the sync's start and
// starts it again through StartSync, so that every rule applies once more (the
// accounts are tested again: a changed password fails there, with its reason). The
// new sync belongs to the caller that started the first one.
func (s *Service) RetrySync(ctx context.Context, req *imapcopyv1.RetrySyncRequest) (*imapcopyv1.RetrySyncResponse, error) {
	source, err := checkSourceEmail(req.GetSourceEmail())
	if err != nil {
		return nil, err
	}
	if public(ctx) {
		return nil, status.Error(codes.PermissionDenied,
			"retrying a sync needs an API token or a client certificate: on the page, start the sync again")
	}
	st, err := s.store.Get(ctx, source)
	if err == nil && !mayAccess(ctx, st) {
		err = syncstatus.ErrNotFound // another caller's sync: as if there were none
	}
	if err != nil {
		return nil, s.storeError(ctx, "get status", err)
	}
	switch st = s.unstick(ctx, source, st); st.GetState() {
	case imapcopyv1.SyncState_SYNC_STATE_FAILED, imapcopyv1.SyncState_SYNC_STATE_COMPLETED_WITH_ERRORS:
	case imapcopyv1.SyncState_SYNC_STATE_QUEUED, imapcopyv1.SyncState_SYNC_STATE_RUNNING:
		return nil, status.Error(codes.AlreadyExists, msgAlreadyExists)
	default:
		return nil, status.Errorf(codes.FailedPrecondition,
			"only a FAILED or COMPLETED_WITH_ERRORS sync can be retried; this one is %s: start a new one with StartSync", stateName(st.GetState()))
	}
	task, err := s.keptTask(ctx, source, st.GetTaskId())
	if err != nil {
		return nil, err
	}
	secrets, err := s.sealer.Open(task)
	if err != nil {
		s.log.WarnContext(ctx, "kept_task_unsealable", "task_id", task.GetTaskId(), "source", source, "error", err.Error())
		return nil, status.Error(codes.FailedPrecondition,
			"the credentials of this sync cannot be opened with the api's task keys (the key that sealed them was retired): start it again with StartSync and the passwords")
	}
	c, _ := ctx.Value(callerKey{}).(caller)
	ctx = context.WithValue(ctx, callerKey{}, caller{name: st.GetCaller(), all: c.all, open: c.open})
	resp, err := s.StartSync(ctx, &imapcopyv1.StartSyncRequest{
		Source:      accountOf(task.GetSource(), secrets.GetSourcePassword(), secrets.GetSourceOauth2AccessToken()),
		Destination: accountOf(task.GetDestination(), secrets.GetDestinationPassword(), secrets.GetDestinationOauth2AccessToken()),
		Options:     task.GetOptions(),
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "sync_retried", "task_id", resp.GetTaskId(), "previous_task_id", st.GetTaskId(), "source", source)
	return &imapcopyv1.RetrySyncResponse{TaskId: resp.GetTaskId(), Status: resp.GetStatus(), CancelSecret: resp.GetCancelSecret()}, nil
}

// keptTask returns the task kept for source, which must be the task taskID.
func (s *Service) keptTask(ctx context.Context, source, taskID string) (*imapcopyv1.SyncTask, error) {
	gone := func() error {
		window := "this api keeps none (IMAPCOPY_RETRY_WINDOW=0)"
		if s.kept != nil && s.kept.Window() > 0 {
			window = "they are kept for " + s.kept.Window().String() + " after a start"
		}
		return status.Error(codes.FailedPrecondition,
			"the credentials of this sync are no longer kept ("+window+"): start it again with StartSync and the passwords")
	}
	if s.kept == nil {
		return nil, gone()
	}
	kctx, cancel := context.WithTimeout(ctx, s.opts.StoreTimeout)
	defer cancel()
	task, err := s.kept.Get(kctx, source)
	switch {
	case errors.Is(err, taskqueue.ErrNotKept):
		return nil, gone()
	case err != nil:
		s.log.WarnContext(ctx, "kept_task_read_failed", "source", source, "error", err.Error())
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, status.Error(codes.Unavailable, "the task queue is unavailable: try again in a minute")
	case task.GetTaskId() != taskID:
		return nil, gone()
	}
	return task, nil
}

// keep keeps a queued task for RetrySync; a failure costs only the retry.
func (s *Service) keep(ctx context.Context, task *imapcopyv1.SyncTask) {
	if s.kept == nil {
		return
	}
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.PublishTimeout)
	defer cancel()
	if err := s.kept.Keep(kctx, task); err != nil {
		s.log.WarnContext(ctx, "task_keep_failed", "task_id", task.GetTaskId(), "error", err.Error())
	}
}

// accountOf is the account a kept endpoint was resolved from, with its secrets.
func accountOf(e *imapcopyv1.Endpoint, password, token string) *imapcopyv1.Account {
	return &imapcopyv1.Account{
		Provider:           e.GetProvider(),
		Login:              e.GetLogin(),
		Password:           password,
		Host:               e.GetHost(),
		Port:               e.GetPort(),
		Security:           e.GetSecurity(),
		InsecureSkipVerify: e.GetInsecureSkipVerify(),
		Oauth2AccessToken:  token,
	}
}

// stateName is a state as a person reads it: "COMPLETED".
func stateName(s imapcopyv1.SyncState) string {
	const prefix = len("SYNC_STATE_")
	if n := s.String(); len(n) > prefix {
		return n[prefix:]
	}
	return s.String()
}

// retryWindowDefault is how long the api keeps a started task for RetrySync unless
// the operator says otherwise: a week covers a weekend's failures noticed on Monday,
// and no longer than that are sealed credentials kept.
const retryWindowDefault = 7 * 24 * time.Hour
