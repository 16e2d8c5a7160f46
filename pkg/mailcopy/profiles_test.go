package mailcopy_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/providers"
)

// profileCases are the providers' profiles (pkg/imaptest ProfileProxy in front of a
// Dovecot), each on the source side and on the destination side of a copy with a
// plain Dovecot on the other.
var profileCases = []struct {
	name    string
	profile imaptest.Profile
	// preset is the built-in provider preset whose handling says it is this
	// profile ("other": none); its limits and handling configure the copy.
	preset string
	// flavour of the Dovecot behind the proxy; the other side is FlavourSlash.
	flavour imaptest.Flavour
}{
	{"gmail", imaptest.ProfileGmail, "gmail", imaptest.FlavourSlash},
	{"m365", imaptest.ProfileM365, "microsoft365", imaptest.FlavourSlash},
	{"yahoo", imaptest.ProfileYahoo, "yahoo", imaptest.FlavourSlash},
	// Courier-like: "." and "INBOX.", special folders known by their names only
	// ("INBOX.Sent Messages", "INBOX.Deleted Messages", "INBOX.Spam").
	{"old-server", imaptest.ProfileOldServer, "other", imaptest.FlavourDot},
}

// TestProfilePresets: the presets describe what the profiles reproduce: the
// connection cap and the throttling answer.
func TestProfilePresets(t *testing.T) {
	for _, pc := range profileCases {
		p, ok := providers.Builtin().Get(pc.preset)
		if !ok {
			t.Fatalf("no preset %q", pc.preset)
		}
		if pc.preset != "other" && p.Handling.Profile != pc.name {
			t.Errorf("%s: handling profile %q, want %q", pc.preset, p.Handling.Profile, pc.name)
		}
		if p.Limits.MaxConnections != pc.profile.MaxConnections {
			t.Errorf("%s: %d connections, the profile %d", pc.preset, p.Limits.MaxConnections, pc.profile.MaxConnections)
		}
		if p.Handling.ThrottleAnswer != pc.profile.ThrottleReply {
			t.Errorf("%s: throttle answer %q, the profile %q", pc.preset, p.Handling.ThrottleAnswer, pc.profile.ThrottleReply)
		}
		if !slices.Equal(p.Handling.ExtraCaps, pc.profile.AddCaps) {
			t.Errorf("%s: extra capabilities %q, the profile %q", pc.preset, p.Handling.ExtraCaps, pc.profile.AddCaps)
		}
		if p.Handling.SessionCutAnswer != pc.profile.CutReply {
			t.Errorf("%s: session cut answer %q, the profile %q", pc.preset, p.Handling.SessionCutAnswer, pc.profile.CutReply)
		}
	}
}

// TestProfiles copies a generated mailbox from and to each provider profile: the copy
// completes (throttling refusals are waited out, BYEs mid-session resumed), the
// checker finds every message once and intact, a rerun appends nothing, and the
// proxy never saw more connections at once than the profile's cap (none refused).
func TestProfiles(t *testing.T) {
	for i, pc := range profileCases {
		for _, side := range []string{"source", "destination"} {
			t.Run(pc.name+" as "+side, func(t *testing.T) {
				t.Parallel()
				d := servers[pc.flavour]
				other := servers[imaptest.FlavourSlash]
				var src, dst imapconn.Account
				if side == "source" {
					src, dst = d.AddUser(t), other.AddUser(t)
				} else {
					src, dst = other.AddUser(t), d.AddUser(t)
				}
				mb := imaptest.Generate(int64(700+i), imaptest.Spec{Count: 150})
				mustLoad(t, src, mb)
				px := d.ProfileProxy(t, pc.profile)
				copySrc, copyDst := src, dst
				if side == "source" {
					copySrc = px.Account(src)
				} else {
					copyDst = px.Account(dst)
				}
				cfg := testConfig(t, copySrc, copyDst)
				preset, _ := providers.Builtin().Get(pc.preset)
				cfg.Connections = preset.Limits.MaxConnections // 0: the default
				if side == "destination" {
					cfg.NoMultiappend = preset.Handling.NoMultiappend
				} else {
					cfg.Provider = pc.preset
				}
				cfg.ThrottleBackoff = 300 * time.Millisecond
				// A clock that stands still: a throttled folder's ThrottledUntil
				// is exactly now plus the wait chosen.
				base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
				cfg.Now = func() time.Time { return base }
				var mu sync.Mutex
				waits := map[time.Duration]bool{}
				cfg.Progress = func(p mailcopy.Progress) {
					if !p.ThrottledUntil.IsZero() {
						mu.Lock()
						waits[p.ThrottledUntil.Sub(base)] = true
						mu.Unlock()
					}
				}
				res := mustCopy(t, cfg)
				if !res.Complete() || res.Totals.Copied != mb.Count() {
					t.Errorf("copy: totals %+v, failures %+v, failed folders %+v; want %d copied",
						res.Totals, res.Failures, res.FailedFolders(), mb.Count())
				}
				mustCheck(t, src, dst, imaptest.CheckOptions{})

				cfg.NoReport = true
				again := mustCopy(t, cfg)
				if again.Totals.Copied != 0 || again.Totals.Present != mb.Count() {
					t.Errorf("rerun: totals %+v, want 0 copied, %d present", again.Totals, mb.Count())
				}
				checkProfileStats(t, pc.profile, px.Stats())
				mu.Lock()
				defer mu.Unlock()
				t.Logf("throttled waits: %v", waits)
				if px.Stats().Throttled > 0 {
					// The first wait is the server's suggestion (M365: 2 s), or
					// the configured back-off when it suggests none (Gmail).
					want := cfg.ThrottleBackoff
					if pc.profile.ThrottleReply == imaptest.M365Throttled {
						want = 2 * time.Second
					}
					if !waits[want] {
						t.Errorf("throttled waits %v, want one of %v", waits, want)
					}
				}
			})
		}
	}
}

