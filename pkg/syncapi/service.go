package syncapi

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/providers"
	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Store is the part of the status and lock store the api uses; syncstatus.Redis and
// syncstatus.KV implement it.
type Store interface {
	Acquire(ctx context.Context, source string, ttl time.Duration) (token string, err error)
	Refresh(ctx context.Context, source, token string, ttl time.Duration) error
	Release(ctx context.Context, source, token string) error
	Put(ctx context.Context, source, token string, st *imapcopyv1.SyncStatus) error
	Get(ctx context.Context, source string) (*imapcopyv1.SyncStatus, error)
	Watch(ctx context.Context, source string) iter.Seq2[*imapcopyv1.SyncStatus, error]
	RequestCancel(ctx context.Context, source, taskID string) error
	List(ctx context.Context, q syncstatus.ListQuery) (*syncstatus.ListPage, error)
	TakeToken(ctx context.Context, key string, now time.Time, every time.Duration, burst int) (time.Duration, error)
	Locked(ctx context.Context, source string) (bool, error)
}

// Publisher puts a task on the work queue, its task id being the message id.
type Publisher interface {
	Publish(ctx context.Context, task *imapcopyv1.SyncTask) error
}

// TaskKeeper keeps the latest task of each source, secrets sealed, for RetrySync;
// *taskqueue.Kept implements it. Get answers taskqueue.ErrNotKept when it has none.
type TaskKeeper interface {
	Keep(ctx context.Context, task *imapcopyv1.SyncTask) error
	Get(ctx context.Context, source string) (*imapcopyv1.SyncTask, error)
	Window() time.Duration
}

// Sealer encrypts a task's secrets, bound to the whole task, opens them again (for
// RetrySync), and makes and checks the tags that serve as cancel secrets;
// *taskseal.Keyring implements it.
type Sealer interface {
	Seal(task *imapcopyv1.SyncTask, secrets *imapcopyv1.TaskSecrets) (*imapcopyv1.SealedSecrets, error)
	Open(task *imapcopyv1.SyncTask) (*imapcopyv1.TaskSecrets, error)
	Tag(purpose, msg string) string
	VerifyTag(purpose, msg, tag string) bool
}

// AccountProber tests an account by connecting to it; *Prober implements it.
type AccountProber interface {
	Probe(ctx context.Context, acct imapconn.Account, role imapcopyv1.AccountRole, details bool) *imapcopyv1.TestAccountResponse
}

// PolicyChecker decides, without connecting, whether the network policy lets host and
// port be dialled; *netpolicy.Dialer implements it. A refusal is an error whose chain
// has RefusedByPolicy() returning true.
type PolicyChecker interface {
	Check(ctx context.Context, host string, port int) ([]netip.Addr, error)
}

// Catalogue holds the provider presets; *providers.Catalog implements it.
type Catalogue interface {
	ListProto(role imapcopyv1.AccountRole) []*imapcopyv1.Provider
	Resolve(role imapcopyv1.AccountRole, acct *imapcopyv1.Account) (providers.Server, error)
}

// Clock tells the time; tests use a fake one for rate limits.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Deps are the collaborators of the service.
type Deps struct {
	Store     Store
	Queue     Publisher
	Kept      TaskKeeper // nil: keep nothing, RetrySync refuses
	Sealer    Sealer
	Prober    AccountProber
	Policy    PolicyChecker
	Providers Catalogue
	// Planner runs PlanSync's dry runs; nil: Prober when it is a Planner (*Prober
	// is), else PlanSync answers Unimplemented.
	Planner Planner
	Clock   Clock        // nil: the system clock
	Logger  *slog.Logger // nil: discard
	Metrics *Metrics     // nil: no metrics
}

