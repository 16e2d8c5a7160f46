// Package imapappend owns the destination's write path: a small IMAP client of its own that
// logs in (through pkg/imapconn) and appends messages as fast as the server can absorb
// them. go-imap has no MULTIAPPEND and waits for a continuation on every literal over 4 KB;
// the destination's cost per APPEND transaction (a disk sync, an index update) is what
// decides a copy's speed, so this package batches.
//
// # How messages are sent
//
// When the server offers MULTIAPPEND (RFC 3502), consecutive small messages go in one APPEND
// command each batch (Batching: by default at most 50 messages, 8 MiB, and only messages up
// to 1 MiB). Every other message goes in an APPEND of its own. With LITERAL+ (RFC 7888)
// literals are non-synchronising: nothing waits for the server, commands are pipelined (at
// most 64 in flight, and at most two batches' bytes when their bodies are kept, see
// Refusals). Without LITERAL+ each literal waits for the server's "+" (except literals up
// to 4 KB with LITERAL-).
//
// Append waits for the server's answers before it returns. Send, with Config.NoResend,
// returns as soon as its messages are sent, and its Pending's Wait collects the answers:
// a caller sends its next messages (the next chunk, the next folder's) without the round
// trip the answers take on a distant server.
//
// # Refusals
//
// A MULTIAPPEND is all-or-nothing. When the server refuses a batch (over quota, a message
// too big or malformed...), the batch's messages must be sent again one APPEND each, so that
// only the message(s) at fault are refused and the rest is stored. Refusals that concern the
// mailbox and not a message (TRYCREATE, NONEXISTENT, NOPERM), and throttling refusals
// (imapconn.Throttled), are not retried one by one.
//
// By default Append resends them itself: the bodies of a batch are kept in memory until the
// server answers, at most two batches' bytes per connection (2 × Batching.Bytes, 16 MiB by
// default). With Config.NoResend nothing is kept: the messages of a refused batch come back
// with ErrBatchRefused, and the caller, who can read them again from their source, appends
// each of them alone. A message sent alone is streamed and never held in memory: a refusal
// of it needs no resending.
//
// # Memory
//
// With Config.NoResend, an Appender holds no message body: its memory is a 64 KiB write
// buffer, the TLS and response buffers of its connection, and a 32 KiB copy buffer while a
// body streams, whatever the Batching limits and the messages' sizes. Without it, add the
// kept bodies above.
//
// # Failures
//
// Each Body must yield exactly Size bytes (no more is read: Size is the contract). If it
// yields fewer (a source connection that dropped mid-message returns a short body with no
// error) or fails, the connection is closed at once, in the middle of the literal: the
// server never sees the end of the command, so nothing of it is stored, never a truncated
// message. Append then returns a *BodyError. Bodies are read in order, each once. A body
// that is not sent (over the server's APPENDLIMIT, or refused before its literal) is read
// and dropped, so that a caller streaming bodies from one source FETCH sees each of them
// consumed.
//
// Append's error is non-nil only when the connection is unusable (closed on a body failure,
// broken, BAD, ctx ended). Then results tell what is known: messages with ErrNotSent were
// certainly not stored; those with ErrUnconfirmed may or may not have been: reconnect and
// check the destination before sending them again.
//
// Tags carry a random per-connection prefix, so that a response to a body line the server
// mistook for a command (possible only if it rejected an APPEND while parsing it, which
// the flag cleaning is there to prevent) is noticed as an unknown tag, and the connection
// dropped.
package imapappend

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/internal/imapwire"
)

// Defaults for Batching. A caller that fetches bodies for Append should hand it about this
// much at a time (up to 50 messages or 8 MiB), so that a batch's messages come from one
// source FETCH; Append splits longer lists itself.
const (
	DefaultBatchMessages     = 50
	DefaultBatchBytes        = 8 << 20
	DefaultMaxBatchedMessage = 1 << 20
)

const maxInFlight = 64 // commands in flight at once

// Batching says how messages are grouped into MULTIAPPEND commands.
type Batching struct {
	Messages int   // at most this many messages per command; default DefaultBatchMessages
	Bytes    int64 // at most this many bytes per command; default DefaultBatchBytes
	Message  int64 // a bigger message is appended alone, streamed; default DefaultMaxBatchedMessage
}

