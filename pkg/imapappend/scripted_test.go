package imapappend_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapappend"
	"imapcopy.dev/pkg/imapconn"
)

// script is a scripted IMAP server for what Dovecot will not do on demand: unknown tags,
// BAD, BYE, refusals before a literal.
type script struct {
	caps string // after login
	// answer returns the lines answering an APPEND (its tag and its messages' bodies).
	answer func(tag string, bodies [][]byte) string
	// refuse, when set, answers a synchronising literal announcement with a refusal instead
	// of "+" (its return value, "" to accept).
	refuse func(tag string, size int) string

	mu       sync.Mutex
	appended [][]byte
}

var literalRE = regexp.MustCompile(`\{(\d+)(\+?)\}$`)

// hangUp, as a script's answer, closes the connection instead.
const hangUp = "\x00hang up"

func (s *script) start(t *testing.T) imapconn.Account {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	addr := l.Addr().(*net.TCPAddr)
	return imapconn.Account{Host: "127.0.0.1", Port: addr.Port, Security: imapconn.SecurityPlaintext, Login: "bob", Password: "secret"}
}

func (s *script) serve(c net.Conn) {
	r := bufio.NewReader(c)
	fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN SASL-IR] ready\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		tag, rest, _ := strings.Cut(line, " ")
		cmd, _, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(cmd) {
		case "AUTHENTICATE":
			fmt.Fprintf(c, "%s OK [CAPABILITY %s] logged in\r\n", tag, s.caps)
		case "APPEND":
			var bodies [][]byte
			refused := false
			for {
				m := literalRE.FindStringSubmatch(line)
				if m == nil {
					break
				}
				size, _ := strconv.Atoi(m[1])
				if m[2] == "" {
					if s.refuse != nil {
						if reply := s.refuse(tag, size); reply != "" {
							fmt.Fprint(c, reply)
							refused = true
							break
						}
					}
					fmt.Fprint(c, "+ go on\r\n")
				}
				body := make([]byte, size)
				if _, err := io.ReadFull(r, body); err != nil {
					return
				}
				bodies = append(bodies, body)
				if line, err = r.ReadString('\n'); err != nil {
					return
				}
				line = strings.TrimRight(line, "\r\n")
			}
			if refused {
				continue
			}
			s.mu.Lock()
			s.appended = append(s.appended, bodies...)
			s.mu.Unlock()
			reply := s.answer(tag, bodies)
			if reply == hangUp {
				return
			}
			fmt.Fprint(c, reply)
		default:
			fmt.Fprintf(c, "%s OK done\r\n", tag)
		}
	}
}

func (s *script) stored() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appended
}

func scriptedMessages(n int) ([]imapappend.Message, [][]byte) {
	var msgs []imapappend.Message
	var raws [][]byte
	for i := range n {
		raw := rawMessage(i, 300+i*50, "")
		raws = append(raws, raw)
		msgs = append(msgs, imapappend.Message{Size: int64(len(raw)), Body: bytes.NewReader(raw)})
	}
	return msgs, raws
}

