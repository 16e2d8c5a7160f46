package mailcopy_test

import (
	"bytes"
	"testing"
	"time"

	"imapcopy.dev/pkg/imaptest"
)

// twinMarker is in the body of the destination's own message that shares its
// Message-ID with a source message but not its bytes.
const twinMarker = "a different message with the same Message-ID"

func twinMessage(body string) []byte {
	return []byte("Message-ID: <twin-15@example.test>\r\nFrom: a@example.test\r\nTo: b@example.test\r\n" +
		"Subject: twin\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\n" + body + "\r\n")
}

// TestM365SizeLies: a server that reports RFC822.SIZE bigger than the message
// it sends (Exchange reports the size of its own MIME conversion), on the
// source side and on the destination side. The copy passes the checker; a
// rerun finds every message present and appends nothing (before matchSizes, it
// appended every such message again); a destination message with the same
// Message-ID as a source message and other bytes does not stand for it: the
// source message is copied.
func TestM365SizeLies(t *testing.T) {
	for i, side := range []string{"source", "destination"} {
		t.Run(side, func(t *testing.T) {
			t.Parallel()
			d := servers[imaptest.FlavourSlash]
			src, dst := d.AddUser(t), d.AddUser(t)
			mb := imaptest.Generate(int64(1500+i), imaptest.Spec{Count: 60, Folders: 2})
			mustLoad(t, src, mb)
			ctx := testContext(t)
			date := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
			if _, err := imaptest.AppendRaw(ctx, src, "INBOX", twinMessage("the source's message"), date); err != nil {
				t.Fatal(err)
			}
			if _, err := imaptest.AppendRaw(ctx, dst, "INBOX", twinMessage(twinMarker+", longer than the source's"), date); err != nil {
				t.Fatal(err)
			}
			p := imaptest.Profile{Name: "m365-sizes", SizeLie: 7, SizeLieEvery: 3}
			px := d.ProfileProxy(t, p)
			copySrc, copyDst := src, dst
			if side == "source" {
				copySrc = px.Account(src)
			} else {
				copyDst = px.Account(dst)
			}
			cfg := testConfig(t, copySrc, copyDst)
			res := mustCopy(t, cfg)
			want := mb.Count() + 1
			if !res.Complete() || res.Totals.Copied != want {
				t.Errorf("copy: totals %+v, failures %+v; want %d copied", res.Totals, res.Failures, want)
			}
			ignore := func(folder string, raw []byte) bool {
				return isReport(folder, raw) || bytes.Contains(raw, []byte(twinMarker))
			}
			mustCheck(t, src, dst, imaptest.CheckOptions{IgnoreDest: ignore})

			cfg.NoReport = true
			for run := 1; run <= 2; run++ {
				again := mustCopy(t, cfg)
				if again.Totals.Copied != 0 || again.Totals.Present != want {
					t.Errorf("rerun %d: totals %+v, want 0 copied, %d present", run, again.Totals, want)
				}
			}
			mustCheck(t, src, dst, imaptest.CheckOptions{IgnoreDest: ignore})
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
