package copybench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
)

// Network is where a run's traffic goes.
type Network string

const (
	Loopback  Network = "loopback"   // straight to the servers
	WAN       Network = "wan"        // through a latency proxy in front of each server
	WANCapped Network = "wan-capped" // a longer WAN whose link bandwidth is the bound
)

// Link is how a network's proxy treats the traffic: the latency it adds each way, and
// the bandwidth of each server's link in each direction, per connection or shared by
// all the connections to that server (0: unlimited).
type Link struct {
	Latency       time.Duration
	ConnBandwidth int64 // bytes/s per connection and direction
	LinkBandwidth int64 // bytes/s per server link and direction, shared by its connections
}

// String is the link in words, for the table.
func (l Link) String() string {
	s := fmt.Sprintf("a proxy in front of each server adding %v each way", l.Latency)
	if l.ConnBandwidth > 0 {
		s += fmt.Sprintf(", %.1f Mbit/s per connection and direction", float64(l.ConnBandwidth)*8/1e6)
	}
	if l.LinkBandwidth > 0 {
		s += fmt.Sprintf(", a %.1f MB/s link per server and direction (shared by the connections)", mbytes(l.LinkBandwidth))
	}
	return s
}

// DefaultLinks are the emulated WANs: 20 ms each way, and 75 ms each way behind a
// 5 MB/s link, where the bandwidth, not the latency, must bound the copy.
func DefaultLinks() map[Network]Link {
	return map[Network]Link{
		WAN:       {Latency: 20 * time.Millisecond},
		WANCapped: {Latency: 75 * time.Millisecond, LinkBandwidth: 5e6},
	}
}

// Tool names a measured configuration.
type Tool string

const (
	Imapcopy      Tool = "imapcopy"       // imapcopy-copier copy into a fresh destination
	ImapcopyRerun Tool = "imapcopy rerun" // the same again onto the now full destination
	// ImapcopyRerunNew is a rerun after Mailbox.NewMessages new messages reached the
	// source (appended before the run, not measured).
	ImapcopyRerunNew Tool = "imapcopy rerun +new"
	Mbsync           Tool = "mbsync" // mbsync into another fresh destination
)

// ProxyFunc starts a proxy in front of target (host:port) that emulates link, and
// returns its loopback address and how to stop it.
type ProxyFunc func(target string, link Link) (addr string, stop func() error, err error)

// Mailbox is a generated source mailbox and the runs made on it. The benchmark's main
// mailbox is Config.Spec, copied on every network by every tool; Config.Extra adds
// mailboxes for one question each (one huge folder, reruns of a big mailbox).
type Mailbox struct {
	Name     string    // in the table; "" for the main mailbox
	Spec     Spec      // what to generate
	Networks []Network // default: Config.Networks
	Tools    []Tool    // default: Config.Tools
	Reps     int       // default: Config.Reps
	// CheckLast checks only each tool's last repetition: a big mailbox takes the
	// checker longer than the runs (the rerun's destination is the first copy's).
	CheckLast bool
	// NewMessages is how many new messages reach the source before each
	// ImapcopyRerunNew run.
	NewMessages int
	// CopierArgs are more flags for this mailbox's `imapcopy-copier copy` runs.
	CopierArgs []string
	// CopyOnce makes the first copy once, into one destination that every
	// repetition's reruns then run on: a big mailbox's reruns are the question, and
	// its first copy takes minutes.
	CopyOnce bool
}

