package mailcopy_test

import (
	"cmp"
	"context"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"imapcopy.dev/pkg/copybench"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// BenchmarkCopy copies the benchmark's generated mailbox (copybench's: 5,000
// messages, about 300 MB, 27 folders; IMAPCOPY_BENCH_MESSAGES and
// IMAPCOPY_BENCH_MB change it) from a "/" Dovecot into a fresh account of a
// "." Dovecot, both on loopback over TLS, with the default 4 connections
// (IMAPCOPY_BENCH_CONNECTIONS changes it).
// Each iteration copies into a new account, then reruns the copy onto it.
// Loading the source is setup, not measured. Reports messages/s, MB/s, the
// rerun's seconds, the peak heap in use during the copies (peak-heap-MiB,
// above the heap before them) and the bytes the copies allocated per MB copied
// (B/copiedMB: the garbage a sync makes; with bodies streamed, far less than
// the bytes copied, and it does not grow with the message sizes). The
// memory budget the engine states (MemoryBudget) is checked against the peak.
//
//	go test -run '^$' -bench BenchmarkCopy -benchmem -benchtime 1x ./pkg/mailcopy/
func BenchmarkCopy(b *testing.B) {
	spec := copybench.DefaultSpec()
	if n, err := strconv.Atoi(os.Getenv("IMAPCOPY_BENCH_MESSAGES")); err == nil {
		spec.Count = n
	}
	if n, err := strconv.Atoi(os.Getenv("IMAPCOPY_BENCH_MB")); err == nil {
		spec.Bytes = int64(n) << 20
	}
	conns := 0 // default
	if n, err := strconv.Atoi(os.Getenv("IMAPCOPY_BENCH_CONNECTIONS")); err == nil {
		conns = n
	}
	var logger *slog.Logger // IMAPCOPY_BENCH_LOG=1: the engine's log on stderr
	if os.Getenv("IMAPCOPY_BENCH_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx := context.Background()
	mb, err := copybench.Generate(spec)
	if err != nil {
		b.Fatal(err)
	}
	src, loaded, err := copybench.LoadSource(ctx, servers[imaptest.FlavourSlash], mb)
	if err != nil {
		b.Fatal(err)
	}
	count, size := loaded.Messages, loaded.Bytes
	loaded = nil // the copy's heap is measured, not the generator's (mb is dead from here)
	b.Logf("source: %d messages, %.1f MB", count, float64(size)/1e6)

	var copyTime, rerunTime time.Duration
	var peak int64
	var allocated uint64
	var ms runtime.MemStats
	for b.Loop() {
		b.StopTimer()
		dst := servers[imaptest.FlavourDot].AddUser(b)
		b.StartTimer()
		var res *mailcopy.Result
		peak = max(peak, imaptest.PeakHeapGrowth(func() {
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			start := time.Now()
			res, err = mailcopy.Copy(ctx, mailcopy.Config{Source: src, Destination: dst, Connections: conns, Logger: logger})
			copyTime += time.Since(start)
			runtime.ReadMemStats(&ms)
			allocated += ms.TotalAlloc - before
		}))
		if err != nil || res.Totals.Copied != count {
			b.Fatalf("copy: %v, totals %+v, want %d copied", err, res.Totals, count)
		}
		start := time.Now()
		res, err = mailcopy.Copy(ctx, mailcopy.Config{Source: src, Destination: dst, Connections: conns, NoReport: true})
		rerunTime += time.Since(start)
		if err != nil || res.Totals.Copied != 0 {
			b.Fatalf("rerun: %v, totals %+v, want 0 copied", err, res.Totals)
		}
	}
	// The engine's stated budget, not counting the process (the benchmark's own).
	if c := cmp.Or(conns, 4); peak > int64(c)*mailcopy.ConnectionMemory {
		b.Errorf("peak heap %.1f MiB above the budget of %d connections (%d MiB)", float64(peak)/(1<<20), c, c*mailcopy.ConnectionMemory>>20)
	}
	n := float64(b.N)
	b.ReportMetric(float64(count)*n/copyTime.Seconds(), "msgs/s")
	b.ReportMetric(float64(size)/1e6*n/copyTime.Seconds(), "MB/s")
	b.ReportMetric(copyTime.Seconds()/n, "copy-s")
	b.ReportMetric(rerunTime.Seconds()/n, "rerun-s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(allocated)/n/(float64(size)/1e6), "B/copiedMB")
}
