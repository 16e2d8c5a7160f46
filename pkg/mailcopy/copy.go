package mailcopy

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"golang.org/x/sync/errgroup"

	"imapcopy.dev/pkg/foldermap"
	"imapcopy.dev/pkg/imapappend"
	"imapcopy.dev/pkg/imapconn"
)

// engine is one Copy call.
type engine struct {
	cfg     Config
	log     *slog.Logger
	tracker *tracker
	quota   quotaWatch

	appendLimit int64 // destination's APPENDLIMIT; 0: none announced

	// elsewhere: the source folders whose messages are not archived mail,
	// for the ArchiveOnly folders (foldermap.Plan.Elsewhere).
	elsewhere []string

	srcUp, dstUp atomic.Bool // a connection to the side succeeded in this copy
	logins       *loginGuard

	stop context.CancelCauseFunc // cancels the copy (a failed Fence)

	plan  *planned  // the folder plan; its creation runs meanwhile (see create)
	board *board    // the workers' folders and ranges (copyFolders)
	pool  *dialPool // the workers' first connections, dialed during planning
	// workers copying folders; fewer when a server refuses more connections
	// (see shrink).
	workers atomic.Int32

	mu       sync.Mutex
	failures []MessageIssue
	skipped  []MessageIssue
	altered  []MessageIssue
	largest  []MessageIssue // dry run only: see recordLargest
	// unsettled: per destination folder, when a connection appending to it
	// was lost with commands unanswered (see awaitCommits).
	unsettled map[string]time.Time
}

// job is one folder to copy.
type job struct {
	idx      int // in the plan, the progress and the result
	m        foldermap.Mapping
	dstEmpty bool  // the destination folder is known to be empty (just created, or LIST-STATUS said 0)
	srcEmpty bool  // the source folder was empty at the planning (LIST-STATUS said 0)
	weight   int64 // for scheduling: bytes, or messages when the size is unknown
	sized    bool  // weight is bytes
	result   FolderResult

	// dstStatus: the destination folder's LIST-STATUS, when known.
	dstStatus      MailboxState
	dstStatusKnown bool
	// state: the folder's State, to record when complete (see State).
	state    Checkpoint
	complete bool
	// unchanged: skipped, proven complete by the previous State.
	unchanged bool
	// carried: messages this copy stored in the folder before its metadata
	// pass, from a chunk sent ahead (see worker.dropCarry).
	carried int
	// creating: the destination folder is created by this copy (see
	// engine.create); settled once its outcome was taken into the job
	// (dstEmpty, dstStatus: see worker.awaitFolder).
	creating, settled bool
}

// Copy copies the source mailbox into the destination as Config says, and
// returns what it did. The Result is never nil once the configuration is
// valid, even with an error: it holds what was done until then.
//
// The error is nil when every folder was processed (messages that the
// destination refused are in Result.Failures, not in the error). Otherwise
// it is an *Error: KindLogin, KindOverQuota or KindConnect (permanent, see
// IsPermanent), KindCancelled, or KindTemporary when connections kept
// failing; a later Copy resumes where this one stopped.
func Copy(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, &Error{Kind: KindConnect, Err: fmt.Errorf("invalid configuration: %w", err)}
	}
	// Whatever happens, no connection of this copy outlives it.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	e := &engine{cfg: cfg, log: cfg.Logger, stop: cancel}
	res := &Result{DryRun: cfg.DryRun, Started: cfg.Now()}
	err := e.run(ctx, res)
	res.setDuration(cfg.Now())
	if err != nil {
		err = classifyEnd(ctx, err)
		e.log.Warn("copy_stopped", "kind", KindOf(err).String(), "error", err)
	} else {
		e.log.Info("copy_done", "copied", res.Totals.Copied, "present", res.Totals.Present,
			"failed", res.Totals.Failed, "skipped", res.Totals.Skipped, "bytes", res.Totals.Bytes,
			"duration", res.Duration)
	}
	return res, err
}

func classifyEnd(ctx context.Context, err error) error {
	var e *Error
	// The copy stopped itself with an error of its own (admitLogin): that is the
	// reason, whatever the workers made of the cancellation.
	if cause := context.Cause(ctx); ctx.Err() != nil && errors.As(cause, &e) && e.Kind != KindCancelled {
		return cause
	}
	if errors.As(err, &e) {
		return err
	}
	if ctx.Err() != nil {
		return &Error{Kind: KindCancelled, Err: fmt.Errorf("copy cancelled: %w", context.Cause(ctx))}
	}
	return &Error{Kind: KindTemporary, Err: err}
}