// Options are the operator's choices; the zero value takes the defaults.
type Options struct {
	// AllowPlaintext lets customers choose SECURITY_PLAINTEXT.
	AllowPlaintext bool
	// RootCAs verify IMAP servers' certificates (nil: the system roots). Copiers must
	// trust the same.
	RootCAs *x509.CertPool
	// QueuedLockTTL is the lock's lifetime while a task waits in the queue; the copier
	// that takes the task refreshes it. Default 24h: keep it at least as long as the
	// queue keeps an unclaimed task.
	QueuedLockTTL time.Duration
	// PerAddress and PerCaller limit TestAccount and StartSync by the addresses tested
	// and by the caller. Zero Every: no limit.
	PerAddress, PerCaller Rate
	// MaxConcurrentTests bounds the account tests running at once (default 32; a
	// start runs two); TestQueueWait is how long a test may wait for a slot (default 5s).
	MaxConcurrentTests int
	TestQueueWait      time.Duration
	// TestTimeout bounds one account test (default 60s).
	TestTimeout time.Duration
	// PublishTimeout bounds the publish of a task (default 10s): a NATS client that
	// is reconnecting would otherwise hold the call until the caller gives up.
	PublishTimeout time.Duration
	// StoreTimeout bounds each call to the store (default 10s), so that a store that
	// is down is answered Unavailable rather than left to the caller's deadline.
	StoreTimeout time.Duration
	// MaxWatchesPerCaller bounds the WatchSyncStatus streams one caller holds open
	// at once (default 100); the next is RESOURCE_EXHAUSTED.
	MaxWatchesPerCaller int
	// PlanTimeout bounds the dry run of a PlanSync (default 2 minutes): past it the
	// verdict covers the folders compared so far and says it is incomplete.
	PlanTimeout time.Duration
	// RunningLive is how recent the status of a RUNNING sync must be for its copier
	// to count as alive (default 2 minutes): StartSync refuses a second sync of the
	// source while it is, even when the lock key is gone (see checkRunning). A
	// copier writes the status of a running sync at least every lock refresh
	// (syncworker.Config.LockRefresh, 10s by default).
	RunningLive time.Duration
	// MaxDeliver is the task queue's bound on the deliveries of a task
	// (taskqueue.Config.MaxDeliver). A RUNNING sync at that attempt whose lock is
	// free and whose status is older than RunningLive has no copier and no
	// delivery left (its copier crashed on every one): it is recorded FAILED
	// (see unstick). 0: such a sync is left as it is.
	MaxDeliver int
}

// DefaultRunningLive is Options.RunningLive's default: twice the copier's default
// lock lifetime, so a copier that died frees its source for a new start soon after
// its task would have come back to another copier anyway.
const DefaultRunningLive = 2 * time.Minute

// Service implements imapcopy.v1.SyncService.
type Service struct {
	imapcopyv1.UnimplementedSyncServiceServer

	store     Store
	queue     Publisher
	kept      TaskKeeper
	sealer    Sealer
	prober    AccountProber
	policy    PolicyChecker
	providers Catalogue
	planner   Planner
	clock     Clock
	log       *slog.Logger
	metrics   *Metrics

	opts      Options
	perCaller *keyedLimiter
	slots     *testSlots
	watches   watchCounts

	stopping context.Context // done at shutdown: watch streams end
	stop     context.CancelFunc
}

