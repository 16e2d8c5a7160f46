package copybench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"imapcopy.dev/pkg/imaptest"
)

// Results is one benchmark invocation: the JSON file and the table are made of it.
type Results struct {
	Started       time.Time     `json:"started"`
	Seconds       float64       `json:"seconds"` // the whole invocation
	Machine       Machine       `json:"machine"`
	Params        Params        `json:"params"`
	Mailbox       MailboxInfo   `json:"mailbox"`
	Setup         float64       `json:"setup_seconds"` // generate, load, verify (not measured in runs)
	Extra         []MailboxInfo `json:"extra_mailboxes,omitempty"`
	SourceChanged string        `json:"source_changed,omitempty"`
	Runs          []RunResult   `json:"runs"`
	Summary       []Summary     `json:"summary"`
	Ratios        []Ratio       `json:"ratios"`
	Goals         []Goal        `json:"goals"`
}

// Machine describes where the benchmark ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	OS        string `json:"os"`
	GoVersion string `json:"go"`
	Dovecot   string `json:"dovecot"`
	Mbsync    string `json:"mbsync,omitempty"`
	// MailStore is the file system of the servers' mail ("tmpfs", "ext4"...) and
	// where it is: a disk adds its own, varying, work to the servers'.
	MailStore string `json:"mail_store,omitempty"`
	// LoadStart and LoadEnd are /proc/loadavg at the start and the end: other work on
	// the machine skews the figures.
	LoadStart string `json:"loadavg_start,omitempty"`
	LoadEnd   string `json:"loadavg_end,omitempty"`
}

// Params are the invocation's settings.
type Params struct {
	Reps       int               `json:"reps"`
	WANReps    int               `json:"wan_reps"`
	Networks   []string          `json:"networks"`
	Tools      []string          `json:"tools"`
	Links      map[string]string `json:"links,omitempty"`          // network: how it is emulated
	Bandwidth  map[string]int64  `json:"link_bandwidth,omitempty"` // network: its capped link, bytes/s
	CopierArgs []string          `json:"copier_args,omitempty"`
}

// MailboxInfo describes the generated and loaded mailbox.
type MailboxInfo struct {
	Name         string         `json:"name,omitempty"`          // "" for the main mailbox
	SetupSeconds float64        `json:"setup_seconds,omitempty"` // an extra mailbox's setup
	Seed         uint64         `json:"seed"`
	Messages     int            `json:"messages"`
	Bytes        int64          `json:"bytes"`
	Folders      int            `json:"folders"`
	Kinds        map[string]int `json:"kinds"`
	Duplicates   int            `json:"identical_duplicates"`
	NoMessageID  int            `json:"without_message_id"`
	WithKeywords int            `json:"with_keywords"`
	Largest      int64          `json:"largest_bytes"`
}

// RunResult is one measured run.
type RunResult struct {
	Mailbox           string  `json:"mailbox,omitempty"` // "" for the main mailbox
	Network           Network `json:"network"`
	Tool              Tool    `json:"tool"`
	Rep               int     `json:"rep"`
	WallSeconds       float64 `json:"wall_seconds"`
	MessagesPerSecond float64 `json:"messages_per_second"` // source messages / wall time
	MBPerSecond       float64 `json:"mb_per_second"`       // source MB (10^6 bytes) / wall time
	MaxRSSBytes       int64   `json:"max_rss_bytes"`
	UserCPUSeconds    float64 `json:"user_cpu_seconds"`
	SysCPUSeconds     float64 `json:"sys_cpu_seconds"`
	// ServerCPUSeconds is what the two Dovecots spent during the run (user + system,
	// every process of theirs): with the tool's own CPU, the work the machine did.
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	// NetCPUSeconds is what the bench's own process spent during the run: the
	// proxies that emulate the network (about nothing on loopback). On a
	// small machine it is part of the work too.
	NetCPUSeconds float64       `json:"network_cpu_seconds"`
	ExitCode      int           `json:"exit_code"`
	Error         string        `json:"error,omitempty"`
	Copied        *int          `json:"copied,omitempty"` // imapcopy's own count (--json)
	Present       *int          `json:"present,omitempty"`
	Failed        *int          `json:"failed,omitempty"`
	Check         *CheckVerdict `json:"check"`
	// CheckSkipped: a big mailbox's earlier repetition, whose check the last one's
	// stands for (Mailbox.CheckLast).
	CheckSkipped bool `json:"check_skipped,omitempty"`
}

