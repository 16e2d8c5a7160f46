package mailcopy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"imapcopy.dev/pkg/imapappend"
	"imapcopy.dev/pkg/imapconn"
)

// worker copies folders one after the other with at most one source and one
// destination connection: the destination slot holds either a metadata
// client (go-imap, for EXAMINE and the metadata pass) or an appender, never
// both. Connections are kept from one folder to the next.
type worker struct {
	e       *engine
	src     *imapconn.Client
	srcConn net.Conn // the source's raw connection
	// srcOpen is the source folder open on src for a range (see split.go),
	// with its UIDVALIDITY; "" when src has another folder open, or none.
	srcOpen     string
	srcValidity uint32
	meta        *imapconn.Client
	app         *imapappend.Appender
	appConn     net.Conn // the appender's raw connection, for abort

	// next is a folder taken from the board while the last bodies of the
	// previous one went through (see prefetchSoon): the worker copies it
	// next. pre is its source metadata pass, sent on src behind the previous
	// folder's body FETCH and not read yet; nil when none.
	next *job
	pre  *prefetch
	// ahead is the body FETCH of a folder's next chunk, sent on src once the
	// source sent the last body of the chunk before (see fetchAhead), with
	// the chunk it fetches; nil when none.
	ahead      *bodyStream
	aheadChunk []srcMessage
	// cur is the body FETCH being appended (appendOnce), nil between.
	cur *bodyStream
	// carry is a chunk sent behind the one whose answers are read, not
	// taken by its appendOnce yet (see sentChunk); nil when none.
	carry *sentChunk
	// upcoming is the folder whose first chunk was sent ahead (see
	// sendNextFolder): the worker copies it next, before next.
	upcoming *job
	// next2 is the folder after next, taken when next's first chunk was
	// asked for with its metadata pass as a prefix (see fetchBodies).
	next2 *job
	// examines counts the EXAMINEs sent on the source connections: a
	// prefetch's metadata pass tells which folder is open only if no other
	// EXAMINE was sent after it. wire is the folder the last EXAMINE sent
	// opens, whether answered or not ("" when none).
	examines int
	wire     string
}

// prefetch is a metadata pass sent ahead (see worker.prefetchSoon).
type prefetch struct {
	j       *job
	src     *imapconn.Client
	examine *imapclient.SelectCommand
	fetch   *imapclient.FetchCommand
	keyed   bool // the pass reads the messages' identity (see worker.keyed)

	// done: the answers were read already (see prefetchNext), into sel,
	// msgs, err and ferr (awaitMetadata's).
	done   bool
	sel    *imap.SelectData
	msgs   []srcMessage
	err    error
	ferr   error
	bodies *bodyStream  // the first chunk's body FETCH, sent once they were; nil if none
	chunk  []srcMessage // the messages it fetches
	whole  bool         // chunk is every message the folder appends
	at     int          // worker.examines once its EXAMINE was sent
}

// drain reads and drops the answers of a prefetch that is not used.
func (p *prefetch) drain() {
	if !p.done {
		_, _ = p.examine.Wait()
		_ = p.fetch.Close()
	}
	if p.bodies != nil {
		_ = p.bodies.close()
	}
}

// errRetryNow: the attempt learnt something (a corrected size, a message to
// leave out) and the folder should be tried again at once.
var errRetryNow = errors.New("retry the folder")

// errKeysNeeded is the error of an attempt whose source metadata pass did
// without the identities (see worker.keyed) while the destination folder
// turned out to hold messages: the folder is tried again, with them.
var errKeysNeeded = fmt.Errorf("%w: the destination folder is not empty", errRetryNow)

// retire closes the worker's connections, once it copied its last folder
// (ok) handing its write connection, if still in order, to the pool for the
// report.
func (w *worker) retire(ok bool) {
	if ok && w.e.pool.keepSpare(w.app, w.appConn) {
		w.app, w.appConn = nil, nil
	}
	w.close()
}

func (w *worker) close() {
	w.dropSource()
	w.dropDest()
}

func (w *worker) dropSource() {
	w.dropCarry()
	if w.src != nil {
		if w.ahead != nil {
			// As for a prefetch: cut first, the drain then fails fast.
			w.cutSource()
			_ = w.ahead.close()
			w.ahead, w.aheadChunk = nil, nil
		}
		if w.pre != nil {
			// Cut first: nothing more of the prefetch is wanted, and go-imap's
			// Close would wait for its unread literals (see cutSource).
			w.cutSource()
			w.pre.drain()
			w.pre = nil
		}
		w.src.Close()
		w.src, w.srcConn = nil, nil
		w.srcOpen, w.wire = "", ""
	}
}

// cutSource closes the source's raw connection at once. go-imap's Close
// waits for its reader, which waits for an unread FETCH literal to be
// consumed: a FETCH abandoned mid-stream must be cut first, then drained
// (which fails fast), and only then closed.
func (w *worker) cutSource() {
	if w.srcConn != nil {
		w.srcConn.Close()
	}
}

func (w *worker) dropDest() {
	w.dropCarry()
	if w.meta != nil {
		w.meta.Close()
		w.meta = nil
	}
	if w.app != nil {
		w.app.Close()
		w.app, w.appConn = nil, nil
	}
}

// pooledSource takes a source connection of the pool, if it has one left
// (waiting for its dial): the worker's first (see copyFolders). Without, the
// worker's first attempt dials its own.
func (w *worker) pooledSource(ctx context.Context) {
	if c, conn, ok := w.e.pool.takeSource(ctx); ok {
		w.src, w.srcConn = c, conn
	}
}

func (w *worker) source(ctx context.Context) (*imapconn.Client, error) {
	if w.src == nil {
		if c, conn, ok := w.e.pool.takeSource(ctx); ok {
			w.src, w.srcConn = c, conn
			return c, nil
		}
		if err := w.e.pool.awaitDials(ctx, SideSource); err != nil {
			return nil, err
		}
		c, conn, err := w.e.dialSource(ctx, nil)
		if err != nil {
			return nil, err
		}
		w.src, w.srcConn = c, conn
	}
	return w.src, nil
}

func (w *worker) destMeta(ctx context.Context) (*imapconn.Client, error) {
	if w.app != nil {
		w.app.Close()
		w.app, w.appConn = nil, nil
	}
	if w.meta == nil {
		if err := w.e.awaitPlanning(ctx); err != nil {
			return nil, err
		}
		if err := w.e.pool.awaitDials(ctx, SideDestination); err != nil {
			return nil, err
		}
		c, err := w.e.dialDest(ctx, nil)
		if err != nil {
			return nil, err
		}
		w.meta = c
	}
	return w.meta, nil
}

func (w *worker) appender(ctx context.Context) (*imapappend.Appender, error) {
	if w.meta != nil {
		w.meta.Close()
		w.meta = nil
	}
	if w.app == nil {
		if a, conn, ok := w.e.pool.takeAppender(ctx); ok {
			w.app, w.appConn = a, conn
			return a, nil
		}
		if err := w.e.awaitPlanning(ctx); err != nil {
			return nil, err
		}
		if err := w.e.pool.awaitDials(ctx, SideDestination); err != nil {
			return nil, err
		}
		a, conn, err := w.e.dialAppender(ctx, nil)
		if err != nil {
			return nil, err
		}
		w.app, w.appConn = a, conn
	}
	return w.app, nil
}

