package mailcopy_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// twinMarker is in the body of the destination's own message that shares its
// Message-ID with a source message but not its bytes.
const twinMarker = "a different message with the same Message-ID"

func twinMessage(body string) []byte {
	return []byte("Message-ID: <twin-15@example.test>\r\nFrom: a@example.test\r\nTo: b@example.test\r\n" +
		"Subject: twin\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\n" + body + "\r\n")
}

// noCRLF is a message whose last line has no line end: Courier stores it with
// a CRLF added.
var noCRLF = []byte("Message-ID: <nocrlf-15@example.test>\r\nFrom: a@example.test\r\nSubject: no line end\r\n" +
	"Date: Mon, 2 Mar 2026 11:00:00 +0000\r\n\r\nthe last line has no line end")

// TestM365SizeLies: a server that reports RFC822.SIZE bigger than the message
// it sends (Exchange reports the size of its own MIME conversion), on the
// source side and on the destination side, and a misreporting source onto
// Courier-IMAP (which adds a CRLF to a message whose last line has none). The
// copy passes the checker; a rerun finds every message present and appends
// nothing (before matchSizes, it appended every such message again); a
// destination message with the same Message-ID as a source message and other
// bytes does not stand for it: the source message is copied.
func TestM365SizeLies(t *testing.T) {
	for i, tc := range []struct {
		name    string
		m365Src bool
		courier bool // the destination is Courier-IMAP
	}{
		{"source", true, false},
		{"destination", false, false},
		{"source onto courier", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := servers[imaptest.FlavourSlash]
			src, dst := d.AddUser(t), d.AddUser(t)
			if tc.courier {
				dst = courierServer.AddUser(t)
			}
			mb := imaptest.Generate(int64(1500+i), imaptest.Spec{Count: 60, Folders: 2})
			mustLoad(t, src, mb)
			ctx := testContext(t)
			date := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
			for _, raw := range [][]byte{twinMessage("the source's message"), noCRLF} {
				if _, err := imaptest.AppendRaw(ctx, src, "INBOX", raw, date); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := imaptest.AppendRaw(ctx, dst, "INBOX", twinMessage(twinMarker+", longer than the source's"), date); err != nil {
				t.Fatal(err)
			}
			p := imaptest.Profile{Name: "m365-sizes", SizeLie: 7, SizeLieEvery: 3}
			if tc.courier {
				p.SizeLieEvery = 1 // noCRLF among them
			}
			px := d.ProfileProxy(t, p)
			copySrc, copyDst := src, dst
			if tc.m365Src {
				copySrc = px.Account(src)
			} else {
				copyDst = px.Account(dst)
			}
			cfg := testConfig(t, copySrc, copyDst)
			res := mustCopy(t, cfg)
			want := mb.Count() + 2
			if !res.Complete() || res.Totals.Copied != want {
				t.Errorf("copy: totals %+v, failures %+v; want %d copied", res.Totals, res.Failures, want)
			}
			check := imaptest.CheckOptions{IgnoreDest: func(folder string, raw []byte) bool {
				return isReport(folder, raw) || bytes.Contains(raw, []byte(twinMarker)) ||
					tc.courier && bytes.Equal(raw, append(slices.Clip(noCRLF), "\r\n"...))
			}}
			if tc.courier {
				// Stored with a CRLF added: the checker compares bytes.
				check.AllowMissing = func(_ string, size int64) bool { return size == int64(len(noCRLF)) }
			}
			mustCheck(t, src, dst, check)

			cfg.NoReport = true
			for run := 1; run <= 2; run++ {
				again := mustCopy(t, cfg)
				if again.Totals.Copied != 0 || again.Totals.Present != want {
					t.Errorf("rerun %d: totals %+v, want 0 copied, %d present", run, again.Totals, want)
				}
			}
			mustCheck(t, src, dst, check)
			if s := px.Stats(); s.Sizes == 0 {
				t.Errorf("proxy %+v: no size was misreported, the test did not test it", s)
			}
		})
	}
}