// Config is one benchmark invocation.
type Config struct {
	Spec     Spec
	Reps     int       // repetitions of each run on loopback; default 3
	WANReps  int       // repetitions on the WANs; default Reps
	Networks []Network // default loopback, WAN, WANCapped
	Links    map[Network]Link
	Copier   string // path to imapcopy-copier
	// CopierArgs are extra flags for `imapcopy-copier copy` (say --connections 8).
	CopierArgs []string
	Mbsync     string // path to mbsync; default from PATH
	Tools      []Tool // default imapcopy, its rerun and mbsync
	// MbsyncNetworks are the networks mbsync runs on (default loopback and WAN):
	// behind the capped WAN its one connection pays 150 ms per round trip for minutes,
	// and that profile's question is imapcopy's share of the bandwidth.
	MbsyncNetworks []Network
	Extra          []Mailbox
	Proxy          ProxyFunc
	Log            io.Writer // progress lines for a person; nil: none

	// copierState: the copier keeps a --state file (see copierHasState).
	copierState bool
}

func (c *Config) defaults() error {
	if c.Reps <= 0 {
		c.Reps = 3
	}
	if c.WANReps <= 0 {
		c.WANReps = c.Reps
	}
	if len(c.Networks) == 0 {
		c.Networks = []Network{Loopback, WAN, WANCapped}
	}
	if c.Links == nil {
		c.Links = DefaultLinks()
	}
	if len(c.Tools) == 0 {
		c.Tools = []Tool{Imapcopy, ImapcopyRerun, Mbsync}
	}
	if c.MbsyncNetworks == nil {
		c.MbsyncNetworks = []Network{Loopback, WAN}
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	var errs []error
	for _, m := range c.mailboxes() {
		for _, n := range m.Networks {
			if _, ok := c.Links[n]; n != Loopback && !ok {
				errs = append(errs, fmt.Errorf("unknown network %q", n))
			}
			if n != Loopback && c.Proxy == nil {
				errs = append(errs, fmt.Errorf("the %s network needs a proxy", n))
			}
		}
		if (has(m.Tools, ImapcopyRerun) || has(m.Tools, ImapcopyRerunNew)) && !has(m.Tools, Imapcopy) {
			errs = append(errs, errors.New("the rerun needs the imapcopy run before it"))
		}
	}
	if c.uses(Imapcopy) {
		if c.Copier == "" {
			errs = append(errs, errors.New("no imapcopy-copier binary (build it: go build -o bin/imapcopy-copier ./services/copier)"))
		} else if _, err := os.Stat(c.Copier); err != nil {
			errs = append(errs, fmt.Errorf("imapcopy-copier: %w (build it: go build -o bin/imapcopy-copier ./services/copier)", err))
		} else {
			c.copierState = copierHasState(c.Copier)
		}
	}
	if c.uses(Mbsync) && c.Mbsync == "" {
		p, err := findMbsync()
		if err != nil {
			errs = append(errs, err)
		}
		c.Mbsync = p
	}
	return errors.Join(errs...)
}

// copierHasState says whether the copier binary takes --state (the file that lets a
// rerun skip the folders unchanged since): the benchmark measures binaries older than
// it too.
func copierHasState(copier string) bool {
	out, _ := exec.Command(copier, "copy", "--help").CombinedOutput()
	return bytes.Contains(out, []byte("-state"))
}

// mailboxes is the main mailbox then the extra ones, their defaults filled in.
func (c *Config) mailboxes() []Mailbox {
	all := append([]Mailbox{{Spec: c.Spec}}, c.Extra...)
	for i := range all {
		m := &all[i]
		if len(m.Networks) == 0 {
			m.Networks = c.Networks
		}
		if len(m.Tools) == 0 {
			m.Tools = c.Tools
		}
		if m.Reps <= 0 {
			m.Reps = c.Reps
		}
	}
	return all
}

func (c *Config) uses(t Tool) bool {
	for _, m := range c.mailboxes() {
		if has(m.Tools, t) {
			return true
		}
	}
	return false
}

func has[T comparable](xs []T, x T) bool { return slices.Contains(xs, x) }

// Run sets the benchmark up (servers, source accounts: not measured), then for each
// mailbox runs every configuration alternately, rep by rep, network by network,
// checking each result.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	res := &Results{Started: time.Now().UTC(), Params: cfg.params()}
	res.Machine = machine(cfg.Mbsync)
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}

	work, err := os.MkdirTemp("", "copybench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(work)

	logf("setup: starting two Dovecot servers")
	srcD, err := imaptest.Start(imaptest.FlavourSlash)
	if err != nil {
		return nil, fmt.Errorf("bench: source server: %w", err)
	}
	defer srcD.Close()
	dstD, err := imaptest.Start(imaptest.FlavourSlash)
	if err != nil {
		return nil, fmt.Errorf("bench: destination server: %w", err)
	}
	defer dstD.Close()
	res.Machine.MailStore = fileSystem(dstD.Dir)
	caBundle := filepath.Join(work, "ca-bundle.pem")
	if err := concatFiles(caBundle, srcD.CAFile, dstD.CAFile); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}

	for _, m := range cfg.mailboxes() {
		b := &bench{cfg: cfg, box: m, res: res, work: work, srcD: srcD, dstD: dstD, caBundle: caBundle, logf: logf}
		if err := b.run(ctx); err != nil {
			return res, err
		}
	}
	res.Summarize()
	res.Seconds = time.Since(res.Started).Seconds()
	res.Machine.LoadEnd = loadAvg()
	return res, nil
}