// New returns the service.
func New(deps Deps, opts Options) (*Service, error) {
	var missing []string
	for name, dep := range map[string]any{
		"store": deps.Store, "queue": deps.Queue, "sealer": deps.Sealer, "prober": deps.Prober,
		"policy": deps.Policy, "providers": deps.Providers,
	} {
		if dep == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("syncapi: missing dependencies: %s", strings.Join(missing, ", "))
	}
	if deps.Clock == nil {
		deps.Clock = systemClock{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.QueuedLockTTL <= 0 {
		opts.QueuedLockTTL = 24 * time.Hour
	}
	if opts.MaxConcurrentTests <= 0 {
		opts.MaxConcurrentTests = 32
	}
	if opts.TestQueueWait <= 0 {
		opts.TestQueueWait = 5 * time.Second
	}
	if opts.TestTimeout <= 0 {
		opts.TestTimeout = 60 * time.Second
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 10 * time.Second
	}
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = 10 * time.Second
	}
	if opts.MaxWatchesPerCaller <= 0 {
		opts.MaxWatchesPerCaller = 100
	}
	if opts.PlanTimeout <= 0 {
		opts.PlanTimeout = 2 * time.Minute
	}
	if opts.RunningLive <= 0 {
		opts.RunningLive = DefaultRunningLive
	}
	if deps.Planner == nil {
		deps.Planner, _ = deps.Prober.(Planner)
	}
	// Server.Serve calls stop at shutdown, so that GracefulStop does not wait for
	// watch streams that may never end.
	stopping, stop := context.WithCancel(context.Background())
	return &Service{
		store:     boundedStore{deps.Store, opts.StoreTimeout},
		queue:     deps.Queue,
		kept:      deps.Kept,
		sealer:    deps.Sealer,
		prober:    deps.Prober,
		policy:    deps.Policy,
		providers: deps.Providers,
		planner:   deps.Planner,
		clock:     deps.Clock,
		log:       deps.Logger,
		metrics:   deps.Metrics,
		opts:      opts,
		perCaller: newKeyedLimiter(opts.PerCaller, deps.Clock),
		slots:     newTestSlots(opts.MaxConcurrentTests, opts.TestQueueWait),
		stopping:  stopping,
		stop:      stop,
	}, nil
}

const (
	msgQueued        = "not started yet, please be patient"
	msgAlreadyExists = "a sync task for this account already exists"
)

// ListProviders implements SyncService.
func (s *Service) ListProviders(_ context.Context, req *imapcopyv1.ListProvidersRequest) (*imapcopyv1.ListProvidersResponse, error) {
	if err := checkRole("role", req.GetRole()); err != nil {
		return nil, err
	}
	return &imapcopyv1.ListProvidersResponse{Providers: s.providers.ListProto(req.GetRole())}, nil
}

// account is a request's account once validated and resolved.
type account struct {
	field  string // "source", "destination" or "account", for messages
	role   imapcopyv1.AccountRole
	server providers.Server
	imap   imapconn.Account
}

// resolve validates an account of a request and applies its preset.
func (s *Service) resolve(field string, a *imapcopyv1.Account, role imapcopyv1.AccountRole) (*account, error) {
	if err := checkAccount(field, a, role); err != nil {
		return nil, err
	}
	srv, err := s.providers.Resolve(role, a)
	if err != nil {
		var fe *providers.FieldError
		if errors.As(err, &fe) {
			return nil, status.Error(codes.InvalidArgument, field+"."+fe.Field+": "+fe.Reason)
		}
		return nil, status.Error(codes.InvalidArgument, field+": "+err.Error())
	}
	if srv.Security == imapconn.SecurityPlaintext && !s.opts.AllowPlaintext {
		return nil, invalidf(field+".security", "IMAP without encryption is not allowed here", "use SECURITY_TLS (usually port 993) or SECURITY_STARTTLS (usually port 143)")
	}
	return &account{
		field: field, role: role, server: srv,
		imap: imapconn.Account{
			Host: srv.Host, Port: srv.Port, Security: srv.Security,
			Login:              strings.TrimSpace(a.GetLogin()),
			Password:           a.GetPassword(),
			OAuth2Token:        a.GetOauth2AccessToken(),
			InsecureSkipVerify: a.GetInsecureSkipVerify(),
			RootCAs:            s.opts.RootCAs,
		},
	}, nil
}

// limit takes one token from the caller's bucket (kept by this process) and one from
// each account's (kept in the store, shared by every replica: the budget of password
// guesses against an account does not grow with the replicas). An account's key is
// its login's local part and its server, so that the spellings a server takes for one
// account ("alice", "Alice@example.com") share one budget. The store being down
// refuses the call: the limit fails closed.
func (s *Service) limit(ctx context.Context, accounts ...imapconn.Account) error {
	if wait := s.perCaller.take("caller:" + Caller(ctx)); wait > 0 {
		s.metrics.rateLimited("caller")
		s.auditLimited(ctx, "caller", accounts...)
		return exhausted("too many requests from this caller", wait)
	}
	r := s.opts.PerAddress
	if r.Every <= 0 {
		return nil
	}
	for _, a := range accounts {
		wait, err := s.store.TakeToken(ctx, "guess:"+accountKey(a), s.clock.Now(), r.Every, r.Burst)
		if err != nil {
			return s.storeError(ctx, "rate limit", err)
		}
		if wait > 0 {
			s.metrics.rateLimited("address")
			s.auditLimited(ctx, "account", a)
			return exhausted("too many attempts for this account", wait)
		}
	}
	return nil
}

// auditLimited logs the attempts a limit refused before any connection: with
// account_tested (every attempt that reached a server), the audit trail of password
// guesses, each with the account, the caller and the outcome, never the password.
func (s *Service) auditLimited(ctx context.Context, limit string, accounts ...imapconn.Account) {
	for _, a := range accounts {
		s.log.WarnContext(ctx, "account_test_refused", "caller", Caller(ctx), "login", a.Login,
			"host", a.Host, "port", a.Port, "outcome", "rate_limited", "limit", limit)
	}
}

// accountKey is the account a login names on its server, as far as the api can
// tell: the login's local part, lowercase, at the server's host.
func accountKey(a imapconn.Account) string {
	login := NormalizeAddress(a.Login)
	if i := strings.LastIndexByte(login, '@'); i >= 0 {
		login = login[:i]
	}
	return login + "@" + strings.ToLower(strings.TrimSuffix(a.Host, ".")) + ":" + strconv.Itoa(a.Port)
}

func (s *Service) acquireSlots(ctx context.Context, n int) (func(), error) {
	release, err := s.slots.acquire(ctx, n)
	if err != nil && status.Code(err) == codes.ResourceExhausted {
		s.metrics.rateLimited("concurrency")
	}
	return release, err
}

// checkPolicy answers, without connecting to the server, whether the network policy
// refuses it: a TestAccountResponse when the test cannot go on, nil when it may.
func (s *Service) checkPolicy(ctx context.Context, a *account) *imapcopyv1.TestAccountResponse {
	_, err := s.policy.Check(ctx, a.imap.Host, a.imap.Port)
	if err == nil {
		return nil
	}
	if imapconn.KindOf(err) == imapconn.KindRefusedByPolicy {
		return &imapcopyv1.TestAccountResponse{
			Failure: imapcopyv1.TestFailure_TEST_FAILURE_REFUSED_BY_POLICY,
			Message: a.imap.Redact(err.Error()),
		}
	}
	return &imapcopyv1.TestAccountResponse{
		Failure: imapcopyv1.TestFailure_TEST_FAILURE_UNREACHABLE,
		Message: "the host name does not resolve: check it (" + a.imap.Redact(err.Error()) + ")",
	}
}

// test checks the policy, then probes the account.
func (s *Service) test(ctx context.Context, a *account, details bool) *imapcopyv1.TestAccountResponse {
	resp := s.checkPolicy(ctx, a)
	if resp == nil {
		ctx, cancel := context.WithTimeout(ctx, s.opts.TestTimeout)
		defer cancel()
		resp = s.prober.Probe(ctx, a.imap, a.role, details)
	}
	resp.Message = a.imap.Redact(resp.GetMessage())
	outcome := "ok"
	if !resp.GetOk() {
		outcome = strings.ToLower(strings.TrimPrefix(resp.GetFailure().String(), "TEST_FAILURE_"))
	}
	s.metrics.accountTested(roleLabel(a.role), outcome)
	// The audit of each attempt: who tried which account, and how it went. A failed
	// login is a warning, so that guessing stands out at the default level.
	level := slog.LevelInfo
	if outcome == "auth_failed" {
		level = slog.LevelWarn
	}
	s.log.Log(ctx, level, "account_tested", "role", roleLabel(a.role), "caller", Caller(ctx), "login", a.imap.Login,
		"host", a.imap.Host, "port", a.imap.Port, "outcome", outcome)
	return resp
}

func roleLabel(role imapcopyv1.AccountRole) string {
	switch role {
	case imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE:
		return "source"
	case imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION:
		return "destination"
	}
	return "unspecified"
}

// TestAccount implements SyncService.
func (s *Service) TestAccount(ctx context.Context, req *imapcopyv1.TestAccountRequest) (*imapcopyv1.TestAccountResponse, error) {
	if err := checkRole("role", req.GetRole()); err != nil {
		return nil, err
	}
	a, err := s.resolve("account", req.GetAccount(), req.GetRole())
	if err != nil {
		return nil, err
	}
	if err := s.limit(ctx, a.imap); err != nil {
		return nil, err
	}
	release, err := s.acquireSlots(ctx, 1)
	if err != nil {
		return nil, err
	}
	defer release()
	return s.test(ctx, a, true), nil
}

// testBoth tests the source (with its folder counts and sizes when sourceDetails)
// and the destination at once; the answers are in that order.
func (s *Service) testBoth(ctx context.Context, src, dst *account, sourceDetails bool) []*imapcopyv1.TestAccountResponse {
	results := make([]*imapcopyv1.TestAccountResponse, 2)
	var wg sync.WaitGroup
	wg.Go(func() { results[0] = s.test(ctx, src, sourceDetails) })
	wg.Go(func() { results[1] = s.test(ctx, dst, false) })
	wg.Wait()
	return results
}

// testFailed is the FailedPrecondition answer of a start whose account failed its
// test, with the reason as an ErrorInfo detail for programs.
func testFailed(a *account, resp *imapcopyv1.TestAccountResponse) error {
	st := status.New(codes.FailedPrecondition, a.field+" account test failed: "+resp.GetMessage())
	info := &errdetails.ErrorInfo{
		Reason:   resp.GetFailure().String(),
		Domain:   "imapcopy.dev",
		Metadata: map[string]string{"account": a.field},
	}
	if withInfo, err := st.WithDetails(info); err == nil {
		st = withInfo
	}
	return st.Err()
}

// startLockTTL is the lock's lifetime while a start runs: long enough for the two
// account tests, the status write and the publish, so that an api that dies in the
// middle of a start (its deferred release never runs) holds the source for minutes,
// not for QueuedLockTTL. The lock is extended to QueuedLockTTL once the task is
// queued.
func (s *Service) startLockTTL() time.Duration {
	return s.opts.TestQueueWait + s.opts.TestTimeout + 2*s.opts.StoreTimeout + s.opts.PublishTimeout + 30*time.Second
}

// acquire takes the per-source lock for startLockTTL. A copier writes a task's final
// status before it releases the lock (the write is fenced by the lock), so for a
// moment a finished sync still holds it: when the status is already terminal, try
// again for a little while rather than refuse a start the caller was right to make.
func (s *Service) acquire(ctx context.Context, source string) (string, error) {
	const settle, step = 3 * time.Second, 100 * time.Millisecond
	deadline := time.Now().Add(settle)
	for {
		token, err := s.store.Acquire(ctx, source, s.startLockTTL())
		if !errors.Is(err, syncstatus.ErrLocked) || time.Now().After(deadline) {
			return token, err
		}
		st, gerr := s.store.Get(ctx, source)
		if gerr != nil || !syncstatus.Terminal(st.GetState()) {
			return token, err
		}
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(step):
		}
	}
}