// CheckVerdict is the checker's judgement of one run's destination.
type CheckVerdict struct {
	OK       bool           `json:"ok"`
	Problems int            `json:"problems"`
	Kinds    map[string]int `json:"kinds,omitempty"`  // problems by kind
	Causes   map[string]int `json:"causes,omitempty"` // mbsync: why the messages differ (Explain)
	// CausesOfRep is the run whose destination was explained: later runs with the same
	// problem counts reuse the first run's causes.
	CausesOfRep int      `json:"causes_of_rep,omitempty"`
	Examples    []string `json:"examples,omitempty"`
	Messages    int      `json:"messages_checked"`
	Seconds     float64  `json:"seconds"`
	Error       string   `json:"error,omitempty"`
}

// Verdict is the check's one-line outcome.
func (r RunResult) Verdict() string {
	c := r.Check
	switch {
	case c == nil && r.CheckSkipped && r.Error == "":
		return "not checked (the last repetition is)"
	case c == nil && r.CheckSkipped:
		return "not checked: " + r.Error
	case c == nil:
		return "not checked"
	case c.Error != "" && !c.OK && c.Problems == 0:
		return "CHECK FAILED: " + c.Error
	case c.OK && r.Error == "":
		return "OK"
	case c.OK:
		return "OK (but " + r.Error + ")"
	}
	word := "WRONG"
	if r.Tool == Mbsync {
		word = "differs" // expected of mbsync 1.4: the causes follow
	}
	s := fmt.Sprintf("%s: %d problems (%s)", word, c.Problems, formatCounts(c.Kinds))
	if len(c.Causes) > 0 {
		s += "; " + formatCauses(c.Causes)
		if c.CausesOfRep != r.Rep {
			s += fmt.Sprintf(" (as found on #%d)", c.CausesOfRep)
		}
	}
	if r.Error != "" {
		s += "; " + r.Error
	}
	return s
}

