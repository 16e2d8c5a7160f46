package mailcopy

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// splitMinRanges is how many chunks a folder's body pass needs before its
// chunks are offered to idle workers as ranges (see "Splitting a large folder"
// in doc.go). Fewer, and the folder is appended by its own worker alone.
const splitMinRanges = 2

// board hands work to the copy's workers: the folder jobs, biggest first, and
// the ranges of the folders being split. A worker takes a waiting range before
// a new folder: the folders already started end sooner, and no more folders'
// metadata is held at once.
type board struct {
	mu     sync.Mutex
	cond   *sync.Cond
	order  []*job
	next   int      // the next folder of order to start
	owners int      // folders being copied
	splits []*split // folders whose ranges are offered
	// waiting: workers waiting in take for work. A folder is not taken early
	// (takeJob) while one waits: it would take it now.
	waiting int
}

func newBoard(order []*job) *board {
	b := &board{order: order}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// split is the body pass of one folder cut into ranges: contiguous runs of its
// missing messages in UID order (its chunks), each appended by one worker on
// its own source and destination connections.
type split struct {
	fr      *folderRun
	ranges  [][]srcMessage
	next    int   // the next range to hand out
	running int   // ranges being appended
	err     error // the first failure (a permanent one wins); no range starts after it
}

// task is what a worker takes from the board: a folder, a range of a split
// folder, or nothing (the copy's work is done, or ctx ended).
type task struct {
	job   *job
	split *split
	idx   int
}

// wake wakes every waiting worker (ctx ended).
func (b *board) wake() {
	b.mu.Lock()
	b.cond.Broadcast()
	b.mu.Unlock()
}

// take returns the next work for an idle worker, waiting while folders being
// copied may still offer ranges.
func (b *board) take(ctx context.Context) task {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ctx.Err() == nil {
		for _, s := range b.splits {
			if i, ok := s.takeLocked(); ok {
				return task{split: s, idx: i}
			}
		}
		if b.next < len(b.order) {
			j := b.order[b.next]
			b.next++
			b.owners++
			return task{job: j}
		}
		if b.owners == 0 {
			return task{}
		}
		b.waiting++
		b.cond.Wait()
		b.waiting--
	}
	return task{}
}

// takeFirst is a worker's first folder, taken before the workers start, so
// that no worker takes a second folder early (see takeJob) while another has
// none yet; nil when there are fewer folders than workers.
func (b *board) takeFirst() *job {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next >= len(b.order) {
		return nil
	}
	j := b.order[b.next]
	b.next++
	b.owners++
	return j
}

// giveBack puts a folder taken with take back, to be taken next, by a worker that
// leaves (see engine.shrink).
func (b *board) giveBack(j *job) {
	b.mu.Lock()
	b.owners--
	b.next--
	b.order = slices.Insert(slices.Delete(b.order, slices.Index(b.order, j), slices.Index(b.order, j)+1), b.next, j)
	b.cond.Broadcast()
	b.mu.Unlock()
}

// folderDone records that a folder's worker is done with it.
func (b *board) folderDone() {
	b.mu.Lock()
	b.owners--
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (s *split) takeLocked() (int, bool) {
	if s.err != nil || s.next >= len(s.ranges) {
		return 0, false
	}
	i := s.next
	s.next++
	s.running++
	return i, true
}

// takeJob takes the next folder for a worker that is about to finish one
// (see worker.prefetchSoon); nil when none is left, ranges are offered (an
// idle worker takes those first), or a worker waits for work (it takes the
// folder now). With early, for a worker that starts its folder's last chunk
// (see worker.fetchBodies), only while more folders are left than there are
// workers, or the folder is small (prefetchLead or less): near the end of the
// copy, a big folder taken a whole chunk early could leave another worker idle
// while it waits, and a small one taken early spares the round trips of its
// start (its metadata pass and bodies go behind the previous folder's).
func (b *board) takeJob(early bool, workers int) *job {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.splits) > 0 || b.next >= len(b.order) || b.waiting > 0 {
		return nil
	}
	if j := b.order[b.next]; early && len(b.order)-b.next <= workers && !(j.sized && j.weight <= prefetchLead) {
		return nil
	}
	j := b.order[b.next]
	b.next++
	b.owners++
	return j
}

func (b *board) post(s *split) {
	b.mu.Lock()
	b.splits = append(b.splits, s)
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *board) takeFrom(s *split) (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return s.takeLocked()
}

// finish records the end of one of s's ranges.
func (b *board) finish(s *split, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s.running--
	if err != nil && (s.err == nil || IsPermanent(err) && !IsPermanent(s.err)) {
		s.err = err
	}
	b.cond.Broadcast()
}

// await waits until no range of s is being appended, withdraws s from the
// board and returns its first failure. Every range ends (a cancelled ctx ends
// its appends), so the wait does not watch ctx.
func (b *board) await(s *split) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s.running > 0 {
		b.cond.Wait()
	}
	for i, x := range b.splits {
		if x == s {
			b.splits = append(b.splits[:i], b.splits[i+1:]...)
			break
		}
	}
	return s.err
}

// appendRanges is the body pass of a folder with many missing messages: its
// chunks are offered on the board as ranges, and this worker appends them
// too, in order, until none is left; then it waits for the ranges other
// workers took. After a failure no range starts; the ranges under way end, and
// the attempt returns the failure: the folder's next attempt diffs the whole
// folder again (after CommitSettle when appends were left unanswered) and
// appends only what the destination still lacks.
func (w *worker) appendRanges(ctx context.Context, fr *folderRun, ranges [][]srcMessage) error {
	b := w.e.board
	s := &split{fr: fr, ranges: ranges}
	b.post(s)
	for {
		i, ok := b.takeFrom(s)
		if !ok {
			break
		}
		w.runRange(ctx, s, i)
	}
	return b.await(s)
}

// runRange appends range i of s and records its end, whatever happens (a panic
// too: the folder's worker waits for it). A failed range drops this worker's
// connections, as a failed attempt does.
func (w *worker) runRange(ctx context.Context, s *split, i int) {
	var err error
	defer func() {
		if r := recover(); r != nil {
			w.e.board.finish(s, fmt.Errorf("internal error in the copy engine (a panic in a range: %v)", r))
			panic(r)
		}
		w.e.board.finish(s, err)
	}()
	err = w.appendRange(ctx, s.fr, s.ranges[i])
	if err != nil {
		w.dropSource()
		w.dropDest()
	}
}

// appendRange appends one range of a folder on this worker's connections,
// opening the source folder (EXAMINE) first unless it is open already. Its
// UIDVALIDITY must be the metadata pass's: other UIDs would be other messages.
func (w *worker) appendRange(ctx context.Context, fr *folderRun, msgs []srcMessage) error {
	src, err := w.source(ctx)
	if err != nil {
		return err
	}
	if err := w.openSource(fr, src); err != nil {
		return err
	}
	return w.appendChunk(ctx, fr, src, msgs, chunkHooks{})
}
