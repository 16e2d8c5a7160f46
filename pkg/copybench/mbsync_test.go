package copybench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
)

// TestMbsyncConfig runs mbsync with the written configuration from a loaded source into
// a fresh account of another server and checks that every folder arrived with all its
// messages.
func TestMbsyncConfig(t *testing.T) {
	t.Parallel()
	bin, err := findMbsync()
	if err != nil {
		t.Fatal(err)
	}
	src := imaptest.StartDovecot(t, imaptest.FlavourSlash)
	dst := imaptest.StartDovecot(t, imaptest.FlavourSlash)
	ctx := context.Background()
	mb, err := Generate(Spec{Seed: 3, Count: 60, Bytes: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	srcAcct, loaded, err := LoadSource(ctx, src, mb)
	if err != nil {
		t.Fatal(err)
	}
	dstAcct := dst.AddUser(t)
	dir := t.TempDir()
	conf := MbsyncConfig{
		Source: srcAcct, Destination: dstAcct,
		SourceCAFile: src.CAFile, DestinationCAFile: dst.CAFile,
		StateDir: filepath.Join(dir, "state"),
	}
	text, err := conf.Text()
	if err != nil {
		t.Fatalf("Text() = %v", err)
	}
	for _, want := range []string{"Sync Pull\n", "Create Near\n", "CopyArrivalDate yes\n", "Patterns *\n", "CertificateFile \"" + dst.CAFile + "\"\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("config lacks %q:\n%s", want, text)
		}
	}
	if err := os.Mkdir(conf.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(confFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, bin, "-c", confFile, "-a", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("mbsync: %v\n%s", err, out)
	}
	for _, f := range loaded.Folders {
		if got, want := folderCount(t, dstAcct, f.Name), len(f.Messages); got != want {
			t.Errorf("destination %q holds %d messages, want %d", f.Name, got, want)
		}
	}
}

func folderCount(t *testing.T, acct imapconn.Account, name string) int {
	t.Helper()
	c, err := imaptest.Dial(context.Background(), acct)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Errorf("STATUS %q: %v", name, err)
		return -1
	}
	return int(*st.NumMessages)
}
