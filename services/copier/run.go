package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/procmain"
)

// Exit codes.
const (
	exitOK      = 0
	exitFatal   = 1
	exitUsage   = 2
	exitPartial = 3
)

// exitError carries the process exit code of an error. quiet: the message
// was already shown (e.g. the list of failed messages).
type exitError struct {
	code  int
	err   error
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }
func (e *exitError) Quiet() bool   { return e.quiet }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// exitCode is the process's exit status after err, as main exits (procmain.Exit).
func exitCode(err error) int { return procmain.Exit(io.Discard, "imapcopy-copier", err) }

const usage = `Usage: imapcopy-copier [command] [options]

Commands:
  worker  (the default) pull sync tasks from the JetStream queue and copy them
          (imapcopy-copier worker --help for its options)
  copy    copy one mailbox from a source IMAP account to a destination account
          (imapcopy-copier copy --help for its options)
`

// run is the whole program but for the process: main gives it the
// arguments, the environment and the output streams.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !slices.Contains([]string{"-h", "-help", "--help"}, args[0]) {
		return runWorker(ctx, args, getenv, stderr)
	}
	switch args[0] {
	case "worker":
		return runWorker(ctx, args[1:], getenv, stderr)
	case "copy":
		return runCopy(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageErr("unknown command %q", args[0])
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// copyFlags are the options of the copy command.
type copyFlags struct {
	from, to                 string
	fromPassFile, toPassFile string
	allowPlaintext           bool
	insecure                 bool
	caFile                   string
	dryRun, noReport         bool
	splitFolders             bool
	include, exclude         stringList
	maxSize, since           string
	connections              int
	provider                 string
	gmailViews               bool
	json, verbose            bool
	state                    string
	heapProfile              string
	memoryLimit              memoryLimit
}

func parseCopyFlags(args []string, stderr io.Writer) (*copyFlags, error) {
	var f copyFlags
	fs := flag.NewFlagSet("imapcopy-copier copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.from, "from", "", "source account: imaps://USER@HOST[:PORT] (TLS), imap://... (STARTTLS) or imap+plain://...")
	fs.StringVar(&f.to, "to", "", "destination account, same form as --from")
	fs.StringVar(&f.fromPassFile, "from-password-file", "", "file holding the source password (else $IMAPCOPY_FROM_PASSWORD)")
	fs.StringVar(&f.toPassFile, "to-password-file", "", "file holding the destination password (else $IMAPCOPY_TO_PASSWORD)")
	fs.BoolVar(&f.allowPlaintext, "allow-plaintext", false, "allow imap+plain:// (password and mail in clear on the network)")
	fs.BoolVar(&f.insecure, "insecure-skip-verify", false, "do not verify the servers' TLS certificates (both sides)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of CA certificates to verify the servers with, instead of the system's")
	fs.BoolVar(&f.dryRun, "dry-run", false, "plan and count only: create nothing, append nothing")
	fs.Var(&f.include, "include", "copy only folders matching this pattern (logical path, '*' and '%' wildcards; repeatable)")
	fs.Var(&f.exclude, "exclude", "do not copy folders matching this pattern (repeatable; wins over --include)")
	fs.StringVar(&f.maxSize, "max-message-size", "", "skip messages larger than this (25MB, 512KiB, bytes)")
	fs.StringVar(&f.since, "since", "", "copy only messages received on or after this date (YYYY-MM-DD, UTC)")
	fs.IntVar(&f.connections, "connections", 4, "connections per account, at most")
	fs.StringVar(&f.provider, "provider", "", `source provider rules ("gmail": skip the All Mail, Important and Starred views)`)
	fs.BoolVar(&f.gmailViews, "include-gmail-views", false, "copy Gmail's All Mail, Important and Starred views as folders too (without it, only All Mail's archived messages, those with no label, are copied, into the destination's Archive)")
	fs.BoolVar(&f.noReport, "no-report", false, "do not append the report message to the destination INBOX")
	fs.BoolVar(&f.splitFolders, "split-folders", false, "append a folder with many missing messages on every idle connection, range by range (faster when each connection is slow, e.g. capped by the provider; slower into one Dovecot Maildir folder)")
	fs.BoolVar(&f.json, "json", false, "print the final result as JSON on stdout")
	fs.BoolVar(&f.verbose, "verbose", false, "log what the copy does on stderr")
	fs.StringVar(&f.state, "state", "", "file keeping what each copy proved complete (read first when it exists, rewritten after): a rerun skips the folders unchanged on both sides since")
	fs.StringVar(&f.memoryLimit.raw, "memory-limit", "", "Go memory limit of the process (64MiB, 1GiB; off: none); default 16 MiB + 8 MiB a connection (48 MiB at 4 connections), GOMEMLIMIT if lower")
	fs.StringVar(&f.heapProfile, "heap-profile", "", "diagnosis: write a heap profile (go tool pprof) of the copy's peak to this file, and print the heap's figures on stderr")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: imapcopy-copier copy --from imaps://USER@HOST:PORT --to imaps://USER@HOST:PORT [options]

Passwords come from $IMAPCOPY_FROM_PASSWORD and $IMAPCOPY_TO_PASSWORD or from
--from-password-file and --to-password-file, never from the command line.
Exit status: 0 all copied, 3 some messages failed (listed), 1 fatal error, 2 bad usage.

Options:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, &exitError{code: exitOK, err: err, quiet: true}
		}
		return nil, &exitError{code: exitUsage, err: err, quiet: true}
	}
	if fs.NArg() > 0 {
		return nil, usageErr("unexpected argument %q (options start with --)", fs.Arg(0))
	}
	if f.from == "" || f.to == "" {
		return nil, usageErr("both --from and --to are needed, e.g. --from imaps://alice@old.example.com --to imaps://alice@new.example.com")
	}
	if f.connections < 1 {
		return nil, usageErr("--connections must be at least 1")
	}
	if _, err := f.memoryLimit.resolve(1, f.connections); err != nil {
		return nil, usageErr("--memory-limit: %v", err)
	}
	return &f, nil
}

// config turns the flags into the engine's configuration.
func (f *copyFlags) config(getenv func(string) string) (mailcopy.Config, error) {
	var cfg mailcopy.Config
	src, err := parseAccountURL("from", f.from, f.allowPlaintext)
	if err != nil {
		return cfg, usageErr("%v", err)
	}
	dst, err := parseAccountURL("to", f.to, f.allowPlaintext)
	if err != nil {
		return cfg, usageErr("%v", err)
	}
	if src.Password, err = readPassword("source", "IMAPCOPY_FROM_PASSWORD", f.fromPassFile, getenv); err != nil {
		return cfg, usageErr("%v", err)
	}
	if dst.Password, err = readPassword("destination", "IMAPCOPY_TO_PASSWORD", f.toPassFile, getenv); err != nil {
		return cfg, usageErr("%v", err)
	}
	var roots *x509.CertPool
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return cfg, usageErr("read --ca-file: %v", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return cfg, usageErr("--ca-file %s holds no PEM certificate", f.caFile)
		}
	}
	for _, a := range []*imapconn.Account{&src, &dst} {
		a.InsecureSkipVerify = f.insecure
		a.RootCAs = roots
	}
	cfg = mailcopy.Config{
		Source: src, Destination: dst,
		Connections: f.connections,
		Include:     f.include, Exclude: f.exclude,
		Provider: f.provider, IncludeGmailViews: f.gmailViews,
		DryRun: f.dryRun, NoReport: f.noReport,
		SplitFolders: f.splitFolders,
	}
	if f.maxSize != "" {
		if cfg.MaxMessageSize, err = parseSize(f.maxSize); err != nil {
			return cfg, usageErr("--max-message-size: %v", err)
		}
	}
	if f.since != "" {
		if cfg.Since, err = parseDate(f.since); err != nil {
			return cfg, usageErr("--since: %v", err)
		}
	}
	return cfg, nil
}

