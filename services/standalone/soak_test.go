//go:build soak

package main

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/proxytest"
	"imapcopy.dev/pkg/servicetest"
	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// The soak (issue 14): many small syncs through one standalone process, each behind
// a fault drawn from a fixed seed, in four quarters; after each quarter, with no sync
// in flight, the process's goroutines, open files and RSS are sampled. It runs with
// `make soak` (build tag soak), not in `make test`.
const (
	soakSyncs     = 200
	soakAtOnce    = 6  // syncs in flight at once (start, wait for the end, check)
	soakSeed      = 14 // the seed of the faults and of the mailboxes
	soakRerun     = 10 // completed syncs started again at the end: they must append nothing
	soakSyncWait  = 4 * time.Minute
	soakMaxResets = 4

	// "Flat": the last quarter's sample against the first quarter's.
	soakGoroutineSlack = 20
	soakFDSlack        = 10
	soakRSSFactor      = 1.5
)

// SOAK_SYNCS overrides soakSyncs (a multiple of 4), for a shorter run by hand.
func soakCount(t *testing.T) int {
	if v := os.Getenv("SOAK_SYNCS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 4 || n%4 != 0 {
			t.Fatalf("SOAK_SYNCS=%q: expected a multiple of 4", v)
		}
		return n
	}
	return soakSyncs
}

// The faults, one per sync, on its source or its destination side.
const (
	faultNone     = "none"
	faultReset    = "reset"    // a connection reset every 30-80 KB of mail, 4 times at most
	faultLatency  = "latency"  // 20-80 ms each way
	faultTrickle  = "trickle"  // 40-100 KB/s from the server
	faultThrottle = "throttle" // every 3rd FETCH/APPEND answered THROTTLED (2 s back-off suggested), twice
	faultBye      = "bye"      // BYE [UNAVAILABLE] at a session's 5th command, twice
)

var soakFaults = []string{faultNone, faultReset, faultLatency, faultTrickle, faultThrottle, faultBye}

type soakPair struct {
	i          int
	fault      string
	side       string // "source" or "destination"
	src, dst   imapconn.Account
	srcD, dstD *imaptest.Dovecot
	email      string
	messages   int
	state      imapcopyv1.SyncState
	reason     string
	lost, dups int
	problems   []string
	cuts       int64
	took       time.Duration
}

type soakSample struct {
	label      string
	goroutines int
	fds        int
	rssKB      int
}

