package mailcopy

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"imapcopy.dev/pkg/imapconn"
)

// bodyOptions is the body pass: BODY.PEEK[] never sets \Seen on the source.
var bodyOptions = &imap.FetchOptions{
	UID:         true,
	BodySection: []*imap.FetchItemBodySection{{Peek: true}},
}

// errShortBody: go-imap ended a literal early without an error.
var errShortBody = errors.New("the source connection ended in the middle of a message")

// sizeMismatchError: the literal the source sends is not as long as the
// RFC822.SIZE of its metadata, so the size announced to the destination is
// wrong. The copy fixes the size and tries again.
type sizeMismatchError struct {
	uid          uint32
	want, actual int64
}

func (e *sizeMismatchError) Error() string {
	return fmt.Sprintf("source message UID %d: RFC822.SIZE says %d bytes, the body has %d", e.uid, e.want, e.actual)
}

// noBodyError: the source did not send a message's body: the message
// vanished (expunged meanwhile), the body was NIL, or the FETCH was refused.
type noBodyError struct {
	uid uint32
	err error // nil: no reason given
}

func (e *noBodyError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("the source did not send the body of UID %d", e.uid)
	}
	return fmt.Sprintf("the source did not send the body of UID %d: %v", e.uid, e.err)
}

func (e *noBodyError) Unwrap() error { return e.err }

// slowBodyError: the source sent a body slower than Config.MinBodyRate (see
// bodyPace). Like a stall, it ends the attempt on that connection and is
// temporary: the folder is retried, and the copy ends with a temporary failure
// once the retries run out, for a slow link may recover.
type slowBodyError struct {
	uid       uint32
	got, want int64
	waited    time.Duration // waiting for the source, not wall time
	min       int64         // bytes per second
}

func (e *slowBodyError) Error() string {
	rate := int64(float64(e.got) / max(e.waited.Seconds(), 1e-3))
	return fmt.Sprintf("source message UID %d: %s of %s bytes in %v (%s/s), under the minimum of %s/s",
		e.uid, num(int(e.got)), num(int(e.want)), e.waited.Round(time.Millisecond), ByteSize(rate), ByteSize(e.min))
}

// bodyPace is the minimum rate of a body literal (Config.MinBodyRate and
// BodyRateGrace). The idle deadline of pkg/imapconn slides with every byte, so
// it ends a body that stops, not one that trickles: one byte per idle period
// would hold the connection, the folder and the task for as long as the
// announced literal lasts (years, for 2 GB).
//
// The clock runs only inside the literal's Reads: the time the copy waits for
// the source's bytes, once the source has begun the body. Not before the
// literal (the source reads the message, or thinks about the FETCH, under the
// idle deadline alone), not between bodies, and not while the appender writes
// to the destination or waits for its answers (a destination may take 90 s to
// answer an APPEND, or stop reading while it commits: that is no fault of the
// source, whose bytes meanwhile wait in the socket and are then read at once).
//
// The rule: a body of which n bytes have arrived may have waited at most
// grace + n/min. A body that arrives in full at min or faster never fails;
// one of size S waits at most grace + S/min (plus one Read, which the idle
// deadline bounds: the check runs when a Read returns). A source that sends
// part of a body quickly and then trickles gets no more than one that sends
// all of it at min: the time it holds is paid for in bytes either way, so a
// window of its own (every W, at least min*W) would bound nothing more. A
// trickle of one byte per idle period fails at the first Read after grace.
type bodyPace struct {
	min   int64 // bytes per second; 0: no minimum
	grace time.Duration
}

// allows reports whether n bytes in waited of waiting keep to the pace.
func (p bodyPace) allows(n int64, waited time.Duration) bool {
	if p.min <= 0 || waited <= p.grace {
		return true
	}
	// In seconds as floats: n/min in nanoseconds could overflow a Duration.
	return (waited - p.grace).Seconds() <= float64(n)/float64(p.min)
}