func runCopy(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f, err := parseCopyFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := f.config(getenv)
	if err != nil {
		return err
	}
	limit, _ := f.memoryLimit.resolve(1, f.connections) // checked by parseCopyFlags
	setMemoryLimit(limit)
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	tty := isTerminal(stderr)
	// The log and the progress lines come from the copy's workers at once: one lock
	// for all that goes to stderr (a caller's writer, a test's buffer, need not
	// take concurrent writes).
	stderr = &lockedWriter{w: stderr}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Dial.Logger = cfg.Logger
	bar := newProgressPrinter(stderr, tty)
	cfg.Progress = bar.show

	if f.state != "" {
		if cfg.Previous, err = readState(f.state); err != nil {
			return &exitError{code: exitFatal, err: err}
		}
	}
	var heap *heapWatch
	if f.heapProfile != "" {
		heap = watchHeap(f.heapProfile)
	}
	res, err := mailcopy.Copy(ctx, cfg)
	bar.done()
	if heap != nil {
		heap.report(stderr)
	}
	if f.state != "" && res != nil && res.State != nil {
		if serr := writeState(f.state, res.State); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if f.json {
		// The result's fields at the top level, with the error if the copy stopped.
		out := struct {
			*mailcopy.Result
			Error     string `json:"error,omitempty"`
			ErrorKind string `json:"error_kind,omitempty"`
		}{Result: res}
		if err != nil {
			out.Error, out.ErrorKind = err.Error(), mailcopy.KindOf(err).String()
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(out); jerr != nil {
			return fmt.Errorf("write the JSON result: %w", jerr)
		}
	} else if res != nil {
		writeSummary(stdout, res)
	}
	if err != nil {
		return &exitError{code: exitFatal, err: explain(err)}
	}
	if !res.Complete() {
		return &exitError{code: exitPartial, err: fmt.Errorf("%d message(s) and %d folder(s) could not be copied (listed above)",
			res.Totals.Failed, len(res.FailedFolders()))}
	}
	return nil
}

// explain adds what to do about a fatal error.
func explain(err error) error {
	switch mailcopy.KindOf(err) {
	case mailcopy.KindLogin:
		return fmt.Errorf("%w (check the login and the password for that account)", err)
	case mailcopy.KindOverQuota:
		return fmt.Errorf("%w (free space or raise the quota, then run the same command again: it copies only what is missing)", err)
	case mailcopy.KindConnect:
		return fmt.Errorf("%w (check the address, the port and the TLS options: imaps://, imap://, --ca-file, --insecure-skip-verify)", err)
	case mailcopy.KindTemporary:
		return fmt.Errorf("%w (run the same command again: it resumes where it stopped)", err)
	}
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// readState reads the --state file; a missing file is no previous state.
func readState(path string) (*mailcopy.State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read --state: %w", err)
	}
	var st mailcopy.State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read --state %s: %w", path, err)
	}
	return &st, nil
}

// writeState replaces the --state file at once (written aside, then renamed):
// a copy killed while writing leaves the previous state, never half of one.
func writeState(path string, st *mailcopy.State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("write --state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write --state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write --state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write --state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write --state: %w", err)
	}
	return nil
}

// lockedWriter serialises the writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
