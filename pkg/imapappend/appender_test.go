package imapappend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapappend"
	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
)

// One Dovecot per flavour for the package; each test has its own users.
var servers = map[imaptest.Flavour]*imaptest.Dovecot{}

func TestMain(m *testing.M) {
	for _, f := range []imaptest.Flavour{imaptest.FlavourSlash, imaptest.FlavourDot} {
		d, err := imaptest.Start(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "imapappend tests:", err)
			os.Exit(1)
		}
		servers[f] = d
	}
	code := m.Run()
	for _, d := range servers {
		d.Close()
	}
	os.Exit(code)
}

var flavours = []imaptest.Flavour{imaptest.FlavourSlash, imaptest.FlavourDot}

// msg is a test message and what the server should keep of it.
type msg struct {
	raw       []byte
	flags     []string // as given to Append
	wantFlags []string // as stored
	date      time.Time
}

// rawMessage builds an RFC 5322 message of exactly size bytes (at least ~200).
func rawMessage(i, size int, extra string) []byte {
	head := fmt.Sprintf("From: sender%d@example.com\r\nTo: rcpt@example.com\r\nSubject: message %d\r\nMessage-ID: <%d.%d@example.com>\r\nDate: Tue, 5 Mar 2024 10:00:00 +0000\r\n\r\n%s", i, i, i, size, extra)
	var b bytes.Buffer
	b.WriteString(head)
	line := fmt.Sprintf("line of message %d, filler filler filler filler filler filler.\r\n", i)
	for size-b.Len() >= len(line)+2 {
		b.WriteString(line)
	}
	if rem := size - b.Len(); rem >= 2 {
		b.WriteString(strings.Repeat("x", rem-2) + "\r\n")
	} else if rem > 0 {
		b.WriteString(strings.Repeat("x", rem))
	}
	return b.Bytes()
}

func toMessages(ms []msg) []imapappend.Message {
	out := make([]imapappend.Message, len(ms))
	for i, m := range ms {
		out[i] = imapappend.Message{Flags: m.flags, InternalDate: m.date, Size: int64(len(m.raw)), Body: bytes.NewReader(m.raw)}
	}
	return out
}

// checkStored compares a mailbox's content with want, in order.
func checkStored(t *testing.T, acct imapconn.Account, mailbox string, want []msg) {
	t.Helper()
	got, err := imaptest.ReadFolder(context.Background(), acct, mailbox)
	if err != nil {
		t.Fatalf("ReadFolder(%q): %v", mailbox, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%q holds %d messages, want %d", mailbox, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].Raw, want[i].raw) {
			t.Errorf("message %d: body differs (%d bytes, want %d)", i, len(got[i].Raw), len(want[i].raw))
		}
		gotFlags := slices.Sorted(slices.Values(got[i].Flags))
		wantFlags := slices.Sorted(slices.Values(want[i].wantFlags))
		if !slices.Equal(gotFlags, wantFlags) {
			t.Errorf("message %d: flags = %q, want %q", i, gotFlags, wantFlags)
		}
		if !want[i].date.IsZero() && !got[i].InternalDate.Equal(want[i].date) {
			t.Errorf("message %d: internal date = %v, want %v", i, got[i].InternalDate, want[i].date)
		}
	}
}

// logBuffer collects an Appender's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count counts the log lines containing all of words.
func (l *logBuffer) count(words ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.buf.String(), "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			n++
		}
	}
	return n
}

func dial(t *testing.T, acct imapconn.Account, options imapappend.Config) *imapappend.Appender {
	t.Helper()
	a, _ := dialLogged(t, acct, options)
	return a
}

func dialLogged(t *testing.T, acct imapconn.Account, options imapappend.Config) (*imapappend.Appender, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := imapappend.Dial(context.Background(), acct, imapconn.Options{Logger: logger}, options)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a, logs
}