func TestSoak(t *testing.T) {
	n := soakCount(t)
	began := time.Now()
	rng := rand.New(rand.NewPCG(soakSeed, 0))
	pairs := make([]*soakPair, n)
	for i := range pairs {
		p := &soakPair{i: i, fault: soakFaults[rng.IntN(len(soakFaults))], side: "source"}
		if rng.IntN(2) == 1 {
			p.side = "destination"
		}
		// Many accounts on the two Dovecots, alternating which one is the source.
		from, to := shared.slash, shared.dot
		if i%2 == 1 {
			from, to = to, from
		}
		p.src, p.dst, p.srcD, p.dstD = from.AddUser(t), to.AddUser(t), from, to
		p.email = p.src.Login + "@source.test"
		pairs[i] = p
	}
	g, gctx := errgroup.WithContext(t.Context())
	g.SetLimit(4)
	for _, p := range pairs {
		g.Go(func() error {
			mb := imaptest.Generate(int64(soakSeed*1000+p.i), imaptest.Spec{
				Count: 10 + p.i%21, Folders: -1,
				Sizes: []imaptest.SizeClass{{Weight: 1, Min: 800, Max: 8_000}},
			})
			p.messages = mb.Count()
			return imaptest.Load(gctx, p.src, mb)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("load the sources: %v", err)
	}
	t.Logf("loaded %d sources in %v", n, time.Since(began).Round(time.Second))

	grpcAddr, adminAddr := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	env := testEnv()
	env["IMAPCOPY_RATE_PER_ADDRESS"] = "off"
	env["IMAPCOPY_RATE_PER_CALLER"] = "off"
	env["IMAPCOPY_LOG_LEVEL"] = "warn"
	env["IMAPCOPY_COPIER_CONCURRENCY"] = strconv.Itoa(soakAtOnce)
	proc := startChild(t, "soak", []string{"-data-dir", t.TempDir(), "-grpc-addr", grpcAddr, "-admin-addr", adminAddr}, env)
	c := dial(t, grpcAddr)
	c.waitServing(t, proc.Exited)
	pid := proc.Cmd.Process.Pid
	samples := []soakSample{sample(t, "started", pid, adminAddr)}

	runStart := time.Now()
	var ended atomic.Int64
	for q := range 4 {
		g, gctx := errgroup.WithContext(t.Context())
		g.SetLimit(soakAtOnce)
		for _, p := range pairs[q*n/4 : (q+1)*n/4] {
			g.Go(func() error {
				runPair(gctx, t, c, p)
				ended.Add(1)
				return nil
			})
		}
		g.Wait()
		samples = append(samples, sample(t, fmt.Sprintf("quarter %d (%d syncs)", q+1, ended.Load()), pid, adminAddr))
	}
	runTime := time.Since(runStart)

	// A rerun of a sample of completed syncs appends nothing (the report aside).
	reruns, rerunAppended := 0, uint64(0)
	for _, p := range pairs {
		if reruns == soakRerun {
			break
		}
		if p.state != imapcopyv1.SyncState_SYNC_STATE_COMPLETED {
			continue
		}
		reruns++
		st, err := startAndWait(t.Context(), c, p, p.src, p.dst)
		if err != nil || st.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED {
			t.Errorf("rerun of sync %d: %v (%s %s), %v; want COMPLETED", p.i, st.GetState(), st.GetMessage(), st.GetFailureReason(), err)
			continue
		}
		rerunAppended += st.GetTotal().GetMessagesCopied()
		if got := st.GetTotal().GetMessagesCopied(); got != 0 {
			t.Errorf("rerun of sync %d copied %d messages, want 0", p.i, got)
		}
		servicetest.Check(t, p.src, p.dst)
		if got := servicetest.Reports(t, p.dst); got != 2 {
			t.Errorf("rerun of sync %d: %d reports in the destination INBOX, want 2 (one per run)", p.i, got)
		}
	}

	// The table.
	type counts struct {
		syncs, completed, failed, other, cuts int
		took                                  []time.Duration
	}
	byFault := map[string]*counts{}
	lost, dups := 0, 0
	for _, p := range pairs {
		k := p.fault + "/" + p.side
		if p.fault == faultNone {
			k = faultNone
		}
		cnt := byFault[k]
		if cnt == nil {
			cnt = &counts{}
			byFault[k] = cnt
		}
		cnt.syncs++
		cnt.cuts += int(p.cuts)
		cnt.took = append(cnt.took, p.took)
		switch p.state {
		case imapcopyv1.SyncState_SYNC_STATE_COMPLETED:
			cnt.completed++
		case imapcopyv1.SyncState_SYNC_STATE_FAILED:
			cnt.failed++
		default:
			cnt.other++
		}
		lost += p.lost
		dups += p.dups
	}
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %d syncs, %d at once, seed %d, ran in %v (%v in all)\n", n, soakAtOnce, soakSeed, runTime.Round(time.Second), time.Since(began).Round(time.Second))
	fmt.Fprintf(&b, "  %-22s %6s %9s %6s %6s %6s %10s\n", "fault/side", "syncs", "completed", "failed", "other", "resets", "median s")
	for _, k := range slices.Sorted(maps.Keys(byFault)) {
		cnt := byFault[k]
		slices.Sort(cnt.took)
		fmt.Fprintf(&b, "  %-22s %6d %9d %6d %6d %6d %10.1f\n", k, cnt.syncs, cnt.completed, cnt.failed, cnt.other, cnt.cuts, cnt.took[len(cnt.took)/2].Seconds())
	}
	fmt.Fprintf(&b, "  messages lost %d, duplicated %d; reruns %d, appended %d\n", lost, dups, reruns, rerunAppended)
	fmt.Fprintf(&b, "  %-22s %10s %8s %10s\n", "sample", "goroutines", "open fds", "RSS MB")
	for _, s := range samples {
		fmt.Fprintf(&b, "  %-22s %10d %8d %10.1f\n", s.label, s.goroutines, s.fds, float64(s.rssKB)/1024)
	}
	first, last := samples[1], samples[len(samples)-1]
	fmt.Fprintf(&b, "  bounds, last quarter vs first: goroutines +-%d, fds +-%d, RSS <= %.1fx", soakGoroutineSlack, soakFDSlack, soakRSSFactor)
	t.Log("\n" + b.String())

	for _, p := range pairs {
		if p.state != imapcopyv1.SyncState_SYNC_STATE_COMPLETED {
			t.Errorf("sync %d (%s on the %s): ended %v: %s", p.i, p.fault, p.side, p.state, p.reason)
		}
		if len(p.problems) > 0 {
			t.Errorf("sync %d (%s on the %s): the checker found:\n  %s", p.i, p.fault, p.side, strings.Join(p.problems, "\n  "))
		}
	}
	if d := last.goroutines - first.goroutines; d > soakGoroutineSlack || d < -soakGoroutineSlack {
		t.Errorf("goroutines went from %d to %d between the first and the last quarter: not flat (bound +-%d)", first.goroutines, last.goroutines, soakGoroutineSlack)
	}
	if d := last.fds - first.fds; d > soakFDSlack || d < -soakFDSlack {
		t.Errorf("open files went from %d to %d between the first and the last quarter: not flat (bound +-%d)", first.fds, last.fds, soakFDSlack)
	}
	if float64(last.rssKB) > soakRSSFactor*float64(first.rssKB) {
		t.Errorf("RSS went from %d KB to %d KB between the first and the last quarter: more than %.1fx", first.rssKB, last.rssKB, soakRSSFactor)
	}
}

// runPair runs one sync with its fault and checks the copy. It records rather than
// fails: the table comes first.
func runPair(ctx context.Context, t *testing.T, c *client, p *soakPair) {
	target, via := p.srcD, p.src
	if p.side == "destination" {
		target, via = p.dstD, p.dst
	}
	rng := rand.New(rand.NewPCG(soakSeed, uint64(p.i)+1))
	stop := func() {}
	var resets *proxytest.Proxy
	switch p.fault {
	case faultReset:
		// From the server on the source, to it on the destination: where the mail flows.
		dir := proxytest.Downstream
		if p.side == "destination" {
			dir = proxytest.Upstream
		}
		resets = proxytest.New(t, target.TLSAddr)
		stop = rearmCuts(resets, dir, 30_000+rng.Int64N(50_000), soakMaxResets)
	case faultLatency:
		px := proxytest.New(t, target.TLSAddr, proxytest.WithLatency(time.Duration(20+rng.IntN(60))*time.Millisecond))
		via.Host, via.Port = px.Host(), px.Port()
		stop = func() { px.Close() }
	case faultTrickle:
		px := proxytest.New(t, target.TLSAddr, proxytest.WithDirBandwidth(proxytest.Downstream, 40_000+rng.Int64N(60_000)))
		via.Host, via.Port = px.Host(), px.Port()
		stop = func() { px.Close() }
	case faultThrottle:
		via = target.ProfileProxy(t, imaptest.Profile{Name: "soak-throttle", ThrottleEvery: 3, ThrottleReply: imaptest.M365Throttled, MaxThrottles: 2}).Account(via)
	case faultBye:
		via = target.ProfileProxy(t, imaptest.Profile{Name: "soak-bye", ByeAfter: 5, MaxByes: 2}).Account(via)
	}
	if resets != nil {
		via.Host, via.Port = resets.Host(), resets.Port()
	}
	src, dst := p.src, p.dst
	if p.side == "destination" {
		dst = via
	} else {
		src = via
	}
	began := time.Now()
	st, err := startAndWait(ctx, c, p, src, dst)
	p.took = time.Since(began)
	stop()
	if resets != nil {
		p.cuts = resets.Stats().Cuts
		resets.Close()
	}
	if err != nil {
		p.reason = err.Error()
		return
	}
	p.state = st.GetState()
	p.reason = st.GetMessage() + " " + st.GetFailureReason()
	if p.state != imapcopyv1.SyncState_SYNC_STATE_COMPLETED {
		return
	}
	res, err := imaptest.Check(ctx, p.src, p.dst, imaptest.CheckOptions{IgnoreDest: servicetest.IsReport})
	if err != nil {
		p.problems = []string{"Check: " + err.Error()}
		return
	}
	p.problems = res.Problems
	for _, pr := range res.Problems {
		switch {
		case strings.Contains(pr, "missing on destination"), strings.Contains(pr, "destination folder missing"):
			p.lost++
		case strings.Contains(pr, "duplicated on destination"), strings.Contains(pr, "extra message"):
			p.dups++
		}
	}
}

// rearmCuts arms a reset of the connection that carries the next every bytes in
// dir, again after each reset, max resets in all or until stop. (Resets
// every few KB without end are a permanent fault: no attempt makes progress.)
func rearmCuts(px *proxytest.Proxy, dir proxytest.Direction, every, max int64) (stop func()) {
	px.CutConnAfter(dir, every)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		seen := int64(0)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if cuts := px.Stats().Cuts; cuts != seen && cuts < max {
					seen = cuts
					px.CutConnAfter(dir, every)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// startAndWait starts the sync of p from src to dst (a start refused as UNAVAILABLE,
// as a fault may cause during the account tests, is tried again: a control panel
// would) and waits for its end.
func startAndWait(ctx context.Context, c *client, p *soakPair, src, dst imapconn.Account) (*imapcopyv1.SyncStatus, error) {
	req := &imapcopyv1.StartSyncRequest{
		Source:      servicetest.Account(src, p.email),
		Destination: servicetest.Account(dst, dst.Login+"@destination.test"),
	}
	var task string
	for attempt := 1; ; attempt++ {
		resp, err := c.StartSync(ctx, req)
		if err == nil {
			task = resp.GetTaskId()
			break
		}
		if attempt == 3 || status.Code(err) != codes.Unavailable {
			return nil, fmt.Errorf("StartSync (attempt %d): %w", attempt, err)
		}
		time.Sleep(time.Second)
	}
	deadline := time.Now().Add(soakSyncWait)
	var last *imapcopyv1.SyncStatus
	for {
		resp, err := c.GetSyncStatus(ctx, &imapcopyv1.GetSyncStatusRequest{SourceEmail: p.email})
		if err == nil {
			last = resp.GetStatus()
			if last.GetTaskId() == task && syncstatus.Terminal(last.GetState()) {
				return last, nil
			}
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("not ended within %v; last status %v (%s), last error: %w", soakSyncWait, last.GetState(), last.GetMessage(), err)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// sample reads the process's goroutines (go_goroutines on its /metrics), open files
// (/proc/PID/fd) and RSS (VmRSS). With no sync in flight, goroutines of the last
// connections may still be ending: the smallest of five readings 200 ms apart.
func sample(t *testing.T, label string, pid int, adminAddr string) soakSample {
	t.Helper()
	s := soakSample{label: label, goroutines: -1}
	for i := range 5 {
		if i > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		code, body := servicetest.Get(t, "http://"+adminAddr+"/metrics")
		if code != 200 {
			t.Fatalf("GET /metrics = %d", code)
		}
		g := metric(t, body, "go_goroutines")
		if s.goroutines < 0 || g < s.goroutines {
			s.goroutines = g
		}
		fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 || len(fds) < s.fds {
			s.fds = len(fds)
		}
	}
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			s.rssKB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	if s.rssKB == 0 {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	return s
}

// metric is the value of an unlabelled gauge in a Prometheus text exposition.
func metric(t *testing.T, body, name string) int {
	t.Helper()
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return int(f)
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}
