package mailcopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"

	"imapcopy.dev/pkg/imapappend"
	"imapcopy.dev/pkg/imapconn"
)

// sentChunk is a chunk whose messages went to the destination (an
// imapappend.Send) and whose answers are read by finishChunk.
//
// A chunk's answers take a round trip to come back. The worker does not wait
// for them before it sends the next chunk: once a chunk is sent, the next one
// (of the folder, or the first chunk of the next folder, see sendNext and
// sendNextFolder) is sent behind it on the same connection, and only then are
// the first chunk's answers read. The next chunk is the worker's carry until
// its own appendOnce takes it (takeCarry); anything else drops it
// (dropCarry), which settles what its answers say.
type sentChunk struct {
	j        *job
	validity uint32 // the source folder's UIDVALIDITY the chunk was read under
	chunk    []srcMessage
	stream   *bodyStream
	pending  *imapappend.Pending // nil after a panic
	err      error               // Send's: the connection failed (or a panic)
	// pre is the metadata pass of the folder whose first chunk this is,
	// handed to its attempt (see sendNextFolder); nil when none.
	pre *prefetch
}

// wait returns the chunk's results (see imapappend.Pending.Wait).
func (c *sentChunk) wait(ctx context.Context) ([]imapappend.Result, error) {
	if c.pending == nil {
		return nil, c.err
	}
	results, err := c.pending.Wait(ctx)
	if err == nil {
		err = c.err
	}
	return results, err
}

// sendChunk sends chunk, read from stream, to j's destination folder, and
// returns once the source sent its last body, with the answers to come. The
// chunk's hooks are called on the way, as the bodies go through.
func (w *worker) sendChunk(ctx context.Context, j *job, validity uint32, chunk []srcMessage, stream *bodyStream, h chunkHooks) *sentChunk {
	stream.pace = bodyPace{min: w.e.cfg.MinBodyRate, grace: w.e.cfg.BodyRateGrace}
	if h.soon != nil {
		if i := leadIndex(chunk, prefetchLead); i > 0 {
			stream.soon, stream.soonAt = h.soon, i
		} else {
			h.soon() // a small chunk: right behind its FETCH
		}
	}
	stream.poll = w.pollFirstChunk
	w.cur = stream
	defer func() { w.cur = nil }()
	msgs := make([]imapappend.Message, len(chunk))
	for i, m := range chunk {
		var body io.Reader = stream.reader(i)
		if w.e.cfg.wrapBody != nil {
			body = w.e.cfg.wrapBody(m.uid, body)
		}
		if w.e.cfg.Fence != nil {
			body = &fencedBody{r: body, fence: w.e.fence}
		}
		msgs[i] = imapappend.Message{Flags: m.flags, InternalDate: m.date, Size: m.size, Body: body}
	}
	c := &sentChunk{j: j, validity: validity, chunk: chunk, stream: stream}
	c.pending, c.err = sendRecovered(ctx, w.app, j.m.Dest, msgs, h.sent)
	if c.err == nil && stream.err == nil {
		// Every body was read: the FETCH's end is right behind the last one.
		// Read now, before anything else is read on the source (its failure
		// is seen again by finishChunk).
		_ = stream.close()
	}
	return c
}

// sendRecovered runs one Send and turns a panic in it (in pkg/imapappend, or
// in a body reader it drives) into a *panicError, so that finishChunk drops
// both connections as for any failure: the destination cut first, then the
// source cut before its FETCH is drained — reading the rest fails fast on the
// closed connection and releases go-imap's reader, which waits for the
// pending literal. Left to the worker's own recover, the panic would close
// the source with the literal pending, and go-imap's Close waits for its
// reader forever. The folder is then retried like after a dropped connection
// (at most MaxRetries times in a row without progress).
func sendRecovered(ctx context.Context, app *imapappend.Appender, mailbox string, msgs []imapappend.Message, sent func()) (p *imapappend.Pending, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, &panicError{value: r, stack: debug.Stack()}
		}
	}()
	return app.Send(ctx, mailbox, msgs, sent)
}

// sendNext sends the folder's next chunk behind the one whose answers are
// awaited, when its bodies are on their way already (fetched ahead) or can be
// asked for at once (the source has the folder open, nothing queued behind).
func (w *worker) sendNext(ctx context.Context, fr *folderRun, src *imapconn.Client, chunk []srcMessage, h chunkHooks) {
	if w.carry != nil || w.app == nil || !w.app.Usable() || src != w.src || ctx.Err() != nil {
		return
	}
	stream := w.takeAhead(src, chunk)
	if stream == nil {
		if w.pre != nil || w.srcOpen != fr.j.m.Source || w.srcValidity != fr.uidValidity {
			return
		}
		stream = w.fetchBodies(fr.j, fr.uidValidity, chunk, h.soon != nil, w.nextSlot(), w.abortAppend)
	}
	w.carry = w.sendChunk(ctx, fr.j, fr.uidValidity, chunk, stream, h)
}