// checkRunning refuses a start while the source's status says RUNNING and was
// written less than RunningLive ago: a copier is copying it. The lock says so too,
// but a lock key can vanish under a running copy (an operator's DEL, a failover to
// a replica that had not received the key, a store restarted without its data);
// a start that took the free key then would queue a second copy of the source
// while the first still appends (the first stops only when it next writes or
// refreshes, and its append in flight lands after the second has read the
// destination: duplicates). The running copier takes its key back at its next
// write (syncworker). It runs before the lock is taken: taking the key, even for
// a moment, would make that copier find its lock held by another and stop.
// A status that cannot be read leaves the decision to the lock.
func (s *Service) checkRunning(ctx context.Context, source string) error {
	st, err := s.store.Get(ctx, source)
	if err != nil || st.GetState() != imapcopyv1.SyncState_SYNC_STATE_RUNNING {
		return nil
	}
	if s.clock.Now().Sub(st.GetUpdatedAt().AsTime()) >= s.opts.RunningLive {
		return nil // its copier is gone: the lock decides
	}
	return status.Error(codes.AlreadyExists, msgAlreadyExists)
}

// startRequest is a StartSync (or PlanSync) request once validated: both accounts
// resolved with their presets, the options checked and normalized.
type startRequest struct {
	src, dst *account
	options  *imapcopyv1.SyncOptions // a copy; the language reduced to its tag
	source   string                  // the normalized source address: the lock's and status's key
}