func formatCounts(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	sort.SliceStable(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// formatCauses says why mbsync's copy differs: body and flag differences.
func formatCauses(m map[string]int) string {
	return "causes: " + formatCounts(m)
}

// Summary is one configuration's figures over its repetitions.
type Summary struct {
	Mailbox           string  `json:"mailbox,omitempty"`
	Network           Network `json:"network"`
	Tool              Tool    `json:"tool"`
	Runs              int     `json:"runs"`
	WallSeconds       Stat    `json:"wall_seconds"`
	MessagesPerSecond Stat    `json:"messages_per_second"`
	MBPerSecond       Stat    `json:"mb_per_second"`
	MaxRSSMB          Stat    `json:"max_rss_mb"`
	CPUSeconds        Stat    `json:"cpu_seconds"` // user + sys
	ServerCPUSeconds  Stat    `json:"server_cpu_seconds"`
	NetCPUSeconds     Stat    `json:"network_cpu_seconds"`
	// Busy is (tool + servers + network CPU) / (wall × CPUs), per run: how much
	// of the machine the copy kept busy. Near 1, the machine, not the tool, is
	// the limit.
	Busy     Stat   `json:"busy"`
	ChecksOK int    `json:"checks_ok"`
	Checked  int    `json:"checked"` // runs checked (Mailbox.CheckLast skips some)
	Verdict  string `json:"verdict"`

	causes map[string]int // of the first run that differs, for the table
}

// Stat is a median with its range.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func stat(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[len(s)-1]}
}

// Ratio compares imapcopy with mbsync pair by pair (pair i = imapcopy run i vs mbsync
// run i on the same network): wall time imapcopy / mbsync, below 1 when imapcopy is
// faster.
type Ratio struct {
	Network Network   `json:"network"`
	Pairs   []float64 `json:"wall_ratios"`
	Median  float64   `json:"median"`
}

// Summarize computes Summary, Ratios and Goals from Runs.
func (res *Results) Summarize() {
	res.Summary, res.Ratios = nil, nil
	type group struct {
		mailbox string
		network Network
	}
	var groups []group
	for _, r := range res.Runs {
		if g := (group{r.Mailbox, r.Network}); !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	for _, g := range groups {
		for _, t := range []Tool{Imapcopy, ImapcopyRerun, ImapcopyRerunNew, Mbsync} {
			var wall, mps, mbps, rss, cpu, scpu, ncpu, busy []float64
			s := Summary{Mailbox: g.mailbox, Network: g.network, Tool: t}
			var verdicts []string
			for _, r := range res.Runs {
				if r.Mailbox != g.mailbox || r.Network != g.network || r.Tool != t {
					continue
				}
				s.Runs++
				wall = append(wall, r.WallSeconds)
				mps = append(mps, r.MessagesPerSecond)
				mbps = append(mbps, r.MBPerSecond)
				rss = append(rss, mbytes(r.MaxRSSBytes))
				cpu = append(cpu, r.UserCPUSeconds+r.SysCPUSeconds)
				scpu = append(scpu, r.ServerCPUSeconds)
				ncpu = append(ncpu, r.NetCPUSeconds)
				if r.WallSeconds > 0 && res.Machine.CPUs > 0 {
					busy = append(busy, (r.UserCPUSeconds+r.SysCPUSeconds+r.ServerCPUSeconds+r.NetCPUSeconds)/(r.WallSeconds*float64(res.Machine.CPUs)))
				}
				switch {
				case r.CheckSkipped && r.Error == "":
				case r.Check != nil && r.Check.OK && r.Error == "":
					s.Checked++
					s.ChecksOK++
				default:
					s.Checked++
					verdicts = append(verdicts, r.Verdict())
					if s.causes == nil && r.Check != nil {
						s.causes = r.Check.Causes
					}
				}
			}
			if s.Runs == 0 {
				continue
			}
			s.WallSeconds, s.MessagesPerSecond, s.MBPerSecond = stat(wall), stat(mps), stat(mbps)
			s.MaxRSSMB, s.CPUSeconds = stat(rss), stat(cpu)
			s.ServerCPUSeconds, s.NetCPUSeconds, s.Busy = stat(scpu), stat(ncpu), stat(busy)
			s.Verdict = fmt.Sprintf("OK %d/%d", s.ChecksOK, s.Checked)
			if len(verdicts) > 0 {
				s.Verdict += "; " + verdicts[0]
			}
			res.Summary = append(res.Summary, s)
		}
		if g.mailbox != "" {
			continue // imapcopy against mbsync on the main mailbox only
		}
		var ic, mb []float64
		for _, r := range res.Runs {
			if r.Mailbox == "" && r.Network == g.network && r.Tool == Imapcopy {
				ic = append(ic, r.WallSeconds)
			}
			if r.Mailbox == "" && r.Network == g.network && r.Tool == Mbsync {
				mb = append(mb, r.WallSeconds)
			}
		}
		ratio := Ratio{Network: g.network}
		for i := 0; i < len(ic) && i < len(mb); i++ {
			if mb[i] > 0 {
				ratio.Pairs = append(ratio.Pairs, ic[i]/mb[i])
			}
		}
		if len(ratio.Pairs) > 0 {
			ratio.Median = stat(ratio.Pairs).Median
			res.Ratios = append(res.Ratios, ratio)
		}
	}
	res.Goals = res.goals()
}

// summary is the summary of one configuration, or nil.
func (res *Results) summary(mailbox string, n Network, t Tool) *Summary {
	for i, s := range res.Summary {
		if s.Mailbox == mailbox && s.Network == n && s.Tool == t {
			return &res.Summary[i]
		}
	}
	return nil
}

// WriteJSON writes res, indented.
func (res *Results) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// WriteTable writes the human table: one line per configuration (median and min–max),
// the pair ratios, and the checker's verdict beside each figure.
func (res *Results) WriteTable(w io.Writer) error {
	mb := res.Mailbox
	fmt.Fprintf(w, "imapcopy benchmark, %s\n", res.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "mailbox: %d messages, %.1f MB, %d folders (seed %d; %s; %d identical duplicates, %d without Message-ID, %d with keywords; largest %.1f MB)\n",
		mb.Messages, mbytes(mb.Bytes), mb.Folders, mb.Seed, formatCounts(mb.Kinds), mb.Duplicates, mb.NoMessageID, mb.WithKeywords, mbytes(mb.Largest))
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s, Dovecot %s, %s; load average %s at the start, %s at the end\n",
		res.Machine.CPUs, res.Machine.OS, res.Machine.GoVersion, res.Machine.Dovecot, res.Machine.Mbsync, res.Machine.LoadStart, res.Machine.LoadEnd)
	fmt.Fprintf(w, "setup (generate, load the source Maildir, verify it over IMAP): %.1fs, not measured\n", res.Setup)
	reps := fmt.Sprintf("repetitions per configuration: %d", res.Params.Reps)
	wan := slices.Contains(res.Params.Networks, string(WAN))
	if wan && res.Params.WANReps != res.Params.Reps {
		reps += fmt.Sprintf(" (%d on the WAN, to keep the run short)", res.Params.WANReps)
	}
	store := ""
	if res.Machine.MailStore != "" {
		store = ", their mail on " + res.Machine.MailStore
	}
	fmt.Fprintf(w, "%s, alternating; both servers Dovecot over TLS on 127.0.0.1%s\n", reps, store)
	for _, n := range slices.Sorted(maps.Keys(res.Params.Links)) {
		fmt.Fprintf(w, "%s = %s\n", n, res.Params.Links[n])
	}
	for _, x := range res.Extra {
		fmt.Fprintf(w, "mailbox %s: %d messages, %.1f MB, %d folders (seed %d; largest %.1f MB); setup %.1fs, not measured\n",
			x.Name, x.Messages, mbytes(x.Bytes), x.Folders, x.Seed, mbytes(x.Largest), x.SetupSeconds)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "mailbox\tnetwork\trun\twall s (min–max)\tmsg/s\tMB/s\tpeak RSS MB\tCPU s\tservers CPU s\tnetwork CPU s\tbusy\tcheck")
	for _, s := range res.Summary {
		mailbox := s.Mailbox
		if mailbox == "" {
			mailbox = "main"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%.1f\t%s\t%.1f\t%.1f\t%.1f\t%.0f%%\t%s\n",
			mailbox, s.Network, s.Tool, rangeStr(s.WallSeconds, 1), s.MessagesPerSecond.Median, s.MBPerSecond.Median,
			rangeStr(s.MaxRSSMB, 0), s.CPUSeconds.Median, s.ServerCPUSeconds.Median, s.NetCPUSeconds.Median, 100*s.Busy.Median, s.verdictShort())
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	fmt.Fprintln(w, "(medians; msg/s and MB/s are the source mailbox over the wall time — for the rerun, how fast an unchanged mailbox is")
	fmt.Fprintln(w, " confirmed; peak RSS and CPU are the tool's own process; servers CPU is the two Dovecots' during the run; network CPU")
	fmt.Fprintln(w, " is the bench's own, the proxies that emulate the network; busy is (CPU + servers CPU + network CPU) /")
	fmt.Fprintf(w, " (wall × %d CPUs): near 100%% the machine is the limit; check = imaptest.Check of the destination against the source)\n", res.Machine.CPUs)
	fmt.Fprintln(w)
	for _, r := range res.Ratios {
		var ps []string
		for _, p := range r.Pairs {
			ps = append(ps, fmt.Sprintf("%.2f", p))
		}
		fmt.Fprintf(w, "wall time imapcopy/mbsync on %s, per pair: %s (median %.2f; below 1: imapcopy faster)\n", r.Network, strings.Join(ps, " "), r.Median)
	}
	for _, line := range res.cpuBounds() {
		fmt.Fprintln(w, line)
	}
	if len(res.Goals) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "goals (issue 12):")
		gw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, g := range res.Goals {
			met := "met"
			if !g.Met {
				met = "NOT MET"
			}
			fmt.Fprintf(gw, "  %s\t%s\t%s\t%s\n", g.Name, g.Value, g.Target, met)
		}
		if err := gw.Flush(); err != nil {
			return fmt.Errorf("write table: %w", err)
		}
	}
	notes := res.notes()
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	if res.SourceChanged != "" {
		fmt.Fprintf(w, "THE SOURCE ACCOUNT CHANGED during the benchmark: %s\n", res.SourceChanged)
	}
	fmt.Fprintf(w, "total %.0fs\n", res.Seconds)
	return nil
}

