package main

import (
	"fmt"
	"math"
	"runtime/debug"
	"strings"

	"imapcopy.dev/pkg/mailcopy"
)

// memoryLimit is the --memory-limit setting: the Go memory limit the copier sets
// (runtime/debug.SetMemoryLimit), a size, "off", or empty for the default, the
// engine's budget for the copies the process runs at once (mailcopy.MemoryBudget:
// 16 MiB + tasks × connections × 8 MiB). The garbage collector keeps the heap under
// it rather than letting it grow to twice the live data; it is a soft limit: a copy
// whose live data exceeds it (the metadata of a very large folder) goes on, with the
// GC running more often. A GOMEMLIMIT below it (a pod's limit, see deploy/) wins.
type memoryLimit struct{ raw string }

// resolve returns the limit in bytes for tasks copies of connections connections
// each; 0 means none.
func (m memoryLimit) resolve(tasks, connections int) (int64, error) {
	switch strings.ToLower(strings.TrimSpace(m.raw)) {
	case "":
		return mailcopy.MemoryBudget(tasks, connections), nil
	case "off", "0":
		return 0, nil
	}
	n, err := parseSize(m.raw)
	if err != nil {
		return 0, err
	}
	if n < 8<<20 {
		return 0, fmt.Errorf("%q is below 8 MiB: the process would spend its time collecting garbage", m.raw)
	}
	return n, nil
}

// setMemoryLimit is applyMemoryLimit, but in the tests that run the commands in
// their own process (where the limit would slow every other test down).
var setMemoryLimit = applyMemoryLimit

// applyMemoryLimit sets the Go memory limit to limit unless it is 0 or a lower
// limit is in effect (GOMEMLIMIT), and returns the limit in effect (math.MaxInt64:
// none).
func applyMemoryLimit(limit int64) int64 {
	cur := debug.SetMemoryLimit(-1)
	if limit <= 0 || cur <= limit {
		return cur
	}
	debug.SetMemoryLimit(limit)
	return limit
}

// memoryLimitText is a limit for the log: "48.0 MiB", or "none".
func memoryLimitText(limit int64) string {
	if limit == math.MaxInt64 {
		return "none"
	}
	return mailcopy.ByteSize(limit)
}
