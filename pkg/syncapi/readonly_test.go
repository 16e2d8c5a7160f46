package syncapi_test

import (
	"net"
	"strconv"
	"testing"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/syncapi"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// TestSourceReadOnlyThroughTheAPI: promise 1 of issue 14 for the api's own
// connections. A tap on the source's plain port records every command that
// TestAccount, PlanSync (a dry run of the whole mailbox) and StartSync's account
// tests send; none is outside the read-only set nor a FETCH that sets \Seen, and the
// source's flags, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and \Recent are unchanged.
func TestSourceReadOnlyThroughTheAPI(t *testing.T) {
	e := newEnv(t, "redis", withOptions(func(o *syncapi.Options) { o.AllowPlaintext = true }))
	src, dst := newUser(t), newUser(t)
	load(t, src.acct, smallMessages(14, 30))
	before, err := imaptest.TakeSnapshot(t.Context(), src.acct)
	if err != nil {
		t.Fatal(err)
	}
	tp := imaptest.NewTap(t, dovecot.PlainAddr)
	host, port, _ := net.SplitHostPort(tp.Addr())
	sa := src.proto()
	sa.Host, sa.Security = host, imapcopyv1.Security_SECURITY_PLAINTEXT
	p, _ := strconv.Atoi(port)
	sa.Port = uint32(p)
	req := &imapcopyv1.StartSyncRequest{Source: sa, Destination: dst.proto()}

	check := func(phase string, from int) int {
		t.Helper()
		cmds := tp.Commands()
		if len(cmds) == from {
			t.Errorf("%s: no command reached the source through the tap", phase)
		}
		for _, problem := range imaptest.ReadOnlyProblems(cmds[from:]) {
			t.Errorf("%s: %s", phase, problem)
		}
		verbs := map[string]int{}
		for _, c := range cmds[from:] {
			v, _ := imaptest.Verb(c)
			verbs[v]++
		}
		t.Logf("%s: %d commands reached the source: %v", phase, len(cmds)-from, verbs)
		if err := before.Unchanged(t.Context(), src.acct); err != nil {
			t.Errorf("%s: source changed: %v", phase, err)
		}
		return len(cmds)
	}

	resp, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: sa})
	if err != nil || !resp.GetOk() {
		t.Fatalf("TestAccount: %v %v", resp, err)
	}
	n := check("TestAccount", 0)
	if _, err := e.client.PlanSync(e.ctx(), req); err != nil {
		t.Fatalf("PlanSync: %v", err)
	}
	n = check("PlanSync", n)
	if _, err := e.client.StartSync(e.ctx(), req); err != nil {
		t.Fatalf("StartSync: %v", err)
	}
	check("StartSync", n)
}