// Config changes how an Appender works; the zero value is the default.
type Config struct {
	// Batching sets the batch limits; zero fields keep their defaults.
	Batching Batching
	// NoMultiappend sends one APPEND per message even when the server offers MULTIAPPEND.
	NoMultiappend bool
	// NoResend keeps no body in memory for a refused batch's retry: the messages of a
	// batch the server refused come back with ErrBatchRefused, for the caller to append
	// again one per call, from their source (a one-message Append never makes a batch).
	NoResend bool
	// NoLiteralPlus waits for the server's "+" before every literal even when the server
	// offers LITERAL+.
	NoLiteralPlus bool
}

// Message is one message to append.
type Message struct {
	Flags        []string  // cleaned before sending (see CleanFlags)
	InternalDate time.Time // zero: the server's time of arrival
	Size         int64     // exact size of Body
	Body         io.Reader // read once, in order; exactly Size bytes must come out
}

// Result is what became of one message.
type Result struct {
	UID         uint32 // from APPENDUID (UIDPLUS servers), else 0
	UIDValidity uint32 // from APPENDUID, else 0
	Err         error  // nil: stored
}

var (
	// ErrNotSent marks a message that was certainly not stored: the connection failed
	// before the server could complete its command.
	ErrNotSent = errors.New("not appended: the connection failed before the message was sent")
	// ErrUnconfirmed marks a message whose command was sent but not answered before the
	// connection failed: it may be stored. Check the destination before sending it again.
	ErrUnconfirmed = errors.New("the connection failed before the server confirmed this message")
	// ErrBatchRefused marks a message that was not stored because the server refused the
	// whole MULTIAPPEND it was part of, with Config.NoResend: append it again alone, to learn
	// whether it is the one at fault.
	ErrBatchRefused = errors.New("not appended: the server refused the batch it was part of; append it alone")
)

// BodyError is returned by Append when a message's Body failed: a short body (fewer than
// Size bytes, Err is io.ErrUnexpectedEOF) or a read error. The destination connection was
// closed in the middle of the command, so nothing of that command was stored.
type BodyError struct {
	Index int // index in Append's msgs
	Err   error
}

func (e *BodyError) Error() string {
	return fmt.Sprintf("read the body of message %d: %v (the append was abandoned, nothing of it stored)", e.Index, e.Err)
}

func (e *BodyError) Unwrap() error { return e.Err }

// RefusedError is a server's refusal of a message. It unwraps to the *imap.Error, so
// imapconn.IsOverQuota, imapconn.IsTooBig and imapwire.ResponseCode see its code.
type RefusedError struct {
	Mailbox string
	Status  *imap.Error
}

func (e *RefusedError) Error() string {
	s := fmt.Sprintf("the server refused the message in %q", e.Mailbox)
	if e.Status.Code != "" {
		s += " (" + string(e.Status.Code) + ")"
	}
	if e.Status.Text != "" {
		s += ": " + e.Status.Text
	}
	return s
}

func (e *RefusedError) Unwrap() error { return e.Status }

// Appender is a logged-in connection to the destination. Its methods must not be called
// concurrently, except Close.
type Appender struct {
	sess *imapconn.Session
	bw   *bufio.Writer
	buf  []byte // copies bodies into bw: one buffer per connection, not one per message
	cfg  Config
	log  *slog.Logger
	addr string
	idle time.Duration
	caps imap.CapSet

	multi, literalPlus bool
	literalMinus       bool  // non-synchronising literals up to 4096 bytes (RFC 7888)
	appendLimit        int64 // APPENDLIMIT=n (RFC 7889); 0: none announced

	tagPrefix string
	tagN      int

	mu       sync.Mutex
	pending  map[string]chan *imapwire.Response
	wantCont bool
	bye      *imapwire.Response

	cont     chan struct{}
	readDone chan struct{}
	readErr  error // set before readDone is closed

	broken error // the connection is unusable: why

	// inFlight are the commands sent and not answered yet, oldest first, of
	// every Send whose answers are still awaited (see Pending).
	inFlight []*command
}

