package mailcopy_test

import (
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

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

	tp := imaptest.NewTap(t, srcServer.PlainAddr)
	viaTap := srcServer.Plaintext(src)
	host, port, _ := net.SplitHostPort(tp.Addr())
	viaTap.Host = host
	viaTap.Port, _ = strconv.Atoi(port)

	check := func(t *testing.T, phase string, from int) int {
		t.Helper()
		cmds := tp.Commands()
		got := cmds[from:]
		for _, p := range imaptest.ReadOnlyProblems(got) {
			t.Errorf("%s: %s", phase, p)
		}
		verbs := map[string]int{}
		for _, c := range got {
			v, _ := imaptest.Verb(c)
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
	sp := proxytest.New(t, tp.Addr())
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
		if got := len(imaptest.ReadOnlyProblems([]string{tc.cmd})) > 0; got != tc.want {
			t.Errorf("ReadOnlyProblems(%q) problem = %v, want %v", tc.cmd, got, tc.want)
		}
	}
	got := imaptest.SplitCommands([]byte("a1 LOGIN {4}\r\nuser {6}\r\nsecret\r\na2 AUTHENTICATE PLAIN\r\nAGFhAGI=\r\na3 NOOP\r\na4 FET"))
	want := []string{"a1 LOGIN {4} {6}", "a2 AUTHENTICATE PLAIN", "a3 NOOP"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("SplitCommands = %q, want %q", got, want)
	}
}