// prepare is the front half of StartSync, which PlanSync shares: validate, resolve
// the presets, apply the rate limits and the network policy. It connects nowhere.
func (s *Service) prepare(ctx context.Context, req *imapcopyv1.StartSyncRequest) (*startRequest, error) {
	src, err := s.resolve("source", req.GetSource(), imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE)
	if err != nil {
		return nil, err
	}
	dst, err := s.resolve("destination", req.GetDestination(), imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION)
	if err != nil {
		return nil, err
	}
	if err := checkOptions(req.GetOptions()); err != nil {
		return nil, err
	}
	options := proto.CloneOf(req.GetOptions())
	if options != nil {
		options.Language, _ = mailcopy.ReportLanguage(options.GetLanguage())
	}
	if sameAccount(src.imap, dst.imap) {
		return nil, invalidf("destination", "the same account as the source", "choose another destination account")
	}
	if err := s.limit(ctx, src.imap, dst.imap); err != nil {
		return nil, err
	}
	for _, a := range []*account{src, dst} {
		if resp := s.checkPolicy(ctx, a); resp != nil {
			s.metrics.accountTested(roleLabel(a.role), "refused_by_policy")
			return nil, testFailed(a, resp)
		}
	}
	return &startRequest{src: src, dst: dst, options: options, source: NormalizeAddress(src.imap.Login)}, nil
}