// Dial connects and logs in to the destination (see imapconn.DialSession). The connection
// is closed when ctx ends.
func Dial(ctx context.Context, acct imapconn.Account, opts imapconn.Options, cfg Config) (*Appender, error) {
	b := &cfg.Batching
	if b.Messages <= 0 {
		b.Messages = DefaultBatchMessages
	}
	if b.Bytes <= 0 {
		b.Bytes = DefaultBatchBytes
	}
	if b.Message <= 0 {
		b.Message = DefaultMaxBatchedMessage
	}
	b.Message = min(b.Message, b.Bytes)
	sess, err := imapconn.DialSession(ctx, acct, opts)
	if err != nil {
		return nil, err
	}
	var prefix [4]byte
	rand.Read(prefix[:])
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = 5 * time.Minute
	}
	a := &Appender{
		sess:        sess,
		bw:          bufio.NewWriterSize(sess.Conn, 64<<10),
		buf:         make([]byte, 32<<10),
		cfg:         cfg,
		log:         log,
		addr:        acct.Addr(),
		idle:        idle,
		caps:        sess.Caps,
		multi:       sess.Caps.Has(imap.CapMultiAppend) && !cfg.NoMultiappend,
		literalPlus: sess.Caps.Has(imap.CapLiteralPlus) && !cfg.NoLiteralPlus,
		literalMinus: (sess.Caps.Has(imap.CapLiteralMinus) || sess.Caps.Has(imap.CapIMAP4rev2)) &&
			!cfg.NoLiteralPlus,
		appendLimit: appendLimit(sess.Caps),
		tagPrefix:   "W" + hex.EncodeToString(prefix[:]) + ".",
		pending:     make(map[string]chan *imapwire.Response),
		cont:        make(chan struct{}, 1),
		readDone:    make(chan struct{}),
	}
	go a.read()
	return a, nil
}

// AppendLimit is the largest message the server accepts (its APPENDLIMIT), or 0 when it
// announced none. Append refuses bigger messages without sending them; a caller can skip
// fetching them.
func (a *Appender) AppendLimit() int64 { return a.appendLimit }