// cpuBounds says, for each network where imapcopy and mbsync both ran on the main
// mailbox, how busy imapcopy kept the machine and the least wall time that the
// same work (its own CPU and the servers') allows on this many CPUs: against
// mbsync's, the highest speed-up any scheduling could reach here.
func (res *Results) cpuBounds() []string {
	var out []string
	cpus := float64(res.Machine.CPUs)
	for _, r := range res.Ratios {
		ic, mb := res.summary("", r.Network, Imapcopy), res.summary("", r.Network, Mbsync)
		if ic == nil || mb == nil || cpus <= 0 || ic.ServerCPUSeconds.Median <= 0 {
			continue
		}
		work := ic.CPUSeconds.Median + ic.ServerCPUSeconds.Median + ic.NetCPUSeconds.Median
		least := work / cpus
		network, mbNetwork := "", ""
		if ic.NetCPUSeconds.Median >= 0.05 {
			network = fmt.Sprintf(" + the network emulation's %.1f s", ic.NetCPUSeconds.Median)
			mbNetwork = fmt.Sprintf(" + the network emulation's %.1f s", mb.NetCPUSeconds.Median)
		}
		out = append(out, fmt.Sprintf("%s: imapcopy kept the machine %.0f%% busy (its CPU %.1f s + the servers' %.1f s%s, over %.1f s × %d CPUs); "+
			"the same work takes at least %.1f s on %d CPUs: at most %.2f× mbsync's %.1f s (mbsync: its CPU %.1f s + the servers' %.1f s%s)",
			r.Network, 100*ic.Busy.Median, ic.CPUSeconds.Median, ic.ServerCPUSeconds.Median, network, ic.WallSeconds.Median, res.Machine.CPUs,
			least, res.Machine.CPUs, mb.WallSeconds.Median/least, mb.WallSeconds.Median, mb.CPUSeconds.Median, mb.ServerCPUSeconds.Median, mbNetwork))
	}
	return out
}