// bodyStream feeds the bodies of one UID FETCH to the destination, as one
// lazy reader per message, without holding any message in memory: a reader
// pulls its message's literal from the FETCH response when the appender
// first reads it, so the readers must be read in order, each to its end —
// which is how an APPEND or MULTIAPPEND sends them.
//
// Every reader counts its bytes against the size announced to the
// destination: go-imap hands out a short literal with a nil error when the
// source connection drops mid-message. On any source-side failure, abort
// closes the destination connection before the reader returns its error, so
// that nothing the appender writes afterwards can complete the open literal
// and store a truncated message (docs/design.md, library hazards).
type bodyStream struct {
	cmd   *imapclient.FetchCommand
	msgs  []srcMessage
	abort func()
	pace  bodyPace // set by the append that reads it
	// soon, unless nil, is called once, as message soonAt is opened (see
	// chunkHooks and leadIndex).
	soon   func()
	soonAt int
	// poll, unless nil, is called as each message is opened.
	poll func()

	// prefix is the next folder's metadata pass, sent before this FETCH and
	// answered before it (see worker.fetchBodies); reselect is the EXAMINE
	// that opened this FETCH's folder again behind it, or behind another
	// folder's commands, and validity the UIDVALIDITY the FETCH's UIDs
	// belong to. Both are read before the first body: the prefix is handed
	// to adopt, and a reselect that found another UIDVALIDITY fails the
	// stream.
	prefix   *prefetch
	reselect *imapclient.SelectCommand
	validity uint32
	adopt    func(*prefetch)

	next int   // index of the next message to open
	err  error // first source-side failure, sticky
	// closed: close ran; closeErr is what it returned (close is idempotent).
	closed   bool
	closeErr error
	// dead: a literal read failed, the connection is gone. The FETCH must
	// not be drained then: go-imap would read the failed literal again while
	// its reader goroutine, released by the failure, uses the same buffer (a
	// data race). Closing the client is enough: its reader exits by itself.
	dead bool
}

func openBodies(c *imapclient.Client, msgs []srcMessage, abort func()) *bodyStream {
	var uids imap.UIDSet
	for _, m := range msgs {
		uids.AddNum(imap.UID(m.uid))
	}
	return &bodyStream{cmd: c.Fetch(uids, bodyOptions), msgs: msgs, abort: abort}
}

// leadIndex is the first message of msgs from which at most lead bytes are
// left, the last one if it alone weighs more.
func leadIndex(msgs []srcMessage, lead int64) int {
	left := int64(0)
	for i := len(msgs) - 1; i >= 0; i-- {
		left += msgs[i].size
		if left > lead {
			return min(i+1, len(msgs)-1)
		}
	}
	return 0
}

// reader returns the body of message i of the stream.
func (s *bodyStream) reader(i int) io.Reader { return &bodyReader{s: s, i: i} }

// close consumes what is left of the FETCH (unless the connection is dead)
// and returns the first source-side failure, if any.
func (s *bodyStream) close() error {
	if !s.closed {
		s.closed = true
		s.closeErr = s.doClose()
	}
	if s.err != nil {
		return s.err
	}
	return s.closeErr
}

// begin reads what was sent before the FETCH and is answered before it: the
// prefix, then the reselect.
func (s *bodyStream) begin() error {
	if p := s.prefix; p != nil {
		s.prefix = nil
		p.sel, p.msgs, p.err, p.ferr = awaitMetadata(p.examine, p.fetch, p.keyed)
		p.done = true
		if s.adopt != nil {
			s.adopt(p)
		}
	}
	if c := s.reselect; c != nil {
		s.reselect = nil
		sel, err := c.Wait()
		if err != nil {
			return fmt.Errorf("examine the folder again: %w", err)
		}
		if sel.UIDValidity != s.validity {
			return fmt.Errorf("the folder's UIDVALIDITY changed from %d to %d during the copy", s.validity, sel.UIDValidity)
		}
	}
	return nil
}

