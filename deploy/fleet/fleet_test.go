//go:build fleet

// Package fleet_test runs the whole fleet on one machine, as Kubernetes would run
// it, and breaks it on purpose: a 3-node NATS JetStream cluster (real nats-server
// processes), a redis-server, two api processes and three copier processes (the real
// binaries, built by the test), Dovecot accounts on loopback. Thirty syncs start
// across both apis; in the middle of the run one NATS node and one copier are
// killed (SIGKILL). Every sync must still complete, and every destination must pass
// the harness's checker: nothing lost, nothing doubled.
//
// It takes minutes (a killed copier's tasks come back after the queue's ack wait),
// so it runs behind the build tag "fleet": make fleet-test.
package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/redistest"
	"imapcopy.dev/pkg/taskqueue"
	"imapcopy.dev/pkg/taskseal"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// The fleet's shape.
const (
	natsNodes   = 3
	apis        = 2
	copiers     = 3
	syncs       = 30
	concurrency = 4 // tasks per copier
	// messagesPerSync: enough for a sync to be running when the kills come, small
	// enough for 30 syncs to fit in a few minutes on a shared machine (200 generated
	// messages are about 7 MB).
	messagesPerSync = 200
	startsAtOnce    = 6 // StartSync calls in flight
)

// repoRoot is the repository, seen from this package's folder.
const repoRoot = "../.."