func TestScripted(t *testing.T) {
	t.Parallel()
	okAll := func(tag string, bodies [][]byte) string {
		return fmt.Sprintf("* %d EXISTS\r\n* 1 FETCH (BODY[] {7}\r\nA1 OK\r\n)\r\n%s OK appended\r\n", len(bodies), tag)
	}

	t.Run("untagged data with literals, no APPENDUID", func(t *testing.T) {
		t.Parallel()
		s := &script{caps: "IMAP4rev1 MULTIAPPEND LITERAL+", answer: okAll}
		a := dial(t, s.start(t), imapappend.Config{})
		msgs, raws := scriptedMessages(5)
		results, err := a.Append(context.Background(), "INBOX", msgs)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		for i, r := range results {
			if r.Err != nil || r.UID != 0 {
				t.Errorf("results[%d] = %+v, want stored without a UID", i, r)
			}
		}
		stored := s.stored()
		if len(stored) != len(raws) {
			t.Fatalf("server got %d messages, want %d", len(stored), len(raws))
		}
		for i := range raws {
			if !bytes.Equal(stored[i], raws[i]) {
				t.Errorf("server got message %d altered", i)
			}
		}
	})

	t.Run("a response with a tag we did not send", func(t *testing.T) {
		t.Parallel()
		s := &script{caps: "IMAP4rev1 MULTIAPPEND LITERAL+", answer: func(tag string, _ [][]byte) string {
			return "A1 OK [APPENDUID 1 1] injected\r\n" + tag + " OK done\r\n"
		}}
		a := dial(t, s.start(t), imapappend.Config{})
		msgs, _ := scriptedMessages(3)
		results, err := a.Append(context.Background(), "INBOX", msgs)
		if err == nil || !strings.Contains(err.Error(), "did not send") {
			t.Fatalf("Append error = %v, want the unknown tag reported", err)
		}
		if a.Usable() {
			t.Error("Usable() = true after an unknown tag")
		}
		for i, r := range results {
			if !errors.Is(r.Err, imapappend.ErrUnconfirmed) {
				t.Errorf("results[%d].Err = %v, want ErrUnconfirmed", i, r.Err)
			}
		}
	})

	// A throttled MULTIAPPEND (Gmail: "NO [OVERQUOTA] Account exceeded command or
	// bandwidth limits") refuses no message: its messages come back with the refusal,
	// for the caller to wait, not with ErrBatchRefused (appended one by one, the throttle
	// would go unnoticed).
	t.Run("throttled batch", func(t *testing.T) {
		t.Parallel()
		s := &script{caps: "IMAP4rev1 MULTIAPPEND LITERAL+", answer: func(tag string, _ [][]byte) string {
			return tag + " NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)\r\n"
		}}
		a := dial(t, s.start(t), imapappend.Config{NoResend: true})
		msgs, _ := scriptedMessages(3)
		results, err := a.Append(context.Background(), "INBOX", msgs)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		for i, r := range results {
			if _, ok := imapconn.Throttled(r.Err); !ok || errors.Is(r.Err, imapappend.ErrBatchRefused) {
				t.Errorf("results[%d].Err = %v, want the throttling refusal", i, r.Err)
			}
		}
	})

	t.Run("BAD", func(t *testing.T) {
		t.Parallel()
		s := &script{caps: "IMAP4rev1 LITERAL+", answer: func(tag string, _ [][]byte) string {
			return tag + " BAD [CLIENTBUG] what is this\r\n"
		}}
		a := dial(t, s.start(t), imapappend.Config{})
		msgs, _ := scriptedMessages(3)
		results, err := a.Append(context.Background(), "INBOX", msgs)
		if err == nil {
			t.Fatal("Append after a BAD succeeded")
		}
		if a.Usable() {
			t.Error("Usable() = true after a BAD")
		}
		if imapconn.ResponseCode(results[0].Err) != "CLIENTBUG" {
			t.Errorf("results[0].Err = %v, want the BAD", results[0].Err)
		}
	})

	t.Run("BYE", func(t *testing.T) {
		t.Parallel()
		s := &script{caps: "IMAP4rev1 MULTIAPPEND LITERAL+", answer: func(string, [][]byte) string {
			return "* BYE server shutting down\r\n"
		}}
		a := dial(t, s.start(t), imapappend.Config{})
		msgs, _ := scriptedMessages(3)
		_, err := a.Append(context.Background(), "INBOX", msgs)
		if err == nil || !strings.Contains(err.Error(), "server shutting down") {
			t.Fatalf("Append error = %v, want the BYE reported", err)
		}
		if got := imapconn.KindOf(err); got != imapconn.KindClosed {
			t.Errorf("KindOf(%v) = %v, want closed", err, got)
		}
	})

	t.Run("refused before the literal", func(t *testing.T) {
		t.Parallel()
		var raws [][]byte
		s := &script{
			caps:   "IMAP4rev1 MULTIAPPEND UIDPLUS",
			answer: func(tag string, _ [][]byte) string { return tag + " OK [APPENDUID 7 42] done\r\n" },
			refuse: func(tag string, size int) string {
				if size > 400 {
					return tag + " NO [TOOBIG] message too big\r\n"
				}
				return ""
			},
		}
		a := dial(t, s.start(t), imapappend.Config{})
		var msgs []imapappend.Message
		msgs, raws = scriptedMessages(4) // 300, 350, 400, 450 bytes
		msgs = append(msgs, msgs[0])
		msgs[4].Body = bytes.NewReader(raws[0])
		// The batch is refused at its 4th literal; it goes again one by one: the 4th
		// is refused, its body read and dropped; the 5th, after it, is stored.
		results, err := a.Append(context.Background(), "INBOX", msgs)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		for i, r := range results {
			if i == 3 {
				if !imapconn.IsTooBig(r.Err) {
					t.Errorf("results[3].Err = %v, want TOOBIG", r.Err)
				}
				continue
			}
			if r.Err != nil || r.UID != 42 || r.UIDValidity != 7 {
				t.Errorf("results[%d] = %+v, want stored as UID 42", i, r)
			}
		}
		want := [][]byte{raws[0], raws[1], raws[2], raws[0]}
		stored := s.stored()
		if len(stored) != len(want) {
			t.Fatalf("server stored %d messages, want %d", len(stored), len(want))
		}
		for i := range want {
			if !bytes.Equal(stored[i], want[i]) {
				t.Errorf("stored message %d differs", i)
			}
		}
	})

	t.Run("APPENDLIMIT", func(t *testing.T) {
		t.Parallel()
		s := &script{
			caps:   "IMAP4rev1 MULTIAPPEND LITERAL+ APPENDLIMIT=400",
			answer: func(tag string, _ [][]byte) string { return tag + " OK done\r\n" },
		}
		a := dial(t, s.start(t), imapappend.Config{})
		if got := a.AppendLimit(); got != 400 {
			t.Errorf("AppendLimit() = %d, want 400", got)
		}
		msgs, raws := scriptedMessages(4) // 300, 350, 400, 450 bytes
		big := bytes.NewReader(raws[3])
		msgs[3].Body = big
		msgs = append(msgs, imapappend.Message{Size: int64(len(raws[0])), Body: bytes.NewReader(raws[0])})
		results, err := a.Append(context.Background(), "INBOX", msgs)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		for i, r := range results {
			if got, want := imapconn.IsTooBig(r.Err), i == 3; got != want || (!want && r.Err != nil) {
				t.Errorf("results[%d].Err = %v, want too big: %v", i, r.Err, want)
			}
		}
		if big.Len() != 0 {
			t.Errorf("the refused body has %d bytes left unread, want it drained", big.Len())
		}
		if got := len(s.stored()); got != 4 {
			t.Errorf("server stored %d messages, want 4", got)
		}
	})

	t.Run("a server that stops answering", func(t *testing.T) {
		t.Parallel()
		s := &script{caps: "IMAP4rev1 MULTIAPPEND LITERAL+", answer: func(string, [][]byte) string { return "" }}
		a, err := imapappend.Dial(context.Background(), s.start(t), imapconn.Options{IdleTimeout: 200 * time.Millisecond}, imapappend.Config{})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer a.Close()
		msgs, _ := scriptedMessages(3)
		results, err := a.Append(context.Background(), "INBOX", msgs)
		if got := imapconn.KindOf(err); got != imapconn.KindTimeout {
			t.Errorf("Append error = %v (kind %v), want a timeout", err, got)
		}
		for i, r := range results {
			if !errors.Is(r.Err, imapappend.ErrUnconfirmed) {
				t.Errorf("results[%d].Err = %v, want ErrUnconfirmed", i, r.Err)
			}
		}
	})
}

