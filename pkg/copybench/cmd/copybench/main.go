// Command copybench is `make bench`: it copies a generated, realistic mailbox between
// two local Dovecot servers with imapcopy-copier and with mbsync, on loopback and
// through latency proxies (an emulated WAN), checks every result, and prints a table
// (stdout) and writes a JSON file of the results (bench-results/<timestamp>.json).
//
// Every setting is a flag whose default comes from an environment variable, so that
// `make bench BENCH_SIZE=small` and `BENCH_REPS=5 make bench` both work:
//
//	BENCH_SIZE=small       500 messages, ~30 MB: the whole run in about a minute
//	BENCH_SIZE=huge        one INBOX of 50,000 small messages (~200 MB): a folder split
//	                       across the connections; huge-spread: the same over 20 folders
//	BENCH_SIZE=rerun100k   100,000 messages (~1.8 GB, 5 minutes per rep), for the rerun row;
//	                       with BENCH_NETWORKS=loopback BENCH_TOOLS=imapcopy
//	BENCH_COUNT, BENCH_MB  the mailbox (default 5000 messages, 300 MB), BENCH_SEED
//	BENCH_REPS             repetitions per configuration (default 3)
//	BENCH_WAN_REPS         repetitions on the WAN (default 2: it is the slow part)
//	BENCH_LATENCY          added by each WAN proxy, each way (default 20ms)
//	BENCH_BANDWIDTH        WAN bandwidth per connection and direction, Mbit/s (default none)
//	BENCH_CAPPED_LATENCY   the capped WAN's latency each way (default 75ms)
//	BENCH_CAPPED_LINK      the capped WAN's link per server and direction, MB/s (default 5)
//	BENCH_NETWORKS         loopback,wan,wan-capped    BENCH_TOOLS  imapcopy,mbsync
//	BENCH_EXTRA            one-folder,one-folder-split,spread,rerun (or none): extra mailboxes, copied on
//	                       loopback by imapcopy (ten times smaller with BENCH_SIZE=small)
//	BENCH_COPIER           imapcopy-copier binary (default bin/imapcopy-copier)
//	BENCH_COPIER_ARGS      extra flags for `imapcopy-copier copy`
//	BENCH_OUT              where the JSON goes (default bench-results)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"imapcopy.dev/pkg/copybench"
	"imapcopy.dev/pkg/procmain"
	"imapcopy.dev/pkg/proxytest"
)

func main() {
	procmain.Main("copybench", func(ctx context.Context) error {
		err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		if errors.Is(err, errUsage) {
			return usageError{err}
		}
		return err
	})
}

// usageError exits 2, as a command line that cannot be used does.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }
func (usageError) ExitCode() int   { return 2 }