// awaitPlanning waits until the planning's destination connection is closed (see
// engine.create): until then, a worker uses only the destination connections
// of the pool, so the account never sees more than Connections.
func (e *engine) awaitPlanning(ctx context.Context) error {
	if e.plan == nil {
		return nil
	}
	select {
	case <-e.plan.done:
		return e.plan.createErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// awaitFolder waits until j's destination folder, if this copy creates it, is
// created (with its parents: see engine.create), and then takes the outcome
// into j: a folder created is empty; one the server refused is a failed
// folder (a *refusedError), to which nothing is appended.
func (w *worker) awaitFolder(ctx context.Context, j *job) error {
	if !j.creating {
		return nil
	}
	if err := w.e.awaitPlanning(ctx); err != nil {
		return err
	}
	w.e.settle(j)
	if reason, ok := w.e.plan.refused[j.m.Dest]; ok {
		return refusedCreate(j.m.Dest, reason)
	}
	return nil
}

// folderKnown tells whether j's destination folder is settled: it existed
// already, or its creation ended (then j is settled).
func (w *worker) folderKnown(j *job) bool {
	if !j.creating || j.settled {
		return true
	}
	select {
	case <-w.e.plan.done:
		if w.e.plan.createErr != nil {
			return false
		}
		w.e.settle(j)
		return true
	default:
		return false
	}
}

// settle takes the creation's outcome into j, once: the worker holding j
// calls it after the creation ended.
func (e *engine) settle(j *job) {
	if j.settled {
		return
	}
	j.settled = true
	p := e.plan
	j.dstEmpty = p.created[j.m.Dest]
	st := p.dst.status[j.m.Dest]
	if st != nil && st.NumMessages != nil && *st.NumMessages == 0 {
		j.dstEmpty = true
	}
	j.dstStatus, j.dstStatusKnown = fromStatus(st)
}

// abortAppend closes the destination write connection at once, under an
// APPEND whose literal can no longer be completed (docs/design.md hazard: the
// next bytes written would complete it and store a corrupt message).
func (w *worker) abortAppend() {
	if w.appConn != nil {
		w.appConn.Close()
	}
}

// folderRun is the state of one folder across reconnects.
type folderRun struct {
	j     *job
	first bool
	// keyed: this attempt's source metadata pass read the identities (see
	// worker.keyed).
	keyed bool

	// mu guards what a body pass changes (counts, progress and the per-message
	// maps below) while ranges of the folder are appended by several workers
	// (see split.go); the metadata pass and the diff run alone.
	mu sync.Mutex
	// uidValidity is the source folder's UIDVALIDITY at this attempt's
	// metadata pass: a range appended on another connection checks it.
	uidValidity uint32

	presentBefore  int             // source messages already on the destination at the first pass
	initialMissing map[uint32]bool // source UIDs missing at the first pass

	failed  map[uint32]bool  // recorded as failed: not tried again
	skipped map[uint32]bool  // recorded as skipped
	sizeFix map[uint32]int64 // literal sizes that differ from RFC822.SIZE
	// sizeNote: what to say of a message whose body is not as long as its
	// RFC822.SIZE, once it is stored (as sent: the body is the message).
	sizeNote map[uint32]string
	suspect  map[uint32]bool // the source did not send the body once

	progress int // messages settled: resets the reconnect budget
	counts   Counts

	elsewhere map[key]int // ArchiveOnly: the identities of the other source folders' messages
	// ArchiveOnly: the Elsewhere folders scanned so far (the first
	// elsewhereNext) and their identities, kept across attempts: a source that
	// cuts sessions (Gmail) still gets through all of its labels.
	elsewhereNext int
	elsewhereAcc  map[key]int
	scanned       int // ArchiveOnly: its messages in scope before the archived ones are kept

	// oneByOne: the destination dropped the connection in the middle of an
	// append batch, or the source in the middle of a chunk's FETCH, and the
	// retry made no progress: the next attempt appends its first chunk one
	// message per command (Cyrus 3.6 drops the connection on a MULTIAPPEND
	// batch that crosses its keyword limit, and answers a single APPEND with a
	// plain NO; Gmail cuts sessions, which then may not carry a whole chunk).
	oneByOne bool
	// noKeywords: messages the destination refused for their keywords ("Too
	// many user flags in mailbox" on Cyrus): appended again without the
	// keywords the destination folder does not have yet.
	noKeywords    map[uint32]string // UID -> the server's answer
	retryKeywords bool              // this attempt refused messages for their keywords
	// stripped: what to say of a message sent without some of its keywords,
	// once it is stored.
	stripped map[uint32]string
	// alteredSeen: source messages already recorded as altered by the
	// destination (see diffAltered).
	alteredSeen map[uint32]bool
	// destFlags are the flags defined in the destination folder (its FLAGS
	// at the last metadata pass).
	destFlags map[string]bool

	// For the folder's State: both sides as the last attempt's metadata
	// passes found them (ok: known), and how many messages that attempt
	// appended.
	srcState, dstState MailboxState
	srcKnown, dstKnown bool
	appended           int
}

// copyFolder copies one folder, reconnecting with backoff when a connection
// drops. Delivery: every attempt starts with the metadata pass of both
// sides and appends only what the destination lacks, so a batch whose
// outcome was lost with a connection is neither lost nor duplicated — the
// next pass sees whether it was stored (a MULTIAPPEND is all or nothing,
// RFC 3502). The returned error is permanent, a cancellation, or the last
// connection failure once MaxRetries reconnects in a row made no progress;
// a folder the server refuses (EXAMINE NO) is recorded in the result and
// is not an error.
func (w *worker) copyFolder(ctx context.Context, j *job) error {
	e := w.e
	log := e.log.With("folder", j.m.Source, "dest", j.m.Dest)
	fr := &folderRun{
		j: j, first: true,
		failed: map[uint32]bool{}, skipped: map[uint32]bool{},
		sizeFix: map[uint32]int64{}, sizeNote: map[uint32]string{}, suspect: map[uint32]bool{},
		noKeywords: map[uint32]string{}, stripped: map[uint32]string{},
		alteredSeen: map[uint32]bool{},
	}
	e.tracker.update(j.idx, func(f *FolderProgress) { f.State = FolderRunning })
	start := time.Now()
	failures, throttles := 0, 0
	var err error
	for {
		before := fr.progress
		err = w.attempt(ctx, fr)
		if err == nil {
			break
		}
		w.settleCarry(ctx) // its answers, if the connection still gives them
		w.dropSource()
		w.dropDest()
		if imapconn.TooManyConnections(err) && len(fr.failed) == 0 && len(fr.skipped) == 0 && e.shrink() {
			// Another worker takes the folder over: it reads the destination
			// afresh, as what this one appended may be there.
			log.Warn("connections_reduced", "workers", e.workers.Load(), "error", err)
			j.dstEmpty = false
			e.tracker.update(j.idx, func(f *FolderProgress) { f.State = FolderPending })
			return errLeaving
		}
		if fr.progress > before {
			throttles = 0
		}
		if t, ok := asThrottled(err); ok && ctx.Err() == nil {
			// Not the messages' fault nor the connection's: wait as the
			// server asks, then resume. Bounded, so that a server that never
			// lets go ends the copy with a temporary failure.
			throttles++
			if throttles > e.cfg.MaxThrottles {
				break
			}
			d := e.cfg.throttleWait(throttles, t.wait)
			until := e.cfg.Now().Add(d)
			log.Warn("folder_throttled", "attempt", throttles, "until", until, "in", d, "error", err)
			e.tracker.update(j.idx, func(f *FolderProgress) { f.ThrottledUntil = until })
			e.tracker.flush()
			serr := sleep(ctx, d)
			e.tracker.update(j.idx, func(f *FolderProgress) { f.ThrottledUntil = time.Time{} })
			if serr != nil {
				err = serr
				break
			}
			failures = 0
			continue
		}
		var refused *refusedError
		if IsPermanent(err) || errors.As(err, &refused) || ctx.Err() != nil {
			break
		}
		if errors.Is(err, errRetryNow) {
			continue
		}
		var dropped *appendDropError
		var lost *sourceDropError
		if (errors.As(err, &dropped) || errors.As(err, &lost)) && fr.progress == before {
			fr.oneByOne = true
		}
		if fr.progress > before {
			failures = 0
		}
		failures++
		if failures > e.cfg.MaxRetries {
			break
		}
		d := e.cfg.backoff(failures)
		log.Info("folder_reconnecting", "attempt", failures, "in", d, "error", err)
		e.logins.note(err)
		if serr := sleep(ctx, d); serr != nil {
			err = serr
			break
		}
	}

	j.result.Counts = fr.counts
	if err == nil {
		j.state, j.complete = fr.state(e)
	}
	if e.cfg.DryRun {
		j.result.Scanned = fr.scanned
	}
	state := FolderDone
	var refused *refusedError
	switch {
	case err == nil:
	case errors.As(err, &refused):
		state = FolderFailed
		j.result.Error = err.Error()
		err = nil
	default:
		state = FolderFailed
		j.result.Error = err.Error()
	}
	e.tracker.update(j.idx, func(f *FolderProgress) { f.State = state; f.Counts = fr.counts })
	e.tracker.flush()
	log.Info("folder_done", "state", state, "total", fr.counts.Total, "copied", fr.counts.Copied,
		"present", fr.counts.Present, "failed", fr.counts.Failed, "skipped", fr.counts.Skipped,
		"duration", time.Since(start), "error", j.result.Error)
	return err
}

// attempt runs the metadata passes, the diff and the body pass once. The
// destination's metadata pass runs while the source's does (on its own
// connection): on a distant server, the folder waits for the slower of the
// two, not their sum.
func (w *worker) attempt(ctx context.Context, fr *folderRun) error {
	err := w.attemptOnce(ctx, fr)
	if err == nil && w.ahead != nil {
		// Bodies fetched ahead that no append used (the folder needed none of
		// them): read and dropped before anything else is read on the source.
		if derr := w.dropAhead(); derr != nil {
			return &sourceDropError{fmt.Errorf("source: %w", derr)}
		}
	}
	return err
}

// attemptOnce is attempt's work.
func (w *worker) attemptOnce(ctx context.Context, fr *folderRun) error {
	e, j := w.e, fr.j
	var dst, dst8 map[key]int
	var dstMsgs []srcMessage
	var dstErr error
	var dstPanic any
	readDest := false
	dstDone := make(chan struct{})
	fr.appended = 0
	fr.srcKnown, fr.dstKnown = false, false
	if c := w.carry; c != nil && (c.j != j || !fr.first || !j.dstEmpty) {
		w.settleCarry(ctx) // not this folder's first chunk (see sendNextFolder)
	}
	// Before the destination's side settles a folder being created (a
	// metadata pass sent ahead decided it when sent: sourceMetadata).
	fr.keyed = w.keyed(j, fr.first)
	go func() {
		defer close(dstDone)
		defer func() { dstPanic = recover() }()
		// A folder being created is waited for here, while the source's
		// metadata pass runs.
		if dstErr = w.awaitFolder(ctx, j); dstErr != nil {
			return
		}
		switch {
		case !fr.first || !j.dstEmpty:
			readDest = true
			dst, dst8, dstMsgs, dstErr = w.destKeys(ctx, fr)
		case w.app == nil && !e.cfg.DryRun && !j.srcEmpty:
			// Nothing to read on the destination: its write connection is
			// opened meanwhile, ready for the body pass (unless the source
			// had nothing to copy at the planning).
			fr.dstState, fr.dstKnown = j.dstStatus, j.dstStatusKnown && j.dstStatus.Messages == 0
			_, dstErr = w.appender(ctx)
		default:
			fr.dstState, fr.dstKnown = j.dstStatus, j.dstStatusKnown && j.dstStatus.Messages == 0
		}
	}()
	src, msgs, err := w.sourceMetadata(ctx, fr)
	if err == nil && fr.first && !j.m.ArchiveOnly && (j.creating || j.dstEmpty) && w.ahead == nil && w.carry == nil && !e.cfg.DryRun {
		// The destination folder is new or empty: the first chunk is known
		// from the source alone. Its bodies are asked for now, while the
		// destination's write connection may still be on its way (or the
		// folder being created): the first APPEND then waits for neither in
		// turn. A folder the destination refuses to create drops them.
		if c, whole := w.firstChunk(msgs); len(c) > 0 {
			w.ahead, w.aheadChunk = w.fetchBodies(j, fr.uidValidity, c, whole, w.nextSlot(), nil), c
		}
	}
	<-dstDone
	if dstPanic != nil {
		panic(dstPanic) // the worker's own recover ends the copy, as for any panic
	}
	var refused *refusedError
	if errors.As(dstErr, &refused) && j.creating {
		return dstErr // not created: whatever the source said, the folder fails so
	}
	if err != nil {
		return err
	}
	if dstErr != nil {
		return dstErr
	}
	if readDest && !fr.keyed {
		return errKeysNeeded
	}
	if e.cfg.DryRun {
		e.recordLargest(j.m.Source, msgs)
	}
	missing, present, altered, left := diffLeft(msgs, dst, dst8, dstMsgs)
	if len(missing) > 0 && w.meta != nil && len(left) > 0 {
		// Sizes that disagree (see matchSizes): the bodies decide, read on
		// the source after anything fetched ahead.
		if err := w.dropAhead(); err != nil {
			return &sourceDropError{fmt.Errorf("source: %w", err)}
		}
		still, found, err := matchSizes(src.IMAP(), w.meta.IMAP(), missing, dstMsgs, left)
		if err != nil {
			return err
		}
		if len(found) > 0 {
			e.log.Info("sizes_reported_otherwise", "folder", j.m.Source, "messages", len(found))
		}
		missing, present = still, present+len(found)
	}
	dstMsgs = nil
	for _, a := range altered {
		if !fr.alteredSeen[a.m.uid] {
			fr.alteredSeen[a.m.uid] = true
			e.recordAltered(MessageIssue{Folder: j.m.Source, UID: a.m.uid, Size: a.m.size, Reason: a.reason})
		}
	}
	missingSet := make(map[uint32]bool, len(missing))
	for _, m := range missing {
		missingSet[m.uid] = true
	}
	if fr.first {
		fr.first = false
		// Messages of a chunk sent ahead whose answers were read without
		// this folder (see dropCarry) were copied by this copy.
		fr.presentBefore = max(0, present-j.carried)
		fr.initialMissing = missingSet
	}
	fr.counts.Total = len(msgs)
	fr.counts.TotalBytes = 0
	for _, m := range msgs {
		fr.counts.TotalBytes += m.size
	}
	fr.counts.Present = fr.presentBefore
	fr.counts.Copied = max(0, present-fr.presentBefore)
	fr.counts.Bytes = 0
	for _, m := range msgs {
		if fr.initialMissing[m.uid] && !missingSet[m.uid] {
			fr.counts.Bytes += m.size
		}
	}

	var toCopy []srcMessage
	for _, m := range missing {
		switch {
		case fr.failed[m.uid] || fr.skipped[m.uid]:
		case e.cfg.MaxMessageSize > 0 && m.size > e.cfg.MaxMessageSize:
			fr.skipped[m.uid] = true
			fr.counts.Skipped++
			fr.progress++
			e.recordSkip(MessageIssue{Folder: j.m.Source, UID: m.uid, Size: m.size,
				Reason: fmt.Sprintf("larger than the maximum message size (%s)", ByteSize(e.cfg.MaxMessageSize))})
		case e.appendLimit > 0 && m.size > e.appendLimit:
			w.fail(fr, m, fmt.Sprintf("larger than the destination accepts (APPENDLIMIT %s)", ByteSize(e.appendLimit)))
		default:
			if answer, ok := fr.noKeywords[m.uid]; ok {
				m.flags = w.withoutNewKeywords(fr, m, answer)
			}
			toCopy = append(toCopy, m)
		}
	}
	if e.cfg.DryRun {
		fr.counts.Copied = len(toCopy)
		for _, m := range toCopy {
			fr.counts.Bytes += m.size
		}
	}
	e.tracker.update(j.idx, func(f *FolderProgress) { f.Counts = fr.counts })
	if e.cfg.DryRun || len(toCopy) == 0 {
		return nil
	}
	cs := chunks(toCopy, e.cfg.ChunkMessages, e.cfg.ChunkBytes)
	if c := w.carry; c != nil && (len(cs) == 0 || c.j != j || c.validity != fr.uidValidity || !sameMessages(c.chunk, cs[0])) {
		// The first chunk, sent ahead, is not the one to append: its
		// messages are on the destination now, which the next attempt reads.
		w.settleCarry(ctx)
		return errMismatchedCarry
	}
	if len(cs) >= splitMinRanges && !fr.oneByOne && e.cfg.SplitFolders && e.board != nil {
		// Many messages: the chunks are ranges that idle workers append too.
		if err := w.appendRanges(ctx, fr, cs); err != nil {
			return err
		}
		cs = nil
	}
	// hooks are chunk i's (see chunkHooks): the next chunk's bodies asked
	// for once its bodies went through, the next chunk (or the next folder's
	// first) sent behind it.
	var hooks func(i int) chunkHooks
	hooks = func(i int) chunkHooks {
		if i == len(cs)-1 {
			return chunkHooks{soon: w.prefetchSoon, sent: w.prefetchNext, next: func() { w.sendNextFolder(ctx) }}
		}
		next, last := cs[i+1], i+1 == len(cs)-1
		return chunkHooks{
			sent: func() { w.fetchAhead(fr, src, next, last) },
			next: func() { w.sendNext(ctx, fr, src, next, hooks(i+1)) },
		}
	}
	for i, c := range cs {
		if i == 0 && fr.oneByOne {
			for k := range c {
				if err := w.appendChunk(ctx, fr, src, c[k:k+1], chunkHooks{}); err != nil {
					return err
				}
			}
			fr.oneByOne = false
			continue
		}
		if err := w.appendChunk(ctx, fr, src, c, hooks(i)); err != nil {
			return err
		}
	}
	if fr.retryKeywords {
		// The next metadata pass reads the destination folder's keywords.
		fr.retryKeywords = false
		return errRetryNow
	}
	return nil
}

// withoutNewKeywords returns m's flags without the keywords the destination
// folder does not define yet; once stored, the message is recorded as altered.
func (w *worker) withoutNewKeywords(fr *folderRun, m srcMessage, answer string) []string {
	var kept, dropped []string
	for _, f := range m.flags {
		if strings.HasPrefix(f, `\`) || fr.destFlags[strings.ToLower(f)] {
			kept = append(kept, f)
		} else {
			dropped = append(dropped, f)
		}
	}
	fr.stripped[m.uid] = fmt.Sprintf("copied without the keywords %s: the destination refused them (%s)", strings.Join(dropped, " "), answer)
	return kept
}

// isTooManyKeywords reports whether a refused APPEND is about the folder's
// keyword limit (Cyrus: "NO Too many user flags in mailbox").
func isTooManyKeywords(err error) bool {
	var refused *imapappend.RefusedError
	return errors.As(err, &refused) && strings.Contains(strings.ToLower(refused.Status.Text), "too many user flags")
}

func hasKeywords(flags []string) bool {
	for _, f := range flags {
		if !strings.HasPrefix(f, `\`) {
			return true
		}
	}
	return false
}

// sourceMetadata runs the source's metadata pass of the folder: the messages
// in scope, sizes fixed where a body turned out to differ. The pass reads
// the identities if fr.keyed says so, unless it was sent ahead: fr.keyed is
// then what it did.
func (w *worker) sourceMetadata(ctx context.Context, fr *folderRun) (*imapconn.Client, []srcMessage, error) {
	e, j := w.e, fr.j
	src, err := w.source(ctx)
	if err != nil {
		return nil, nil, err
	}
	w.srcOpen = ""
	pre := w.takePrefetch(j)
	if j.m.ArchiveOnly && fr.elsewhere == nil {
		if err := w.elsewhereKeys(ctx, src, fr); err != nil {
			return nil, nil, err
		}
	}
	var sel *imap.SelectData
	var msgs []srcMessage
	var ferr error
	switch {
	case pre != nil && pre.done:
		fr.keyed = pre.keyed
		sel, msgs, err, ferr = pre.sel, pre.msgs, pre.err, pre.ferr
	case pre != nil:
		fr.keyed = pre.keyed
		sel, msgs, err, ferr = awaitMetadata(pre.examine, pre.fetch, pre.keyed)
	default:
		w.examines++
		w.wire = j.m.Source
		sel, msgs, err, ferr = examineMetadata(src.IMAP(), j.m.Source, fr.keyed)
	}
	if pre != nil && pre.bodies != nil {
		// Used by the first chunk if it is the one foreseen (takeAhead).
		w.ahead, w.aheadChunk = pre.bodies, pre.chunk
	}
	if err != nil {
		return nil, nil, commandError(fmt.Sprintf("source: examine %q", j.m.Source), err)
	}
	if ferr != nil {
		return nil, nil, fmt.Errorf("source %q: %w", j.m.Source, ferr)
	}
	fr.srcState, fr.srcKnown = fromSelect(sel)
	fr.uidValidity = sel.UIDValidity
	if pre == nil || pre.at == w.examines {
		// Else another folder's EXAMINE went behind the prefetch (see
		// sendNextFolder): the folder is opened again when its messages
		// are fetched (openSource).
		w.srcOpen, w.srcValidity = j.m.Source, sel.UIDValidity
	}
	msgs = inScope(msgs, e.cfg.Since)
	if j.m.ArchiveOnly {
		fr.scanned = len(msgs)
		// Archived mail: the messages in no other folder, count-aware (two
		// identical messages of which one has a label: one is archived).
		msgs, _ = diff(msgs, fr.elsewhere)
	}
	for i := range msgs {
		if s, ok := fr.sizeFix[msgs[i].uid]; ok {
			// The destination will show the size of the body it got.
			msgs[i].size = s
			msgs[i].key = withSize(msgs[i].base, s)
		}
	}
	return src, msgs, nil
}

// chunkHooks are what appendChunk calls as a chunk's bodies go through
// (each may be nil): soon when the bodies left to read from the source
// weigh prefetchLead or less (see bodyStream.open), sent once the source
// sent the last one, while the destination's last answers are awaited, and
// next once the chunk is sent, before its answers are read: it sends the
// chunk after it (see sentChunk).
type chunkHooks struct {
	soon, sent, next func()
}

// prefetchLead is how much of a folder's last chunk may be left to read
// when the next folder's metadata pass is sent behind it (prefetchSoon): its
// answer, queued behind the last bodies, is then there when they were read.
// The next folder is taken that early: some seconds at most on a slow link.
const prefetchLead = 8 << 20

// prefetchSoon is called while the bodies of a folder's last chunk are read
// from the source, once at most prefetchLead of them are left: the worker
// takes its next folder from the board and sends that folder's metadata pass
// (EXAMINE and UID FETCH 1:*) on the source connection, behind the FETCH in
// progress. The source answers it once it sent the last body, so that the
// answer is there when the copy has read them, instead of a round trip later
// (on a distant server, a round trip per folder and the source's time to
// read the folder). EXAMINE keeps the two FETCHes apart: a server runs a
// command that changes the open folder only once the commands before it
// ended (RFC 3501, 5.5), so no answer of one can come among the other's,
// which go-imap would hand to the wrong command. The source then has the
// next folder open: anything that reads the previous folder's messages again
// opens it again first (see openSource). Not with ranges waiting (they come
// first) nor in a dry run.
func (w *worker) prefetchSoon() {
	if w.next != nil || w.src == nil || w.e.board == nil || w.e.cfg.DryRun {
		return
	}
	j := w.e.board.takeJob(false, 0)
	if j == nil {
		return
	}
	w.next = j
	if j.m.ArchiveOnly {
		return // its metadata pass reads the other folders first
	}
	w.pre = w.sendPrefetch(j)
}

// sendPrefetch sends j's metadata pass (EXAMINE and UID FETCH 1:*) on the
// source connection, behind whatever was sent before.
func (w *worker) sendPrefetch(j *job) *prefetch {
	keyed := w.keyed(j, true)
	examine, fetch := sendMetadata(w.src.IMAP(), j.m.Source, keyed)
	w.examines++
	w.wire, w.srcOpen = j.m.Source, ""
	return &prefetch{j: j, src: w.src, examine: examine, fetch: fetch, keyed: keyed, at: w.examines}
}

// keyed tells whether the source's metadata pass of j's folder reads the
// messages' identity (metadataOptions rather than unkeyedMetadataOptions).
// Only a first attempt on a destination folder new or empty does without:
// every message is missing there, split across workers or not (a retry after
// a failed range reads them, and tells twins apart: see twinsPresent). Gmail's
// All Mail is diffed against the other folders: it needs them. A pass that
// did without and turns out to need them (the folder to create existed after
// all) is tried again at once (errKeysNeeded).
func (w *worker) keyed(j *job, first bool) bool {
	fresh := j.dstEmpty || j.creating && !j.settled // to create: empty unless it turns out to exist
	return !first || !fresh || j.m.ArchiveOnly
}

// fetchBodies sends the body FETCH of chunk of j's folder (UIDVALIDITY
// validity) on the source connection. When chunk is the folder's last and a
// small one (prefetchLead or less) and to is the slot free for it, the
// worker takes its next folder now and sends that folder's metadata pass
// first, as the FETCH's prefix: its answer comes before the bodies, not
// behind them, so the next folder's first chunk can be asked for as soon as
// this one's bodies are read from (see adoptPrefix), and its bodies come
// right behind these (see sendNextFolder). An EXAMINE of j's folder goes
// before the FETCH whenever another folder was opened since: it keeps the
// answers of the FETCHes apart (see prefetchSoon), and its UIDVALIDITY is
// checked before the first body is read.
func (w *worker) fetchBodies(j *job, validity uint32, chunk []srcMessage, last bool, to **job, abort func()) *bodyStream {
	c := w.src.IMAP()
	var prefix *prefetch
	if last && to != nil && *to == nil && w.e.board != nil && !w.e.cfg.DryRun {
		if n := w.e.board.takeJob(true, int(w.e.workers.Load())); n != nil {
			*to = n
			if !n.m.ArchiveOnly { // its metadata pass reads the other folders first
				prefix = w.sendPrefetch(n)
			}
		}
	}
	var reselect *imapclient.SelectCommand
	if w.wire != j.m.Source {
		reselect = c.Select(j.m.Source, &imap.SelectOptions{ReadOnly: true})
		w.examines++
		w.wire, w.srcOpen, w.srcValidity = j.m.Source, j.m.Source, validity
	}
	s := openBodies(c, chunk, abort)
	s.prefix, s.reselect, s.validity, s.adopt = prefix, reselect, validity, w.adoptPrefix
	return s
}

// adoptPrefix takes the next folder's metadata pass, read as the prefix of a
// body FETCH, as the worker's prefetch of its next folder, and asks for that
// folder's first chunk at once when the diff needs nothing else (see
// prefetchFirstChunk).
func (w *worker) adoptPrefix(p *prefetch) {
	if w.pre != nil || p.j != w.next || p.src != w.src {
		return // the folder runs its own metadata pass
	}
	w.pre = p
	w.prefetchFirstChunk(p)
}

// pollFirstChunk asks for the next folder's first chunk as soon as that
// folder's creation ended, when its metadata pass was read before (see
// adoptPrefix): called as each body of the chunk in progress is opened.
func (w *worker) pollFirstChunk() {
	if p := w.pre; p != nil && p.done && p.bodies == nil && p.src == w.src && p.j.creating && !p.j.settled {
		w.prefetchFirstChunk(p)
	}
}

// prefetchFirstChunk sends the body FETCH of the first chunk of p's folder,
// once p was read, when its destination folder is new or empty: the diff
// needs the source's metadata only, so the chunk is known already. Its
// bodies come behind the FETCH in progress: the folder's first APPEND then
// needs no round trip to the source. The folder after it may be taken as the
// FETCH's prefix (see fetchBodies).
func (w *worker) prefetchFirstChunk(p *prefetch) {
	if !p.done || p.bodies != nil || p.err != nil || p.ferr != nil || !w.folderKnown(p.j) || !p.j.dstEmpty {
		return
	}
	if c, whole := w.firstChunk(p.msgs); len(c) > 0 {
		p.bodies, p.chunk, p.whole = w.fetchBodies(p.j, p.sel.UIDValidity, c, whole, &w.next2, nil), c, whole
	}
}

// prefetchNext is called while the destination answers the last appends of
// a folder, once the source sent every body of it. The next folder's
// metadata pass is sent now if prefetchSoon did not; when the diff needs
// nothing else (see below), it is read and the first chunk's body FETCH
// sent.
func (w *worker) prefetchNext() {
	if w.pre == nil {
		if w.cur != nil && w.cur.close() != nil {
			return // the chunk's failure: appendOnce sees it again
		}
		w.prefetchSoon()
	}
	pre := w.pre
	if pre == nil || pre.bodies != nil || !w.folderKnown(pre.j) || !pre.j.dstEmpty {
		return // the diff needs the destination's metadata pass too
	}
	if !pre.done {
		if w.cur != nil && w.cur.close() != nil {
			return // the chunk's failure: appendOnce sees it again
		}
		// A new or empty destination folder: the diff needs the source's
		// metadata only, so the first chunk is known as soon as it is read.
		// It is read here, while the destination answers the appends (a
		// round trip, at most, that the destination's answers take anyway),
		// and the first chunk's body FETCH is sent at once: the folder's
		// first APPEND then follows the last answer of this one without a
		// round trip to the source.
		pre.sel, pre.msgs, pre.err, pre.ferr = awaitMetadata(pre.examine, pre.fetch, pre.keyed)
		pre.done = true
	}
	// Read already (a prefix, see adoptPrefix), the folder may have been
	// created since.
	w.prefetchFirstChunk(pre)
}

// firstChunk is the first chunk that the first attempt of a folder whose
// destination is empty appends, from the source's metadata pass (see
// attemptOnce: the messages in scope, without those too big, cut as chunks
// cuts them), or nil when the folder's messages are not appended in chunks by
// this worker (a folder to split across workers). whole: it is the folder's
// only chunk. It copies the first chunk's messages only: a folder may hold
// 100,000 and more.
func (w *worker) firstChunk(msgs []srcMessage) (first []srcMessage, whole bool) {
	cfg := w.e.cfg
	cut, n := 0, 0 // chunks cut so far; messages and bytes in the current one
	var bytes int64
	for _, m := range msgs {
		if !cfg.Since.IsZero() && m.date.Before(cfg.Since) ||
			cfg.MaxMessageSize > 0 && m.size > cfg.MaxMessageSize || w.e.appendLimit > 0 && m.size > w.e.appendLimit {
			continue
		}
		if startsChunk(n, bytes, m.size, cfg.ChunkMessages, cfg.ChunkBytes) {
			cut++
			n, bytes = 0, 0
			if !cfg.SplitFolders || cut+1 >= splitMinRanges {
				break
			}
		}
		if cut == 0 {
			first = append(first, m)
		}
		n++
		bytes += m.size
	}
	if cfg.SplitFolders && cut+1 >= splitMinRanges {
		return nil, false
	}
	return first, cut == 0
}

// takePrefetch returns the prefetched metadata pass of j on the current
// source connection, if any; a prefetch of another folder is drained.
func (w *worker) takePrefetch(j *job) *prefetch {
	if c := w.carry; c != nil && c.j == j && c.pre != nil {
		// The folder's first chunk was sent ahead, behind its metadata pass
		// (see sendNextFolder); the next folder's may be under way.
		p := c.pre
		c.pre = nil
		if p.src == w.src {
			return p
		}
		return nil
	}
	p := w.pre
	w.pre = nil
	if p == nil {
		return nil
	}
	if p.j == j && p.src == w.src {
		return p
	}
	p.drain()
	return nil
}

// fetchAhead is called while the destination answers the last appends of a
// chunk, once the source sent every body of it: it ends that chunk's FETCH
// and sends the body FETCH of the folder's next chunk on the source
// connection, so that its first body is on its way while the destination
// commits, instead of a round trip after (on a distant source, a round trip
// and the source's time to start the FETCH, per chunk). Its answer waits in
// the connection, unread, until the next chunk's Append reads it
// (takeAhead), so it holds no memory meanwhile. Only on the connection that
// has the folder open, as the metadata pass found it.
func (w *worker) fetchAhead(fr *folderRun, src *imapconn.Client, next []srcMessage, last bool) {
	if w.ahead != nil || w.pre != nil || w.cur == nil || src != w.src || len(next) == 0 ||
		w.srcOpen != fr.j.m.Source || w.srcValidity != fr.uidValidity {
		return
	}
	// The chunk's FETCH is read to its end first (its tagged answer, a round
	// trip at most, while the destination's answers are awaited anyway):
	// go-imap routes FETCH answers by UID, and Dovecot can run pipelined
	// FETCHes together, so the next chunk's answers must not be able to
	// come before this one's end. A failure is the chunk's: appendOnce sees
	// it again.
	if err := w.cur.close(); err != nil {
		return
	}
	w.ahead = w.fetchBodies(fr.j, fr.uidValidity, next, last, w.nextSlot(), w.abortAppend)
	w.aheadChunk = next
	if last && leadIndex(next, prefetchLead) == 0 {
		w.prefetchSoon() // the folder's last chunk, and a small one (see appendOnce)
	}
}

// nextSlot is where fetchBodies puts the next folder it takes for the last
// chunk of the folder being copied: w.next, when no folder was taken yet.
func (w *worker) nextSlot() **job {
	if w.next != nil || w.pre != nil || w.upcoming != nil {
		return nil
	}
	return &w.next
}

// takeAhead returns the body FETCH sent ahead for chunk on src (see
// fetchAhead), or nil; a FETCH sent ahead for anything else is drained.
func (w *worker) takeAhead(src *imapconn.Client, chunk []srcMessage) *bodyStream {
	s, c := w.ahead, w.aheadChunk
	if s == nil {
		return nil
	}
	if src == w.src && sameMessages(c, chunk) {
		w.ahead, w.aheadChunk = nil, nil
		s.msgs, s.abort = chunk, w.abortAppend
		return s
	}
	_ = w.dropAhead()
	return nil
}

// sameMessages tells whether a and b are the same messages, in the same
// order, with the same sizes.
func sameMessages(a, b []srcMessage) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for i := range a {
		if a[i].uid != b[i].uid || a[i].size != b[i].size {
			return false
		}
	}
	return true
}

// dropAhead reads and drops the answer of a body FETCH sent ahead that is
// not used: the source connection answers in order, so nothing else can be
// read on it before.
func (w *worker) dropAhead() error {
	s := w.ahead
	if s == nil {
		return nil
	}
	w.ahead, w.aheadChunk = nil, nil
	s.abort = nil // nothing is appended from it
	return s.close()
}

// openSource makes sure the source connection has fr's folder open, with the
// UIDVALIDITY of its metadata pass (other UIDs would be other messages),
// before its messages are fetched by UID: a range on another worker, or a
// refused batch's messages after the next folder's metadata pass was sent.
func (w *worker) openSource(fr *folderRun, src *imapconn.Client) error {
	j := fr.j
	if w.srcOpen == j.m.Source && w.srcValidity == fr.uidValidity {
		return nil
	}
	w.srcOpen = ""
	// In the order they were sent: a FETCH ahead, then a prefetch.
	if err := w.dropAhead(); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if w.pre != nil {
		w.pre.drain()
		w.pre = nil
	}
	w.examines++
	w.wire = j.m.Source
	sel, err := src.IMAP().Select(j.m.Source, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return commandError(fmt.Sprintf("source: examine %q", j.m.Source), err)
	}
	if sel.UIDValidity != fr.uidValidity {
		return fmt.Errorf("source %q: UIDVALIDITY changed from %d to %d during the copy", j.m.Source, fr.uidValidity, sel.UIDValidity)
	}
	w.srcOpen, w.srcValidity = j.m.Source, sel.UIDValidity
	return nil
}

// elsewhereKeys runs the metadata pass on every source folder of
// Plan.Elsewhere and counts their messages by identity, whatever their date
// (Since selects archived messages, not the folders they are filed in). A
// folder the source refuses to open counts as empty: its messages, not
// copied with it, are then archived rather than lost. It sets fr.elsewhere;
// after a failure, the next attempt goes on with the folders not scanned yet,
// each scanned folder counting as progress.
func (w *worker) elsewhereKeys(ctx context.Context, src *imapconn.Client, fr *folderRun) error {
	if fr.elsewhereAcc == nil {
		fr.elsewhereAcc = map[key]int{}
	}
	keys := fr.elsewhereAcc
	for ; fr.elsewhereNext < len(w.e.elsewhere); fr.elsewhereNext++ {
		name := w.e.elsewhere[fr.elsewhereNext]
		if err := ctx.Err(); err != nil {
			return err
		}
		w.examines++
		w.wire = name
		_, msgs, err, ferr := examineMetadata(src.IMAP(), name, true)
		if err != nil {
			var imapErr *imap.Error
			if errors.As(err, &imapErr) {
				w.e.log.Warn("archive_source_folder_unreadable",
					"folder", name, "error", err)
				continue
			}
			return fmt.Errorf("source: examine %q: %w", name, err)
		}
		if ferr != nil {
			return fmt.Errorf("source %q: %w", name, ferr)
		}
		for _, m := range msgs {
			keys[m.key]++
		}
		fr.mu.Lock()
		fr.progress++
		fr.mu.Unlock()
	}
	fr.elsewhere, fr.elsewhereAcc = keys, nil
	return nil
}

// destKeys runs the metadata pass on the destination folder, once appends
// to it that a lost connection left unanswered had time to settle; msgs are
// the destination's messages (for matchSizes).
func (w *worker) destKeys(ctx context.Context, fr *folderRun) (keys, eightBit map[key]int, msgs []srcMessage, err error) {
	j := fr.j
	if err := w.e.awaitCommits(ctx, j.m.Dest); err != nil {
		return nil, nil, nil, err
	}
	meta, err := w.destMeta(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	sel, msgs, err, ferr := examineMetadata(meta.IMAP(), j.m.Dest, true)
	if err != nil {
		var imapErr *imap.Error
		if w.e.cfg.DryRun && j.m.Create && errors.As(err, &imapErr) {
			return nil, nil, nil, nil // not created in a dry run
		}
		return nil, nil, nil, commandError(fmt.Sprintf("destination: examine %q", j.m.Dest), err)
	}
	if ferr != nil {
		return nil, nil, nil, fmt.Errorf("destination %q: %w", j.m.Dest, ferr)
	}
	fr.dstState, fr.dstKnown = fromSelect(sel)
	fr.appended = 0 // counted from this examine (see folderRun.state)
	fr.destFlags = make(map[string]bool, len(sel.Flags))
	for _, f := range sel.Flags {
		fr.destFlags[strings.ToLower(string(f))] = true
	}
	keys, eightBit = destKeys(msgs)
	return keys, eightBit, msgs, nil
}

// appendChunk streams one chunk from the source FETCH into one Append call
// (which cuts it into MULTIAPPEND batches, or pipelined APPENDs) and settles
// each message. The appender keeps no body for a refused batch
// (imapappend.Config.NoResend): the batch's messages are fetched again from the
// source and appended one per call, so that only the one at fault is refused.
//
// h's hooks are called as the chunk's bodies go through (see chunkHooks).
func (w *worker) appendChunk(ctx context.Context, fr *folderRun, src *imapconn.Client, chunk []srcMessage, h chunkHooks) error {
	refused, err := w.appendOnce(ctx, fr, src, chunk, h)
	if err != nil {
		return err
	}
	if len(refused) > 0 {
		// Their bodies are fetched again one by one: the next chunk's FETCH,
		// sent ahead, would answer first.
		if err := w.dropAhead(); err != nil {
			return &sourceDropError{fmt.Errorf("source: %w", err)}
		}
	}
	for _, m := range refused {
		// One message: never a batch, so never ErrBatchRefused again.
		if _, err := w.appendOnce(ctx, fr, src, []srcMessage{m}, chunkHooks{}); err != nil {
			return err
		}
	}
	return nil
}

// appendOnce is appendChunk's single Append call: the chunk is sent (or was,
// as the carry: see sentChunk), then h.next sends the next chunk behind it,
// and then the chunk's answers are read. It returns the messages of refused
// batches, not settled.
func (w *worker) appendOnce(ctx context.Context, fr *folderRun, src *imapconn.Client, chunk []srcMessage, h chunkHooks) ([]srcMessage, error) {
	c := w.takeCarry(fr, chunk)
	if c == nil {
		if _, err := w.appender(ctx); err != nil {
			return nil, err
		}
		// A FETCH sent ahead was sent with the folder open: what was sent behind
		// it since (the next folder's metadata pass) does not change that.
		stream := w.takeAhead(src, chunk)
		if stream == nil {
			if err := w.openSource(fr, src); err != nil {
				return nil, err
			}
			last := h.soon != nil // see attemptOnce's hooks
			stream = w.fetchBodies(fr.j, fr.uidValidity, chunk, last, w.nextSlot(), w.abortAppend)
		}
		c = w.sendChunk(ctx, fr.j, fr.uidValidity, chunk, stream, h)
	}
	if c.err == nil && c.stream.err == nil && h.next != nil {
		h.next()
	}
	return w.finishChunk(ctx, fr, c)
}

// finishChunk reads the answers of a chunk sent and settles its messages. It
// returns the messages of refused batches, not settled.
func (w *worker) finishChunk(ctx context.Context, fr *folderRun, c *sentChunk) ([]srcMessage, error) {
	chunk, stream := c.chunk, c.stream
	results, aerr := c.wait(ctx)
	if aerr != nil || stream.err != nil {
		// Whatever failed, both connections are dropped: the destination
		// first (no byte more may reach an open literal), then the source,
		// cut before its FETCH is drained (see cutSource).
		w.abortAppend()
		// A command the server got whole may still be committed after the
		// connection's end: the next read of the folder waits for it. After
		// a panic, what was in flight is unknown.
		unconfirmed := aerr != nil && results == nil
		for _, r := range results {
			unconfirmed = unconfirmed || errors.Is(r.Err, imapappend.ErrUnconfirmed)
		}
		if unconfirmed {
			w.e.lostUnconfirmed(fr.j.m.Dest)
		}
		w.cutSource()
		serr := stream.close()
		w.dropSource()
		for i, r := range results {
			if r.Err == nil {
				_ = w.settle(fr, chunk[i], nil) // stored before the failure; nil in, nil out
			}
		}
		var p *panicError
		switch {
		case errors.As(aerr, &p):
			w.e.log.Error("append_panic", "folder", fr.j.m.Source, "panic", fmt.Sprint(p.value), "stack", string(p.stack))
			return nil, aerr
		case stream.err != nil:
			return nil, w.sourceFailure(fr, chunk, serr)
		}
		return nil, &appendDropError{fmt.Errorf("destination: %w", aerr)}
	}
	if err := stream.close(); err != nil {
		// The source sent every body but did not end its FETCH (a session
		// cut): what the destination confirmed is stored.
		for i, r := range results {
			if r.Err == nil {
				_ = w.settle(fr, chunk[i], nil) // nil in, nil out
			}
		}
		return nil, &sourceDropError{fmt.Errorf("source: %w", err)}
	}
	var refused []srcMessage
	for i, r := range results {
		m := chunk[i]
		if errors.Is(r.Err, imapappend.ErrBatchRefused) {
			refused = append(refused, m)
			continue
		}
		if r.Err != nil && isTooManyKeywords(r.Err) && hasKeywords(m.flags) {
			fr.mu.Lock()
			_, again := fr.noKeywords[m.uid]
			if !again {
				var refused *imapappend.RefusedError
				errors.As(r.Err, &refused)
				fr.noKeywords[m.uid] = strings.TrimSpace(string(refused.Status.Type) + " " + refused.Status.Text)
				fr.retryKeywords = true
			}
			fr.mu.Unlock()
			if !again {
				continue
			}
		}
		if err := w.settle(fr, m, r.Err); err != nil {
			return nil, err
		}
	}
	return refused, nil
}

// appendDropError: the destination connection failed during an Append call.
type appendDropError struct{ err error }

func (e *appendDropError) Error() string { return e.err.Error() }
func (e *appendDropError) Unwrap() error { return e.err }

// panicError is a panic recovered during an append. Its message says what
// happened without the stack, which is logged once where it is recovered: the
// error ends up in the customer's status.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string {
	return fmt.Sprintf("internal error in the copy engine (a panic during an append: %v)", e.value)
}

// sourceFailure decides what a failed body stream means for the folder.
func (w *worker) sourceFailure(fr *folderRun, batch []srcMessage, err error) error {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	var sm *sizeMismatchError
	var nb *noBodyError
	switch {
	case errors.As(err, &sm):
		if _, again := fr.sizeFix[sm.uid]; again {
			w.failLocked(fr, find(batch, sm.uid), "the source reports a different size at every read")
		}
		fr.sizeFix[sm.uid] = sm.actual
		fr.sizeNote[sm.uid] = fmt.Sprintf("copied as the source sent it, %d bytes, though its RFC822.SIZE says %d: the source's size is wrong", sm.actual, sm.want)
		return errRetryNow
	case errors.As(err, &nb):
		// Once may be an expunge under way: the next metadata pass will tell.
		// Twice, the message is there and cannot be read.
		if fr.suspect[nb.uid] {
			w.failLocked(fr, find(batch, nb.uid), "the source could not send the message: "+nb.Error())
		}
		fr.suspect[nb.uid] = true
		return errRetryNow
	}
	return &sourceDropError{fmt.Errorf("source: %w", err)}
}

// sourceDropError: the source connection failed during a chunk's FETCH.
type sourceDropError struct{ err error }

func (e *sourceDropError) Error() string { return e.err.Error() }
func (e *sourceDropError) Unwrap() error { return e.err }

func find(batch []srcMessage, uid uint32) srcMessage {
	for _, m := range batch {
		if m.uid == uid {
			return m
		}
	}
	return srcMessage{uid: uid}
}

// settle records the outcome of one appended message. It returns a
// permanent error when the destination turned out to be full.
func (w *worker) settle(fr *folderRun, m srcMessage, err error) error {
	e := w.e
	if err == nil {
		fr.mu.Lock()
		reason, stripped := fr.stripped[m.uid]
		sizeNote, resized := fr.sizeNote[m.uid]
		fr.appended++
		fr.counts.Copied++
		fr.counts.Bytes += m.size
		fr.progress++
		counts := fr.counts
		fr.mu.Unlock()
		if stripped {
			e.recordAltered(MessageIssue{Folder: fr.j.m.Source, UID: m.uid, Size: m.size, Reason: reason})
		}
		if resized {
			e.recordAltered(MessageIssue{Folder: fr.j.m.Source, UID: m.uid, Size: m.size, Reason: sizeNote})
		}
		e.quota.ok()
		e.tracker.update(fr.j.idx, func(f *FolderProgress) { f.Counts = counts })
		return nil
	}
	if wait, ok := imapconn.Throttled(err); ok {
		return &throttledError{side: SideDestination, wait: wait, err: err}
	}
	var reason string
	switch {
	case imapconn.IsOverQuota(err):
		if e.quota.refused(m.size) {
			// The account is full, not this message at fault: it is not
			// listed as failed, and the copy that resumes once there is
			// space appends it.
			return &Error{Kind: KindOverQuota, Side: SideDestination,
				Err: fmt.Errorf("the destination account is full (appending to %q): %w", fr.j.m.Dest, err)}
		}
		reason = "over quota: too large for the space left on the destination: " + err.Error()
	case imapconn.IsTooBig(err):
		reason = "too large for the destination: " + err.Error()
	default:
		reason = "refused by the destination: " + err.Error()
	}
	w.fail(fr, m, reason)
	return nil
}

func (w *worker) fail(fr *folderRun, m srcMessage, reason string) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	w.failLocked(fr, m, reason)
}

// failLocked is fail with fr.mu held.
func (w *worker) failLocked(fr *folderRun, m srcMessage, reason string) {
	if fr.failed[m.uid] {
		return
	}
	fr.failed[m.uid] = true
	fr.counts.Failed++
	fr.progress++
	counts := fr.counts
	w.e.recordFailure(MessageIssue{Folder: fr.j.m.Source, UID: m.uid, Size: m.size, Reason: reason})
	w.e.tracker.update(fr.j.idx, func(f *FolderProgress) { f.Counts = counts })
}

// commandError marks a server's refusal (NO/BAD on a working connection) as
// not worth a reconnect; anything else is a connection failure.
func commandError(op string, err error) error {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return &refusedError{fmt.Errorf("%s: %w", op, err)}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// state is the folder's State after an attempt that ended without error, and
// whether it may be recorded: every source message in scope was found on the
// destination or appended by that attempt. The destination's UIDNEXT and
// count are those of its metadata pass plus the messages appended since: if
// the server numbered them otherwise, or anything else changed the folder
// meanwhile, the next copy finds them off and runs the full pass.
func (fr *folderRun) state(e *engine) (Checkpoint, bool) {
	j := fr.j
	if e.cfg.DryRun || j.m.ArchiveOnly || !fr.srcKnown || !fr.dstKnown ||
		fr.counts.Failed > 0 || fr.counts.Skipped > 0 || len(fr.failed) > 0 || len(fr.skipped) > 0 {
		return Checkpoint{}, false
	}
	dst := fr.dstState
	dst.UIDNext += uint32(fr.appended)
	dst.Messages += uint32(fr.appended)
	return Checkpoint{
		Source: j.m.Source, Destination: j.m.Dest,
		Src: fr.srcState, Dst: dst,
		Total: fr.counts.Total, TotalBytes: fr.counts.TotalBytes,
	}, true
}