// run loads the bench's mailbox into a fresh source account and runs it on every network.
func (b *bench) run(ctx context.Context) error {
	spec := b.box.Spec
	b.logf("setup%s: generating %d messages (~%d MB, seed %d)", b.label(), spec.Count, spec.Bytes>>20, spec.Seed)
	t0 := time.Now()
	mb, err := Generate(spec)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	src, loaded, err := LoadSource(ctx, b.srcD, mb)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	b.src, b.loaded = src, loaded
	setup := time.Since(t0).Seconds()
	info := describeMailbox(mb, loaded)
	info.Name = b.box.Name
	if b.box.Name == "" {
		b.res.Setup, b.res.Mailbox = setup, info
	} else {
		info.SetupSeconds = setup
		b.res.Extra = append(b.res.Extra, info)
	}
	b.logf("setup%s: loaded and verified %d messages, %.1f MB in %d folders in %.1fs", b.label(), loaded.Messages, mbytes(loaded.Bytes), len(loaded.Folders), setup)
	if b.snap, err = imaptest.TakeSnapshot(ctx, src); err != nil {
		return fmt.Errorf("bench: source snapshot: %w", err)
	}
	for _, network := range b.box.Networks {
		if err := b.network(ctx, network); err != nil {
			return err
		}
	}
	if err := b.snap.Unchanged(ctx, src); err != nil {
		b.res.SourceChanged = strings.TrimSpace(b.res.SourceChanged + " " + b.label() + err.Error())
		b.logf("the source account changed during the benchmark: %v", err)
	}
	return nil
}