func rangeStr(s Stat, prec int) string {
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, s.Median, prec, s.Min, prec, s.Max)
}

func (s Summary) verdictShort() string {
	if s.Checked == 0 && s.Runs > 0 {
		return "not checked: the later runs' check covers it"
	}
	if s.ChecksOK == s.Checked {
		v := fmt.Sprintf("OK %d/%d", s.ChecksOK, s.Checked)
		if s.Checked < s.Runs {
			v += " (the last repetition checked)"
		}
		return v
	}
	if s.Tool == Mbsync && len(s.causes) > 0 {
		return fmt.Sprintf("differs %d/%d: %s", s.Runs-s.ChecksOK, s.Runs, formatCounts(s.causes))
	}
	if s.Tool == Mbsync {
		return fmt.Sprintf("differs %d/%d (see below)", s.Runs-s.ChecksOK, s.Runs)
	}
	return fmt.Sprintf("WRONG %d/%d (see below)", s.Runs-s.ChecksOK, s.Runs)
}

// notes explains every run that did not pass the check, configuration by configuration
// (identical verdicts merged).
func (res *Results) notes() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range res.Runs {
		if (r.Check != nil && r.Check.OK || r.CheckSkipped) && r.Error == "" {
			continue
		}
		v := r.Verdict()
		key := string(r.Network) + string(r.Tool) + r.Error
		if r.Check != nil {
			key += formatCounts(r.Check.Kinds) + formatCounts(r.Check.Causes) + r.Check.Error
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		prefix := strings.TrimSpace(fmt.Sprintf("%s %s %s", r.Mailbox, r.Network, r.Tool))
		if r.Tool == Mbsync {
			prefix += " (mbsync 1.4 adds an X-TUID header to every message and does not copy keywords)"
		}
		out = append(out, fmt.Sprintf("%s #%d: %s", prefix, r.Rep, v))
		if r.Check != nil && r.Tool != Mbsync { // mbsync's examples are in the JSON: its causes say more
			for _, e := range r.Check.Examples {
				out = append(out, "    e.g. "+e)
			}
		}
	}
	for _, mailbox := range res.mailboxNames() {
		for _, t := range []Tool{ImapcopyRerun, ImapcopyRerunNew} {
			var reruns []string
			for _, r := range res.Runs {
				if r.Tool == t && r.Copied != nil && r.Mailbox == mailbox {
					reruns = append(reruns, fmt.Sprint(*r.Copied))
				}
			}
			if len(reruns) == 0 {
				continue
			}
			want := "0"
			if t == ImapcopyRerunNew {
				want = "the new ones"
			}
			out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s appended: %s messages (want %s)", mailbox, t, strings.Join(reruns, ", "), want)))
		}
	}
	return out
}

// mailboxNames is "" (the main mailbox) and the extra mailboxes' names, in order.
func (res *Results) mailboxNames() []string {
	names := []string{""}
	for _, x := range res.Extra {
		names = append(names, x.Name)
	}
	return names
}

func describeMailbox(mb *imaptest.Plan, loaded *Loaded) MailboxInfo {
	info := MailboxInfo{
		Seed: mb.Seed, Messages: loaded.Messages, Bytes: loaded.Bytes,
		Folders: len(loaded.Folders), Kinds: map[string]int{},
	}
	for _, m := range mb.Messages {
		info.Kinds[m.Kind.String()]++
		if m.DuplicateOf >= 0 {
			info.Duplicates++
		}
		if m.NoMessageID {
			info.NoMessageID++
		}
		if len(systemFlags(m.Flags)) != len(m.Flags) {
			info.WithKeywords++
		}
	}
	for _, f := range loaded.Folders {
		for _, m := range f.Messages {
			info.Largest = max(info.Largest, m.Size)
		}
	}
	return info
}