func TestFleet(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir}
	// Registered first, run last: the reasons come after every process's log.
	t.Cleanup(h.repeatFailures)
	began := time.Now()

	bins := buildBinaries(t, dir)
	t.Logf("built %v in %v", slices.Sorted(maps.Keys(bins)), time.Since(began).Round(time.Second))

	cluster := startNATSCluster(h, bins["nats-server"])
	redis := redistest.Start(t)
	src := imaptest.StartDovecot(t, imaptest.FlavourSlash)
	dst := imaptest.StartDovecot(t, imaptest.FlavourDot)

	keyFile := filepath.Join(dir, "task-keys")
	if _, _, err := taskseal.EnsureKeyFile(keyFile); err != nil {
		h.fatalf("%v", err)
	}
	caFile := filepath.Join(dir, "imap-ca.pem")
	ca := append(mustRead(t, src.CAFile), mustRead(t, dst.CAFile)...)
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		h.fatalf("%v", err)
	}
	common := map[string]string{
		"IMAPCOPY_NATS_URL":       cluster.clientURLs(),
		"IMAPCOPY_REDIS_URL":      redis.URL(),
		"IMAPCOPY_TASK_KEY_FILE":  keyFile,
		"IMAPCOPY_QUEUE_REPLICAS": fmt.Sprint(natsNodes),
		// Dovecot listens on loopback, which the network policy refuses unless the
		// operator allows it: here it is the "own destination servers" case.
		"IMAPCOPY_ALLOW_NETWORKS": "127.0.0.1/32",
		"IMAPCOPY_IMAP_CA_FILE":   caFile,
		"IMAPCOPY_LOG_LEVEL":      "info",
	}

	// Copiers first: they create the stream and consumer with the fleet's replicas.
	var cops []*proc
	for i := range copiers {
		cops = append(cops, h.start(fmt.Sprintf("copier-%d", i), bins["imapcopy-copier"], merge(common, map[string]string{
			"IMAPCOPY_ADMIN_ADDR":         freeAddr(t),
			"IMAPCOPY_COPIER_CONCURRENCY": fmt.Sprint(concurrency),
			"IMAPCOPY_SHUTDOWN_TIMEOUT":   "10s",
		})))
	}
	var clients []imapcopyv1.SyncServiceClient
	var apiProcs []*proc
	for i := range apis {
		grpcAddr := freeAddr(t)
		p := h.start(fmt.Sprintf("api-%d", i), bins["imapcopy-api"], merge(common, map[string]string{
			"IMAPCOPY_GRPC_ADDR":        grpcAddr,
			"IMAPCOPY_ADMIN_ADDR":       freeAddr(t),
			"IMAPCOPY_RATE_PER_ADDRESS": "off",
			"IMAPCOPY_RATE_PER_CALLER":  "off",
		}))
		apiProcs = append(apiProcs, p)
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			h.fatalf("%v", err)
		}
		t.Cleanup(func() { conn.Close() })
		clients = append(clients, imapcopyv1.NewSyncServiceClient(conn))
	}
	for _, p := range slices.Concat(cops, apiProcs) {
		p.waitReady(ctx, t)
	}

	// Thirty source accounts with distinct generated mailboxes, thirty empty
	// destinations on the other flavour of server.
	pairs := make([]pair, syncs)
	loadStart := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range pairs {
		pairs[i] = pair{src: src.AddUser(t), dst: dst.AddUser(t)}
		pairs[i].srcEmail = pairs[i].src.Login + "@source.test"
		pairs[i].dstEmail = pairs[i].dst.Login + "@destination.test"
		g.Go(func() error {
			mb := imaptest.Generate(int64(1000+i), imaptest.Spec{Count: messagesPerSync, Folders: 4})
			pairs[i].messages, pairs[i].bytes = mb.Count(), mb.Size()
			return imaptest.Load(gctx, pairs[i].src, mb)
		})
	}
	if err := g.Wait(); err != nil {
		h.fatalf("load sources: %v", err)
	}
	t.Logf("loaded %d sources in %v", syncs, time.Since(loadStart).Round(time.Second))

	// Start every sync, alternating between the two apis, several at once (as a
	// control panel moving a domain does; one at a time, a fast machine ends the
	// first syncs before six run), while a watcher waits for the moment to break
	// things: copies running and most syncs not ended. It then kills the NATS node
	// that leads the task stream and the copier with the most tasks in flight. A
	// start that meets the NATS failover gets UNAVAILABLE (nothing queued, nothing
	// locked) and is retried, as a control panel would.
	runStart := time.Now()
	killed := make(chan killReport, 1)
	go func() { killed <- breakFleet(ctx, clients, pairs, cluster, cops, runStart) }()
	var startRetries atomic.Int64
	sg, sctx := errgroup.WithContext(ctx)
	sg.SetLimit(startsAtOnce)
	for i := range pairs {
		sg.Go(func() error {
			id, retries, err := startOne(sctx, clients[i%apis], &pairs[i])
			startRetries.Add(int64(retries))
			if err != nil {
				return fmt.Errorf("StartSync %d through api-%d: %w", i, i%apis, err)
			}
			pairs[i].taskID = id
			return nil
		})
	}
	if err := sg.Wait(); err != nil {
		h.fatalf("%v", err)
	}
	t.Logf("started %d syncs through %d apis in %v (%d starts retried after UNAVAILABLE)", syncs, apis, time.Since(runStart).Round(time.Millisecond), startRetries.Load())
	var k killReport
	select {
	case k = <-killed:
	case <-ctx.Done():
		h.fatalf("the watcher did not break the fleet before the deadline")
	}
	if k.err != nil {
		h.fatalf("%v", k.err)
	}
	t.Logf("at %v, %d running and %d ended: killed NATS node %s (stream leader) and %s (%d tasks in flight)",
		k.at.Round(time.Millisecond), k.running, k.ended, k.nats, k.copier, k.inFlight)

	statuses := map[int]*imapcopyv1.SyncStatus{}
	poll := func() (terminal int) {
		for i := range pairs {
			if s := statuses[i]; s != nil && terminalState(s.GetState()) {
				terminal++
				continue
			}
			resp, err := clients[i%apis].GetSyncStatus(ctx, &imapcopyv1.GetSyncStatusRequest{SourceEmail: pairs[i].srcEmail})
			if err != nil {
				continue // an api may be briefly unavailable while NATS fails over
			}
			statuses[i] = resp.GetStatus()
			if terminalState(resp.GetStatus().GetState()) {
				terminal++
			}
		}
		return terminal
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()

	// Every sync must end, completed.
	for {
		if poll() == syncs {
			break
		}
		select {
		case <-ctx.Done():
			h.fatalf("not every sync ended before the deadline: %v\n%s", statusSummary(statuses), h.logs())
		case <-tick.C:
		}
	}
	runTime := time.Since(runStart)

	var msgs, bytesCopied int64
	redelivered := 0
	maxAttempt := uint32(0)
	for i, s := range statuses {
		if s.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED {
			h.errorf("sync %d (%s): %v %q %q, want COMPLETED", i, pairs[i].srcEmail, s.GetState(), s.GetFailureReason(), s.GetMessage())
		}
		if s.GetTaskId() != pairs[i].taskID {
			h.errorf("sync %d: status of task %s, want %s", i, s.GetTaskId(), pairs[i].taskID)
		}
		msgs += int64(s.GetTotal().GetMessagesCopied())
		bytesCopied += int64(s.GetTotal().GetBytesCopied())
		if s.GetAttempt() > 1 {
			redelivered++
		}
		maxAttempt = max(maxAttempt, s.GetAttempt())
	}

	// The checker, on every pair: each source message exactly once in its mapped
	// folder, byte for byte, flags and dates; the report aside.
	checkStart := time.Now()
	cg, cctx := errgroup.WithContext(ctx)
	cg.SetLimit(4)
	var mu sync.Mutex
	for i := range pairs {
		cg.Go(func() error {
			res, err := imaptest.Check(cctx, pairs[i].src, pairs[i].dst, imaptest.CheckOptions{IgnoreDest: isReport})
			if err != nil {
				return fmt.Errorf("check sync %d: %w", i, err)
			}
			n, err := countReports(cctx, pairs[i].dst)
			if err != nil {
				return fmt.Errorf("reports of sync %d: %w", i, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !res.OK() {
				h.errorf("sync %d (%s -> %s): %v", i, pairs[i].srcEmail, pairs[i].dstEmail, res)
			}
			if n < 1 {
				h.errorf("sync %d: no report in the destination INBOX", i)
			}
			pairs[i].reports = n
			return nil
		})
	}
	if err := cg.Wait(); err != nil {
		h.fatalf("%v", err)
	}
	extraReports := 0
	var wantMsgs int
	var wantBytes int64
	for _, p := range pairs {
		extraReports += p.reports - 1
		wantMsgs += p.messages
		wantBytes += p.bytes
	}

	t.Logf("fleet: %d NATS nodes, %d apis, %d copiers x %d tasks; killed %s and %s at %v",
		natsNodes, apis, copiers, concurrency, k.nats, k.copier, k.at.Round(time.Millisecond))
	t.Logf("result: %d/%d syncs COMPLETED in %v (first start to last end); %d generated messages (%.1f MB) in the sources; copied %d messages, %.1f MB (reruns count what they append)",
		syncs, syncs, runTime.Round(time.Second), wantMsgs, float64(wantBytes)/1e6, msgs, float64(bytesCopied)/1e6)
	t.Logf("result: %d syncs ran more than once (max attempt %d); %d extra reports; checker passed on %d pairs in %v",
		redelivered, maxAttempt, extraReports, syncs, time.Since(checkStart).Round(time.Second))
	if t.Failed() {
		t.Log(h.logs())
	}
}

// startOne starts p's sync, retrying while the api answers UNAVAILABLE (a NATS
// failover: nothing was queued or locked). A start that was queued although its
// answer said otherwise shows as ALREADY_EXISTS on the retry: its task id is then
// the status's.
func startOne(ctx context.Context, api imapcopyv1.SyncServiceClient, p *pair) (taskID string, retries int, err error) {
	for {
		resp, err := api.StartSync(ctx, &imapcopyv1.StartSyncRequest{
			Source:      account(p.src, p.srcEmail),
			Destination: account(p.dst, p.dstEmail),
		})
		switch code := status.Code(err); {
		case err == nil:
			return resp.GetTaskId(), retries, nil
		case code == codes.Unavailable:
			retries++
			select {
			case <-ctx.Done():
				return "", retries, err
			case <-time.After(500 * time.Millisecond):
			}
		case code == codes.AlreadyExists && retries > 0:
			st, gerr := api.GetSyncStatus(ctx, &imapcopyv1.GetSyncStatusRequest{SourceEmail: p.srcEmail})
			if gerr != nil {
				return "", retries, errors.Join(err, gerr)
			}
			return st.GetStatus().GetTaskId(), retries, nil
		default:
			return "", retries, err
		}
	}
}

// killReport says what breakFleet killed, and when.
type killReport struct {
	nats, copier   string
	inFlight       int
	at             time.Duration
	running, ended int
	err            error
}

// breakFleet polls the syncs' statuses until 2 per copier run while fewer than a
// third have ended, then kills the NATS node leading the task stream
// and the copier with the most tasks in flight (SIGKILL both).
func breakFleet(ctx context.Context, clients []imapcopyv1.SyncServiceClient, pairs []pair, cluster *natsCluster, cops []*proc, runStart time.Time) killReport {
	for {
		select {
		case <-ctx.Done():
			return killReport{err: fmt.Errorf("no moment to break the fleet before the deadline: %w", ctx.Err())}
		case <-time.After(200 * time.Millisecond):
		}
		running, ended := 0, 0
		for i := range pairs {
			// srcEmail is set before this goroutine starts; a sync not started yet is
			// NotFound.
			resp, err := clients[i%apis].GetSyncStatus(ctx, &imapcopyv1.GetSyncStatusRequest{SourceEmail: pairs[i].srcEmail})
			if err != nil {
				continue
			}
			switch st := resp.GetStatus().GetState(); {
			case terminalState(st):
				ended++
			case st == imapcopyv1.SyncState_SYNC_STATE_RUNNING:
				running++
			}
		}
		if ended >= syncs/3 {
			return killReport{err: fmt.Errorf("a third of the syncs ended before %d ran at once: make the mailboxes bigger", 2*copiers)}
		}
		if running < 2*copiers {
			continue
		}
		k := killReport{at: time.Since(runStart), running: running, ended: ended}
		var err error
		if k.nats, err = cluster.killStreamLeader(); err != nil {
			return killReport{err: err}
		}
		victim := cops[0]
		for _, c := range cops {
			if n := c.inFlight(); n > k.inFlight {
				victim, k.inFlight = c, n
			}
		}
		if err := victim.kill(); err != nil {
			return killReport{err: err}
		}
		k.copier = victim.name
		return k
	}
}

type pair struct {
	src, dst           imapconn.Account
	srcEmail, dstEmail string
	taskID             string
	messages           int
	bytes              int64
	reports            int
}

// account is the StartSync form of a Dovecot account, under an email address that
// Dovecot logs in as the plain user (username_format=%n).
func account(a imapconn.Account, email string) *imapcopyv1.Account {
	return &imapcopyv1.Account{
		Provider: "other",
		Login:    email,
		Password: a.Password,
		Host:     a.Host,
		Port:     uint32(a.Port),
		Security: imapcopyv1.Security_SECURITY_TLS,
	}
}

func terminalState(s imapcopyv1.SyncState) bool {
	switch s {
	case imapcopyv1.SyncState_SYNC_STATE_COMPLETED, imapcopyv1.SyncState_SYNC_STATE_COMPLETED_WITH_ERRORS,
		imapcopyv1.SyncState_SYNC_STATE_FAILED, imapcopyv1.SyncState_SYNC_STATE_CANCELLED:
		return true
	}
	return false
}

func statusSummary(statuses map[int]*imapcopyv1.SyncStatus) map[string]int {
	out := map[string]int{}
	for _, s := range statuses {
		out[s.GetState().String()]++
	}
	return out
}

func isReport(_ string, raw []byte) bool {
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	return bytes.Contains(head, []byte(mailcopy.ReportHeader+":"))
}

func countReports(ctx context.Context, dst imapconn.Account) (int, error) {
	msgs, err := imaptest.ReadFolder(ctx, dst, "INBOX")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range msgs {
		if isReport("INBOX", m.Raw) {
			n++
		}
	}
	return n, nil
}

// buildBinaries builds the api, the copier and nats-server (from the module the
// project already requires) into dir.
func buildBinaries(t *testing.T, dir string) map[string]string {
	t.Helper()
	goBin, err := exec.LookPath("go") // go test puts its own GOROOT/bin first in PATH
	if err != nil {
		t.Fatalf("no go tool in PATH: %v", err)
	}
	bins := map[string]string{}
	for name, pkg := range map[string]string{
		"imapcopy-api":    "./services/api",
		"imapcopy-copier": "./services/copier",
		"nats-server":     "github.com/nats-io/nats-server/v2",
	} {
		out := filepath.Join(dir, name)
		cmd := exec.Command(goBin, "build", "-o", out, pkg)
		cmd.Dir = repoRoot
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
		bins[name] = out
	}
	return bins
}

// proc is one process of the fleet, its output in a log file.
type proc struct {
	name      string
	cmd       *exec.Cmd
	log       string
	adminAddr string // for /readyz; "" when the process has none
	done      chan struct{}
}

// harness owns the test's processes and their logs.
type harness struct {
	t   *testing.T
	dir string

	mu       sync.Mutex
	procs    []*proc
	failures []string
}

// fatalf and errorf fail the test as t's do, and keep the reason for repeatFailures.
func (h *harness) fatalf(format string, args ...any) {
	h.t.Helper()
	h.record(format, args...)
	h.t.Fatalf(format, args...)
}

func (h *harness) errorf(format string, args ...any) {
	h.t.Helper()
	h.record(format, args...)
	h.t.Errorf(format, args...)
}

func (h *harness) record(format string, args ...any) {
	msg, _, _ := strings.Cut(fmt.Sprintf(format, args...), "\n") // the first line: no logs
	h.mu.Lock()
	h.failures = append(h.failures, msg)
	h.mu.Unlock()
}

// repeatFailures logs the reasons again at the very end, after the logs of every
// process, where a CI log's tail shows them.
func (h *harness) repeatFailures() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range h.failures {
		h.t.Log("failed: " + f)
	}
}

// start starts bin with env (and nothing else of the test's environment but
// PATH and HOME), stopped at the end of the test.
func (h *harness) start(name, bin string, env map[string]string, args ...string) *proc {
	t := h.t
	t.Helper()
	logPath := filepath.Join(h.dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, adminAddr: env["IMAPCOPY_ADMIN_ADDR"], done: make(chan struct{})}
	go func() { cmd.Wait(); logFile.Close(); close(p.done) }()
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// kill ends the process with SIGKILL, as a node failure or the OOM killer would.
func (p *proc) kill() error {
	if err := p.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	<-p.done
	return nil
}

// inFlight reads imapcopy_copier_tasks_in_flight from the process's /metrics (0 when
// it cannot).
func (p *proc) inFlight() int {
	resp, err := http.Get("http://" + p.adminAddr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "imapcopy_copier_tasks_in_flight "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return int(f)
		}
	}
	return 0
}

// waitReady waits until the process's /readyz answers 200 (or fails the test when
// the process exits first).
func (p *proc) waitReady(ctx context.Context, t *testing.T) {
	t.Helper()
	if p.adminAddr == "" {
		return
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.adminAddr+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready:\n%s", p.name, tail(p.log, 30))
		case <-ctx.Done():
			t.Fatalf("%s not ready before the deadline:\n%s", p.name, tail(p.log, 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logs returns the last lines of every process's log.
func (h *harness) logs() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, p := range h.procs {
		fmt.Fprintf(&b, "--- %s (last lines of %s)\n%s\n", p.name, p.log, tail(p.log, 15))
	}
	return b.String()
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// natsCluster is a JetStream cluster of nats-server processes on loopback.
type natsCluster struct {
	nodes []*natsNode
}

type natsNode struct {
	name, client, monitor string
	proc                  *proc
}

func startNATSCluster(h *harness, bin string) *natsCluster {
	t, dir := h.t, h.dir
	t.Helper()
	c := &natsCluster{}
	var routes []string
	clusterAddrs := make([]string, natsNodes)
	for i := range natsNodes {
		clusterAddrs[i] = freeAddr(t)
		routes = append(routes, "nats-route://"+clusterAddrs[i])
	}
	for i := range natsNodes {
		n := &natsNode{name: fmt.Sprintf("nats-%d", i), client: freeAddr(t), monitor: freeAddr(t)}
		store := filepath.Join(dir, n.name)
		host, port, _ := net.SplitHostPort(n.client)
		mhost, mport, _ := net.SplitHostPort(n.monitor)
		chost, cport, _ := net.SplitHostPort(clusterAddrs[i])
		// As deploy/nats/values.yaml: JetStream on file storage, fsync on every write.
		conf := fmt.Sprintf(`server_name: %s
host: %s
port: %s
http: "%s:%s"
jetstream {
  store_dir: %q
  sync_interval: always
}
cluster {
  name: imapcopy
  host: %s
  port: %s
  routes: [%s]
}
`, n.name, host, port, mhost, mport, store, chost, cport, strings.Join(routes, ", "))
		confPath := filepath.Join(dir, n.name+".conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		n.proc = h.start(n.name, bin, nil, "-c", confPath)
		c.nodes = append(c.nodes, n)
	}
	// Ready when every node reports JetStream healthy (a meta leader elected).
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range c.nodes {
		for {
			resp, err := http.Get("http://" + n.monitor + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("NATS node %s not healthy:\n%s", n.name, tail(n.proc.log, 20))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return c
}

func (c *natsCluster) clientURLs() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, "nats://"+n.client)
	}
	return strings.Join(urls, ",")
}

// killStreamLeader kills the node that leads the task stream (the hardest node to
// lose), or the first node when no node names a leader.
func (c *natsCluster) killStreamLeader() (string, error) {
	leader := ""
	for _, n := range c.nodes {
		resp, err := http.Get("http://" + n.monitor + "/jsz?streams=true")
		if err != nil {
			continue
		}
		var jsz struct {
			AccountDetails []struct {
				StreamDetail []struct {
					Name    string `json:"name"`
					Cluster struct {
						Leader string `json:"leader"`
					} `json:"cluster"`
				} `json:"stream_detail"`
			} `json:"account_details"`
		}
		err = json.NewDecoder(resp.Body).Decode(&jsz)
		resp.Body.Close()
		if err != nil {
			continue
		}
		for _, a := range jsz.AccountDetails {
			for _, s := range a.StreamDetail {
				if s.Name == taskqueue.StreamName && s.Cluster.Leader != "" {
					leader = s.Cluster.Leader
				}
			}
		}
		if leader != "" {
			break
		}
	}
	for _, n := range c.nodes {
		if n.name == leader || leader == "" {
			return n.name, n.proc.kill()
		}
	}
	return "", fmt.Errorf("stream leader %q is not a node of the cluster", leader)
}

// freeAddr returns a free loopback address (the kernel's choice, released at once).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