func (b *bench) label() string {
	if b.box.Name == "" {
		return ""
	}
	return " " + b.box.Name
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

type bench struct {
	cfg        Config
	box        Mailbox
	res        *Results
	work       string
	src        imapconn.Account
	srcD, dstD *imaptest.Dovecot
	loaded     *Loaded
	caBundle   string
	logf       func(string, ...any)
	runs       int
	snap       *imaptest.Snapshot // the source, taken again after addNew
	added      int                // batches of new messages appended for ImapcopyRerunNew
	// explained holds, per network, the first mbsync run's causes: mbsync changes the
	// same messages the same way every time, so later runs with the same problem counts
	// reuse them instead of scanning the destination again.
	explained map[Network]*CheckVerdict
}

// network runs every configuration, rep by rep, on one network.
func (b *bench) network(ctx context.Context, network Network) error {
	via := func(a imapconn.Account) imapconn.Account { return a }
	if network != Loopback {
		link := b.cfg.Links[network]
		srcAddr, stopSrc, err := b.cfg.Proxy(b.srcD.TLSAddr, link)
		if err != nil {
			return fmt.Errorf("bench: source proxy: %w", err)
		}
		defer stopSrc()
		dstAddr, stopDst, err := b.cfg.Proxy(b.dstD.TLSAddr, link)
		if err != nil {
			return fmt.Errorf("bench: destination proxy: %w", err)
		}
		defer stopDst()
		proxied := map[string]string{b.srcD.TLSAddr: srcAddr, b.dstD.TLSAddr: dstAddr}
		via = func(a imapconn.Account) imapconn.Account {
			direct := net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
			host, port, _ := net.SplitHostPort(proxied[direct])
			a.Host = host
			a.Port, _ = strconv.Atoi(port)
			return a
		}
	}
	reps := b.box.Reps
	if network != Loopback {
		reps = min(reps, b.cfg.WANReps)
	}
	tools := b.box.Tools
	var once imapconn.Account // the CopyOnce destination
	defer func() {
		if once.Login != "" {
			os.RemoveAll(filepath.Join(b.dstD.Dir, "mail", once.Login))
		}
	}()
	for rep := 1; rep <= reps; rep++ {
		var used []imapconn.Account
		last := rep == reps
		if has(tools, Imapcopy) {
			dst := once
			if dst.Login == "" {
				var err error
				if dst, err = b.dstD.NewUser(); err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				if b.box.CopyOnce {
					once = dst
				} else {
					used = append(used, dst)
				}
			}
			for _, tool := range []Tool{Imapcopy, ImapcopyRerun, ImapcopyRerunNew} {
				if !has(tools, tool) || tool == Imapcopy && b.box.CopyOnce && rep > 1 {
					continue
				}
				if tool == ImapcopyRerunNew {
					if err := b.addNew(ctx); err != nil {
						return err
					}
				}
				r := b.imapcopy(ctx, network, tool, rep, via(b.src), via(dst))
				// With CopyOnce, the first copy's destination is the reruns': their check
				// covers it.
				skip := b.box.CheckLast && !(last && b.lastOf(tools, tool)) || b.box.CopyOnce && tool == Imapcopy && reps > 1
				b.checkUnless(ctx, &r, dst, skip)
				b.add(r)
			}
		}
		if has(tools, Mbsync) && has(b.cfg.MbsyncNetworks, network) {
			dst, err := b.dstD.NewUser()
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			used = append(used, dst)
			r := b.mbsync(ctx, network, rep, via(b.src), via(dst))
			b.checkUnless(ctx, &r, dst, b.box.CheckLast && !last)
			b.add(r)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		// Drop the copies: no dirty pages of theirs left to write back during the next
		// runs, and the disk does not fill up.
		for _, a := range used {
			os.RemoveAll(filepath.Join(b.dstD.Dir, "mail", a.Login))
		}
	}
	return nil
}

// lastOf says whether tool is the last imapcopy run of a repetition: with CheckLast,
// the one whose destination is checked.
func (b *bench) lastOf(tools []Tool, tool Tool) bool {
	for _, t := range []Tool{ImapcopyRerunNew, ImapcopyRerun, Imapcopy} {
		if has(tools, t) {
			return t == tool
		}
	}
	return false
}

// addNew appends the mailbox's NewMessages fresh messages to the source (not
// measured) and takes the source's snapshot again.
func (b *bench) addNew(ctx context.Context) error {
	n := max(b.box.NewMessages, 1)
	b.added++
	// Small messages in INBOX, where new mail arrives.
	plan, err := Generate(Spec{Seed: b.box.Spec.Seed + uint64(1000+b.added), Count: n, Bytes: int64(n) * 4 << 10, Folders: 1})
	if err != nil {
		return fmt.Errorf("bench: new messages: %w", err)
	}
	fresh := plan.Mailbox()
	if err := imaptest.Load(ctx, b.src, fresh); err != nil {
		return fmt.Errorf("bench: new messages: %w", err)
	}
	b.loaded.Messages += fresh.Count()
	b.loaded.Bytes += fresh.Size()
	if b.snap, err = imaptest.TakeSnapshot(ctx, b.src); err != nil {
		return fmt.Errorf("bench: source snapshot: %w", err)
	}
	return nil
}

func (b *bench) add(r RunResult) {
	r.Mailbox = b.box.Name
	b.res.Runs = append(b.res.Runs, r)
	b.logf("%s%-10s %-19s #%d  %6.1fs  %6.0f msg/s  %6.1f MB/s  RSS %5.0f MB  CPU %5.1fs  %s",
		strings.TrimPrefix(b.label()+" ", " "), r.Network, r.Tool, r.Rep, r.WallSeconds, r.MessagesPerSecond, r.MBPerSecond, mbytes(r.MaxRSSBytes), r.UserCPUSeconds+r.SysCPUSeconds, r.Verdict())
}

func (b *bench) newRun(network Network, tool Tool, rep int, m Measure, err error) RunResult {
	r := RunResult{
		Network: network, Tool: tool, Rep: rep,
		WallSeconds:    m.Wall.Seconds(),
		MaxRSSBytes:    m.MaxRSS,
		UserCPUSeconds: m.User.Seconds(),
		SysCPUSeconds:  m.Sys.Seconds(),
		ExitCode:       m.ExitCode,
	}
	if s := m.Wall.Seconds(); s > 0 {
		r.MessagesPerSecond = float64(b.loaded.Messages) / s
		r.MBPerSecond = mbytes(b.loaded.Bytes) / s
	}
	switch {
	case err != nil:
		r.Error = err.Error()
	case m.ExitCode != 0:
		r.Error = fmt.Sprintf("exit code %d: %s", m.ExitCode, lastLines(m.StderrEnd, 5))
	}
	return r
}

func (b *bench) imapcopy(ctx context.Context, network Network, tool Tool, rep int, src, dst imapconn.Account) RunResult {
	args := append([]string{"copy",
		"--from", accountURL(src), "--to", accountURL(dst),
		"--ca-file", b.caBundle, "--json",
	}, append(slices.Clone(b.cfg.CopierArgs), b.box.CopierArgs...)...)
	if b.cfg.copierState {
		// As a user who reruns would: the rerun reads what the first copy proved.
		args = append(args, "--state", filepath.Join(b.work, "state-"+dst.Login+".json"))
	}
	env := append(os.Environ(),
		"IMAPCOPY_FROM_PASSWORD="+src.Password,
		"IMAPCOPY_TO_PASSWORD="+dst.Password,
	)
	settleDisk()
	cpu := b.machineCPU()
	m, err := runChild(ctx, b.cfg.Copier, args, env)
	r := b.newRun(network, tool, rep, m, err)
	r.ServerCPUSeconds, r.NetCPUSeconds = cpu()
	var out struct {
		Totals struct {
			Copied  int `json:"copied"`
			Present int `json:"present"`
			Failed  int `json:"failed"`
		} `json:"totals"`
	}
	if jerr := json.Unmarshal(lastJSON(m.Stdout), &out); jerr == nil {
		r.Copied, r.Present, r.Failed = &out.Totals.Copied, &out.Totals.Present, &out.Totals.Failed
	}
	return r
}

func (b *bench) mbsync(ctx context.Context, network Network, rep int, src, dst imapconn.Account) RunResult {
	b.runs++
	dir := filepath.Join(b.work, fmt.Sprintf("mbsync-%d", b.runs))
	conf := MbsyncConfig{
		Source: src, Destination: dst,
		SourceCAFile: b.srcD.CAFile, DestinationCAFile: b.dstD.CAFile,
		StateDir: filepath.Join(dir, "state"),
	}
	text, err := conf.Text()
	if err == nil {
		err = os.MkdirAll(conf.StateDir, 0o700)
	}
	confFile := filepath.Join(dir, "mbsyncrc")
	if err == nil {
		err = os.WriteFile(confFile, []byte(text), 0o600)
	}
	if err != nil {
		return b.newRun(network, Mbsync, rep, Measure{}, err)
	}
	defer os.RemoveAll(dir)
	settleDisk()
	cpu := b.machineCPU()
	m, err := runChild(ctx, b.cfg.Mbsync, []string{"-c", confFile, "-a", "-q"}, append(os.Environ(), "HOME="+dir))
	r := b.newRun(network, Mbsync, rep, m, err)
	r.ServerCPUSeconds, r.NetCPUSeconds = cpu()
	return r
}

// settleDisk writes what earlier runs left in the page cache to the disk
// (sync) before a run starts, so that no run pays for an earlier one's
// writes. It does not make a disk-backed run steady: on this project's
// machines the servers' own file system work still varies by 2x from run to
// run (see the README on TMPDIR=/dev/shm).
func settleDisk() { syscall.Sync() }

// machineCPU reads the two servers' CPU time and the bench's own (see
// selfCPU), and returns a function that gives the seconds each used since
// (servers 0 when their time cannot be read).
func (b *bench) machineCPU() func() (servers, network float64) {
	read := func() (time.Duration, bool) {
		s, err1 := b.srcD.CPU()
		d, err2 := b.dstD.CPU()
		return s + d, err1 == nil && err2 == nil
	}
	start, ok := read()
	self := selfCPU()
	return func() (float64, float64) {
		network := (selfCPU() - self).Seconds()
		end, ok2 := read()
		if !ok || !ok2 {
			return 0, network
		}
		return (end - start).Seconds(), network
	}
}

// selfCPU is the processor time of the bench's own process (user + system,
// every goroutine): during a run, that of the proxies that emulate the
// network, which share the machine with the tool and the servers.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// checkUnless checks r's destination, or marks it as not checked when skip.
func (b *bench) checkUnless(ctx context.Context, r *RunResult, dst imapconn.Account, skip bool) {
	if skip {
		r.CheckSkipped = true
		return
	}
	b.check(ctx, r, dst)
}

// check runs the checker on a run's destination (directly, not through the proxies),
// and for mbsync also names the causes of the differences.
func (b *bench) check(ctx context.Context, r *RunResult, dst imapconn.Account) {
	opts := imaptest.CheckOptions{}
	if r.Tool != Mbsync {
		opts.IgnoreDest = func(folder string, raw []byte) bool { return isReport(raw) }
	}
	t0 := time.Now()
	cr, err := imaptest.Check(ctx, b.src, dst, opts)
	r.Check = &CheckVerdict{}
	if err != nil {
		r.Check.Error = err.Error()
		return
	}
	r.Check.OK = cr.OK()
	r.Check.Problems = len(cr.Problems)
	r.Check.Kinds = problemKinds(cr.Problems)
	r.Check.Messages = cr.Messages
	for i, p := range cr.Problems {
		if i == 3 {
			break
		}
		r.Check.Examples = append(r.Check.Examples, p)
	}
	if r.Tool == Mbsync && !cr.OK() {
		if prev := b.explained[r.Network]; prev != nil && maps.Equal(prev.Kinds, r.Check.Kinds) {
			r.Check.Causes = prev.Causes
			r.Check.CausesOfRep = prev.CausesOfRep
		} else if causes, err := Explain(ctx, dst, b.loaded); err != nil {
			r.Check.Error = "explain: " + err.Error()
		} else {
			delete(causes, DiffIdentical)
			r.Check.Causes = causes
			r.Check.CausesOfRep = r.Rep
			if b.explained == nil {
				b.explained = map[Network]*CheckVerdict{}
			}
			b.explained[r.Network] = r.Check
		}
	}
	r.Check.Seconds = time.Since(t0).Seconds()
}

// reportHeader marks imapcopy's report message (mailcopy.ReportHeader; not imported,
// so that the benchmark builds while the engine changes: it measures the binary).
const reportHeader = "X-Imapcopy-Report"

// isReport says whether raw is imapcopy's report message.
func isReport(raw []byte) bool {
	head := raw
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		head = raw[:i]
	}
	return bytes.Contains(bytes.ToLower(head), []byte("\n"+strings.ToLower(reportHeader)+":"))
}

// problemKinds counts the checker's problems by kind (the checker words each problem
// with one of a few fixed phrases).
func problemKinds(problems []string) map[string]int {
	kinds := map[string]int{}
	for _, p := range problems {
		kind := "other"
		for _, k := range []struct{ phrase, kind string }{
			{"destination folder missing", "folder missing"},
			{"missing on destination", "missing"},
			{"duplicated on destination", "duplicated"},
			{"extra message on destination", "extra"},
			{"flags differ", "flags differ"},
			{"INTERNALDATE differs", "INTERNALDATE differs"},
		} {
			if strings.Contains(p, k.phrase) {
				kind = k.kind
				break
			}
		}
		kinds[kind]++
	}
	return kinds
}

// accountURL is the command line's form of an account, without its password.
func accountURL(a imapconn.Account) string {
	u := url.URL{Scheme: "imaps", User: url.User(a.Login), Host: net.JoinHostPort(a.Host, strconv.Itoa(a.Port))}
	return u.String()
}

// lastJSON returns the last line of out that looks like a JSON object, or all of out.
func lastJSON(out []byte) []byte {
	trimmed := bytes.TrimSpace(out)
	if bytes.HasPrefix(trimmed, []byte("{")) {
		return trimmed
	}
	lines := bytes.Split(trimmed, []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if bytes.HasPrefix(bytes.TrimSpace(lines[i]), []byte("{")) {
			return bytes.Join(lines[i:], []byte("\n"))
		}
	}
	return trimmed
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func concatFiles(dst string, srcs ...string) error {
	var all []byte
	for _, s := range srcs {
		data, err := os.ReadFile(s)
		if err != nil {
			return fmt.Errorf("ca bundle: %w", err)
		}
		all = append(all, data...)
	}
	if err := os.WriteFile(dst, all, 0o644); err != nil {
		return fmt.Errorf("ca bundle: %w", err)
	}
	return nil
}

func mbytes(n int64) float64 { return float64(n) / 1e6 }

func (c Config) params() Params {
	p := Params{Reps: c.Reps, WANReps: c.WANReps, CopierArgs: c.CopierArgs, Links: map[string]string{}, Bandwidth: map[string]int64{}}
	for _, n := range c.Networks {
		p.Networks = append(p.Networks, string(n))
		if n != Loopback {
			p.Links[string(n)] = c.Links[n].String()
		}
		if bw := c.Links[n].LinkBandwidth; bw > 0 {
			p.Bandwidth[string(n)] = bw
		}
	}
	for _, t := range c.Tools {
		p.Tools = append(p.Tools, string(t))
	}
	return p
}

// fileSystem names the file system dir is on, and dir's parent ("tmpfs in
// /dev/shm"); "" when it cannot be told.
func fileSystem(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return ""
	}
	name, ok := map[int64]string{0x01021994: "tmpfs", 0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x794c7630: "overlayfs"}[int64(st.Type)]
	if !ok {
		name = fmt.Sprintf("a file system of type %#x", st.Type)
	}
	return name + " in " + filepath.Dir(dir)
}

func machine(mbsyncBin string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, LoadStart: loadAvg()}
	if out, err := exec.Command("/usr/sbin/dovecot", "--version").Output(); err == nil {
		m.Dovecot = strings.TrimSpace(string(out))
	}
	if mbsyncBin != "" {
		if out, err := exec.Command(mbsyncBin, "--version").Output(); err == nil {
			m.Mbsync = strings.TrimSpace(string(out))
		}
	}
	return m
}