// TestSendPipelines: Send returns once its messages are sent, without their answers. The
// server here answers an APPEND only once the next one came, as a distant server's
// answers would still be on their way: a Send that waited for the answers of the one
// before would never be called.
func TestSendPipelines(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var held []string
	s := &script{caps: "IMAP4rev1 MULTIAPPEND LITERAL+", answer: func(tag string, bodies [][]byte) string {
		mu.Lock()
		defer mu.Unlock()
		held = append(held, tag)
		if len(held) < 3 {
			return ""
		}
		var b strings.Builder
		for k, t := range held {
			fmt.Fprintf(&b, "%s OK [APPENDUID 7 %d] done\r\n", t, k+1)
		}
		held = nil
		return b.String()
	}}
	a := dial(t, s.start(t), imapappend.Config{NoResend: true, NoMultiappend: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var pending []*imapappend.Pending
	var sent []int
	for k := range 3 {
		msgs, _ := scriptedMessages(1)
		p, err := a.Send(ctx, fmt.Sprintf("box%d", k), msgs, func() { sent = append(sent, k) })
		if err != nil {
			t.Fatalf("Send %d: %v", k, err)
		}
		pending = append(pending, p)
	}
	// The last first: it collects the answers of the others on its way.
	for k := 2; k >= 0; k-- {
		results, err := pending[k].Wait(ctx)
		if err != nil {
			t.Fatalf("Wait %d: %v", k, err)
		}
		if results[0].Err != nil || results[0].UID != uint32(k+1) || results[0].UIDValidity != 7 {
			t.Errorf("Send %d: result %+v, want UID %d of UIDVALIDITY 7", k, results[0], k+1)
		}
	}
	if !slices.Equal(sent, []int{0, 1, 2}) {
		t.Errorf("sent hooks called for %v, want each Send's once, in order", sent)
	}
	if !a.Usable() {
		t.Error("Usable() = false after the answers")
	}
}

// TestSendConnectionLost: the connection fails once the first Send's commands were
// answered and the second's sent. The first Send's messages are stored, and its Wait
// says so; the second's are unconfirmed, and its Wait returns the failure.
func TestSendConnectionLost(t *testing.T) {
	t.Parallel()
	n := 0
	s := &script{caps: "IMAP4rev1 MULTIAPPEND LITERAL+", answer: func(tag string, bodies [][]byte) string {
		n++
		if n == 1 {
			return tag + " OK [APPENDUID 7 1:3] done\r\n"
		}
		return hangUp
	}}
	a := dial(t, s.start(t), imapappend.Config{NoResend: true})
	ctx := context.Background()
	first, _ := scriptedMessages(3)
	p1, err := a.Send(ctx, "INBOX", first, nil)
	if err != nil {
		t.Fatalf("first Send: %v", err)
	}
	second, _ := scriptedMessages(2)
	p2, err := a.Send(ctx, "INBOX", second, nil)
	if err != nil {
		t.Fatalf("second Send: %v (the failure comes with the answers)", err)
	}
	results, err := p2.Wait(ctx)
	if err == nil {
		t.Fatal("second Wait: no error, want the connection's failure")
	}
	for i, r := range results {
		if !errors.Is(r.Err, imapappend.ErrUnconfirmed) {
			t.Errorf("second Send, message %d: %v, want ErrUnconfirmed", i, r.Err)
		}
	}
	results, err = p1.Wait(ctx)
	if err != nil {
		t.Fatalf("first Wait: %v, want none: its answers came before the failure", err)
	}
	for i, r := range results {
		if r.Err != nil || r.UID != uint32(i+1) {
			t.Errorf("first Send, message %d: %+v, want stored as UID %d", i, r, i+1)
		}
	}
	if a.Usable() {
		t.Error("Usable() = true after the connection failed")
	}
	if _, err := a.Send(ctx, "INBOX", second, nil); err == nil {
		t.Error("Send on the failed connection: no error")
	}
}

// TestPendingAbandon: Abandon closes the connection at once, without waiting for
// answers that do not come: the second Send's messages are unconfirmed, and the first
// Send's results, answered before, stay as they were.
func TestPendingAbandon(t *testing.T) {
	t.Parallel()
	n := 0
	s := &script{caps: "IMAP4rev1 MULTIAPPEND LITERAL+", answer: func(tag string, bodies [][]byte) string {
		n++
		if n == 1 {
			return tag + " OK [APPENDUID 7 1:2] done\r\n"
		}
		return "" // never answered
	}}
	a := dial(t, s.start(t), imapappend.Config{NoResend: true})
	ctx := context.Background()
	first, _ := scriptedMessages(2)
	p1, err := a.Send(ctx, "INBOX", first, nil)
	if err != nil {
		t.Fatalf("first Send: %v", err)
	}
	second, _ := scriptedMessages(2)
	p2, err := a.Send(ctx, "INBOX", second, nil)
	if err != nil {
		t.Fatalf("second Send: %v", err)
	}
	if results, err := p1.Wait(ctx); err != nil || results[0].Err != nil || results[1].UID != 2 {
		t.Errorf("first Wait = %+v, %v; want both stored", results, err)
	}
	results, err := p2.Abandon()
	if err == nil {
		t.Error("Abandon: no error, want the connection closed before the answers")
	}
	for i, r := range results {
		if !errors.Is(r.Err, imapappend.ErrUnconfirmed) {
			t.Errorf("second Send, message %d: %v, want ErrUnconfirmed", i, r.Err)
		}
	}
	if results, err := p1.Wait(ctx); err != nil || results[1].UID != 2 {
		t.Errorf("first Wait after Abandon = %+v, %v; want its results kept", results, err)
	}
	if a.Usable() {
		t.Error("Usable() = true after Abandon")
	}
}
