package copybench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// Measure is what one run of a child process cost.
type Measure struct {
	Wall time.Duration
	// MaxRSS is the child's peak resident set in bytes: the highest VmHWM seen in
	// /proc/PID/status while it runs. Not getrusage's ru_maxrss: on Linux that one
	// carries over the parent's peak from before exec (Go's vfork shares the parent's
	// memory), which would report the benchmark's own memory.
	MaxRSS    int64
	User, Sys time.Duration
	ExitCode  int    // -1 when killed by a signal
	Stdout    []byte // all of it (imapcopy-copier --json writes its result here)
	StderrEnd string // the last few KB, for error messages
}

// runChild runs bin with args and extra environment, and measures it. A non-zero exit
// is not an error: the caller judges ExitCode. The error is for a child that could not
// start or was killed by ctx.
func runChild(ctx context.Context, bin string, args, env []string) (Measure, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Start()
	if err != nil {
		return Measure{}, fmt.Errorf("run %s: %w", bin, err)
	}
	peak := make(chan int64, 1)
	done := make(chan struct{})
	go func() { peak <- watchHWM(cmd.Process.Pid, done) }()
	err = cmd.Wait()
	m := Measure{Wall: time.Since(start), Stdout: stdout.Bytes(), StderrEnd: stderr.String()}
	close(done)
	m.MaxRSS = <-peak
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return m, fmt.Errorf("run %s: %w", bin, err)
	}
	if ctx.Err() != nil {
		return m, fmt.Errorf("run %s: %w", bin, ctx.Err())
	}
	st := cmd.ProcessState
	m.ExitCode = st.ExitCode()
	m.User, m.Sys = st.UserTime(), st.SystemTime()
	return m, nil
}

// watchHWM polls the peak resident set (VmHWM) of process pid until done is closed
// and returns the highest value seen, in bytes.
func watchHWM(pid int, done <-chan struct{}) int64 {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	var peak int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if hwm := readHWM(path); hwm > peak {
			peak = hwm
		}
		select {
		case <-done:
			return peak
		case <-tick.C:
		}
	}
}

func readHWM(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(data, []byte("VmHWM:"))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(line), []byte("kB")))), 10, 64)
	if err != nil {
		return 0
	}
	return kb * 1024
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }
