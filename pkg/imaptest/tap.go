package imaptest

import (
	"bytes"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Tap forwards loopback connections to a plain-text IMAP port and records every byte
// the client sends, one buffer per connection: the commands that reach the server.
type Tap struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	sent   []*bytes.Buffer
	wg     sync.WaitGroup
}

// NewTap starts a tap in front of target (a plain-text IMAP address on loopback),
// stopped by tb.Cleanup.
func NewTap(tb testing.TB, target string) *Tap {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("imaptest: tap: %v", err)
	}
	tp := &Tap{ln: ln, target: target}
	tp.wg.Go(tp.serve)
	tb.Cleanup(func() {
		_ = ln.Close()
		tp.wg.Wait()
	})
	return tp
}

// Addr is the tap's address, to give the client.
func (tp *Tap) Addr() string { return tp.ln.Addr().String() }

func (tp *Tap) serve() {
	for {
		c, err := tp.ln.Accept()
		if err != nil {
			return
		}
		buf := &bytes.Buffer{}
		tp.mu.Lock()
		tp.sent = append(tp.sent, buf)
		tp.mu.Unlock()
		tp.wg.Go(func() { tp.forward(c, buf) })
	}
}

func (tp *Tap) forward(c net.Conn, buf *bytes.Buffer) {
	defer func() { _ = c.Close() }()
	s, err := net.Dial("tcp", tp.target)
	if err != nil {
		return
	}
	defer func() { _ = s.Close() }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(c, s)
		_ = c.Close()
	}()
	_, _ = io.Copy(s, io.TeeReader(c, tapWriter{&tp.mu, buf}))
	_ = s.Close()
	<-done
}

type tapWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w tapWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// Commands returns every command line the clients sent, literals left out, in the
// order of each connection. A line cut short by a dropped connection is left out.
func (tp *Tap) Commands() []string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var out []string
	for _, buf := range tp.sent {
		out = append(out, SplitCommands(buf.Bytes())...)
	}
	return out
}

var literalEnd = regexp.MustCompile(`\{(\d+)\+?\}$`)

// SplitCommands cuts a client's byte stream into command lines, each literal replaced
// by "{n}" and the lines that answer an AUTHENTICATE challenge left out.
func SplitCommands(b []byte) []string {
	var out []string
	var cur strings.Builder
	authPending := false
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			break // cut short
		}
		line := string(b[:i])
		b = b[i+2:]
		if m := literalEnd.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			cur.WriteString(line)
			if n > len(b) {
				return out
			}
			b = b[n:]
			continue
		}
		cur.WriteString(line)
		cmd := cur.String()
		cur.Reset()
		if authPending {
			authPending = false // the SASL response to a challenge, not a command
			continue
		}
		f := strings.Fields(cmd)
		if len(f) == 2 && strings.EqualFold(f[1], "DONE") {
			out = append(out, cmd)
			continue
		}
		if len(f) == 3 && strings.EqualFold(f[1], "AUTHENTICATE") {
			authPending = true // no initial response: the next line answers the challenge
		}
		out = append(out, cmd)
	}
	return out
}

// readOnlyVerbs are the only commands a source may receive (issue 14, promise 1).
var readOnlyVerbs = map[string]bool{
	"CAPABILITY": true, "STARTTLS": true, "LOGIN": true, "AUTHENTICATE": true,
	"NAMESPACE": true, "LIST": true, "STATUS": true, "EXAMINE": true, "FETCH": true,
	"UID FETCH": true, "NOOP": true, "LOGOUT": true, "ID": true, "ENABLE": true,
	"COMPRESS": true,
	// The api's account test reads the quota (RFC 9208's queries change nothing).
	"GETQUOTAROOT": true, "GETQUOTA": true,
}

// seenFetch matches fetch items that set \Seen: BODY[...] and BINARY[...] without
// .PEEK, RFC822 and RFC822.TEXT (RFC822.SIZE and RFC822.HEADER do not).
var seenFetch = regexp.MustCompile(`(^|[^.A-Z])(BODY|BINARY)\[|(^|[^.A-Z])RFC822(\.TEXT)?([\s)\]]|$)`)

// Verb returns the command's name ("UID FETCH" for a UID command) and its arguments.
func Verb(cmd string) (string, string) {
	f := strings.SplitN(cmd, " ", 3)
	if len(f) < 2 {
		return "", ""
	}
	v, args := strings.ToUpper(f[1]), ""
	if len(f) == 3 {
		args = f[2]
	}
	if v == "UID" {
		g := strings.SplitN(args, " ", 2)
		v += " " + strings.ToUpper(g[0])
		args = ""
		if len(g) == 2 {
			args = g[1]
		}
	}
	return v, args
}

// ReadOnlyProblems returns the commands of cmds (Tap.Commands) that could modify
// the mailbox they reach: a command outside the read-only set, or a FETCH that
// sets \Seen. A source must never get one.
func ReadOnlyProblems(cmds []string) []string {
	var problems []string
	for _, cmd := range cmds {
		v, args := Verb(cmd)
		switch {
		case !readOnlyVerbs[v]:
			problems = append(problems, "command outside the read-only set: "+redactLogin(cmd))
		case (v == "FETCH" || v == "UID FETCH") && seenFetch.MatchString(strings.ToUpper(args)):
			problems = append(problems, "fetch that sets \\Seen: "+cmd)
		}
	}
	return problems
}

// redactLogin keeps a password out of the test's output.
func redactLogin(cmd string) string {
	if v, _ := Verb(cmd); v == "LOGIN" || v == "AUTHENTICATE" {
		return strings.SplitN(cmd, " ", 3)[0] + " " + v + " ..."
	}
	return cmd
}