func (s *bodyStream) doClose() error {
	if s.dead {
		return s.err
	}
	if p := s.prefix; p != nil {
		s.prefix = nil
		p.drain() // answered first: read and dropped (its folder runs its own)
	}
	if c := s.reselect; c != nil {
		s.reselect = nil
		_, _ = c.Wait()
	}
	cerr := s.cmd.Close()
	if s.err != nil {
		return s.err
	}
	if cerr != nil {
		return fmt.Errorf("fetch bodies: %w", cerr)
	}
	return nil
}

func (s *bodyStream) fail(err error) error {
	if s.err == nil {
		s.err = err
		if s.abort != nil {
			s.abort()
		}
	}
	return s.err
}

type bodyReader struct {
	s      *bodyStream
	i      int
	lit    io.Reader
	n      int64
	waited time.Duration // inside lit's Reads: waiting for the source (see bodyPace)
}

func (r *bodyReader) Read(p []byte) (int, error) {
	s := r.s
	if s.err != nil {
		return 0, s.err
	}
	if r.lit == nil {
		lit, err := s.open(r.i)
		if err != nil {
			return 0, s.fail(err)
		}
		r.lit = lit
	}
	want := s.msgs[r.i].size
	if r.n >= want {
		return 0, io.EOF
	}
	if int64(len(p)) > want-r.n {
		p = p[:want-r.n]
	}
	start := time.Now()
	n, err := r.lit.Read(p)
	r.waited += time.Since(start)
	r.n += int64(n)
	if r.n < want && err != nil {
		s.dead = true
		if err == io.EOF {
			err = errShortBody
		}
		return n, s.fail(fmt.Errorf("source message UID %d after %d of %d bytes: %w", s.msgs[r.i].uid, r.n, want, err))
	}
	if r.n < want && !s.pace.allows(r.n, r.waited) {
		// The literal is left unread, not failed (s.dead stays false): once
		// the connection is cut, the FETCH is drained, which then fails at
		// once (see appendOnce), as after a fence or an append's panic.
		return n, s.fail(&slowBodyError{uid: s.msgs[r.i].uid, got: r.n, want: want, waited: r.waited, min: s.pace.min})
	}
	return n, nil
}

// open advances the FETCH to message i and returns its literal.
func (s *bodyStream) open(i int) (io.Reader, error) {
	m := s.msgs[i]
	if i != s.next {
		return nil, fmt.Errorf("body of UID %d read out of order", m.uid)
	}
	s.next++
	if err := s.begin(); err != nil {
		return nil, err
	}
	if s.soon != nil && i >= s.soonAt {
		soon := s.soon
		s.soon = nil
		soon()
	}
	if s.poll != nil {
		s.poll()
	}
	data := s.cmd.Next()
	if data == nil {
		err := s.cmd.Close()
		var imapErr *imap.Error
		// A throttling refusal is not this message's fault: the folder waits
		// (see asThrottled), and the message is not suspected of being gone.
		_, throttled := imapconn.Throttled(err)
		if err == nil || errors.As(err, &imapErr) && !throttled {
			return nil, &noBodyError{uid: m.uid, err: err}
		}
		return nil, fmt.Errorf("fetch body of UID %d: %w", m.uid, err)
	}
	for {
		item := data.Next()
		if item == nil {
			return nil, &noBodyError{uid: m.uid}
		}
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			if uint32(item.UID) != m.uid {
				return nil, &noBodyError{uid: m.uid}
			}
		case imapclient.FetchItemDataBodySection:
			if item.Literal == nil {
				return nil, &noBodyError{uid: m.uid, err: errors.New("NIL body")}
			}
			if size := item.Literal.Size(); size != m.size {
				return nil, &sizeMismatchError{uid: m.uid, want: m.size, actual: size}
			}
			return item.Literal, nil
		}
	}
}