// StartSync implements SyncService: validate, resolve the presets, apply the limits
// and the network policy (prepare), take the lock, test both logins, run the quick
// pre-flight check (quickPlan), record QUEUED, seal the secrets and publish. Every
// failure after the lock releases it. The lock is taken before the logins so that a
// second start is refused without logging in anywhere.
func (s *Service) StartSync(ctx context.Context, req *imapcopyv1.StartSyncRequest) (*imapcopyv1.StartSyncResponse, error) {
	r, err := s.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	src, dst, options, source := r.src, r.dst, r.options, r.source

	if err := s.checkRunning(ctx, source); err != nil {
		return nil, err
	}
	token, err := s.acquire(ctx, source)
	if err != nil {
		return nil, s.storeError(ctx, "acquire lock", err)
	}
	locked := true
	// cleanup runs even when the caller has gone: the lock must not outlive a failed start.
	cleanup := func(st *imapcopyv1.SyncStatus) {
		if !locked {
			return
		}
		locked = false
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if st != nil {
			if err := s.store.Put(cctx, source, token, st); err != nil {
				s.log.WarnContext(cctx, "status_write_failed", "source", source, "error", err.Error())
			}
		}
		if err := s.store.Release(cctx, source, token); err != nil {
			s.log.WarnContext(cctx, "lock_release_failed", "source", source, "error", err.Error())
		}
	}
	defer cleanup(nil)

	release, err := s.acquireSlots(ctx, 2)
	if err != nil {
		return nil, err
	}
	quick := quickPlanApplies(src, options)
	results := s.testBoth(ctx, src, dst, quick)
	release()
	for i, a := range []*account{src, dst} {
		if !results[i].GetOk() {
			return nil, testFailed(a, results[i])
		}
	}
	if quick {
		if f := quickPlan(results[0], results[1]); f != nil {
			s.log.InfoContext(ctx, "start_refused_by_plan", "source", source, "kind", f.GetKind().String())
			return nil, planBlocked(f)
		}
	}

	now := s.clock.Now()
	taskID := newTaskID()
	st := &imapcopyv1.SyncStatus{
		TaskId:           taskID,
		SourceEmail:      source,
		DestinationEmail: dst.imap.Login,
		State:            imapcopyv1.SyncState_SYNC_STATE_QUEUED,
		Message:          msgQueued,
		CreatedAt:        timestamppb.New(now),
		DryRun:           req.GetOptions().GetDryRun(),
		Caller:           owner(ctx),
		CopyState:        s.copyState(ctx, source),
	}
	if err := s.store.Put(ctx, source, token, st); err != nil {
		// The write may have landed all the same: leave no QUEUED without a task.
		cleanup(failedStatus(st, "the sync could not be queued; start it again"))
		return nil, s.storeError(ctx, "record queued status", err)
	}
	task := &imapcopyv1.SyncTask{
		TaskId:      taskID,
		SourceEmail: source,
		Source:      endpoint(src),
		Destination: endpoint(dst),
		Options:     options,
		LockToken:   token,
		CreatedAt:   timestamppb.New(now),
		// For a status the copier writes afresh: the sync stays this caller's.
		Caller: st.GetCaller(),
	}
	// Sealed last: the secrets are bound to every other field of the task.
	sealed, err := s.sealer.Seal(task, &imapcopyv1.TaskSecrets{
		SourcePassword:               src.imap.Password,
		SourceOauth2AccessToken:      src.imap.OAuth2Token,
		DestinationPassword:          dst.imap.Password,
		DestinationOauth2AccessToken: dst.imap.OAuth2Token,
	})
	if err != nil {
		s.log.ErrorContext(ctx, "seal_failed", "task_id", taskID, "error", err.Error())
		cleanup(failedStatus(st, "the task could not be encrypted; the operator must check the task key"))
		return nil, status.Error(codes.Internal, "the task could not be encrypted: the operator must check the task key configuration")
	}
	task.Sealed = sealed
	pctx, cancel := context.WithTimeout(ctx, s.opts.PublishTimeout)
	err = s.queue.Publish(pctx, task)
	cancel()
	if err != nil {
		s.log.WarnContext(ctx, "publish_failed", "task_id", taskID, "source", source, "error", err.Error())
		locked = false
		if s.settleUnpublished(ctx, source, token, failedStatus(st, "the task could not be queued; start the sync again")) {
			// The publish's acknowledgement was lost (NATS restarted while the api
			// waited for it), yet the task was stored and a copier took it: it runs,
			// so the caller is told it started.
			s.log.WarnContext(ctx, "publish_unacknowledged_task_taken", "task_id", taskID, "source", source)
			s.keep(ctx, task)
			s.metrics.syncStarted()
			return &imapcopyv1.StartSyncResponse{TaskId: taskID, Status: view(ctx, st), CancelSecret: s.sealer.Tag(cancelPurpose, taskID)}, nil
		}
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, status.Error(codes.Unavailable, "the task queue is unavailable: nothing was started, try again in a minute")
	}
	locked = false // the lock now belongs to the task
	s.keep(ctx, task)
	// The task is queued: the lock lives while it waits. A copier that already took
	// the task holds the lock with the same token; one that already finished it has
	// released it (ErrNotHolder: nothing to extend).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.StoreTimeout)
	if err := s.store.Refresh(rctx, source, token, s.opts.QueuedLockTTL); err != nil && !errors.Is(err, syncstatus.ErrNotHolder) {
		s.log.WarnContext(ctx, "lock_extend_failed", "task_id", taskID, "source", source, "error", err.Error())
	}
	cancel()
	s.metrics.syncStarted()
	s.log.InfoContext(ctx, "sync_queued", "task_id", taskID, "source", source,
		"source_host", src.imap.Host, "destination_host", dst.imap.Host)
	return &imapcopyv1.StartSyncResponse{TaskId: taskID, Status: view(ctx, st), CancelSecret: s.sealer.Tag(cancelPurpose, taskID)}, nil
}

