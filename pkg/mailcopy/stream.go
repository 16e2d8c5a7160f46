package mailcopy

import (
	"errors"
	"fmt"
	"io"

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

func (s *bodyStream) doClose() error {
	if s.dead {
		return s.err
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
	s   *bodyStream
	i   int
	lit io.Reader
	n   int64
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
	n, err := r.lit.Read(p)
	r.n += int64(n)
	if r.n < want && err != nil {
		s.dead = true
		if err == io.EOF {
			err = errShortBody
		}
		return n, s.fail(fmt.Errorf("source message UID %d after %d of %d bytes: %w", s.msgs[r.i].uid, r.n, want, err))
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
