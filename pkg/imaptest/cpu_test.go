package imaptest

import (
	"context"
	"strings"
	"testing"
)

// TestDovecotCPU: the server's CPU time grows by the work its sessions did (they
// have exited and been reaped by then), never shrinks, and a closed server says so.
func TestDovecotCPU(t *testing.T) {
	t.Parallel()
	d := StartDovecot(t, FlavourSlash)
	before, err := d.CPU()
	if err != nil {
		t.Fatalf("CPU: %v", err)
	}
	acct := d.AddUser(t)
	// Appending 400 messages of 64 KiB: the server parses and stores 25 MiB, far
	// more than a clock tick of work.
	if err := Load(context.Background(), acct, Generate(7, Spec{Count: 400, Folders: 3, Sizes: []SizeClass{{Weight: 1, Min: 60_000, Max: 70_000}}})); err != nil {
		t.Fatalf("load: %v", err)
	}
	after, err := d.CPU()
	if err != nil {
		t.Fatalf("CPU: %v", err)
	}
	if after <= before {
		t.Errorf("CPU %v after appending 400 messages, %v before: want more", after, before)
	}
	t.Logf("server CPU: %v at the start, %v after appending 400 messages", before, after)
	d.Close()
	if _, err := d.CPU(); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("CPU of a closed server: %v, want an error saying it is gone", err)
	}
}