// settleUnpublished ends a start whose publish failed: the status FAILED and the
// lock released, both fenced by the start's token, so that a task the queue stored
// all the same (its acknowledgement lost) finds its status terminal and never runs.
// But a copier may have taken that task already, during the publish's wait: its
// delivery then holds the lock, the api's write is refused, and the status names
// this task with an attempt (or the lock is held): it reports true, and the start
// counts as made. The caller never gets an error for a task that runs.
func (s *Service) settleUnpublished(ctx context.Context, source, token string, failed *imapcopyv1.SyncStatus) (taken bool) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := s.store.Put(cctx, source, token, failed)
	if errors.Is(err, syncstatus.ErrNotHolder) {
		cur, gerr := s.store.Get(cctx, source)
		held, lerr := s.store.Locked(cctx, source)
		if gerr == nil && cur.GetTaskId() == failed.GetTaskId() && (cur.GetAttempt() > 0 || lerr == nil && held) {
			return true
		}
	}
	if err != nil {
		s.log.WarnContext(cctx, "status_write_failed", "source", source, "error", err.Error())
	}
	if err := s.store.Release(cctx, source, token); err != nil {
		s.log.WarnContext(cctx, "lock_release_failed", "source", source, "error", err.Error())
	}
	return false
}

// copyState is what the last copy of source proved (SyncStatus.copy_state), carried
// into the new sync's status so that its copier skips the folders unchanged since: a
// delta sync before a cut-over, run many times. The engine ignores the state of
// other accounts. Best effort: without it the copy makes the full comparison.
func (s *Service) copyState(ctx context.Context, source string) []byte {
	prev, err := s.store.Get(ctx, source)
	if err != nil {
		return nil
	}
	return prev.GetCopyState()
}

func failedStatus(queued *imapcopyv1.SyncStatus, reason string) *imapcopyv1.SyncStatus {
	return &imapcopyv1.SyncStatus{
		TaskId:           queued.GetTaskId(),
		SourceEmail:      queued.GetSourceEmail(),
		DestinationEmail: queued.GetDestinationEmail(),
		State:            imapcopyv1.SyncState_SYNC_STATE_FAILED,
		Message:          reason,
		FailureReason:    reason,
		CreatedAt:        queued.GetCreatedAt(),
		FinishedAt:       timestamppb.Now(),
		DryRun:           queued.GetDryRun(),
		Caller:           queued.GetCaller(),
	}
}

func endpoint(a *account) *imapcopyv1.Endpoint {
	return &imapcopyv1.Endpoint{
		Provider:           a.server.Provider,
		Login:              a.imap.Login,
		Host:               a.imap.Host,
		Port:               uint32(a.imap.Port),
		Security:           providers.SecurityToProto(a.imap.Security),
		InsecureSkipVerify: a.imap.InsecureSkipVerify,
		MaxConnections:     uint32(max(a.server.Limits.MaxConnections, 0)),
	}
}

// sameAccount reports whether both accounts are one: copying an account into itself
// is a mistake, never a plan.
func sameAccount(a, b imapconn.Account) bool {
	return strings.EqualFold(strings.TrimSuffix(a.Host, "."), strings.TrimSuffix(b.Host, ".")) &&
		a.Port == b.Port && strings.EqualFold(a.Login, b.Login)
}

func newTaskID() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}

// storeError maps a store failure to the caller's answer and logs what the caller
// is not told.
func (s *Service) storeError(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(err, syncstatus.ErrLocked):
		return status.Error(codes.AlreadyExists, msgAlreadyExists)
	case errors.Is(err, syncstatus.ErrNotFound):
		return status.Error(codes.NotFound, "no sync for this account: start one with StartSync")
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	}
	s.log.WarnContext(ctx, "store_failed", "op", op, "error", err.Error())
	return status.Error(codes.Unavailable, "the status store is unavailable: try again in a minute")
}

// GetSyncStatus implements SyncService.
func (s *Service) GetSyncStatus(ctx context.Context, req *imapcopyv1.GetSyncStatusRequest) (*imapcopyv1.GetSyncStatusResponse, error) {
	source, err := checkSourceEmail(req.GetSourceEmail())
	if err != nil {
		return nil, err
	}
	st, err := s.store.Get(ctx, source)
	if err == nil && !mayAccess(ctx, st) {
		err = syncstatus.ErrNotFound // another caller's sync: as if there were none
	}
	if err != nil {
		return nil, s.storeError(ctx, "get status", err)
	}
	return &imapcopyv1.GetSyncStatusResponse{Status: view(ctx, s.unstick(ctx, source, st))}, nil
}