// sendNextFolder sends the first chunk of the worker's next folder behind the
// last chunk of this one, when its bodies were asked for already (see
// prefetchFirstChunk: a new or empty destination folder, whose chunk is known
// from the source alone). The next folder becomes the worker's upcoming one, with its
// metadata pass in the carry; the folder after it may then be taken and
// prefetched while this chunk goes through, when it is that folder's only
// chunk.
func (w *worker) sendNextFolder(ctx context.Context) {
	pre := w.pre
	if w.carry != nil || w.upcoming != nil || pre == nil || !pre.done || pre.bodies == nil ||
		pre.j != w.next || pre.src != w.src || w.app == nil || !w.app.Usable() || ctx.Err() != nil {
		return
	}
	j := w.next
	stream, chunk := pre.bodies, pre.chunk
	pre.bodies, pre.chunk = nil, nil
	stream.abort = w.abortAppend
	// The folder after it, if taken already (the prefix of this chunk's
	// FETCH), is now the next one.
	w.next, w.next2, w.pre, w.upcoming = w.next2, nil, nil, j
	h := chunkHooks{}
	if pre.whole {
		h = chunkHooks{soon: w.prefetchSoon, sent: w.prefetchNext}
	}
	c := w.sendChunk(ctx, j, pre.sel.UIDValidity, chunk, stream, h)
	c.pre = pre
	w.carry = c
}

// takeCarry returns the carry when it is chunk of fr's folder, as this
// attempt's metadata pass found it; else nil, and the carry stays.
func (w *worker) takeCarry(fr *folderRun, chunk []srcMessage) *sentChunk {
	c := w.carry
	if c == nil || c.j != fr.j || c.validity != fr.uidValidity || !sameMessages(c.chunk, chunk) {
		return nil
	}
	w.carry = nil
	return c
}

// settleCarry settles a carry that no appendOnce takes: the attempt failed,
// or the next folder's attempt found other messages to append first. Its
// answers are awaited on a usable connection (see dropCarry for the rest).
func (w *worker) settleCarry(ctx context.Context) {
	c := w.carry
	if c == nil {
		return
	}
	if c.err != nil || c.stream.err != nil || w.app == nil || !w.app.Usable() {
		w.dropCarry()
		return
	}
	w.carry = nil
	results, err := c.wait(ctx)
	w.recordCarry(c, results, err)
}

// dropCarry is settleCarry on a connection being dropped: the destination is
// cut first, and what its answers said until then is recorded.
func (w *worker) dropCarry() {
	c := w.carry
	if c == nil {
		return
	}
	w.carry = nil
	w.abortAppend()
	if !c.stream.closed {
		w.cutSource() // see cutSource: its FETCH was left mid-stream
		_ = c.stream.close()
	}
	var results []imapappend.Result
	err := c.err
	if c.pending != nil {
		results, err = c.pending.Abandon()
	}
	w.recordCarry(c, results, err)
}

// recordCarry records what the answers to a carry no appendOnce took say,
// for its folder's next metadata pass: its messages stored (counted as copied,
// not as present before), and whether some were left unconfirmed (the folder
// is then read only after CommitSettle). The folder is no longer known empty.
func (w *worker) recordCarry(c *sentChunk, results []imapappend.Result, err error) {
	c.pre = nil // the upcoming folder's attempt runs its own metadata pass
	unconfirmed := err != nil && results == nil
	stored := 0
	for _, r := range results {
		switch {
		case r.Err == nil:
			stored++
		case errors.Is(r.Err, imapappend.ErrUnconfirmed):
			unconfirmed = true
		}
	}
	if unconfirmed {
		w.e.lostUnconfirmed(c.j.m.Dest)
	}
	if stored > 0 || unconfirmed {
		c.j.dstEmpty = false
		c.j.carried += stored
	}
	if err != nil {
		w.e.log.Info("chunk_sent_ahead_dropped", "dest", c.j.m.Dest, "messages", len(c.chunk), "stored", stored, "error", err)
	}
}

// errMismatchedCarry is the error of an attempt whose folder had its first
// chunk sent ahead (sendNextFolder) and whose metadata pass found another:
// the folder is tried again, reading the destination.
var errMismatchedCarry = fmt.Errorf("%w: the chunk sent ahead is not the first one to append", errRetryNow)