func appendLimit(caps imap.CapSet) int64 {
	for c := range caps {
		if v, ok := strings.CutPrefix(string(c), "APPENDLIMIT="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// Caps returns the capabilities the server announced after login.
func (a *Appender) Caps() map[string]bool {
	caps := make(map[string]bool, len(a.caps))
	for c := range a.caps {
		caps[string(c)] = true
	}
	return caps
}

// Usable reports whether the connection can still be used. After an Append that returned
// an error it cannot.
func (a *Appender) Usable() bool {
	if a.broken != nil {
		return false
	}
	select {
	case <-a.readDone:
		return false
	default:
		return true
	}
}

// Close closes the connection at once.
func (a *Appender) Close() error {
	err := a.sess.Close()
	<-a.readDone
	return err
}

// BytesRead is the number of bytes read from the network so far.
func (a *Appender) BytesRead() int64 { return a.sess.BytesRead() }

// BytesWritten is the number of bytes written to the network so far.
func (a *Appender) BytesWritten() int64 { return a.sess.BytesWritten() }

// read dispatches the server's responses: tagged ones to their command, continuation
// requests to the command that waits for one; untagged data is skipped.
func (a *Appender) read() {
	defer close(a.readDone)
	var untagged int64 // bytes of untagged data since the last answer
	for {
		resp, err := imapwire.ReadResponse(a.sess.Reader)
		if err != nil {
			a.readErr = err
			return
		}
		if resp.Tag == "*" {
			// Data flows, so the idle timeout never fires: a server that sends
			// untagged data without end would hold the append for ever.
			if untagged += resp.Size; untagged > imapwire.MaxResponse {
				a.readErr = imapwire.Oversized("the server sent more than %d MiB of untagged responses without answering", imapwire.MaxResponse>>20)
				a.sess.Close()
				return
			}
		} else {
			untagged = 0
		}
		switch resp.Tag {
		case "+":
			a.mu.Lock()
			want := a.wantCont
			a.wantCont = false
			a.mu.Unlock()
			if !want {
				a.readErr = errors.New("the server sent an unexpected continuation request")
				a.sess.Close()
				return
			}
			a.cont <- struct{}{}
		case "*":
			if resp.Type == "BYE" {
				// The server is closing the connection: nothing more will be answered.
				a.mu.Lock()
				a.bye = resp
				a.mu.Unlock()
				a.readErr = resp.Err()
				a.sess.Close()
				return
			}
		default:
			a.mu.Lock()
			done, ok := a.pending[resp.Tag]
			delete(a.pending, resp.Tag)
			if ok && len(a.pending) == 0 {
				a.sess.Conn.SetReadDeadline(time.Time{}) // idle again: nothing awaited
			}
			a.mu.Unlock()
			if !ok {
				a.readErr = fmt.Errorf("the server answered a command we did not send (tag %.40q)", resp.Tag)
				a.sess.Close()
				return
			}
			done <- resp
		}
	}
}

// unit is what one APPEND command carries.
type unit struct {
	idx    []int    // indexes into Append's msgs, in order
	multi  bool     // a MULTIAPPEND
	keep   bool     // a MULTIAPPEND whose bodies are kept until the server answers
	bodies [][]byte // a resend: the kept bodies; nil: stream the messages' Body
}

// command is a unit on the wire.
type command struct {
	run  *appendRun // the call that sent it
	tag  string
	unit unit
	kept [][]byte // the bodies sent so far, when unit.keep
	sent int      // messages whose literal was sent
	size int64    // bytes kept or to be kept
	done chan *imapwire.Response
	resp *imapwire.Response // the tagged response, once known
}

// appendRun is the state of one Append or Send call.
type appendRun struct {
	a       *Appender
	ctx     context.Context
	mailbox string
	quoted  string
	msgs    []Message
	results []Result
	next    int    // next message to plan
	resend  []unit // units to send before planning more
	waiting int    // commands of this call in flight (in a.inFlight)
	sentAny bool   // a command was sent
	kept    int64  // bytes of bodies kept by in-flight commands
	sent    func() // see AppendNotify; nil once called
	// sendOnly: Send returns once every message was sent, its answers left
	// to Pending.Wait.
	sendOnly bool
	// lost: the connection failed before every command of this call was
	// answered (its results say which).
	lost error
}

// Append appends msgs to mailbox, in order, and reports what became of each message (see
// the package documentation). The returned error is non-nil only when the connection is
// unusable; then results marked ErrUnconfirmed may or may not be stored.
func (a *Appender) Append(ctx context.Context, mailbox string, msgs []Message) ([]Result, error) {
	return a.AppendNotify(ctx, mailbox, msgs, nil)
}

// AppendNotify is Append that calls sent (unless nil) once every message's Body has
// been read and sent, while the server's last answers are awaited: from then on no Body
// is read (a refused batch's kept bodies may still be sent again, without
// Config.NoResend), and the caller may use the bodies' source for something else. It is
// called at most once, from Append's goroutine, and not at all when Append fails or
// returns before (no message sent). Append's results do not depend on what sent does.
func (a *Appender) AppendNotify(ctx context.Context, mailbox string, msgs []Message, sent func()) ([]Result, error) {
	p, err := a.send(ctx, mailbox, msgs, sent, false)
	if err != nil {
		return p.run.results, err
	}
	return p.Wait(ctx)
}

// Pending is a Send whose answers are awaited.
type Pending struct{ run *appendRun }

// Send is AppendNotify that returns as soon as every message was sent (and sent, unless
// nil, was called), without waiting for the server's answers: the caller may Send the
// next messages at once, on a distant server a round trip sooner, and collects each
// call's results with its Pending's Wait. Answers come in order: a Wait collects those
// of earlier calls on its way (they are kept for their own Wait). A call's results do
// not depend on the calls after it, except that a connection that fails leaves the
// commands not answered yet unconfirmed, whichever call sent them. Only with
// Config.NoResend: else Send waits for the answers, as a refused batch is resent.
//
// Send's error is non-nil when the connection became unusable; the Pending's Wait then
// returns the call's results and an error too.
func (a *Appender) Send(ctx context.Context, mailbox string, msgs []Message, sent func()) (*Pending, error) {
	return a.send(ctx, mailbox, msgs, sent, a.cfg.NoResend)
}

func (a *Appender) send(ctx context.Context, mailbox string, msgs []Message, sent func(), sendOnly bool) (*Pending, error) {
	results := make([]Result, len(msgs))
	for i := range results {
		results[i].Err = ErrNotSent
	}
	r := &appendRun{a: a, ctx: ctx, mailbox: mailbox, quoted: quoteMailbox(mailbox), msgs: msgs, results: results,
		sent: sent, sendOnly: sendOnly}
	p := &Pending{run: r}
	if !a.Usable() || ctx.Err() != nil {
		err := a.connErr(ctx, "append to "+strconv.Quote(mailbox))
		a.broken = err // a connection is bound to the contexts it is used with
		a.sess.Close()
		r.lost = err
		return p, err
	}
	stop := context.AfterFunc(ctx, func() { a.sess.Close() })
	defer stop()
	if err := r.run(); err != nil {
		a.fail(err)
		return p, err
	}
	return p, nil
}

// Wait waits for the answers to the Send's commands and returns what became of each
// message (see Append). Its error is non-nil when the connection failed before every
// command of this Send was answered. It may be called more than once.
func (p *Pending) Wait(ctx context.Context) ([]Result, error) {
	r := p.run
	a := r.a
	if r.waiting > 0 && r.lost == nil {
		stop := context.AfterFunc(ctx, func() { a.sess.Close() })
		defer stop()
		for r.waiting > 0 && r.lost == nil {
			// Answers come in order: an earlier Send's are collected on the way.
			if err := r.collectOldest(ctx); err != nil {
				a.fail(err)
			}
		}
	}
	return r.results, r.lost
}

// Abandon closes the connection and returns what is known of the Send's messages, at
// once: the commands answered before are settled, the others are unconfirmed, and the
// error says so (see Wait).
func (p *Pending) Abandon() ([]Result, error) {
	r := p.run
	a := r.a
	if r.waiting > 0 && r.lost == nil {
		a.sess.Close()
		<-a.readDone // every answer read before the close is handed out
		a.fail(&imapconn.Error{Kind: imapconn.KindClosed, Op: "append to " + strconv.Quote(r.mailbox) + " on " + a.addr,
			Err: errors.New("the connection was closed before the server answered")})
	}
	return r.results, r.lost
}

// fail marks the connection unusable after err: it is closed, and every command not
// answered yet is abandoned (see abandon), whichever call sent it.
func (a *Appender) fail(err error) {
	a.broken = err
	a.sess.Close()
	for _, cmd := range a.inFlight {
		cmd.run.abandon(cmd, err)
	}
	a.inFlight = nil
}

func (r *appendRun) run() error {
	for {
		var u unit
		switch {
		case len(r.resend) > 0:
			u, r.resend = r.resend[0], r.resend[1:]
		case r.next < len(r.msgs):
			var ok bool
			var err error
			if u, ok, err = r.plan(); err != nil {
				return err
			} else if !ok {
				continue
			}
		case r.waiting > 0 && !r.sendOnly:
			if err := r.notifySent(); err != nil {
				return err
			}
			if err := r.collectOldest(r.ctx); err != nil {
				return err
			}
			continue
		default:
			return r.notifySent()
		}
		var size int64
		if u.keep {
			for _, i := range u.idx {
				size += r.msgs[i].Size
			}
		}
		for len(r.a.inFlight) > 0 && (len(r.a.inFlight) >= maxInFlight || r.kept+size > 2*r.a.cfg.Batching.Bytes) {
			if err := r.collectOldest(r.ctx); err != nil {
				return err
			}
		}
		if err := r.send(u, size); err != nil {
			return err
		}
	}
}

// plan takes the next unit from the messages: a batch of consecutive small messages, or one
// message.
func (r *appendRun) plan() (unit, bool, error) {
	b := r.a.cfg.Batching
	first := r.next
	r.next++
	m := r.msgs[first]
	switch {
	case m.Size < 0 || m.Body == nil:
		r.results[first].Err = fmt.Errorf("not appended: invalid message (size %d, body %v)", m.Size, m.Body != nil)
		return unit{}, false, nil
	case r.tooBig(m):
		r.results[first].Err = &RefusedError{Mailbox: r.mailbox, Status: &imap.Error{
			Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig,
			Text: fmt.Sprintf("%d bytes is over the server's APPENDLIMIT of %d bytes", m.Size, r.a.appendLimit),
		}}
		return unit{}, false, drain(first, m)
	case !r.a.multi || m.Size > b.Message:
		return unit{idx: []int{first}}, true, nil
	}
	idx := []int{first}
	total := r.msgs[first].Size
	for r.next < len(r.msgs) && len(idx) < b.Messages {
		m := r.msgs[r.next]
		if m.Size < 0 || m.Body == nil || r.tooBig(m) || m.Size > b.Message || total+m.Size > b.Bytes {
			break
		}
		idx = append(idx, r.next)
		total += m.Size
		r.next++
	}
	multi := len(idx) > 1
	return unit{idx: idx, multi: multi, keep: multi && !r.a.cfg.NoResend}, true, nil
}

func (r *appendRun) tooBig(m Message) bool {
	return r.a.appendLimit > 0 && m.Size > r.a.appendLimit
}

// drain reads and drops a body that is not sent, so that a caller streaming bodies from one
// source sees every body consumed, in order.
func drain(i int, m Message) error {
	n, err := io.CopyN(io.Discard, m.Body, m.Size)
	switch {
	case errors.Is(err, io.EOF):
		return &BodyError{Index: i, Err: fmt.Errorf("got %d of %d bytes: %w", n, m.Size, io.ErrUnexpectedEOF)}
	case err != nil:
		return &BodyError{Index: i, Err: err}
	}
	return nil
}

// send writes one APPEND command. Without LITERAL+, it waits for each continuation; when
// the server refuses the command instead, the command is finished here.
func (r *appendRun) send(u unit, size int64) error {
	a := r.a
	a.tagN++
	cmd := &command{run: r, tag: a.tagPrefix + strconv.Itoa(a.tagN), unit: u, size: size, done: make(chan *imapwire.Response, 1)}
	a.mu.Lock()
	a.pending[cmd.tag] = cmd.done
	if len(a.pending) == 1 {
		// An answer is awaited from now on: arm the transport's sliding idle timeout
		// (imapconn's connections slide it while bytes move).
		a.sess.Conn.SetReadDeadline(time.Now().Add(a.idle))
	}
	a.mu.Unlock()
	a.inFlight = append(a.inFlight, cmd)
	r.waiting++
	r.sentAny = true
	r.kept += size

	bw := a.bw
	bw.WriteString(cmd.tag + " APPEND " + r.quoted)
	for k, i := range u.idx {
		m := r.msgs[i]
		if flags := CleanFlags(m.Flags); len(flags) > 0 {
			bw.WriteString(" (" + strings.Join(flags, " ") + ")")
		}
		if validDate(m.InternalDate) {
			bw.WriteString(` "` + dateTime(m.InternalDate) + `"`)
		}
		if a.literalPlus || (a.literalMinus && m.Size <= 4096) {
			fmt.Fprintf(bw, " {%d+}\r\n", m.Size)
		} else {
			fmt.Fprintf(bw, " {%d}\r\n", m.Size)
			refused, err := r.awaitContinuation(cmd)
			if err != nil {
				return err
			}
			if refused {
				return r.refusedEarly(cmd)
			}
		}
		if err := r.writeBody(cmd, k, i); err != nil {
			return err
		}
		cmd.sent++
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return r.connErr(err)
	}
	for _, i := range u.idx {
		r.results[i].Err = ErrUnconfirmed
	}
	return nil
}

// writeBody sends message k of cmd (index i): kept bytes when resending, else exactly Size
// bytes of its Body, kept too when cmd is a batch.
func (r *appendRun) writeBody(cmd *command, k, i int) error {
	w := &errWriter{w: r.a.bw}
	if cmd.unit.bodies != nil {
		_, _ = w.Write(cmd.unit.bodies[k]) // errWriter keeps the error: checked below
		if w.err != nil {
			return r.connErr(w.err)
		}
		return nil
	}
	m := r.msgs[i]
	src := m.Body
	var keep []byte
	if cmd.unit.keep {
		keep = make([]byte, 0, m.Size)
		src = io.TeeReader(src, (*sliceWriter)(&keep))
	}
	n, err := io.CopyBuffer(w, io.LimitReader(src, m.Size), r.a.buf)
	if err == nil && n < m.Size {
		err = io.EOF
	}
	switch {
	case w.err != nil:
		return r.connErr(w.err)
	case errors.Is(err, io.EOF):
		return &BodyError{Index: i, Err: fmt.Errorf("got %d of %d bytes: %w", n, m.Size, io.ErrUnexpectedEOF)}
	case err != nil:
		return &BodyError{Index: i, Err: err}
	}
	if cmd.unit.keep {
		cmd.kept = append(cmd.kept, keep)
	}
	return nil
}

// awaitContinuation flushes and waits for the server's "+" for cmd's next literal.
// refused is true when the server answered the command instead.
func (r *appendRun) awaitContinuation(cmd *command) (refused bool, err error) {
	a := r.a
	a.mu.Lock()
	a.wantCont = true
	a.mu.Unlock()
	if err := a.bw.Flush(); err != nil {
		return false, r.connErr(err)
	}
	select {
	case <-a.cont:
		return false, nil
	case resp := <-cmd.done:
		a.mu.Lock()
		a.wantCont = false
		a.mu.Unlock()
		cmd.resp = resp
		return true, nil
	case <-a.readDone:
		return false, r.connErr(a.readErr)
	}
}

// refusedEarly finishes a command that the server answered before all its literals were
// sent (only without LITERAL+). The messages not sent keep their place in the stream of
// bodies: they are resent one by one first thing, or, when the refusal is final, their
// bodies are read and dropped.
func (r *appendRun) refusedEarly(cmd *command) error {
	r.removeInFlight(cmd)
	unsent := cmd.unit.idx[cmd.sent:]
	resend := r.finish(cmd)
	if len(resend) > 0 {
		r.resend = append(resend, r.resend...)
		return nil
	}
	for _, i := range unsent {
		if err := drain(i, r.msgs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (r *appendRun) removeInFlight(cmd *command) {
	a := r.a
	for k, c := range a.inFlight {
		if c == cmd {
			a.inFlight = append(a.inFlight[:k], a.inFlight[k+1:]...)
			r.waiting--
			r.kept -= cmd.size
			return
		}
	}
}

// notifySent flushes the commands to the server and calls the AppendNotify hook, once,
// so that the server works on them while the caller does what sent does.
func (r *appendRun) notifySent() error {
	if err := r.a.bw.Flush(); err != nil {
		return r.connErr(err)
	}
	if r.sent == nil || !r.sentAny {
		return nil // nothing sent: sent is not called
	}
	sent := r.sent
	r.sent = nil
	sent()
	return nil
}

// collectOldest waits for the answer of the oldest command in flight, of this call or
// of an earlier Send, and records it in its call's results. ctx is the caller's: it
// says why a wait was given up.
func (r *appendRun) collectOldest(ctx context.Context) error {
	a := r.a
	cmd := a.inFlight[0]
	if err := a.bw.Flush(); err != nil {
		return r.connErrCtx(ctx, err)
	}
	select {
	case cmd.resp = <-cmd.done:
	case <-a.readDone:
		select {
		case cmd.resp = <-cmd.done:
		default:
			return r.connErrCtx(ctx, a.readErr)
		}
	}
	a.inFlight = a.inFlight[1:]
	owner := cmd.run
	owner.waiting--
	owner.kept -= cmd.size
	if cmd.resp.Type == "BAD" {
		owner.finish(cmd)
		return r.connErrCtx(ctx, fmt.Errorf("the server rejected an APPEND as malformed: %s", cmd.resp.Text))
	}
	owner.resend = append(owner.resend, owner.finish(cmd)...)
	return nil
}

// finish records cmd's answer in the results, and returns the units to resend when a batch
// was refused.
func (r *appendRun) finish(cmd *command) []unit {
	resp := cmd.resp
	idx := cmd.unit.idx
	r.a.log.Debug("imap_append_answered", "mailbox", r.mailbox, "messages", len(idx),
		"batch", cmd.unit.multi, "status", resp.Type, "code", resp.Code)
	if resp.Type == "OK" {
		validity, uids := parseAppendUID(resp, len(idx))
		for k, i := range idx {
			r.results[i] = Result{UIDValidity: validity}
			if uids != nil {
				r.results[i].UID = uids[k]
			}
		}
		return nil
	}
	status := resp.Err()
	if status == nil {
		status = &imap.Error{Type: imap.StatusResponseTypeBad, Text: "unexpected answer " + resp.Type}
	}
	if cmd.unit.multi && len(idx) > 1 && !mailboxWide(resp.Code) && !throttled(status) {
		if !cmd.unit.keep {
			r.a.log.Info("imap_multiappend_refused_handed_back",
				"mailbox", r.mailbox, "messages", len(idx), "code", resp.Code, "text", resp.Text)
			for _, i := range idx {
				r.results[i].Err = ErrBatchRefused
			}
			return nil
		}
		r.a.log.Info("imap_multiappend_refused_appending_singly",
			"mailbox", r.mailbox, "messages", len(idx), "code", resp.Code, "text", resp.Text)
		var resend []unit
		for k, i := range idx {
			r.results[i].Err = ErrNotSent // until resent
			u := unit{idx: []int{i}}
			if k < cmd.sent {
				u.bodies = [][]byte{cmd.kept[k]}
			}
			resend = append(resend, u)
		}
		return resend
	}
	err := &RefusedError{Mailbox: r.mailbox, Status: status}
	for _, i := range idx {
		r.results[i] = Result{Err: err}
	}
	return nil
}

// throttled reports whether a refusal says the client goes too fast (imapconn.Throttled):
// it concerns no message of the batch, which is refused whole, not appended one by one
// (each APPEND would only meet the same limit, and the caller would not learn of it).
func throttled(status error) bool {
	_, ok := imapconn.Throttled(status)
	return ok
}

// mailboxWide reports whether a refusal concerns the mailbox rather than a message.
func mailboxWide(code string) bool {
	switch imap.ResponseCode(code) {
	case imap.ResponseCodeTryCreate, imap.ResponseCodeNonExistent, imap.ResponseCodeNoPerm:
		return true
	}
	return false
}

// abandon records what is known of cmd, one of r's commands, after the connection failed
// with err: an answer that came before the failure counts; else its messages are
// unconfirmed (messages never sent stay ErrNotSent), and r's Wait returns err.
func (r *appendRun) abandon(cmd *command, err error) {
	r.waiting--
	r.kept -= cmd.size
	select {
	case cmd.resp = <-cmd.done:
		if cmd.resp.Type == "OK" || !cmd.unit.multi || mailboxWide(cmd.resp.Code) {
			r.finish(cmd)
			return
		}
		for _, i := range cmd.unit.idx {
			r.results[i].Err = ErrNotSent // a refused batch stores nothing
		}
	default:
		if r.lost == nil {
			r.lost = err
		}
	}
}

// connErr describes the connection's failure (err is what the failing call said).
func (r *appendRun) connErr(err error) error { return r.connErrCtx(r.ctx, err) }

// connErrCtx is connErr for a wait under ctx.
func (r *appendRun) connErrCtx(ctx context.Context, err error) error {
	a := r.a
	op := "append to " + strconv.Quote(r.mailbox) + " on " + a.addr
	if e := ctx.Err(); e != nil {
		kind := imapconn.KindClosed
		if e == context.DeadlineExceeded {
			kind = imapconn.KindTimeout
		}
		return &imapconn.Error{Kind: kind, Op: op, Err: fmt.Errorf("gave up: %w", context.Cause(ctx))}
	}
	a.mu.Lock()
	bye := a.bye
	a.mu.Unlock()
	if bye != nil {
		return &imapconn.Error{Kind: imapconn.KindClosed, Op: op, Err: fmt.Errorf("the server closed the connection: %s: %w", bye.Text, bye.Err())}
	}
	if err == nil {
		err = errors.New("the connection was closed")
	}
	kind := imapconn.KindOf(err)
	if kind == imapconn.KindUnknown {
		kind = imapconn.KindProtocol
	}
	return &imapconn.Error{Kind: kind, Op: op, Err: err}
}

// connErr is the error for an Append on an unusable connection.
func (a *Appender) connErr(ctx context.Context, op string) error {
	if a.broken != nil {
		return &imapconn.Error{Kind: imapconn.KindClosed, Op: op, Err: fmt.Errorf("the connection is unusable after an earlier failure: %w", a.broken)}
	}
	if ctx.Err() != nil {
		return &imapconn.Error{Kind: imapconn.KindClosed, Op: op, Err: fmt.Errorf("gave up: %w", context.Cause(ctx))}
	}
	return &imapconn.Error{Kind: imapconn.KindClosed, Op: op, Err: fmt.Errorf("the connection was closed: %w", a.readErr)}
}

// parseAppendUID reads "APPENDUID uidvalidity uid-set" (RFC 4315; a MULTIAPPEND gives a
// uid-set, in the messages' order). uids is nil unless it names exactly n UIDs.
func parseAppendUID(resp *imapwire.Response, n int) (validity uint32, uids []uint32) {
	if resp.Code != "APPENDUID" {
		return 0, nil
	}
	fields := strings.Fields(resp.CodeArgs)
	if len(fields) != 2 {
		return 0, nil
	}
	v, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil {
		return 0, nil
	}
	for _, part := range strings.Split(fields[1], ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err1 := strconv.ParseUint(lo, 10, 32)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(hi, 10, 32)
		}
		if err1 != nil || err2 != nil || a == 0 || b == 0 {
			return uint32(v), nil
		}
		if a > b {
			a, b = b, a
		}
		if b-a >= uint64(n) {
			return uint32(v), nil // more than we sent: do not expand
		}
		for u := a; u <= b; u++ {
			uids = append(uids, uint32(u))
		}
		if len(uids) > n {
			return uint32(v), nil
		}
	}
	if len(uids) != n {
		return uint32(v), nil
	}
	return uint32(v), uids
}

// errWriter remembers the first write error, to tell a failing destination from a
// failing Body in io.CopyN.
type errWriter struct {
	w   io.Writer
	err error
}

func (w *errWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.w.Write(p)
	w.err = err
	return n, err
}

type sliceWriter []byte

func (s *sliceWriter) Write(p []byte) (int, error) {
	*s = append(*s, p...)
	return len(p), nil
}
