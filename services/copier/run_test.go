package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

var slash, dot *imaptest.Dovecot

func TestMain(m *testing.M) {
	if os.Getenv(childWorkerEnv) != "" {
		os.Exit(childWorker()) // a copier worker of TestFrozenCopierAppendsNothing
	}
	// The commands run in this process: their memory limit would be the tests'.
	setMemoryLimit = func(int64) int64 { return debug.SetMemoryLimit(-1) }
	var err error
	if slash, err = imaptest.Start(imaptest.FlavourSlash); err != nil {
		fmt.Fprintln(os.Stderr, "copier tests need Dovecot:", err)
		os.Exit(1)
	}
	if dot, err = imaptest.Start(imaptest.FlavourDot); err != nil {
		fmt.Fprintln(os.Stderr, "copier tests need Dovecot:", err)
		slash.Close()
		os.Exit(1)
	}
	code := m.Run()
	slash.Close()
	dot.Close()
	os.Exit(code)
}

func accountURL(a imapconn.Account) string {
	return fmt.Sprintf("imaps://%s@%s:%d", a.Login, a.Host, a.Port)
}

func passwordFile(t *testing.T, pw string) string {
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func noEnv(string) string { return "" }

// caBundle is a --ca-file with the CAs of both servers.
func caBundle(t *testing.T) string {
	var pem []byte
	for _, d := range []*imaptest.Dovecot{slash, dot} {
		b, err := os.ReadFile(d.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		pem = append(pem, b...)
	}
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

type runOutput struct {
	err            error
	stdout, stderr string
}

func runCmd(t *testing.T, getenv func(string) string, args ...string) runOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, getenv, &stdout, &stderr)
	return runOutput{err: err, stdout: stdout.String(), stderr: stderr.String()}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	pw := passwordFile(t, "x")
	ok := []string{"copy", "--from", "imaps://a@127.0.0.1:1", "--to", "imaps://b@127.0.0.1:2", "--from-password-file", pw, "--to-password-file", pw}
	tests := []struct {
		name     string
		args     []string
		env      func(string) string
		wantCode int
		wantMsg  string
	}{
		{"no command", nil, noEnv, exitUsage, ""},
		{"unknown command", []string{"sync"}, noEnv, exitUsage, `unknown command "sync"`},
		{"help", []string{"--help"}, noEnv, exitOK, ""},
		{"copy help", []string{"copy", "--help"}, noEnv, exitOK, ""},
		{"no from", []string{"copy", "--to", "imaps://b@h"}, noEnv, exitUsage, "--from and --to"},
		{"password in url", []string{"copy", "--from", "imaps://a:pw@h", "--to", "imaps://b@h"}, noEnv, exitUsage, "holds a password"},
		{"plaintext refused", []string{"copy", "--from", "imap+plain://a@h", "--to", "imaps://b@h"}, noEnv, exitUsage, "--allow-plaintext"},
		{"no password", []string{"copy", "--from", "imaps://a@h", "--to", "imaps://b@h"}, noEnv, exitUsage, "IMAPCOPY_FROM_PASSWORD"},
		{"no destination password", []string{"copy", "--from", "imaps://a@h", "--to", "imaps://b@h"},
			func(k string) string { return map[string]string{"IMAPCOPY_FROM_PASSWORD": "x"}[k] }, exitUsage, "IMAPCOPY_TO_PASSWORD"},
		{"bad since", append(ok, "--since", "yesterday"), noEnv, exitUsage, "--since"},
		{"bad size", append(ok, "--max-message-size", "big"), noEnv, exitUsage, "--max-message-size"},
		{"bad connections", append(ok, "--connections", "0"), noEnv, exitUsage, "--connections"},
		{"bad memory limit", append(ok, "--memory-limit", "4MB"), noEnv, exitUsage, "--memory-limit"},
		{"bad ca file", append(ok, "--ca-file", pw), noEnv, exitUsage, "no PEM certificate"},
		{"stray argument", append(ok, "extra"), noEnv, exitUsage, `unexpected argument "extra"`},
		{"unknown flag", append(ok, "--frobnicate"), noEnv, exitUsage, ""},
	}
	for _, tt := range tests {
		out := runCmd(t, tt.env, tt.args...)
		if got := exitCode(out.err); got != tt.wantCode {
			t.Errorf("%s: exit code %d (%v), want %d", tt.name, got, out.err, tt.wantCode)
		}
		if tt.wantMsg != "" && (out.err == nil || !strings.Contains(out.err.Error(), tt.wantMsg)) {
			t.Errorf("%s: error %v, want it to mention %q", tt.name, out.err, tt.wantMsg)
		}
		if out.err != nil && strings.Contains(out.err.Error(), "pw@") {
			t.Errorf("%s: error shows the password: %v", tt.name, out.err)
		}
	}
}

// TestCopyCommand runs the command end to end (in process) between a "/"
// and a "." Dovecot, with password files and the JSON result, then again
// with passwords from the environment: the rerun copies nothing.
func TestCopyCommand(t *testing.T) {
	t.Parallel()
	src := slash.AddUser(t)
	dst := dot.AddUser(t)
	mb := imaptest.Generate(11, imaptest.Spec{Count: 60})
	if err := imaptest.Load(t.Context(), src, mb); err != nil {
		t.Fatal(err)
	}
	out := runCmd(t, noEnv, "copy", "--from", accountURL(src), "--to", accountURL(dst),
		"--ca-file", caBundle(t), "--from-password-file", passwordFile(t, src.Password),
		"--to-password-file", passwordFile(t, dst.Password), "--json", "--connections", "2")
	if out.err != nil {
		t.Fatalf("copy: %v\n%s", out.err, out.stderr)
	}
	var res mailcopy.Result
	if err := json.Unmarshal([]byte(out.stdout), &res); err != nil {
		t.Fatalf("stdout is not the JSON result: %v\n%s", err, out.stdout)
	}
	if res.Totals.Copied != mb.Count() || !res.Report {
		t.Errorf("JSON totals = %+v report=%v, want %d copied and a report", res.Totals, res.Report, mb.Count())
	}
	for _, secret := range []string{src.Password, dst.Password} {
		if strings.Contains(out.stdout+out.stderr, secret) {
			t.Errorf("a password shows in the output")
		}
	}
	check, err := imaptest.Check(t.Context(), src, dst, imaptest.CheckOptions{IgnoreDest: func(_ string, raw []byte) bool {
		return bytes.Contains(raw, []byte("\r\n"+mailcopy.ReportHeader+": 1\r\n"))
	}})
	if err != nil || !check.OK() {
		t.Errorf("check: %v %v", check, err)
	}

	env := func(k string) string {
		return map[string]string{"IMAPCOPY_FROM_PASSWORD": src.Password, "IMAPCOPY_TO_PASSWORD": dst.Password}[k]
	}
	again := runCmd(t, env, "copy", "--from", accountURL(src), "--to", accountURL(dst), "--ca-file", caBundle(t), "--no-report")
	if again.err != nil {
		t.Fatalf("rerun: %v\n%s", again.err, again.stderr)
	}
	if want := fmt.Sprintf("0 copied (0.0 MB), %d already present, 0 failed", mb.Count()); !strings.Contains(again.stdout, want) {
		t.Errorf("rerun summary = %q, want it to say %q", again.stdout, want)
	}
}

// TestCopyCommandExitCodes: 3 when messages failed (and they are listed), 1
// on a fatal error, with a message that says what to do.
func TestCopyCommandExitCodes(t *testing.T) {
	t.Parallel()
	src := dot.AddUser(t)
	dst := slash.AddUser(t, imaptest.WithQuota(100_000))
	big := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"), 3000)
	for i, body := range [][]byte{[]byte("small one\r\n"), big, []byte("small two\r\n")} {
		raw := fmt.Appendf(nil, "Subject: m%d\r\nMessage-ID: <m%d@x>\r\n\r\n%s", i, i, body)
		if _, err := imaptest.AppendRaw(t.Context(), src, "INBOX", raw, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"copy", "--from", accountURL(src), "--to", accountURL(dst), "--ca-file", caBundle(t),
		"--from-password-file", passwordFile(t, src.Password), "--to-password-file", passwordFile(t, dst.Password)}

	out := runCmd(t, noEnv, args...)
	if code := exitCode(out.err); code != exitPartial {
		t.Fatalf("exit code %d (%v), want %d", code, out.err, exitPartial)
	}
	if !strings.Contains(out.stdout, `failed: folder "INBOX" UID 2`) {
		t.Errorf("stdout does not list the failed message:\n%s", out.stdout)
	}

	wrong := runCmd(t, noEnv, "copy", "--from", accountURL(src), "--to", accountURL(dst), "--ca-file", caBundle(t),
		"--from-password-file", passwordFile(t, "wrong"), "--to-password-file", passwordFile(t, dst.Password))
	if code := exitCode(wrong.err); code != exitFatal {
		t.Fatalf("wrong password: exit code %d (%v), want %d", code, wrong.err, exitFatal)
	}
	if msg := wrong.err.Error(); !strings.Contains(msg, "source") || !strings.Contains(msg, "password") {
		t.Errorf("wrong password: error %q should name the source and the password", msg)
	}
	var e *exitError
	if !errors.As(wrong.err, &e) || !mailcopy.IsPermanent(e.err) {
		t.Errorf("wrong password: error %v is not a permanent copy error", wrong.err)
	}

	untrusted := runCmd(t, noEnv, append(args[:5:5], "--ca-file", slash.CAFile, "--from-password-file", passwordFile(t, src.Password),
		"--to-password-file", passwordFile(t, dst.Password))...)
	if code := exitCode(untrusted.err); code != exitFatal || !strings.Contains(untrusted.err.Error(), "--ca-file") {
		t.Errorf("unknown CA: exit code %d, error %v; want %d and a hint about --ca-file", code, untrusted.err, exitFatal)
	}
}

// TestCopyCommandState: with --state, the first copy writes the state file and a
// rerun skips the folders unchanged since; a folder the source added a message to
// gets the full pass again and the message is copied.
func TestCopyCommandState(t *testing.T) {
	t.Parallel()
	src := slash.AddUser(t)
	dst := slash.AddUser(t)
	mb := imaptest.Generate(12, imaptest.Spec{Count: 40})
	if err := imaptest.Load(t.Context(), src, mb); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	env := func(k string) string {
		return map[string]string{"IMAPCOPY_FROM_PASSWORD": src.Password, "IMAPCOPY_TO_PASSWORD": dst.Password}[k]
	}
	copyOnce := func(what string) mailcopy.Result {
		t.Helper()
		out := runCmd(t, env, "copy", "--from", accountURL(src), "--to", accountURL(dst),
			"--ca-file", caBundle(t), "--state", state, "--json")
		if out.err != nil {
			t.Fatalf("%s: %v\n%s", what, out.err, out.stderr)
		}
		var res mailcopy.Result
		if err := json.Unmarshal([]byte(out.stdout), &res); err != nil {
			t.Fatalf("%s: stdout is not the JSON result: %v\n%s", what, err, out.stdout)
		}
		check, err := imaptest.Check(t.Context(), src, dst, imaptest.CheckOptions{IgnoreDest: func(_ string, raw []byte) bool {
			return bytes.Contains(raw, []byte("\r\n"+mailcopy.ReportHeader+": 1\r\n"))
		}})
		if err != nil || !check.OK() {
			t.Errorf("%s: check: %v %v", what, check, err)
		}
		return res
	}
	unchanged := func(res mailcopy.Result) (names []string) {
		for _, f := range res.Folders {
			if f.Unchanged {
				names = append(names, f.Source)
			}
		}
		return names
	}

	first := copyOnce("first copy")
	if first.Totals.Copied != mb.Count() || len(unchanged(first)) != 0 {
		t.Errorf("first copy: totals %+v, unchanged %q; want %d copied, none unchanged", first.Totals, unchanged(first), mb.Count())
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state file after the first copy: %v", err)
	}
	again := copyOnce("rerun")
	if again.Totals.Copied != 0 || len(unchanged(again)) != len(again.Folders) {
		t.Errorf("rerun: totals %+v, unchanged %q; want 0 copied, all %d folders unchanged", again.Totals, unchanged(again), len(again.Folders))
	}

	if _, err := imaptest.AppendRaw(t.Context(), src, "INBOX", []byte("Message-ID: <new@state.test>\r\nSubject: new\r\n\r\nnew\r\n"), time.Now()); err != nil {
		t.Fatal(err)
	}
	third := copyOnce("rerun after a new message")
	if third.Totals.Copied != 1 || len(unchanged(third)) != len(third.Folders)-1 || slices.Contains(unchanged(third), "INBOX") {
		t.Errorf("rerun after a new message: totals %+v, unchanged %q; want 1 copied, every folder but INBOX unchanged", third.Totals, unchanged(third))
	}
}
