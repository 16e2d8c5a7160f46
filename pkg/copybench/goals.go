package copybench

import "fmt"

// The extra mailboxes whose figures the goals read (Config.Extra).
const (
	MailboxOneFolder = "one-folder"       // many small messages, all in INBOX
	MailboxOneSplit  = "one-folder-split" // MailboxOneFolder, the copier splitting the folder
	MailboxSpread    = "spread"           // the same messages over many folders
	MailboxRerun     = "rerun"            // a big mailbox copied once, then rerun
)

// The goals' targets (issue 12).
const (
	goalRSSMB        = 64   // peak RSS of one sync, MB
	goalVsMbsync     = 2.0  // imapcopy's speed over mbsync's, loopback and WAN
	goalWANOverLoop  = 1.3  // WAN time over the same copy's loopback time
	goalLinkShare    = 0.85 // share of a capped link's bandwidth
	goalOneFolder    = 0.80 // one folder's msg/s over the spread twin's
	goalRerunSeconds = 3.0  // rerun of the unchanged rerun mailbox
	goalRerunNewSecs = 4.0  // rerun after new messages
)

// Goal is one of the benchmark's targets, as this run measured it.
type Goal struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Target string `json:"target"`
	Met    bool   `json:"met"`
}

// goals reads the targets off the summaries; a goal whose runs did not happen is
// left out, and a goal is met only when the runs it reads were all checked OK.
func (res *Results) goals() []Goal {
	var out []Goal
	add := func(name, value, target string, met bool, sums ...*Summary) {
		for _, s := range sums {
			met = met && s.ChecksOK == s.Checked
		}
		out = append(out, Goal{Name: name, Value: value, Target: target, Met: met})
	}
	loop := res.summary("", Loopback, Imapcopy)
	if loop != nil {
		add("peak RSS of one sync (main mailbox, loopback)", fmt.Sprintf("%.0f MB", loop.MaxRSSMB.Median),
			fmt.Sprintf("≤ %d MB", goalRSSMB), loop.MaxRSSMB.Median <= goalRSSMB, loop)
	}
	for _, r := range res.Ratios {
		if r.Median <= 0 || r.Network == WANCapped {
			continue
		}
		speed := 1 / r.Median
		add(fmt.Sprintf("speed over mbsync's on %s", r.Network), fmt.Sprintf("%.2f×", speed),
			fmt.Sprintf("≥ %.1f×", goalVsMbsync), speed >= goalVsMbsync, res.summary("", r.Network, Imapcopy))
	}
	if wan := res.summary("", WAN, Imapcopy); wan != nil && loop != nil && loop.WallSeconds.Median > 0 {
		x := wan.WallSeconds.Median / loop.WallSeconds.Median
		add("wan time over its own loopback time", fmt.Sprintf("%.2f×", x),
			fmt.Sprintf("≤ %.1f×", goalWANOverLoop), x <= goalWANOverLoop, wan, loop)
	}
	if capped := res.summary("", WANCapped, Imapcopy); capped != nil && res.Params.Bandwidth[string(WANCapped)] > 0 {
		link := float64(res.Params.Bandwidth[string(WANCapped)])
		share := capped.MBPerSecond.Median * 1e6 / link
		add("wan-capped: share of the link's bandwidth", fmt.Sprintf("%.0f%% (%.2f of %.2f MB/s)", 100*share, capped.MBPerSecond.Median, link/1e6),
			fmt.Sprintf("≥ %.0f%%", 100*goalLinkShare), share >= goalLinkShare, capped)
	}
	spread := res.summary(MailboxSpread, Loopback, Imapcopy)
	for _, name := range []string{MailboxOneFolder, MailboxOneSplit} {
		one := res.summary(name, Loopback, Imapcopy)
		if one == nil || spread == nil || spread.MessagesPerSecond.Median <= 0 {
			continue
		}
		x := one.MessagesPerSecond.Median / spread.MessagesPerSecond.Median
		add(fmt.Sprintf("%s: msg/s over the spread twin's", name), fmt.Sprintf("%.0f%% (%.0f vs %.0f msg/s)", 100*x, one.MessagesPerSecond.Median, spread.MessagesPerSecond.Median),
			fmt.Sprintf("≥ %.0f%%", 100*goalOneFolder), x >= goalOneFolder, one, spread)
	}
	if r := res.summary(MailboxRerun, Loopback, ImapcopyRerun); r != nil {
		add(fmt.Sprintf("rerun of an unchanged %d-message mailbox", res.extra(MailboxRerun).Messages), fmt.Sprintf("%.2f s", r.WallSeconds.Median),
			fmt.Sprintf("≤ %.0f s", goalRerunSeconds), r.WallSeconds.Median <= goalRerunSeconds, r)
	}
	if r := res.summary(MailboxRerun, Loopback, ImapcopyRerunNew); r != nil {
		add("rerun after new messages", fmt.Sprintf("%.2f s", r.WallSeconds.Median),
			fmt.Sprintf("≤ %.0f s", goalRerunNewSecs), r.WallSeconds.Median <= goalRerunNewSecs, r)
	}
	return out
}

// extra is the extra mailbox named name (zero when there is none).
func (res *Results) extra(name string) MailboxInfo {
	for _, x := range res.Extra {
		if x.Name == name {
			return x
		}
	}
	return MailboxInfo{}
}
