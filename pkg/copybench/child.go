package copybench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// Measure is what one run of a child process cost.
type Measure struct {
	Wall      time.Duration
	MaxRSS    int64 // bytes, the child's peak resident set (getrusage ru_maxrss)
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
	err := cmd.Run()
	m := Measure{Wall: time.Since(start), Stdout: stdout.Bytes(), StderrEnd: stderr.String()}
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
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		m.MaxRSS = ru.Maxrss * 1024 // Linux reports KiB
	}
	return m, nil
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