// mixed builds n messages of varied sizes, flags and dates; big gives message 7 5 MB.
func mixed(n int, big bool) []msg {
	base := time.Date(2021, 6, 7, 8, 9, 10, 0, time.FixedZone("", -7*3600))
	flagSets := []struct{ in, want []string }{
		{nil, nil},
		{[]string{`\Seen`}, []string{`\Seen`}},
		{[]string{`\seen`, `\Recent`, `\*`, "$Forwarded"}, []string{`\Seen`, "$Forwarded"}},
		{[]string{`\Flagged`, "bad]keyword", "(bad", "Label_1"}, []string{`\Flagged`, "Label_1"}},
		{[]string{`\Answered`, `\Draft`, `\Deleted`}, []string{`\Answered`, `\Draft`, `\Deleted`}},
	}
	ms := make([]msg, n)
	for i := range ms {
		size := 600 + 97*i
		switch {
		case i == 3:
			size = 12 << 10 // over 4 KB
		case i == 7 && big:
			size = 5 << 20
		}
		fs := flagSets[i%len(flagSets)]
		ms[i] = msg{raw: rawMessage(i, size, ""), flags: fs.in, wantFlags: fs.want, date: base.Add(time.Duration(i) * time.Hour)}
	}
	return ms
}

func TestAppend(t *testing.T) {
	t.Parallel()
	for _, f := range flavours {
		for _, tc := range []struct {
			name     string
			options  imapappend.Config
			commands int // APPEND commands for the 50 messages
		}{
			{"one multiappend", imapappend.Config{Batching: imapappend.Batching{Message: 8 << 20}}, 1},
			{"default batching", imapappend.Config{}, 3},                                        // the 5 MB message alone, between two batches
			{"small batches", imapappend.Config{Batching: imapappend.Batching{Messages: 7}}, 8}, // 0-6, the 5 MB one, six batches of 7
			{"multiappend without literal+", imapappend.Config{NoLiteralPlus: true}, 3},
			{"single appends", imapappend.Config{NoMultiappend: true}, 50},
			{"single appends without literal+", imapappend.Config{NoMultiappend: true, NoLiteralPlus: true}, 50},
		} {
			t.Run(f.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				acct := servers[f].AddUser(t)
				mailbox := f.MailboxName("Reçus/日本語 & co")
				if err := imaptest.CreateFolder(context.Background(), acct, mailbox); err != nil {
					t.Fatal(err)
				}
				a, logs := dialLogged(t, acct, tc.options)
				if !a.Caps()["MULTIAPPEND"] {
					t.Errorf("Caps() = %v, want MULTIAPPEND", a.Caps())
				}
				ms := mixed(50, true)
				results, err := a.Append(context.Background(), mailbox, toMessages(ms))
				if err != nil {
					t.Fatalf("Append: %v", err)
				}
				var prev uint32
				for i, r := range results {
					if r.Err != nil {
						t.Errorf("results[%d].Err = %v", i, r.Err)
					}
					if r.UID <= prev || r.UIDValidity == 0 {
						t.Errorf("results[%d] = %+v, want a UID after %d and a UIDVALIDITY", i, r, prev)
					}
					prev = r.UID
				}
				checkStored(t, acct, mailbox, ms)
				if got := logs.count("imap_append_answered", "status=OK"); got != tc.commands {
					t.Errorf("%d APPEND commands answered OK, want %d", got, tc.commands)
				}
				if !a.Usable() {
					t.Error("Usable() = false after a successful Append")
				}

				// The same connection goes on working.
				more := mixed(3, false)
				if _, err := a.Append(context.Background(), "INBOX", toMessages(more)); err != nil {
					t.Fatalf("second Append: %v", err)
				}
				checkStored(t, acct, "INBOX", more)
			})
		}
	}
}

// TestRefusedMessage puts a message over the user's quota in the middle of a batch: it
// alone is refused, the others are stored in order.
func TestRefusedMessage(t *testing.T) {
	t.Parallel()
	for _, f := range flavours {
		for _, tc := range []struct {
			name    string
			options imapappend.Config
			retried bool // a batch refused, then sent one by one
		}{
			{"in a multiappend", imapappend.Config{Batching: imapappend.Batching{Message: 4 << 20}}, true},
			{"in a multiappend without literal+", imapappend.Config{Batching: imapappend.Batching{Message: 4 << 20}, NoLiteralPlus: true}, true},
			{"alone", imapappend.Config{}, false},
			{"single appends without literal+", imapappend.Config{NoMultiappend: true, NoLiteralPlus: true}, false},
		} {
			t.Run(f.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				acct := servers[f].AddUser(t, imaptest.WithQuota(1<<20))
				a, logs := dialLogged(t, acct, tc.options)
				ms := mixed(10, false)
				const bad = 4
				ms[bad].raw = rawMessage(bad, 2<<20, "")
				results, err := a.Append(context.Background(), "INBOX", toMessages(ms))
				if err != nil {
					t.Fatalf("Append: %v", err)
				}
				for i, r := range results {
					switch {
					case i == bad && !imapconn.IsOverQuota(r.Err):
						t.Errorf("results[%d].Err = %v, want over quota", i, r.Err)
					case i != bad && r.Err != nil:
						t.Errorf("results[%d].Err = %v, want nil", i, r.Err)
					}
				}
				var refused *imapappend.RefusedError
				if !errors.As(results[bad].Err, &refused) || refused.Mailbox != "INBOX" {
					t.Errorf("results[%d].Err = %#v, want a *RefusedError for INBOX", bad, results[bad].Err)
				}
				checkStored(t, acct, "INBOX", slices.Delete(slices.Clone(ms), bad, bad+1))
				if got := logs.count("multiappend_refused") > 0; got != tc.retried {
					t.Errorf("batch refused and retried = %v, want %v", got, tc.retried)
				}
				if !a.Usable() {
					t.Error("Usable() = false after a refusal")
				}
			})
		}
	}
}

// TestRefusedBatchWithoutResend: with Config.NoResend, a refused batch's messages come back
// with ErrBatchRefused, nothing of the batch stored and no body kept; appended again one
// per call, only the message at fault is refused.
func TestRefusedBatchWithoutResend(t *testing.T) {
	t.Parallel()
	for _, f := range flavours {
		for _, tc := range []struct {
			name    string
			options imapappend.Config
		}{
			{"literal+", imapappend.Config{}},
			{"without literal+", imapappend.Config{NoLiteralPlus: true}},
		} {
			t.Run(f.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				acct := servers[f].AddUser(t, imaptest.WithQuota(1<<20))
				options := tc.options
				options.NoResend, options.Batching = true, imapappend.Batching{Message: 4 << 20}
				a, logs := dialLogged(t, acct, options)
				ms := mixed(10, false)
				const bad = 4
				ms[bad].raw = rawMessage(bad, 2<<20, "")
				msgs := toMessages(ms)
				results, err := a.Append(context.Background(), "INBOX", msgs)
				if err != nil {
					t.Fatalf("Append: %v", err)
				}
				for i, r := range results {
					if !errors.Is(r.Err, imapappend.ErrBatchRefused) {
						t.Errorf("results[%d].Err = %v, want ErrBatchRefused", i, r.Err)
					}
					if n := msgs[i].Body.(*bytes.Reader).Len(); n != 0 {
						t.Errorf("body %d has %d bytes left unread, want it consumed", i, n)
					}
				}
				if logs.count("multiappend_refused") != 1 {
					t.Errorf("the refused batch was not logged once")
				}
				checkStored(t, acct, "INBOX", nil)
				for i, m := range toMessages(ms) {
					results, err := a.Append(context.Background(), "INBOX", []imapappend.Message{m})
					if err != nil {
						t.Fatalf("Append message %d alone: %v", i, err)
					}
					if got, want := imapconn.IsOverQuota(results[0].Err), i == bad; got != want || (!want && results[0].Err != nil) {
						t.Errorf("message %d alone: %v, want over quota: %v", i, results[0].Err, want)
					}
				}
				checkStored(t, acct, "INBOX", slices.Delete(slices.Clone(ms), bad, bad+1))
			})
		}
	}
}

func TestMissingMailbox(t *testing.T) {
	t.Parallel()
	acct := servers[imaptest.FlavourSlash].AddUser(t)
	a := dial(t, acct, imapappend.Config{})
	results, err := a.Append(context.Background(), "Nowhere", toMessages(mixed(5, false)))
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	for i, r := range results {
		if got := imapconn.ResponseCode(r.Err); got != "TRYCREATE" {
			t.Errorf("results[%d].Err = %v, want TRYCREATE", i, r.Err)
		}
	}
	ms := mixed(2, false)
	if _, err := a.Append(context.Background(), "INBOX", toMessages(ms)); err != nil {
		t.Fatalf("Append after the refusal: %v", err)
	}
	checkStored(t, acct, "INBOX", ms)
}

// shortReader yields only part of a body, then EOF, like go-imap's literal reader when the
// source connection drops.
type shortReader struct {
	r    io.Reader
	left int
}

func (s *shortReader) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), s.left)]
	n, err := s.r.Read(p)
	s.left -= n
	return n, err
}

type failingReader struct {
	r    io.Reader
	left int
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, f.err
	}
	p = p[:min(len(p), f.left)]
	n, err := f.r.Read(p)
	f.left -= n
	return n, err
}

func TestBrokenBody(t *testing.T) {
	t.Parallel()
	errSource := errors.New("source connection reset")
	for _, f := range flavours {
		for _, tc := range []struct {
			name    string
			options imapappend.Config
			body    func(raw []byte) io.Reader
			wantErr error
		}{
			{"short body in a multiappend", imapappend.Config{}, func(raw []byte) io.Reader { return &shortReader{bytes.NewReader(raw), len(raw) / 2} }, io.ErrUnexpectedEOF},
			{"failing body in a multiappend", imapappend.Config{}, func(raw []byte) io.Reader { return &failingReader{bytes.NewReader(raw), len(raw) / 2, errSource} }, errSource},
			{"short body without literal+", imapappend.Config{NoLiteralPlus: true}, func(raw []byte) io.Reader { return &shortReader{bytes.NewReader(raw), len(raw) - 1} }, io.ErrUnexpectedEOF},
			{"short body in single appends", imapappend.Config{NoMultiappend: true}, func(raw []byte) io.Reader { return &shortReader{bytes.NewReader(raw), len(raw) - 10} }, io.ErrUnexpectedEOF},
		} {
			t.Run(f.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				acct := servers[f].AddUser(t)
				a := dial(t, acct, tc.options)
				ms := mixed(6, false)
				const bad = 3 // the 12 KB one
				in := toMessages(ms)
				in[bad].Body = tc.body(ms[bad].raw)
				results, err := a.Append(context.Background(), "INBOX", in)
				var bodyErr *imapappend.BodyError
				if !errors.As(err, &bodyErr) || bodyErr.Index != bad || !errors.Is(err, tc.wantErr) {
					t.Fatalf("Append error = %v, want a *BodyError for message %d wrapping %v", err, bad, tc.wantErr)
				}
				if a.Usable() {
					t.Error("Usable() = true after a broken body, want the connection dropped")
				}
				for i := bad; i < len(results); i++ {
					if !errors.Is(results[i].Err, imapappend.ErrNotSent) {
						t.Errorf("results[%d].Err = %v, want ErrNotSent", i, results[i].Err)
					}
				}
				// Nothing truncated was stored: whatever arrived is byte-identical, in
				// order, and the broken message and those after it are absent.
				got, err := imaptest.ReadFolder(context.Background(), acct, "INBOX")
				if err != nil {
					t.Fatal(err)
				}
				if len(got) > bad {
					t.Fatalf("INBOX holds %d messages, want at most %d", len(got), bad)
				}
				for i, g := range got {
					if !bytes.Equal(g.Raw, ms[i].raw) {
						t.Errorf("stored message %d differs from message %d", i, i)
					}
					if results[i].Err != nil && !errors.Is(results[i].Err, imapappend.ErrUnconfirmed) {
						t.Errorf("results[%d].Err = %v for a stored message", i, results[i].Err)
					}
				}
				if _, err := a.Append(context.Background(), "INBOX", toMessages(mixed(1, false))); err == nil {
					t.Error("Append on the dropped connection succeeded")
				}
			})
		}
	}
}

// TestBrokenBodyStoresNothingOfTheBatch: one MULTIAPPEND, a short body in it: none of the
// batch is stored.
func TestBrokenBodyStoresNothingOfTheBatch(t *testing.T) {
	t.Parallel()
	for _, f := range flavours {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			acct := servers[f].AddUser(t)
			a := dial(t, acct, imapappend.Config{})
			ms := mixed(20, false)
			in := toMessages(ms)
			in[15].Body = &shortReader{bytes.NewReader(ms[15].raw), 100}
			results, err := a.Append(context.Background(), "INBOX", in)
			if err == nil {
				t.Fatal("Append with a short body succeeded")
			}
			for i, r := range results {
				if !errors.Is(r.Err, imapappend.ErrNotSent) {
					t.Errorf("results[%d].Err = %v, want ErrNotSent", i, r.Err)
				}
			}
			checkStored(t, acct, "INBOX", nil)
		})
	}
}

