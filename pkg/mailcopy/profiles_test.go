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
		if p.OAuth2Only != pc.profile.PasswordRefused {
			t.Errorf("%s: oauth2_only %v, the profile refuses passwords: %v", pc.preset, p.OAuth2Only, pc.profile.PasswordRefused)
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
					copySrc = px.Account(oauthIf(d, src, pc.profile.PasswordRefused))
				} else {
					copyDst = px.Account(oauthIf(d, dst, pc.profile.PasswordRefused))
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

// oauthIf returns acct logging in with an OAuth2 token instead of its password
// when the profile refuses passwords.
func oauthIf(d *imaptest.Dovecot, acct imapconn.Account, refused bool) imapconn.Account {
	if refused {
		acct.Password, acct.OAuth2Token = "", d.OAuth2Token(acct.Login)
	}
	return acct
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
	if p.SizeLie > 0 && s.Sizes == 0 {
		t.Errorf("no size was misreported: the test did not test it")
	}
	if s.Logins > 0 {
		t.Errorf("%d password logins refused: the copy should have used its token", s.Logins)
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
	p.ThrottleEvery, p.MaxThrottles, p.ByeAfter, p.PasswordRefused = 1, 0, 0, false
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

// TestThrottledBodyFetch: a source that throttles the FETCH of the bodies (every
// second FETCH: the metadata pass goes through, its bodies do not, twice) makes
// the folder wait as the server asks and says so in the progress; the messages
// are not taken for gone, none is listed as failed, and the copy completes.
func TestThrottledBodyFetch(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	var inbox imaptest.Folder
	inbox.Name = "INBOX"
	for _, f := range imaptest.Generate(791, imaptest.Spec{Count: 10, Folders: -1}).Folders {
		inbox.Messages = append(inbox.Messages, f.Messages...)
	}
	mb := imaptest.Mailbox{Folders: []imaptest.Folder{inbox}}
	mustLoad(t, src, mb)
	px := d.ProfileProxy(t, imaptest.Profile{Name: "throttled-bodies",
		ThrottleEvery: 2, MaxThrottles: 2,
		ThrottleReply: "NO [THROTTLED] Request is throttled. Suggested Backoff Time: 200 milliseconds"})
	cfg := testConfig(t, px.Account(src), dst)
	cfg.Include = []string{"INBOX"} // not the server's empty special-use folders
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg.Now = func() time.Time { return base }
	var mu sync.Mutex
	var waits []time.Duration
	cfg.Progress = func(p mailcopy.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if !p.ThrottledUntil.IsZero() {
			waits = append(waits, p.ThrottledUntil.Sub(base))
		}
	}
	res := mustCopy(t, cfg)
	if !res.Complete() || res.Totals.Copied != mb.Count() || len(res.Failures) > 0 {
		t.Errorf("copy: totals %+v, failures %+v; want %d copied, none failed", res.Totals, res.Failures, mb.Count())
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
	if s := px.Stats(); s.Throttled != 2 {
		t.Errorf("proxy %+v, want 2 commands throttled", s)
	}
	mu.Lock()
	defer mu.Unlock()
	// The server's suggestion, then twice that for the second refusal in a row.
	if !slices.Contains(waits, 200*time.Millisecond) || !slices.Contains(waits, 400*time.Millisecond) {
		t.Errorf("throttled waits %v, want 200ms and 400ms", waits)
	}
}

// TestThrottledReport: a throttled command outside any folder (here the report's
// APPEND, the copy having no folder to copy) is waited out as the server asks and
// shown in the progress, as a folder's is.
func TestThrottledReport(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	px := d.ProfileProxy(t, imaptest.Profile{Name: "throttled-report",
		ThrottleEvery: 1, MaxThrottles: 1,
		ThrottleReply: "NO [THROTTLED] Request is throttled. Suggested Backoff Time: 200 milliseconds"})
	cfg := testConfig(t, src, px.Account(dst))
	cfg.Include = []string{"No such folder"}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg.Now = func() time.Time { return base }
	var mu sync.Mutex
	var waits []time.Duration
	cfg.Progress = func(p mailcopy.Progress) {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, p.ThrottledUntil.Sub(base))
	}
	res := mustCopy(t, cfg)
	if !res.Complete() || !res.Report {
		t.Errorf("copy: %+v, want complete with its report", res)
	}
	if s := px.Stats(); s.Throttled != 1 {
		t.Errorf("proxy %+v, want the report's APPEND throttled once", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(waits, 200*time.Millisecond) {
		t.Errorf("throttled until (from the start) %v, want 200ms among them", waits)
	}
}

// TestFewerConnectionsThanConfigured: a server that takes fewer connections than
// Connections (a real Dovecot whose mail_max_userip_connections is 2, as the
// destination; a proxy whose cap is 2, as the source) gets the copy done with the
// connections it takes: the workers it turns away leave and give their folder to the
// others, instead of retrying until their folders fail.
func TestFewerConnectionsThanConfigured(t *testing.T) {
	t.Parallel()
	capped := imaptest.StartDovecot(t, imaptest.FlavourSlash, imaptest.WithMaxConnections(2))
	for _, side := range []string{"source", "destination"} {
		t.Run(side, func(t *testing.T) {
			t.Parallel()
			d := servers[imaptest.FlavourSlash]
			src, dst := d.AddUser(t), capped.AddUser(t)
			var px *imaptest.ProfileProxy
			copySrc := src
			if side == "source" {
				dst = d.AddUser(t)
				px = d.ProfileProxy(t, imaptest.Profile{Name: "cap 2", MaxConnections: 2})
				copySrc = px.Account(src)
			}
			mb := imaptest.Generate(794, imaptest.Spec{Count: 60})
			mustLoad(t, src, mb)
			cfg := testConfig(t, copySrc, dst)
			cfg.Connections = 4
			res := mustCopy(t, cfg)
			if !res.Complete() || res.Totals.Copied != mb.Count() {
				t.Errorf("copy: totals %+v, failed folders %+v; want %d copied", res.Totals, res.FailedFolders(), mb.Count())
			}
			mustCheck(t, src, dst, imaptest.CheckOptions{})
			if px != nil {
				if s := px.Stats(); s.Peak > 2 || s.Refused == 0 {
					t.Errorf("proxy %+v: want some connections refused and at most 2 at once", s)
				}
			}
		})
	}
}