// WatchSyncStatus implements SyncService: the current status, then each change, until
// a terminal state. At shutdown the stream ends with Unavailable: watch again.
func (s *Service) WatchSyncStatus(req *imapcopyv1.WatchSyncStatusRequest, stream grpc.ServerStreamingServer[imapcopyv1.WatchSyncStatusResponse]) error {
	source, err := checkSourceEmail(req.GetSourceEmail())
	if err != nil {
		return err
	}
	sctx := stream.Context() // the caller's: errors are mapped against it, not against ctx below
	done, ok := s.watches.open(Caller(sctx), s.opts.MaxWatchesPerCaller)
	if !ok {
		s.metrics.rateLimited("watches")
		return status.Errorf(codes.ResourceExhausted, "this caller already has %d open watch streams: close one, or ask for the status with GetSyncStatus", s.opts.MaxWatchesPerCaller)
	}
	defer done()
	ctx, cancel := context.WithCancel(sctx)
	defer cancel()
	defer context.AfterFunc(s.stopping, cancel)()
	for st, err := range s.store.Watch(ctx, source) {
		if err == nil && !mayAccess(sctx, st) {
			err = syncstatus.ErrNotFound // another caller's sync: as if there were none
		}
		if err != nil {
			if s.stopping.Err() != nil {
				return status.Error(codes.Unavailable, "the server is shutting down: watch again")
			}
			return s.storeError(sctx, "watch status", err)
		}
		st = s.unstick(ctx, source, st)
		if err := stream.Send(&imapcopyv1.WatchSyncStatusResponse{Status: view(sctx, st)}); err != nil {
			return err
		}
		if syncstatus.Terminal(st.GetState()) {
			return nil // settled by unstick: the store's watch would wait for a change
		}
	}
	return nil
}

// CancelSync implements SyncService. The cancel request is recorded for the current
// task; the copier running it stops at its next step and marks it CANCELLED, and a
// queued task is cancelled by the copier that takes it, before it starts. The answer
// is the status as it stands, its message saying that the cancel is on its way.
func (s *Service) CancelSync(ctx context.Context, req *imapcopyv1.CancelSyncRequest) (*imapcopyv1.CancelSyncResponse, error) {
	source, err := checkSourceEmail(req.GetSourceEmail())
	if err != nil {
		return nil, err
	}
	st, err := s.store.Get(ctx, source)
	if err == nil && !mayAccess(ctx, st) {
		err = syncstatus.ErrNotFound // another caller's sync: as if there were none
	}
	if err != nil {
		return nil, s.storeError(ctx, "get status", err)
	}
	st = s.unstick(ctx, source, st)
	if !s.mayCancel(ctx, st, req.GetCancelSecret()) {
		return nil, status.Error(codes.PermissionDenied,
			"only the page that started this sync may cancel it (cancel_secret), or a caller with an API token")
	}
	if syncstatus.Terminal(st.GetState()) {
		return &imapcopyv1.CancelSyncResponse{Status: view(ctx, st)}, nil
	}
	if err := s.store.RequestCancel(ctx, source, st.GetTaskId()); err != nil {
		return nil, s.storeError(ctx, "request cancel", err)
	}
	s.log.InfoContext(ctx, "cancel_requested", "task_id", st.GetTaskId(), "source", source)
	if st.GetState() == imapcopyv1.SyncState_SYNC_STATE_QUEUED {
		st.Message = "cancel requested: the queued sync will not start"
	} else {
		st.Message = "cancel requested: the sync stops at its next step"
	}
	return &imapcopyv1.CancelSyncResponse{Status: view(ctx, st)}, nil
}

// boundedStore bounds every call but Watch by a timeout.
type boundedStore struct {
	Store
	timeout time.Duration
}

func (b boundedStore) Acquire(ctx context.Context, source string, ttl time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.Acquire(ctx, source, ttl)
}

func (b boundedStore) Release(ctx context.Context, source, token string) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.Release(ctx, source, token)
}

func (b boundedStore) Put(ctx context.Context, source, token string, st *imapcopyv1.SyncStatus) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.Put(ctx, source, token, st)
}

func (b boundedStore) Get(ctx context.Context, source string) (*imapcopyv1.SyncStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.Get(ctx, source)
}

func (b boundedStore) TakeToken(ctx context.Context, key string, now time.Time, every time.Duration, burst int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.TakeToken(ctx, key, now, every, burst)
}

func (b boundedStore) Locked(ctx context.Context, source string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.Locked(ctx, source)
}

func (b boundedStore) List(ctx context.Context, q syncstatus.ListQuery) (*syncstatus.ListPage, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.List(ctx, q)
}

func (b boundedStore) RequestCancel(ctx context.Context, source, taskID string) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.RequestCancel(ctx, source, taskID)
}
