package copybench

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	ok := &CheckVerdict{OK: true}
	differs := &CheckVerdict{Problems: 4, Kinds: map[string]int{"missing": 2, "extra": 2},
		Causes: map[string]int{DiffHeaderAdded: 2, DiffKeywordsLost: 1}, CausesOfRep: 1}
	res := &Results{Params: Params{Reps: 3, WANReps: 1, Networks: []string{"loopback", "wan"}}}
	for i, w := range []float64{10, 12, 11} {
		res.Runs = append(res.Runs,
			RunResult{Network: Loopback, Tool: Imapcopy, Rep: i + 1, WallSeconds: w, MaxRSSBytes: 50e6, Check: ok},
			RunResult{Network: Loopback, Tool: Mbsync, Rep: i + 1, WallSeconds: 20, Check: differs})
	}
	wrong := &CheckVerdict{Problems: 1, Kinds: map[string]int{"missing": 1}, Examples: []string{"folder INBOX: missing on destination: uid 7"}}
	res.Runs = append(res.Runs, RunResult{Network: WAN, Tool: Imapcopy, Rep: 1, WallSeconds: 30, Check: wrong, ExitCode: 3, Error: "exit code 3"})
	res.Summarize()

	if len(res.Summary) != 3 {
		t.Fatalf("%d summaries, want 3: %+v", len(res.Summary), res.Summary)
	}
	if got, want := res.Summary[0].WallSeconds, (Stat{Median: 11, Min: 10, Max: 12}); got != want {
		t.Errorf("loopback imapcopy wall = %+v, want %+v", got, want)
	}
	if got := res.Summary[0].ChecksOK; got != 3 {
		t.Errorf("loopback imapcopy checks OK = %d, want 3", got)
	}
	if len(res.Ratios) != 1 || res.Ratios[0].Median != 0.55 || len(res.Ratios[0].Pairs) != 3 {
		t.Errorf("ratios = %+v, want loopback pairs 0.5 0.6 0.55, median 0.55", res.Ratios)
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"OK 3/3",
		"differs 3/3: " + DiffHeaderAdded + " 2, " + DiffKeywordsLost + " 1",
		"WRONG 1/1",
		"missing on destination: uid 7",
		"1 on the WAN",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not read back: %v", err)
	}
	if len(back.Runs) != len(res.Runs) || back.Runs[1].Check.Causes[DiffHeaderAdded] != 2 {
		t.Errorf("JSON round trip lost runs or causes")
	}
}