func (e *engine) run(ctx context.Context, res *Result) error {
	// The folders come with the plan; the planning can be throttled already.
	e.tracker = newTracker(e.cfg.Progress, e.cfg.ProgressInterval, e.cfg.Now, nil)
	e.logins = newLoginGuard(e.cfg)
	e.pool = newDialPool(e, ctx)
	defer e.pool.closeSpare()
	defer e.pool.close()
	p, err := e.planFolders(ctx)
	if err != nil {
		return err
	}
	if limit, ok := p.dst.caps.AppendLimit(); ok && limit != nil {
		e.appendLimit = int64(*limit)
	}
	e.elsewhere = p.plan.Elsewhere
	e.log.Info("copy_planned", "folders", len(p.plan.Folders), "create", len(p.plan.Create),
		"renames", len(p.plan.Renames), "collisions", len(p.plan.Collisions), "skipped", len(p.plan.Skipped))
	for _, r := range p.plan.Renames {
		res.Renames = append(res.Renames, Rename{Source: r.Source, Destination: r.Dest, Reason: string(r.Reason)})
	}
	for _, c := range p.plan.Collisions {
		res.Collisions = append(res.Collisions, Collision{Source: c.Source, Destination: c.Dest, Wanted: c.Wanted, Holder: c.Holder})
	}
	for _, s := range p.plan.Skipped {
		res.FolderSkips = append(res.FolderSkips, FolderSkip{Source: s.Source, Reason: string(s.Reason)})
	}

	jobs := make([]*job, len(p.plan.Folders))
	progress := make([]FolderProgress, len(p.plan.Folders))
	for i, m := range p.plan.Folders {
		j := &job{idx: i, m: m, result: FolderResult{Source: m.Source, Destination: m.Dest, ArchiveOnly: m.ArchiveOnly}}
		if e.cfg.DryRun {
			j.result.Created = m.Create
			j.dstEmpty = m.Create
		}
		// A folder to create is settled once created (worker.awaitFolder).
		j.creating = m.Create && !e.cfg.DryRun
		if st := p.dst.status[m.Dest]; st != nil && st.NumMessages != nil && *st.NumMessages == 0 {
			j.dstEmpty = true
		}
		j.dstStatus, j.dstStatusKnown = fromStatus(p.dst.status[m.Dest])
		progress[i] = FolderProgress{Source: m.Source, Destination: m.Dest, State: FolderPending}
		if st, ok := e.unchanged(p, j); ok {
			// Proven complete since the last copy: no metadata pass.
			j.state, j.complete = st, true
			j.result.Counts = Counts{Total: st.Total, Present: st.Total, TotalBytes: st.TotalBytes}
			j.unchanged = true
			j.result.Unchanged = true
			progress[i].State = FolderDone
			progress[i].Counts = j.result.Counts
			e.log.Info("folder_unchanged", "folder", m.Source, "dest", m.Dest, "total", st.Total)
		}
		if m.ArchiveOnly {
			// Its messages in scope are known after its metadata passes (the
			// LIST-STATUS count is All Mail's); it comes last.
			j.weight = -1
		} else if st := p.src.status[m.Source]; st != nil {
			j.srcEmpty = st.NumMessages != nil && *st.NumMessages == 0
			if st.NumMessages != nil {
				j.weight = int64(*st.NumMessages)
				progress[i].Total = int(*st.NumMessages)
			}
			if st.Size != nil {
				j.weight, j.sized = *st.Size, true
				progress[i].TotalBytes = *st.Size
			}
		}
		jobs[i] = j
	}
	e.tracker.setFolders(progress)

	var runnable []*job
	for _, j := range jobs {
		if j.result.Error == "" && !j.unchanged {
			runnable = append(runnable, j)
		}
	}
	e.wantConns(runnable)
	// The destination folders are created while the workers start on the
	// source side (see create); the planning is over once they are.
	e.plan = p
	var creating sync.WaitGroup
	if p.dstConn != nil {
		creating.Go(func() { e.create(ctx, p) })
	}
	err = e.copyFolders(ctx, runnable)
	creating.Wait()
	e.pool.close() // before the report's connection: Connections at most
	if p.createErr != nil && (err == nil || !IsPermanent(err)) {
		err = p.createErr // the workers' error is then its consequence
	}
	for _, j := range jobs {
		if !j.creating {
			continue
		}
		j.result.Created = p.created[j.m.Dest]
		if reason, ok := p.refused[j.m.Dest]; ok {
			// As its worker found it, or found it not yet (a copy stopped).
			j.result.Error = refusedCreate(j.m.Dest, reason).Error()
			e.tracker.update(j.idx, func(f *FolderProgress) { f.State = FolderFailed })
		}
	}

	state := &State{Source: stateAccount(e.cfg.Source), Destination: stateAccount(e.cfg.Destination), Since: e.cfg.Since}
	for _, j := range jobs {
		res.Folders = append(res.Folders, j.result)
		res.Totals.add(j.result.Counts)
		if j.complete && j.result.Error == "" {
			state.Folders = append(state.Folders, j.state)
		}
	}
	if !e.cfg.DryRun {
		res.State = state
	}
	e.mu.Lock()
	res.Failures = slices.Clone(e.failures)
	res.Skipped = slices.Clone(e.skipped)
	res.Altered = slices.Clone(e.altered)
	res.Largest = slices.Clone(e.largest)
	e.mu.Unlock()
	e.tracker.flush()

	// The report tells what a finished copy did. A copy stopped by a full
	// destination is worth reporting too (if it still fits); any other stop
	// either did nothing yet or will be resumed.
	if !e.cfg.DryRun && !e.cfg.NoReport && ctx.Err() == nil && (err == nil || KindOf(err) == KindOverQuota) {
		res.setDuration(e.cfg.Now()) // the report tells it; Copy sets it again at the very end
		stopped := ""
		if err != nil {
			stopped = err.Error()
		}
		if rerr := e.appendReport(ctx, res, stopped); rerr != nil {
			res.ReportError = rerr.Error()
			e.log.Warn("report_not_appended", "error", rerr)
		} else {
			res.Report = true
		}
	}
	return err
}

