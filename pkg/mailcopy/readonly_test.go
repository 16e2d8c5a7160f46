package mailcopy_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// tap forwards loopback connections to a plain-text IMAP port and records every byte
// the client sends, one buffer per connection: the commands that reach the server.
type tap struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	sent   []*bytes.Buffer
	wg     sync.WaitGroup
}

func newTap(t *testing.T, target string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tap: %v", err)
	}
	tp := &tap{ln: ln, target: target}
	tp.wg.Go(tp.serve)
	t.Cleanup(func() {
		_ = ln.Close()
		tp.wg.Wait()
	})
	return tp
}

func (tp *tap) addr() string { return tp.ln.Addr().String() }

func (tp *tap) serve() {
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

func (tp *tap) forward(c net.Conn, buf *bytes.Buffer) {
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
	_, _ = io.Copy(s, io.TeeReader(c, lockedWriter{&tp.mu, buf}))
	_ = s.Close()
	<-done
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// commands returns every command line the clients sent, literals left out, in the
// order of each connection. A line cut short by a dropped connection is left out.
func (tp *tap) commands() []string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var out []string
	for _, buf := range tp.sent {
		out = append(out, splitCommands(buf.Bytes())...)
	}
	return out
}

var literalEnd = regexp.MustCompile(`\{(\d+)\+?\}$`)

// splitCommands cuts a client's byte stream into command lines, each literal replaced
// by "{n}" and the lines that answer an AUTHENTICATE challenge left out.
func splitCommands(b []byte) []string {
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
}

// seenFetch matches fetch items that set \Seen: BODY[...] and BINARY[...] without
// .PEEK, RFC822 and RFC822.TEXT (RFC822.SIZE and RFC822.HEADER do not).
var seenFetch = regexp.MustCompile(`(^|[^.A-Z])(BODY|BINARY)\[|(^|[^.A-Z])RFC822(\.TEXT)?([\s)\]]|$)`)

// verb returns the command's name ("UID FETCH" for a UID command) and its arguments.
func verb(cmd string) (string, string) {
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

// readOnlyProblems returns the commands that could modify the source.
func readOnlyProblems(cmds []string) []string {
	var problems []string
	for _, cmd := range cmds {
		v, args := verb(cmd)
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
	if v, _ := verb(cmd); v == "LOGIN" || v == "AUTHENTICATE" {
		return strings.SplitN(cmd, " ", 3)[0] + " " + v + " ..."
	}
	return cmd
}

// TestSourceReadOnly proves promise 1 of issue 14, "the source is never modified": a
// tap between the engine and the source's plain-text port records every command of a
// whole copy of a mailbox with several folders, of a rerun, and of a copy whose
// connections are cut; only read-only commands reach the source (no SELECT, no fetch
// that sets \Seen), and its flags, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and \Recent
// are the same after each.
func TestSourceReadOnly(t *testing.T) {
	t.Parallel()
	srcServer, dstServer := servers[imaptest.FlavourSlash], servers[imaptest.FlavourDot]
	src := srcServer.AddUser(t)
	mb := imaptest.Generate(1401, imaptest.Spec{Count: 120})
	mustLoad(t, src, mb)
	before := mustSnapshot(t, src)

	tp := newTap(t, srcServer.PlainAddr)
	viaTap := srcServer.Plaintext(src)
	host, port, _ := net.SplitHostPort(tp.addr())
	viaTap.Host = host
	viaTap.Port, _ = strconv.Atoi(port)

	check := func(t *testing.T, phase string, from int) int {
		t.Helper()
		cmds := tp.commands()
		got := cmds[from:]
		for _, p := range readOnlyProblems(got) {
			t.Errorf("%s: %s", phase, p)
		}
		verbs := map[string]int{}
		for _, c := range got {
			v, _ := verb(c)
			verbs[v]++
		}
		t.Logf("%s: %d commands reached the source: %v", phase, len(got), verbs)
		if verbs["FETCH"]+verbs["UID FETCH"] == 0 {
			t.Errorf("%s: no FETCH reached the source through the tap", phase)
		}
		if err := before.Unchanged(testContext(t), src); err != nil {
			t.Errorf("%s: source changed: %v", phase, err)
		}
		return len(cmds)
	}

	dst := dstServer.AddUser(t)
	res, err := mailcopy.Copy(testContext(t), testConfig(t, viaTap, dst))
	if err != nil || !res.Complete() {
		t.Fatalf("copy: %v (%+v)", err, res)
	}
	n := check(t, "copy", 0)
	mustCheck(t, src, dst, imaptest.CheckOptions{})

	if _, err := mailcopy.Copy(testContext(t), testConfig(t, viaTap, dst)); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	n = check(t, "rerun", n)

	dst2 := dstServer.AddUser(t)
	sp := proxytest.New(t, tp.addr())
	dp := proxytest.New(t, dstServer.TLSAddr)
	cfg := testConfig(t, via(viaTap, sp), via(dst2, dp))
	cfg.MaxRetries = 10
	res, err = copyWithCuts(t, cfg, sp, dp, rand.New(rand.NewPCG(14, 1)), 6, 200_000)
	if err != nil || !res.Complete() {
		t.Fatalf("copy with cuts: %v (%+v)", err, res)
	}
	t.Logf("connections cut: source %d, destination %d", sp.Stats().Cuts, dp.Stats().Cuts)
	check(t, "copy with cuts", n)
	mustCheck(t, src, dst2, imaptest.CheckOptions{})
}

// TestReadOnlyProblems checks the command classifier on what it must refuse.
func TestReadOnlyProblems(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want bool // a problem
	}{
		{"a1 EXAMINE INBOX", false},
		{"a2 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])", false},
		{"a3 FETCH 1 (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] RFC822.HEADER)", false},
		{"a4 SELECT INBOX", true},
		{"a5 UID FETCH 1 (BODY[])", true},
		{"a6 FETCH 1 RFC822", true},
		{"a7 FETCH 1 (RFC822.TEXT)", true},
		{"a8 UID FETCH 1 (BINARY[1])", true},
		{"a9 UID STORE 1 +FLAGS (\\Seen)", true},
		{"a10 APPEND INBOX {3}", true},
		{"a11 UID EXPUNGE 1", true},
		{"a12 CREATE x", true},
	} {
		if got := len(readOnlyProblems([]string{tc.cmd})) > 0; got != tc.want {
			t.Errorf("readOnlyProblems(%q) problem = %v, want %v", tc.cmd, got, tc.want)
		}
	}
	got := splitCommands([]byte("a1 LOGIN {4}\r\nuser {6}\r\nsecret\r\na2 AUTHENTICATE PLAIN\r\nAGFhAGI=\r\na3 NOOP\r\na4 FET"))
	want := []string{"a1 LOGIN {4} {6}", "a2 AUTHENTICATE PLAIN", "a3 NOOP"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("splitCommands = %q, want %q", got, want)
	}
}
