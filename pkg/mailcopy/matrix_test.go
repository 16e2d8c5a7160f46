package mailcopy_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/proxytest"
)

// testServer is one of the package's servers: a Dovecot or a Cyrus of a flavour,
// or the Courier (always Maildir++: ".", "INBOX.").
type testServer struct {
	name    string
	flavour imaptest.Flavour
	cyrus   bool
	courier bool
}

func (s testServer) addUser(t *testing.T) imapconn.Account {
	if s.courier {
		return courierServer.AddUser(t)
	}
	if s.cyrus {
		return cyrusServers[s.flavour].AddUser(t)
	}
	return servers[s.flavour].AddUser(t)
}

// specialUse maps a special-use attribute to the folder that carries it (none on
// Courier, which has no SPECIAL-USE).
func (s testServer) specialUse() map[string]string {
	switch {
	case s.courier:
		return nil
	case s.cyrus:
		return cyrusServers[s.flavour].SpecialUse
	}
	return servers[s.flavour].SpecialUse
}

// courierSpecial are the folders of a Courier user that the engine recognises by
// their names, Courier having no SPECIAL-USE.
var courierSpecial = map[string]string{
	`\Sent`: "INBOX.Sent", `\Drafts`: "INBOX.Drafts", `\Trash`: "INBOX.Trash", `\Junk`: "INBOX.Junk",
}

func (s testServer) tlsAddr() string {
	if s.courier {
		return courierServer.TLSAddr
	}
	if s.cyrus {
		return cyrusServers[s.flavour].TLSAddr
	}
	return servers[s.flavour].TLSAddr
}

var (
	dovecotSlash = testServer{name: "dovecot slash", flavour: imaptest.FlavourSlash}
	dovecotDot   = testServer{name: "dovecot dot", flavour: imaptest.FlavourDot}
	cyrusSlash   = testServer{name: "cyrus slash", flavour: imaptest.FlavourSlash, cyrus: true}
	cyrusDot     = testServer{name: "cyrus dot", flavour: imaptest.FlavourDot, cyrus: true}
	courier      = testServer{name: "courier", flavour: imaptest.FlavourDot, courier: true}
)

// serverPairs are the source/destination pairs with Cyrus or Courier on one side or
// both: every ordered pair of the three server families (Dovecot to Dovecot is
// TestCopy's and TestFaults'), each namespace flavour on each side at least once.
var serverPairs = []struct{ src, dst testServer }{
	{dovecotSlash, cyrusSlash},
	{dovecotDot, cyrusDot},
	{cyrusSlash, dovecotDot},
	{cyrusDot, cyrusSlash},
	{dovecotSlash, courier},
	{courier, dovecotDot},
	{cyrusDot, courier},
	{courier, cyrusSlash},
	{courier, courier},
}

// TestServerPairs copies a generated mailbox (nested and non-ASCII folders,
// special-use folders, raw 8-bit headers, messages without Message-ID, identical
// duplicates, keywords) between every pair of Dovecot and Cyrus: the checker finds
// every message once, byte-identical (Cyrus as a destination stores raw 8-bit header
// bytes as 'X'), the source is unchanged, and a rerun appends nothing. Then, after
// more messages arrive on the source, a copy whose connections are cut at random
// places completes and the checker passes again.
func TestServerPairs(t *testing.T) {
	for i, pair := range serverPairs {
		t.Run(pair.src.name+" to "+pair.dst.name, func(t *testing.T) {
			t.Parallel()
			src, dst := pair.src.addUser(t), pair.dst.addUser(t)
			check := imaptest.CheckOptions{Munged8bitHeaders: pair.dst.cyrus}
			if pair.src.courier {
				// Courier's Sent, Drafts, Trash and Junk, found by their names, go to
				// the destination's special-use folders (the checker knows them by
				// their attributes only).
				check.FolderMap = map[string]string{}
				for use, name := range courierSpecial {
					if to, ok := pair.dst.specialUse()[use]; ok {
						check.FolderMap[name] = to
					}
				}
			}
			mb := imaptest.Generate(int64(500+i), imaptest.Spec{Count: 100})
			mustLoad(t, src, mb)
			srcSnap := mustSnapshot(t, src)

			res := mustCopy(t, testConfig(t, src, dst))
			if !res.Complete() || res.Totals.Copied != mb.Count() {
				t.Errorf("first copy: totals %+v, failures %+v, failed folders %+v; want %d copied", res.Totals, res.Failures, res.FailedFolders(), mb.Count())
			}
			mustCheck(t, src, dst, check)
			if err := srcSnap.Unchanged(testContext(t), src); err != nil {
				t.Errorf("source changed: %v", err)
			}

			dstSnap := mustSnapshot(t, dst)
			cfg := testConfig(t, src, dst)
			cfg.NoReport = true
			again := mustCopy(t, cfg)
			if again.Totals.Copied != 0 || again.Totals.Present != mb.Count() {
				t.Errorf("rerun: totals %+v, want 0 copied, %d present", again.Totals, mb.Count())
			}
			if err := dstSnap.Unchanged(testContext(t), dst); err != nil {
				t.Errorf("rerun changed the destination: %v", err)
			}
			// Cyrus rewrote the raw 8-bit header bytes of the Dovecot source's
			// messages: the rerun says so. A Cyrus source has none left.
			if rewrites := pair.dst.cyrus && !pair.src.cyrus; rewrites != (len(again.Altered) > 0) {
				t.Errorf("rerun: %d messages reported altered by the destination, want some: %v", len(again.Altered), rewrites)
			}
			for _, a := range again.Altered {
				if !strings.Contains(a.Reason, "8-bit") {
					t.Errorf("rerun: altered %+v, want the 8-bit rewrite", a)
					break
				}
			}

			// More mail on the source, copied through connections cut mid-transfer.
			more := imaptest.Generate(int64(600+i), imaptest.Spec{Count: 100})
			mustLoad(t, src, more)
			sp := proxytest.New(t, pair.src.tlsAddr())
			dp := proxytest.New(t, pair.dst.tlsAddr())
			cfg = testConfig(t, via(src, sp), via(dst, dp))
			cfg.NoReport = true
			cfg.MaxRetries = 10
			rng := rand.New(rand.NewPCG(uint64(i), 15))
			cut, err := copyWithCuts(t, cfg, sp, dp, rng, 4, 200_000)
			t.Logf("connections cut: source %d, destination %d", sp.Stats().Cuts, dp.Stats().Cuts)
			if err != nil {
				t.Fatalf("copy with cuts: %v", err)
			}
			if !cut.Complete() || cut.Totals.Copied != more.Count() {
				t.Errorf("copy with cuts: totals %+v, want %d copied", cut.Totals, more.Count())
			}
			mustCheck(t, src, dst, check)
		})
	}
}