// byWeight is jobs, the biggest first: the order the workers take them in.
func byWeight(jobs []*job) []*job {
	order := slices.Clone(jobs)
	slices.SortStableFunc(order, func(a, b *job) int { return cmp.Compare(b.weight, a.weight) })
	return order
}

// firstFolders are the workers' first folders, biggest first (see
// copyFolders).
type firstFolders struct {
	mu   sync.Mutex
	jobs []*job
}

func (f *firstFolders) take() *job {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.jobs) == 0 {
		return nil
	}
	j := f.jobs[0]
	f.jobs = f.jobs[1:]
	return j
}

// copyFolders runs the folder jobs on at most Connections workers, biggest
// folders first; a worker with no folder left appends ranges of the folders
// being split (see split.go). Each worker holds at most one source and one
// destination connection at any time, so neither account ever sees more than
// Connections connections from this copy (while the planning's destination
// connection creates folders, they dial none of their own: see
// awaitPlanning; the report is appended after they end).
func (e *engine) copyFolders(ctx context.Context, jobs []*job) error {
	order := byWeight(jobs)
	g, gctx := errgroup.WithContext(ctx)
	b := newBoard(order)
	e.board = b
	defer context.AfterFunc(gctx, b.wake)()
	var tempMu sync.Mutex
	var temp []error
	workers := e.cfg.Connections
	if len(order) == 0 {
		workers = 0
	}
	e.workers.Store(int32(workers))
	// The workers' first folders are taken before any worker runs: a worker
	// that starts first would otherwise take the next folders early (see
	// fetchBodies) while the others have none. Each worker takes the biggest
	// left once its first source connection is there (the planning's at
	// once, the pool's as they log in): the biggest folders, which end the
	// copy, start first, and the worker that waits longest for its write
	// connection (see awaitPlanning) is the one with the least to copy.
	var firsts firstFolders
	for range workers {
		if j := b.takeFirst(); j != nil {
			firsts.jobs = append(firsts.jobs, j)
		}
	}
	nFirsts := len(firsts.jobs)
	for i := range workers {
		hasFirst := i < nFirsts
		g.Go(func() (err error) {
			w := &worker{e: e}
			defer func() { w.retire(err == nil) }()
			defer func() {
				if r := recover(); r != nil {
					// The stack goes to the log only: the error reaches the status.
					e.log.Error("copy_worker_panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					err = fmt.Errorf("internal error in the copy engine (a panic: %v)", r)
				}
			}()
			if hasFirst {
				w.pooledSource(gctx)
				w.next = firsts.take()
			}
			for {
				var t task
				switch {
				case w.upcoming != nil:
					// Its first chunk was sent behind the previous folder's last
					// (sendNextFolder).
					t, w.upcoming = task{job: w.upcoming}, nil
				case w.next != nil:
					// Taken while its previous folder ended (prefetchSoon,
					// fetchBodies).
					t, w.next, w.next2 = task{job: w.next}, w.next2, nil
				default:
					t = b.take(gctx)
				}
				switch {
				case t.split != nil:
					// Its failure is the folder's: its worker returns it.
					w.runRange(gctx, t.split, t.idx)
					continue
				case t.job == nil:
					return nil
				}
				err := w.copyFolder(gctx, t.job)
				if errors.Is(err, errLeaving) {
					w.dropCarry() // before its folder is another worker's
					b.giveBack(t.job)
					for _, early := range []*job{w.next2, w.next, w.upcoming} { // taken early, not started
						if early != nil {
							b.giveBack(early)
						}
					}
					w.next, w.next2, w.upcoming = nil, nil, nil
					return nil
				}
				b.folderDone()
				if err != nil {
					if IsPermanent(err) || gctx.Err() != nil {
						return err
					}
					// Connections kept failing for this folder: go on with the
					// others, the copy ends with a temporary error.
					tempMu.Lock()
					temp = append(temp, fmt.Errorf("folder %q: %w", t.job.m.Source, err))
					tempMu.Unlock()
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(temp) > 0 {
		return &Error{Kind: KindTemporary, Err: errors.Join(temp...)}
	}
	return nil
}

// errLeaving: a worker leaves the copy, its folder given back (see shrink).
var errLeaving = errors.New("a worker leaves: the server refuses more connections")

// shrink lets one worker leave the copy, unless it is the last one. A server
// that refuses one more connection (its cap for the account or for our address
// is below Connections, or other clients use some) copies as fast with the
// connections it takes, and a worker that kept retrying would end its folder
// failed.
func (e *engine) shrink() bool {
	for {
		n := e.workers.Load()
		if n <= 1 {
			return false
		}
		if e.workers.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// withConns runs fn with a fresh control connection to each account, dialed
// with the reconnect policy. The source connection then joins the pool (or is
// logged out), and the destination connection is closed unless fn keeps it
// (keep: the caller closes it). Both are dialed at once: on a distant server,
// TLS and login cost several round trips each.
func (e *engine) withConns(ctx context.Context, fn func(src, dst *imapconn.Client) (keep bool, err error)) error {
	return e.retry(ctx, "plan", func() error {
		var dst *imapconn.Client
		var dstErr error
		dstDone := make(chan struct{})
		go func() {
			defer close(dstDone)
			if dst, dstErr = e.dialDest(ctx, nil); dstErr == nil {
				e.pool.start(SideDestination)
			}
		}()
		src, srcConn, err := e.dialSource(ctx, nil)
		if err == nil {
			e.pool.start(SideSource)
		}
		<-dstDone
		keep := false
		if dst != nil {
			// Closed, not logged out: every answer was read, and waiting for
			// LOGOUT's would hold the workers back a round trip.
			defer func() {
				if !keep {
					dst.Close()
				}
			}()
		}
		if err != nil {
			return err
		}
		if dstErr != nil {
			src.Logout()
			return dstErr
		}
		keep, err = fn(src, dst)
		if err != nil || !e.pool.giveSource(src, srcConn) {
			// A worker takes it over otherwise.
			src.Logout()
		}
		return err
	})
}

// retry runs fn until it succeeds, fails permanently, or failed MaxRetries
// times in a row, sleeping with exponential backoff between attempts. A
// throttled attempt is no failure: it waits as the server asks (the progress
// says until when) and counts against MaxThrottles, as a folder's would.
func (e *engine) retry(ctx context.Context, what string, fn func() error) error {
	return e.retryProgress(ctx, what, nil, fn)
}

// retryProgress is retry for work done in steps: an attempt after which
// progress (unless nil) returns more than before counts as the first failure
// in a row, as a folder's attempt that copied messages does.
func (e *engine) retryProgress(ctx context.Context, what string, progress func() int, fn func() error) error {
	throttles := 0
	done := 0
	for attempt := 1; ; attempt++ {
		err := fn()
		if progress != nil {
			if n := progress(); n > done {
				done, attempt = n, 1
			}
		}
		if t, ok := asThrottled(err); ok && ctx.Err() == nil && throttles < e.cfg.MaxThrottles {
			throttles++
			d := e.cfg.throttleWait(throttles, t.wait)
			until := e.cfg.Now().Add(d)
			e.log.Warn("throttled", "what", what, "attempt", throttles, "until", until, "in", d, "error", err)
			e.tracker.throttled(until)
			serr := sleep(ctx, d)
			e.tracker.throttled(time.Time{})
			if serr != nil {
				return serr
			}
			attempt--
			continue
		}
		var refused *refusedError
		if err == nil || IsPermanent(err) || errors.As(err, &refused) || ctx.Err() != nil || attempt > e.cfg.MaxRetries {
			return err
		}
		d := e.cfg.backoff(attempt)
		e.log.Info("retrying", "what", what, "attempt", attempt, "in", d, "error", err)
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// dialSource opens a source connection and returns it with its raw network
// connection. gate, unless nil, is called before the login (see dialPool):
// its error ends the dial as it is.
func (e *engine) dialSource(ctx context.Context, gate func(context.Context) error) (*imapconn.Client, net.Conn, error) {
	if err := e.admitLogin(SideSource); err != nil {
		return nil, nil, err
	}
	dctx, opts, bd := e.dialing(ctx)
	opts.BeforeLogin = gate
	c, err := imapconn.Dial(dctx, e.cfg.Source, opts)
	if errors.Is(err, errUnwanted) {
		return nil, nil, err
	}
	if err != nil {
		return nil, nil, e.classifyDial(ctx, SideSource, err)
	}
	e.connected(SideSource)
	e.logins.login(SideSource, e.tracker.moved.Load())
	return c, bd.conn, nil
}

// dialDest opens a destination connection for go-imap; gate as for
// dialSource.
func (e *engine) dialDest(ctx context.Context, gate func(context.Context) error) (*imapconn.Client, error) {
	if err := e.admitLogin(SideDestination); err != nil {
		return nil, err
	}
	dctx, opts, _ := e.dialing(ctx)
	opts.BeforeLogin = gate
	c, err := imapconn.Dial(dctx, e.cfg.Destination, opts)
	if err != nil {
		return nil, e.classifyDial(ctx, SideDestination, err)
	}
	e.connected(SideDestination)
	e.logins.login(SideDestination, e.tracker.moved.Load())
	return c, nil
}

// dialAppender opens a destination write connection and returns it with its
// raw network connection, which abort closes at once; gate as for
// dialSource.
func (e *engine) dialAppender(ctx context.Context, gate func(context.Context) error) (*imapappend.Appender, net.Conn, error) {
	if err := e.admitLogin(SideDestination); err != nil {
		return nil, nil, err
	}
	dctx, opts, bd := e.dialing(ctx)
	opts.WriteBuffer, opts.UnsentLimit = appendWriteBuffer, appendUnsentLimit
	opts.BeforeLogin = gate
	a, err := imapappend.Dial(dctx, e.cfg.Destination, opts,
		imapappend.Config{Batching: e.cfg.Batching, NoMultiappend: e.cfg.NoMultiappend, NoResend: true})
	if errors.Is(err, errUnwanted) {
		return nil, nil, err
	}
	if err != nil {
		return nil, nil, e.classifyDial(ctx, SideDestination, err)
	}
	e.connected(SideDestination)
	e.logins.login(SideDestination, e.tracker.moved.Load())
	return a, bd.conn, nil
}

// appendWriteBuffer is the send buffer of a destination write connection.
// What a copier wrote into the kernel is sent even while the copier is frozen
// (SIGSTOP, a pause): an APPEND wholly in that buffer lands after the copier
// lost its lease, perhaps after another copier took the task over and read the
// destination, and is then a duplicate. The lease ends a quarter of the ack
// wait (15 s by default) before another delivery may start, so a bounded buffer
// keeps that from happening on any link faster than about 1 MiB / 15 s
// (70 KB/s); the kernel's own growth (to 4 MiB) would need 280 KB/s. 512 KiB
// (1 MiB once the kernel doubles it) still fills a 40 MB/s link at 25 ms, more
// than one connection gets from a mail server.
const appendWriteBuffer = 512 << 10

// appendUnsentLimit bounds what of that buffer may wait unsent in the kernel
// (TCP_NOTSENT_LOWAT): the rest of the buffer holds only bytes already on the
// way, which arrive within a round trip (plus whatever a bloated router queue
// holds), so the slow link that could land a frozen copier's APPEND after a
// takeover must be slower than 64 KiB / 15 s, about 4.4 KB/s, instead of
// 70 KB/s; and a fast or distant link stays full (the bytes in flight are not
// limited). The appender writes at most 65 KiB at a time (imapconn), so a
// write waits for the kernel to have sent what was queued before it.
const appendUnsentLimit = 64 << 10

// dialing returns what one dial needs: a context for imapconn that is never
// cancelled, and dial options whose dialer binds the connection to ctx
// instead. imapconn closes a connection when the context given to Dial ends,
// but it stores the handle of that binding after registering it
// (imapconn.conn.bind), so a cancellation during the TLS handshake or the
// greeting races with the dial (a data race under -race). The engine's
// dialer binds the raw connection itself, registered before the connection
// is handed to imapconn: a dial in progress fails at once when ctx ends, and
// go-imap and the appender are stopped afterwards as they were.
func (e *engine) dialing(ctx context.Context) (context.Context, imapconn.Options, *boundDialer) {
	opts := e.cfg.Dial
	bd := &boundDialer{ctx: ctx, d: opts.Dialer}
	if bd.d == nil {
		bd.d = &net.Dialer{}
	}
	opts.Dialer = bd
	return context.WithoutCancel(ctx), opts, bd
}

func (e *engine) connected(side Side) {
	if side == SideSource {
		e.srcUp.Store(true)
	} else {
		e.dstUp.Store(true)
	}
}

// classifyDial makes a dial failure permanent when retrying cannot help: a
// refused login, a certificate that does not verify, a server without
// STARTTLS or that is not IMAP. Once a side was reached, in this copy or
// before it (Config.Reached), only the first two count: a connection cut
// during a later handshake looks like the others but is a network failure.
// A dial cut short by the end of ctx is a cancellation, whatever imapconn
// made of the closed connection.
func (e *engine) classifyDial(ctx context.Context, side Side, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w (%w)", side, context.Cause(ctx), err)
	}
	up := e.cfg.Reached || e.srcUp.Load()
	if side == SideDestination {
		up = e.cfg.Reached || e.dstUp.Load()
	}
	switch imapconn.KindOf(err) {
	case imapconn.KindAuth:
		return &Error{Kind: KindLogin, Side: side, Err: err}
	case imapconn.KindTLS:
		if up && !isCertError(err) {
			return err
		}
		return &Error{Kind: KindConnect, Side: side, Err: err}
	case imapconn.KindStartTLSUnavailable, imapconn.KindNotIMAP:
		if up {
			return err
		}
		return &Error{Kind: KindConnect, Side: side, Err: err}
	case imapconn.KindRefusedByPolicy:
		return &Error{Kind: KindConnect, Side: side, Err: err}
	}
	return err
}

// boundDialer dials through d and binds each connection to ctx: the TCP
// connect is abandoned, and the connection closed, when ctx ends. It
// remembers the connection it dialed: closing it is the only way to stop
// go-imap or the appender at once without waiting on them.
type boundDialer struct {
	ctx  context.Context
	d    imapconn.Dialer
	conn net.Conn
}

func (b *boundDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()
	raw, err := b.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := &boundConn{Conn: raw}
	c.unbind = context.AfterFunc(b.ctx, func() { raw.Close() })
	b.conn = c
	return c, nil
}

// boundConn is a connection closed when its dialer's context ends.
type boundConn struct {
	net.Conn
	mu     sync.Mutex  // rebind and Close may meet: go-imap's reader closes a cut pooled connection
	unbind func() bool // set before the connection is handed out
}

// NetConn is the connection under c (imapconn sets its send buffer).
func (c *boundConn) NetConn() net.Conn { return c.Conn }

// rebind binds the connection to ctx instead (a pooled connection handed to
// a worker). go-imap's reader may close the connection meanwhile, if it was cut
// while pooled.
func (c *boundConn) rebind(ctx context.Context) {
	raw := c.Conn
	c.mu.Lock()
	old := c.unbind
	c.unbind = context.AfterFunc(ctx, func() { raw.Close() })
	c.mu.Unlock()
	old()
}

func (c *boundConn) Close() error {
	c.mu.Lock()
	unbind := c.unbind
	c.mu.Unlock()
	unbind()
	return c.Conn.Close()
}

// quotaWatch tells a message too big for the space left (a per-message
// failure) from a full destination (fatal): the account is taken as full
// when three refusals for quota come in a row with no successful append in
// between, or when even a small message (64 KiB or less) is refused.
type quotaWatch struct {
	mu       sync.Mutex
	refusals int
}

const (
	quotaFullRefusals = 3
	quotaSmallMessage = 64 << 10
)

func (q *quotaWatch) refused(size int64) (full bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.refusals++
	return q.refusals >= quotaFullRefusals || size <= quotaSmallMessage
}

func (q *quotaWatch) ok() {
	q.mu.Lock()
	q.refusals = 0
	q.mu.Unlock()
}

// lostUnconfirmed records that a connection appending to mailbox was just
// lost with commands unanswered.
func (e *engine) lostUnconfirmed(mailbox string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.unsettled == nil {
		e.unsettled = map[string]time.Time{}
	}
	e.unsettled[mailbox] = time.Now()
}

// awaitCommits waits, before mailbox is read on the destination, until
// CommitSettle has passed since a connection appending to it was lost with
// commands unanswered. The server may have received such a command whole
// and still commit it after the connection ended, a few milliseconds later
// (Dovecot's session process does): read before that, the folder would lack
// the messages and they would be appended a second time.
func (e *engine) awaitCommits(ctx context.Context, mailbox string) error {
	e.mu.Lock()
	lost, ok := e.unsettled[mailbox]
	e.mu.Unlock()
	if !ok {
		return nil
	}
	if wait := time.Until(lost.Add(e.cfg.CommitSettle)); wait > 0 {
		e.log.Info("folder_awaiting_unconfirmed_appends", "dest", mailbox, "for", wait)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	e.mu.Lock()
	if e.unsettled[mailbox].Equal(lost) {
		delete(e.unsettled, mailbox)
	}
	e.mu.Unlock()
	return nil
}

func (e *engine) recordFailure(m MessageIssue) {
	e.mu.Lock()
	e.failures = append(e.failures, m)
	e.mu.Unlock()
	e.log.Warn("message_not_copied", "folder", m.Folder, "uid", m.UID, "size", m.Size, "reason", m.Reason)
}

func (e *engine) recordAltered(m MessageIssue) {
	e.mu.Lock()
	e.altered = append(e.altered, m)
	e.mu.Unlock()
	e.log.Warn("message_altered", "folder", m.Folder, "uid", m.UID, "size", m.Size, "reason", m.Reason)
}

// LargestKept is how many of the largest source messages a dry run lists
// (Result.Largest).
const LargestKept = 10

// recordLargest keeps the largest of a folder's source messages among
// e.largest (a dry run's only: a copy does not pay for it). A folder's
// attempt that runs again offers the same messages again: they are kept once.
func (e *engine) recordLargest(folder string, msgs []srcMessage) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range msgs {
		if len(e.largest) == LargestKept && m.size <= e.largest[LargestKept-1].Size {
			continue
		}
		if slices.ContainsFunc(e.largest, func(l MessageIssue) bool { return l.Folder == folder && l.UID == m.uid }) {
			continue
		}
		i, _ := slices.BinarySearchFunc(e.largest, m.size, func(l MessageIssue, size int64) int { return cmp.Compare(size, l.Size) })
		e.largest = slices.Insert(e.largest, i, MessageIssue{Folder: folder, UID: m.uid, Size: m.size})
		if len(e.largest) > LargestKept {
			e.largest = e.largest[:LargestKept]
		}
	}
}

func (e *engine) recordSkip(m MessageIssue) {
	e.mu.Lock()
	e.skipped = append(e.skipped, m)
	e.mu.Unlock()
}

// appendReport appends the report to the destination INBOX, unseen.
func (e *engine) appendReport(ctx context.Context, res *Result, stopped string) error {
	if err := e.fence(); err != nil {
		return err
	}
	var id [12]byte
	rand.Read(id[:])
	host := e.cfg.Destination.Host
	if host == "" || net.ParseIP(host) != nil {
		host = "imapcopy.invalid"
	}
	now := e.cfg.Now()
	messageID := "report." + hex.EncodeToString(id[:]) + "@" + host
	raw := buildReport(res, reportInfo{
		source:      describe(e.cfg.Source),
		destination: describe(e.cfg.Destination),
		from:        "imapcopy@" + host,
		to:          address(e.cfg.Destination),
		messageID:   messageID,
		stopped:     stopped,
		now:         now,
		text:        textFor(e.cfg.Language),
	})
	// lost: when an append of the report was left unanswered by a lost
	// connection. The server may still store it (see awaitCommits): the next
	// attempt looks for it first.
	var lost time.Time
	return e.retry(ctx, "report", func() error {
		if !lost.IsZero() {
			if err := sleep(ctx, time.Until(lost.Add(e.cfg.CommitSettle))); err != nil {
				return err
			}
			stored, err := e.reportStored(ctx, messageID)
			if err != nil {
				return err
			}
			if stored {
				return nil
			}
			lost = time.Time{}
		}
		a := e.pool.takeSpare() // a worker's, when one was left in order
		if a == nil {
			var err error
			if a, _, err = e.dialAppender(ctx, nil); err != nil {
				return err
			}
		}
		defer a.Close()
		results, err := a.Append(ctx, "INBOX", []imapappend.Message{{
			InternalDate: now, Size: int64(len(raw)), Body: bytes.NewReader(raw),
		}})
		if err != nil {
			if len(results) == 1 && errors.Is(results[0].Err, imapappend.ErrUnconfirmed) {
				lost = time.Now()
			}
			return fmt.Errorf("append the report: %w", err)
		}
		if len(results) == 1 && results[0].Err != nil {
			return &refusedError{fmt.Errorf("the destination refused the report: %w", results[0].Err)}
		}
		return nil
	})
}

// reportStored tells whether the destination INBOX holds the report with
// messageID.
func (e *engine) reportStored(ctx context.Context, messageID string) (bool, error) {
	c, err := e.dialDest(ctx, nil)
	if err != nil {
		return false, err
	}
	defer c.Logout()
	if _, err := c.IMAP().Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return false, commandError("destination: examine INBOX", err)
	}
	found, err := c.IMAP().UIDSearch(&imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "<" + messageID + ">"}},
	}, nil).Wait()
	if err != nil {
		return false, commandError("destination: look for the report", err)
	}
	return len(found.AllUIDs()) > 0, nil
}

// describe names an account for people: login@host, never a secret.
func describe(a imapconn.Account) string {
	if strings.Contains(a.Login, "@") {
		return fmt.Sprintf("%s (%s)", a.Login, a.Host)
	}
	return a.Login + "@" + a.Host
}

// address is the account's mail address as well as it can be guessed.
func address(a imapconn.Account) string {
	if strings.Contains(a.Login, "@") {
		return a.Login
	}
	host := a.Host
	if net.ParseIP(host) != nil {
		host = "localhost"
	}
	return a.Login + "@" + host
}

// admitLogin refuses a dial to side once the loginGuard's limit is reached,
// and stops the copy with that cause: every further folder would be refused.
func (e *engine) admitLogin(side Side) error {
	if err := e.logins.admit(side, e.tracker.moved.Load()); err != nil {
		e.stop(err)
		return err
	}
	return nil
}

// fence asks Config.Fence whether the copy may still write; when it may not, the
// copy is stopped at once (its connections close) with the fence's error as cause.
func (e *engine) fence() error {
	if e.cfg.Fence == nil {
		return nil
	}
	if err := e.cfg.Fence(); err != nil {
		e.stop(err)
		return err
	}
	return nil
}

// fencedBody checks the fence before each read of a body on its way to the
// destination: a copy that lost its lease stops in the middle of the literal,
// and the server, which never sees the end of the command, stores nothing of it.
type fencedBody struct {
	r     io.Reader
	fence func() error
}

func (b *fencedBody) Read(p []byte) (int, error) {
	if err := b.fence(); err != nil {
		return 0, err
	}
	return b.r.Read(p)
}