func checkProfileStats(t *testing.T, p imaptest.Profile, s imaptest.ProfileStats) {
	t.Helper()
	t.Logf("proxy: %+v", s)
	if s.Refused > 0 || p.MaxConnections > 0 && s.Peak > p.MaxConnections {
		t.Errorf("connections: peak %d, %d refused; the cap is %d", s.Peak, s.Refused, p.MaxConnections)
	}
	if p.ThrottleEvery > 0 && s.Throttled == 0 {
		t.Errorf("no command was throttled: the test did not test it")
	}
	if p.ByeAfter > 0 && s.Byes == 0 {
		t.Errorf("no session was cut: the test did not test it")
	}
}

// TestThrottledForever: a server that throttles every command is waited out
// MaxThrottles times in a row, then the copy stops with a temporary failure (the
// caller retries later), no message listed as refused.
func TestThrottledForever(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	mustLoad(t, src, imaptest.Generate(790, imaptest.Spec{Count: 10, Folders: -1}))
	p := imaptest.ProfileM365
	p.ThrottleEvery, p.MaxThrottles, p.ByeAfter = 1, 0, 0
	p.ThrottleReply = imaptest.GmailBandwidth
	px := d.ProfileProxy(t, p)
	cfg := testConfig(t, src, px.Account(dst))
	cfg.ThrottleBackoff = 10 * time.Millisecond
	cfg.MaxThrottles = 2
	res, err := mailcopy.Copy(testContext(t), cfg)
	if err == nil || mailcopy.KindOf(err) != mailcopy.KindTemporary {
		t.Fatalf("Copy: %v (kind %v), want a temporary failure", err, mailcopy.KindOf(err))
	}
	if res != nil && len(res.Failures) > 0 {
		t.Errorf("messages listed as refused: %+v", res.Failures)
	}
	if s := px.Stats(); s.Throttled < 3 {
		t.Errorf("stats %+v, want at least 3 throttled", s)
	}
}

// TestThrottledBodyFetch: a body FETCH refused for throttling (the second FETCH:
// the first reads the metadata) is waited out like any throttling answer, not
// retried at once as a message the source did not send.
func TestThrottledBodyFetch(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	mustLoad(t, src, inbox(msg("a", "a@example.com", 800, baseDate), msg("b", "b@example.com", 900, baseDate)))
	px := d.ProfileProxy(t, imaptest.Profile{ThrottleEvery: 2, ThrottleReply: imaptest.GmailBandwidth, MaxThrottles: 1})
	cfg := testConfig(t, px.Account(src), dst)
	cfg.Connections = 1
	cfg.ThrottleBackoff = 50 * time.Millisecond
	var mu sync.Mutex
	var throttled bool
	cfg.Progress = func(p mailcopy.Progress) {
		mu.Lock()
		defer mu.Unlock()
		throttled = throttled || !p.ThrottledUntil.IsZero()
	}
	res := mustCopy(t, cfg)
	if !res.Complete() || res.Totals.Copied != 2 {
		t.Errorf("totals %+v, want 2 copied", res.Totals)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
	mu.Lock()
	defer mu.Unlock()
	if s := px.Stats(); s.Throttled != 1 || !throttled {
		t.Errorf("proxy %+v, a wait shown: %v; want 1 throttled and waited out", s, throttled)
	}
}