func TestInjection(t *testing.T) {
	t.Parallel()
	for _, f := range flavours {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			acct := servers[f].AddUser(t)
			a := dial(t, acct, imapappend.Config{})
			attack := "A1 CREATE Injected\r\nW00000000.1 CREATE Injected2\r\n* OK fake\r\n+ fake\r\n)\r\n{5}\r\n"
			ms := []msg{
				{raw: rawMessage(0, 1000, attack)},
				{raw: rawMessage(1, 9000, attack), flags: []string{`\Seen`, "x y"}, wantFlags: []string{`\Seen`}},
				{raw: []byte(attack)},
			}
			if _, err := a.Append(context.Background(), "INBOX", toMessages(ms)); err != nil {
				t.Fatalf("Append: %v", err)
			}
			checkStored(t, acct, "INBOX", ms)
			folders, err := imaptest.ListFolders(context.Background(), acct)
			if err != nil {
				t.Fatal(err)
			}
			for name := range folders {
				if strings.Contains(name, "Injected") {
					t.Errorf("folder %q exists: the body was read as commands", name)
				}
			}
		})
	}
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	acct := servers[imaptest.FlavourSlash].AddUser(t)
	a := dial(t, acct, imapappend.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	ms := mixed(4, false)
	in := toMessages(ms)
	in[2].Body = &cancellingReader{r: bytes.NewReader(ms[2].raw), left: 300, cancel: cancel, ctx: ctx}
	_, err := a.Append(ctx, "INBOX", in)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Append error = %v, want context.Canceled", err)
	}
	if a.Usable() {
		t.Error("Usable() = true after the context ended")
	}
	checkStored(t, acct, "INBOX", nil)
}

// cancellingReader cancels its context part way, and then fails as a source bound to the
// same context would.
type cancellingReader struct {
	r      io.Reader
	left   int
	cancel context.CancelFunc
	ctx    context.Context
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.cancel()
		<-c.ctx.Done()
		return 0, c.ctx.Err()
	}
	p = p[:min(len(p), c.left)]
	n, err := c.r.Read(p)
	c.left -= n
	return n, err
}

// TestAppendNotify: the hook is called once, after every body was read to its end and
// before Append returns; the messages are stored as with Append. A body is a reader
// that counts what was read of it when the hook runs.
func TestAppendNotify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		options imapappend.Config
	}{
		{"batches", imapappend.Config{Batching: imapappend.Batching{Messages: 7}, NoResend: true}},
		{"single appends without literal+", imapappend.Config{NoMultiappend: true, NoLiteralPlus: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := servers[imaptest.FlavourSlash].AddUser(t)
			a, _ := dialLogged(t, acct, tc.options)
			ms := mixed(20, true)
			msgs := toMessages(ms)
			readers := make([]*bytes.Reader, len(ms))
			for i, m := range ms {
				readers[i] = bytes.NewReader(m.raw)
				msgs[i].Body = readers[i]
			}
			calls := 0
			results, err := a.AppendNotify(context.Background(), "INBOX", msgs, func() {
				calls++
				for i, r := range readers {
					if r.Len() != 0 {
						t.Errorf("hook called with %d bytes of message %d unread", r.Len(), i)
					}
				}
			})
			if err != nil {
				t.Fatalf("AppendNotify: %v", err)
			}
			if calls != 1 {
				t.Errorf("hook called %d times, want once", calls)
			}
			for i, r := range results {
				if r.Err != nil {
					t.Errorf("results[%d].Err = %v", i, r.Err)
				}
			}
			checkStored(t, acct, "INBOX", ms)
		})
	}
}

// TestSendIntoTwoMailboxes: a Send into one mailbox and the next into another, sent
// before the first's answers, store each message where it belongs, in order, on both
// Dovecot flavours.
func TestSendIntoTwoMailboxes(t *testing.T) {
	t.Parallel()
	for _, f := range flavours {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			acct := servers[f].AddUser(t)
			other := f.MailboxName("Archive/2024")
			if err := imaptest.CreateFolder(context.Background(), acct, other); err != nil {
				t.Fatal(err)
			}
			a := dial(t, acct, imapappend.Config{NoResend: true})
			ctx := context.Background()
			ms := mixed(60, true)
			p1, err := a.Send(ctx, "INBOX", toMessages(ms[:40]), nil)
			if err != nil {
				t.Fatalf("first Send: %v", err)
			}
			p2, err := a.Send(ctx, other, toMessages(ms[40:]), nil)
			if err != nil {
				t.Fatalf("second Send: %v", err)
			}
			for k, p := range []*imapappend.Pending{p1, p2} {
				results, err := p.Wait(ctx)
				if err != nil {
					t.Fatalf("Wait %d: %v", k, err)
				}
				for i, r := range results {
					if r.Err != nil || r.UID == 0 {
						t.Errorf("Send %d, message %d: %+v, want stored with a UID", k, i, r)
					}
				}
			}
			checkStored(t, acct, "INBOX", ms[:40])
			checkStored(t, acct, other, ms[40:])
		})
	}
}
