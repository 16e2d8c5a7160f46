package mailcopy_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// One Dovecot and one Cyrus per flavour for the package; every test has its own users.
var (
	servers      = map[imaptest.Flavour]*imaptest.Dovecot{}
	cyrusServers = map[imaptest.Flavour]*imaptest.Cyrus{}
	// courierServer is the package's Courier-IMAP.
	courierServer *imaptest.Courier
)

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		// A fuzzing worker process runs only the fuzz target, and the package's
		// fuzz targets (FuzzIdentity, FuzzDiffTwins) need no server: five servers
		// per worker would only slow them down and add ways to fail.
		os.Exit(m.Run())
	}
	for _, f := range []imaptest.Flavour{imaptest.FlavourSlash, imaptest.FlavourDot} {
		d, err := imaptest.Start(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mailcopy tests need Dovecot:", err)
			os.Exit(1)
		}
		servers[f] = d
		c, err := imaptest.RunCyrus(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mailcopy tests need Cyrus:", err)
			os.Exit(1)
		}
		cyrusServers[f] = c
	}
	c, err := imaptest.RunCourier()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailcopy tests need Courier-IMAP:", err)
		os.Exit(1)
	}
	courierServer = c
	code := m.Run()
	courierServer.Close()
	for _, d := range servers {
		d.Close()
	}
	for _, c := range cyrusServers {
		c.Close()
	}
	os.Exit(code)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testCommitSettle is the tests' Config.CommitSettle: the local Dovecot
// commits an APPEND it received whole within milliseconds of the client's end.
const testCommitSettle = 300 * time.Millisecond

// testConfig is a Config for the two accounts with quick reconnects, a short
// commit settle and the engine's log in the test's output.
func testConfig(t *testing.T, src, dst imapconn.Account) mailcopy.Config {
	return mailcopy.Config{
		Source: src, Destination: dst,
		RetryBackoff: 20 * time.Millisecond,
		CommitSettle: testCommitSettle,
		Logger:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// isReport tells the checker to ignore the copy's report message.
func isReport(_ string, raw []byte) bool {
	head := raw
	if end := bytes.Index(raw, []byte("\r\n\r\n")); end >= 0 {
		head = raw[:end+2]
	}
	return bytes.Contains(head, []byte("\r\n"+mailcopy.ReportHeader+": 1\r\n"))
}

func mustLoad(t *testing.T, acct imapconn.Account, mb imaptest.Mailbox) {
	t.Helper()
	if err := imaptest.Load(testContext(t), acct, mb); err != nil {
		t.Fatalf("load: %v", err)
	}
}

func mustSnapshot(t *testing.T, acct imapconn.Account) *imaptest.Snapshot {
	t.Helper()
	s, err := imaptest.TakeSnapshot(testContext(t), acct)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s
}

func mustCheck(t *testing.T, src, dst imapconn.Account, opts imaptest.CheckOptions) {
	t.Helper()
	if opts.IgnoreDest == nil {
		opts.IgnoreDest = isReport
	}
	res, err := imaptest.Check(testContext(t), src, dst, opts)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if !res.OK() {
		t.Errorf("check: %s", res)
	}
}

func mustCopy(t *testing.T, cfg mailcopy.Config) *mailcopy.Result {
	t.Helper()
	res, err := mailcopy.Copy(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	return res
}