func TestGoals(t *testing.T) {
	ok := &CheckVerdict{OK: true}
	res := &Results{
		Params: Params{Reps: 1, WANReps: 1, Networks: []string{"loopback", "wan", "wan-capped"},
			Bandwidth: map[string]int64{"wan-capped": 5e6}},
		Extra: []MailboxInfo{{Name: MailboxRerun, Messages: 100000}},
	}
	res.Runs = []RunResult{
		{Network: Loopback, Tool: Imapcopy, WallSeconds: 10, MaxRSSBytes: 60e6, Check: ok},
		{Network: Loopback, Tool: Mbsync, WallSeconds: 25, Check: ok},
		{Network: WAN, Tool: Imapcopy, WallSeconds: 14, Check: ok},
		{Network: WAN, Tool: Mbsync, WallSeconds: 20, Check: ok},
		{Network: WANCapped, Tool: Imapcopy, WallSeconds: 70, MBPerSecond: 4.5, Check: ok},
		{Mailbox: MailboxOneFolder, Network: Loopback, Tool: Imapcopy, MessagesPerSecond: 900, Check: ok},
		{Mailbox: MailboxSpread, Network: Loopback, Tool: Imapcopy, MessagesPerSecond: 1000, Check: ok},
		{Mailbox: MailboxRerun, Network: Loopback, Tool: Imapcopy, WallSeconds: 60, Check: ok},
		{Mailbox: MailboxRerun, Network: Loopback, Tool: ImapcopyRerun, WallSeconds: 2.5, CheckSkipped: true},
		{Mailbox: MailboxRerun, Network: Loopback, Tool: ImapcopyRerunNew, WallSeconds: 5, Check: &CheckVerdict{Problems: 1}},
	}
	res.Summarize()
	want := map[string]bool{
		"peak RSS of one sync (main mailbox, loopback)": true,  // 60 MB
		"speed over mbsync's on loopback":               true,  // 2.5×
		"speed over mbsync's on wan":                    false, // 1.43×
		"wan time over its own loopback time":           false, // 1.4×
		"wan-capped: share of the link's bandwidth":     true,  // 90 %
		"one-folder: msg/s over the spread twin's":      true,  // 90 %
		"rerun of an unchanged 100000-message mailbox":  true,  // 2.5 s, its check skipped
		"rerun after new messages":                      false, // 5 s, and its check failed
	}
	got := map[string]bool{}
	for _, g := range res.Goals {
		got[g.Name] = g.Met
	}
	if !maps.Equal(got, want) {
		t.Errorf("goals met = %v\nwant %v\n%+v", got, want, res.Goals)
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"goals (issue 12):", "NOT MET", "90% (4.50 of 5.00 MB/s)", "the later runs' check covers it"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
}

// TestCPUBound: the busy share and the least wall time the runs' CPU allows, and
// so the highest speed-up over mbsync, read off the servers' and the tool's CPU.
func TestCPUBound(t *testing.T) {
	ok := &CheckVerdict{OK: true}
	res := &Results{Machine: Machine{CPUs: 2}, Params: Params{Reps: 1}}
	res.Runs = []RunResult{
		// 0.5 + 5.5 = 6 CPU-s over 4 s on 2 CPUs: 75% busy, at least 3 s.
		{Network: Loopback, Tool: Imapcopy, Rep: 1, WallSeconds: 4, UserCPUSeconds: 0.4, SysCPUSeconds: 0.1, ServerCPUSeconds: 5.5, Check: ok},
		{Network: Loopback, Tool: Mbsync, Rep: 1, WallSeconds: 9, UserCPUSeconds: 1, ServerCPUSeconds: 8, Check: ok},
	}
	res.Summarize()
	ic := res.summary("", Loopback, Imapcopy)
	if ic == nil || ic.Busy.Median != 0.75 || ic.ServerCPUSeconds.Median != 5.5 {
		t.Fatalf("imapcopy summary = %+v, want busy 0.75 and servers 5.5 s", ic)
	}
	lines := res.cpuBounds()
	want := "loopback: imapcopy kept the machine 75% busy (its CPU 0.5 s + the servers' 5.5 s, over 4.0 s × 2 CPUs); " +
		"the same work takes at least 3.0 s on 2 CPUs: at most 3.00× mbsync's 9.0 s (mbsync: its CPU 1.0 s + the servers' 8.0 s)"
	if len(lines) != 1 || lines[0] != want {
		t.Errorf("cpuBounds = %q, want [%q]", lines, want)
	}
	// Behind the WAN proxies, the bench's own CPU (the proxies) is work too:
	// 0.5 + 4.5 + 1 = 6 CPU-s over 5 s on 2 CPUs: 60% busy, at least 3 s.
	wan := &Results{Machine: Machine{CPUs: 2}, Params: Params{Reps: 1}}
	wan.Runs = []RunResult{
		{Network: WAN, Tool: Imapcopy, Rep: 1, WallSeconds: 5, UserCPUSeconds: 0.5, ServerCPUSeconds: 4.5, NetCPUSeconds: 1, Check: ok},
		{Network: WAN, Tool: Mbsync, Rep: 1, WallSeconds: 12, UserCPUSeconds: 1, ServerCPUSeconds: 8, NetCPUSeconds: 1.5, Check: ok},
	}
	wan.Summarize()
	if ic := wan.summary("", WAN, Imapcopy); ic == nil || ic.Busy.Median != 0.6 || ic.NetCPUSeconds.Median != 1 {
		t.Fatalf("wan imapcopy summary = %+v, want busy 0.6 and network 1 s", ic)
	}
	want = "wan: imapcopy kept the machine 60% busy (its CPU 0.5 s + the servers' 4.5 s + the network emulation's 1.0 s, over 5.0 s × 2 CPUs); " +
		"the same work takes at least 3.0 s on 2 CPUs: at most 4.00× mbsync's 12.0 s (mbsync: its CPU 1.0 s + the servers' 8.0 s + the network emulation's 1.5 s)"
	if lines := wan.cpuBounds(); len(lines) != 1 || lines[0] != want {
		t.Errorf("cpuBounds = %q, want [%q]", lines, want)
	}

	// Without the servers' CPU (an old results file), no bound is claimed.
	res.Runs[0].ServerCPUSeconds = 0
	res.Summarize()
	if lines := res.cpuBounds(); len(lines) != 0 {
		t.Errorf("cpuBounds without servers' CPU = %q, want none", lines)
	}
}

// TestFileSystem: the table says what file system the servers' mail is on; a
// tmpfs is named so (the quiet way to run the benchmark, see the README).
func TestFileSystem(t *testing.T) {
	if got := fileSystem(t.TempDir()); !strings.Contains(got, " in ") {
		t.Errorf("fileSystem(a temporary directory) = %q, want a name and where", got)
	}
	dir, err := os.MkdirTemp("/dev/shm", "copybench-")
	if err != nil {
		t.Fatalf("/dev/shm (a tmpfs on Linux): %v", err)
	}
	defer os.RemoveAll(dir)
	if got := fileSystem(dir); got != "tmpfs in /dev/shm" {
		t.Errorf("fileSystem(%s) = %q, want tmpfs in /dev/shm", dir, got)
	}
	if got := fileSystem("/no/such/dir"); got != "" {
		t.Errorf("fileSystem of no directory = %q, want nothing", got)
	}
}