var errUsage = errors.New("usage")

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("copybench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.String("size", env("BENCH_SIZE", "default"), "mailbox preset: default (5000 messages, 300 MB), small (500, 30 MB), huge (50,000 small messages in INBOX), huge-spread (the same in 20 folders) or rerun100k (100,000) [BENCH_SIZE]")
	count := fs.String("count", env("BENCH_COUNT", ""), "messages, overrides the preset [BENCH_COUNT]")
	mb := fs.String("mb", env("BENCH_MB", ""), "approximate mailbox size in MB (MiB), overrides the preset [BENCH_MB]")
	seed := fs.String("seed", env("BENCH_SEED", "1"), "generator seed [BENCH_SEED]")
	reps := fs.String("reps", env("BENCH_REPS", "3"), "repetitions of each configuration [BENCH_REPS]")
	wanReps := fs.String("wan-reps", env("BENCH_WAN_REPS", ""), "repetitions on the WAN (default: -reps, at most 2, to stay under 10 minutes) [BENCH_WAN_REPS]")
	latency := fs.String("latency", env("BENCH_LATENCY", "20ms"), "latency added by each WAN proxy, each way (a duration, or milliseconds) [BENCH_LATENCY]")
	bandwidth := fs.String("bandwidth", env("BENCH_BANDWIDTH", ""), "WAN bandwidth per connection and direction in Mbit/s; empty: unlimited [BENCH_BANDWIDTH]")
	cappedLatency := fs.String("capped-latency", env("BENCH_CAPPED_LATENCY", "75ms"), "latency added by each capped-WAN proxy, each way [BENCH_CAPPED_LATENCY]")
	cappedLink := fs.String("capped-link", env("BENCH_CAPPED_LINK", "5"), "the capped WAN's link bandwidth per server and direction, MB/s [BENCH_CAPPED_LINK]")
	networks := fs.String("networks", env("BENCH_NETWORKS", "loopback,wan,wan-capped"), "networks to run on: loopback, wan, wan-capped [BENCH_NETWORKS]")
	tools := fs.String("tools", env("BENCH_TOOLS", "imapcopy,mbsync"), "tools: imapcopy (with its rerun), mbsync [BENCH_TOOLS]")
	extra := fs.String("extra", env("BENCH_EXTRA", "one-folder,one-folder-split,spread,rerun"), "extra mailboxes, one question each, on loopback: one-folder (one INBOX of 50,000 small messages), one-folder-split (the same, copied with --split-folders) and spread (the same over 20 folders), rerun (100,000 small messages copied once, then rerun, and rerun after 100 new); none [BENCH_EXTRA]")
	copier := fs.String("copier", env("BENCH_COPIER", "bin/imapcopy-copier"), "imapcopy-copier binary [BENCH_COPIER]")
	copierArgs := fs.String("copier-args", env("BENCH_COPIER_ARGS", ""), "extra flags for imapcopy-copier copy, space-separated [BENCH_COPIER_ARGS]")
	out := fs.String("out", env("BENCH_OUT", "bench-results"), "directory for the JSON results [BENCH_OUT]")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	usage := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}

	var cfg copybench.Config
	switch *size {
	case "default", "":
		cfg.Spec = copybench.DefaultSpec()
	case "small":
		cfg.Spec = copybench.SmallSpec()
	case "huge":
		cfg.Spec = copybench.HugeSpec()
	case "huge-spread":
		cfg.Spec = copybench.HugeSpreadSpec()
	case "rerun100k":
		cfg.Spec = copybench.Rerun100kSpec()
	default:
		return usage("size %q: want default, small, huge, huge-spread or rerun100k", *size)
	}
	var err error
	if *count != "" {
		if cfg.Spec.Count, err = strconv.Atoi(*count); err != nil || cfg.Spec.Count <= 0 {
			return usage("count %q: want a positive number", *count)
		}
	}
	if *mb != "" {
		n, err := strconv.ParseInt(*mb, 10, 64)
		if err != nil || n <= 0 {
			return usage("mb %q: want a positive number", *mb)
		}
		cfg.Spec.Bytes = n << 20
	}
	if cfg.Spec.Seed, err = strconv.ParseUint(*seed, 10, 64); err != nil {
		return usage("seed %q: want a number", *seed)
	}
	if cfg.Reps, err = strconv.Atoi(*reps); err != nil || cfg.Reps <= 0 {
		return usage("reps %q: want a positive number", *reps)
	}
	cfg.WANReps = min(cfg.Reps, 2)
	if *wanReps != "" {
		if cfg.WANReps, err = strconv.Atoi(*wanReps); err != nil || cfg.WANReps <= 0 {
			return usage("wan-reps %q: want a positive number", *wanReps)
		}
	}
	lat, err := parseLatency(*latency)
	if err != nil {
		return usage("latency %q: %v", *latency, err)
	}
	var bw int64
	if *bandwidth != "" {
		mbit, err := strconv.ParseFloat(*bandwidth, 64)
		if err != nil || mbit <= 0 {
			return usage("bandwidth %q: want Mbit/s, a positive number", *bandwidth)
		}
		bw = int64(mbit * 1e6 / 8)
	}
	capLat, err := parseLatency(*cappedLatency)
	if err != nil {
		return usage("capped-latency %q: %v", *cappedLatency, err)
	}
	capMB, err := strconv.ParseFloat(*cappedLink, 64)
	if err != nil || capMB <= 0 {
		return usage("capped-link %q: want MB/s, a positive number", *cappedLink)
	}
	cfg.Links = map[copybench.Network]copybench.Link{
		copybench.WAN:       {Latency: lat, ConnBandwidth: bw},
		copybench.WANCapped: {Latency: capLat, LinkBandwidth: int64(capMB * 1e6)},
	}
	for _, n := range splitList(*networks) {
		cfg.Networks = append(cfg.Networks, copybench.Network(n))
	}
	for _, t := range splitList(*tools) {
		switch t {
		case "imapcopy":
			cfg.Tools = append(cfg.Tools, copybench.Imapcopy, copybench.ImapcopyRerun)
		case "mbsync":
			cfg.Tools = append(cfg.Tools, copybench.Mbsync)
		default:
			return usage("tool %q: want imapcopy or mbsync", t)
		}
	}
	if *copier != "" {
		if cfg.Copier, err = filepath.Abs(*copier); err != nil {
			return err
		}
	}
	cfg.CopierArgs = strings.Fields(*copierArgs)
	cfg.Proxy = func(target string, link copybench.Link) (string, func() error, error) {
		opts := []proxytest.Option{proxytest.WithLatency(link.Latency)}
		if link.ConnBandwidth > 0 {
			opts = append(opts, proxytest.WithBandwidth(link.ConnBandwidth))
		}
		if link.LinkBandwidth > 0 {
			opts = append(opts, proxytest.WithLinkBandwidth(link.LinkBandwidth))
		}
		p, err := proxytest.Listen(target, opts...)
		if err != nil {
			return "", nil, err
		}
		return p.Addr(), p.Close, nil
	}
	for _, x := range splitList(*extra) {
		if x == "none" {
			continue
		}
		m, ok := copybench.ExtraMailbox(x, *size == "small")
		if !ok {
			return usage("extra %q: want one-folder, one-folder-split, spread, rerun or none", x)
		}
		cfg.Extra = append(cfg.Extra, m)
	}
	cfg.Log = stderr

	res, err := copybench.Run(ctx, cfg)
	if res != nil && len(res.Runs) > 0 {
		if res.Seconds == 0 {
			res.Summarize()
			res.Seconds = time.Since(res.Started).Seconds()
		}
		if terr := res.WriteTable(stdout); terr != nil && err == nil {
			err = terr
		}
		if jerr := writeJSON(*out, res, stderr); jerr != nil {
			err = errors.Join(err, jerr)
		}
	}
	return err
}

func writeJSON(dir string, res *copybench.Results, log io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	path := filepath.Join(dir, res.Started.Format("20060102-150405")+".json")
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if err := res.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	fmt.Fprintf(log, "results written to %s\n", path)
	return nil
}

func parseLatency(s string) (time.Duration, error) {
	if ms, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(ms * float64(time.Millisecond)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("want a duration such as 20ms")
	}
	return d, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, strings.TrimSpace(p))
	}
	return out
}
