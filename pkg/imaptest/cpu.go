package imaptest

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU is the processor time the server has used since it started: its master's,
// its live processes' and every reaped process's (Linux /proc, user + system).
// The difference of two readings is what the server spent between them: a
// benchmark reads it to say how much of a copy's time is the servers' own work.
func (d *Dovecot) CPU() (time.Duration, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed || d.cmd == nil || d.cmd.Process == nil {
		return 0, errors.New("dovecot cpu: the server is gone (closed)")
	}
	return treeCPU(d.cmd.Process.Pid)
}

// treeCPU sums the user and system time of root and its descendants, live and
// reaped (a reaped child's time is in its parent's cutime and cstime).
func treeCPU(root int) (time.Duration, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	type proc struct {
		ppid  int
		ticks int64
	}
	procs := map[int]proc{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile: its time is in its parent's
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		var ticks int64
		for _, k := range f[11:15] { // utime, stime, cutime, cstime
			n, _ := strconv.ParseInt(k, 10, 64)
			ticks += n
		}
		procs[pid] = proc{ppid: ppid, ticks: ticks}
	}
	if _, ok := procs[root]; !ok {
		return 0, errors.New("dovecot cpu: the server's process is gone")
	}
	var total int64
	for pid, p := range procs {
		for q := pid; q > 1; q = procs[q].ppid {
			if q == root {
				total += p.ticks
				break
			}
		}
	}
	const ticksPerSecond = 100 // USER_HZ, 100 on every Linux architecture Go supports
	return time.Duration(total) * time.Second / ticksPerSecond, nil
}
