package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// imapcopyBin is the standalone binary the demo runs, built once for the package.
var imapcopyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "imapcopy-demo-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	imapcopyBin = filepath.Join(dir, "imapcopy")
	goTool, err := exec.LookPath("go") // go test puts its own GOROOT/bin first in PATH
	if err != nil {
		fmt.Fprintln(os.Stderr, "no go tool in PATH:", err)
		os.Exit(1)
	}
	build := exec.Command(goTool, "build", "-o", imapcopyBin, "imapcopy.dev/services/standalone")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the imapcopy binary: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runDemo runs the demo and checks that it told the whole story and ended with
// COMPLETED.
func runDemo(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), append([]string{"-imapcopy", imapcopyBin}, args...), &out, &errOut)
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	text := out.String()
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "COMPLETED: ") {
		t.Errorf("last line = %q, want COMPLETED: ...\n%s", last, text)
	}
	for _, want := range []string{
		"health SERVING", "ListProviders", "gmail", "source:      ok", "destination: ok",
		"QUEUED", "state COMPLETED", "imapcopy report", "complete (",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	return text
}

func TestDemoDovecot(t *testing.T) {
	t.Parallel()
	text := runDemo(t, "-messages", "60")
	if !strings.Contains(text, "Dovecot") || !strings.Contains(text, "INBOX.Projects.2024") {
		t.Errorf("the Dovecot demo does not show the folder mapping onto the INBOX. prefix:\n%s", text)
	}
}

// The demo on a machine without Dovecot: go-imap's in-memory servers.
func TestDemoInMemory(t *testing.T) {
	t.Parallel()
	text := runDemo(t, "-memory", "-messages", "60")
	if !strings.Contains(text, "in-memory server") {
		t.Errorf("the -memory demo does not say which servers it runs:\n%s", text)
	}
}

func TestFindBinary(t *testing.T) {
	if _, err := findBinary(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("findBinary of a missing file: no error")
	}
	if got, err := findBinary(imapcopyBin); err != nil || got != imapcopyBin {
		t.Errorf("findBinary(%q) = %q, %v; want it back", imapcopyBin, got, err)
	}
}