// TestM365SizeLiesBothSides: both servers misreport (Exchange to Exchange), by
// different amounts: a rerun appends nothing.
func TestM365SizeLiesBothSides(t *testing.T) {
	t.Parallel()
	d := servers[imaptest.FlavourSlash]
	src, dst := d.AddUser(t), d.AddUser(t)
	mb := imaptest.Generate(1510, imaptest.Spec{Count: 40, Folders: -1})
	mustLoad(t, src, mb)
	srcPx := d.ProfileProxy(t, imaptest.Profile{Name: "m365-src", SizeLie: 5, SizeLieEvery: 2})
	dstPx := d.ProfileProxy(t, imaptest.Profile{Name: "m365-dst", SizeLie: 11, SizeLieEvery: 3})
	cfg := testConfig(t, srcPx.Account(src), dstPx.Account(dst))
	res := mustCopy(t, cfg)
	if !res.Complete() || res.Totals.Copied != mb.Count() {
		t.Errorf("copy: totals %+v, failures %+v; want %d copied", res.Totals, res.Failures, mb.Count())
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
	cfg.NoReport = true
	again := mustCopy(t, cfg)
	if again.Totals.Copied != 0 || again.Totals.Present != mb.Count() {
		t.Errorf("rerun: totals %+v, want 0 copied, %d present", again.Totals, mb.Count())
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
	if srcPx.Stats().Sizes == 0 || dstPx.Stats().Sizes == 0 {
		t.Errorf("proxies %+v, %+v: a side misreported no size", srcPx.Stats(), dstPx.Stats())
	}
}

// TestM365OAuthOnly: a server that refuses passwords (`NO LOGIN failed.`, `NO
// AUTHENTICATE failed.`: Exchange Online with basic authentication off) and
// accepts XOAUTH2, on either side. The copy with a token passes the checker and
// its rerun appends nothing; the copy with the password fails at once with a
// login error that says to use an OAuth2 token, after one login attempt; a
// refused token is never in the error nor in the log.
func TestM365OAuthOnly(t *testing.T) {
	for i, side := range []string{"source", "destination"} {
		t.Run(side, func(t *testing.T) {
			t.Parallel()
			d := servers[imaptest.FlavourSlash]
			src, dst := d.AddUser(t), d.AddUser(t)
			mb := imaptest.Generate(int64(1520+i), imaptest.Spec{Count: 20, Folders: -1})
			mustLoad(t, src, mb)
			p := imaptest.Profile{Name: "m365-oauth", PasswordRefused: true}
			// via returns the copy's accounts with the given side's account
			// changed by f and reached through a fresh proxy.
			via := func(f func(a imapconn.Account) imapconn.Account) (imapconn.Account, imapconn.Account, *imaptest.ProfileProxy) {
				px := d.ProfileProxy(t, p)
				if side == "source" {
					return px.Account(f(src)), dst, px
				}
				return src, px.Account(f(dst)), px
			}
			withToken := func(a imapconn.Account) imapconn.Account {
				a.Password, a.OAuth2Token = "", d.OAuth2Token(a.Login)
				return a
			}
			s, ds, px := via(withToken)
			cfg := testConfig(t, s, ds)
			res := mustCopy(t, cfg)
			if !res.Complete() || res.Totals.Copied != mb.Count() {
				t.Errorf("copy with a token: totals %+v, failures %+v; want %d copied", res.Totals, res.Failures, mb.Count())
			}
			mustCheck(t, src, dst, imaptest.CheckOptions{})
			cfg.NoReport = true
			if again := mustCopy(t, cfg); again.Totals.Copied != 0 || again.Totals.Present != mb.Count() {
				t.Errorf("rerun with a token: totals %+v, want 0 copied", again.Totals)
			}
			if st := px.Stats(); st.Logins != 0 {
				t.Errorf("proxy %+v: a password login was tried with a token", st)
			}

			const canary = "imaptest-canary-token-5c1d"
			for _, tc := range []struct {
				name string
				f    func(a imapconn.Account) imapconn.Account
				want string
				// logins: password logins the proxy refused.
				logins int
			}{
				{"password", func(a imapconn.Account) imapconn.Account { return a }, "give an OAuth2 access token", 1},
				{"refused token", func(a imapconn.Account) imapconn.Account {
					a.Password, a.OAuth2Token = "", canary
					return a
				}, "the server refused the OAuth2 token", 0},
			} {
				s, ds, px := via(tc.f)
				cfg := testConfig(t, s, ds)
				var log bytes.Buffer
				cfg.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
				_, err := mailcopy.Copy(testContext(t), cfg)
				t.Logf("%s: %v", tc.name, err)
				if err == nil || mailcopy.KindOf(err) != mailcopy.KindLogin || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: Copy: %v (kind %v), want a login failure saying %q", tc.name, err, mailcopy.KindOf(err), tc.want)
				}
				if st := px.Stats(); st.Logins != tc.logins || st.Connections != 1 {
					t.Errorf("%s: proxy %+v, want %d password logins refused on 1 connection", tc.name, st, tc.logins)
				}
				for _, secret := range []string{canary, src.Password, dst.Password} {
					if err != nil && strings.Contains(err.Error(), secret) || strings.Contains(log.String(), secret) {
						t.Errorf("%s: a secret is in the error or the log", tc.name)
					}
				}
			}
		})
	}
}

// TestM365FolderSeparators: Microsoft 365's separator is "/", a Courier-like
// server's is "." with the "INBOX." prefix. Folder names that hold the other
// side's separator ("v1.2" and "a.b" onto ".", "x/y" onto "/") keep their
// folders distinct in both directions: such a component has the separator
// replaced by "_" and is reported as a Rename (pkg/foldermap's documented
// mapping), a real child stays a child. The checker passes; a rerun creates no
// folder, renames the same way and appends nothing.
func TestM365FolderSeparators(t *testing.T) {
	m365 := servers[imaptest.FlavourSlash] // behind the M365 profile proxy
	dot := testServer{name: "dovecot dot", flavour: imaptest.FlavourDot}
	courier := testServer{name: "courier", courier: true}
	toDot := []string{"a", "a/b", "a.b", "a.b/c", "Releases", "Releases/v1.2"}
	toDotRenames := map[string]string{"a.b": "INBOX.a_b", "Releases/v1.2": "INBOX.Releases.v1_2"}
	toDotMoved := map[string]string{"a.b": "INBOX.a_b", "a.b/c": "INBOX.a_b.c", "Releases/v1.2": "INBOX.Releases.v1_2"}
	// Dovecot's "." flavour, Cyrus 3.6 with its "." and Courier-IMAP 5 all
	// refuse "/" in a name ("Invalid mailbox name"), so a "/" inside a "."
	// source's name is covered by pkg/foldermap's tests only
	// (TestMapDelimiterInName, TestMapRerun); from a "." server, the "."
	// hierarchy lands as "/" children and "_" names are kept.
	fromDot := []string{"INBOX.x", "INBOX.x.y", "INBOX.x_y", "INBOX.v1_2", "INBOX.v1_2.z"}
	for _, tc := range []struct {
		name    string
		other   testServer // the server on the other side
		m365Src bool       // the M365 side is the source (else the destination)
		// folders are created on the source with the server's names, one
		// message each; renames are the Renames expected (a folder whose
		// own name holds the destination's separator), moved the checker's
		// expected destination names (the renamed folders and their children).
		folders []string
		renames map[string]string
		moved   map[string]string
	}{
		{"m365 to dovecot dot", dot, true, toDot, toDotRenames, toDotMoved},
		{"m365 to courier", courier, true, toDot, toDotRenames, toDotMoved},
		{"dovecot dot to m365", dot, false, fromDot, map[string]string{}, nil},
		{"courier to m365", courier, false, fromDot, map[string]string{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, dst := m365.AddUser(t), tc.other.addUser(t)
			if !tc.m365Src {
				src, dst = dst, m365.AddUser(t)
			}
			ctx := testContext(t)
			for i, f := range tc.folders {
				if err := imaptest.CreateFolder(ctx, src, f); err != nil {
					t.Fatalf("create %q on the source: %v", f, err)
				}
				m := msg("in "+f, fmt.Sprintf("sep-%d@x", i), 600, baseDate)
				if _, err := imaptest.AppendRaw(ctx, src, f, m.Raw, m.InternalDate); err != nil {
					t.Fatalf("append to %q: %v", f, err)
				}
			}
			p := imaptest.ProfileM365
			p.ThrottleEvery, p.ByeAfter = 0, 0 // this test is about names
			var cfg mailcopy.Config
			if tc.m365Src {
				cfg = testConfig(t, m365.ProfileProxy(t, p).Account(oauthIf(m365, src, true)), dst)
			} else {
				cfg = testConfig(t, src, m365.ProfileProxy(t, p).Account(oauthIf(m365, dst, true)))
				cfg.NoMultiappend = true
			}
			res := mustCopy(t, cfg)
			if !res.Complete() || res.Totals.Copied != len(tc.folders) {
				t.Errorf("copy: totals %+v, failures %+v; want %d copied", res.Totals, res.Failures, len(tc.folders))
			}
			got := map[string]string{}
			for _, r := range res.Renames {
				got[r.Source] = r.Destination
			}
			if len(res.Collisions) != 0 || !maps.Equal(got, tc.renames) {
				t.Errorf("renames %v, collisions %+v; want renames %v and no collision", got, res.Collisions, tc.renames)
			}
			mustCheck(t, src, dst, imaptest.CheckOptions{FolderMap: tc.moved})
			before, err := imaptest.ListFolders(ctx, dst)
			if err != nil {
				t.Fatal(err)
			}

			cfg.NoReport = true
			again := mustCopy(t, cfg)
			if again.Totals.Copied != 0 || again.Totals.Present != len(tc.folders) {
				t.Errorf("rerun: totals %+v, want 0 copied, %d present", again.Totals, len(tc.folders))
			}
			for _, f := range again.Folders {
				if f.Created {
					t.Errorf("rerun created %q", f.Destination)
				}
			}
			after, err := imaptest.ListFolders(ctx, dst)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after))) {
				t.Errorf("rerun changed the destination's folders: %v, then %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
			}
			mustCheck(t, src, dst, imaptest.CheckOptions{FolderMap: tc.moved})
		})
	}
}
