package mailcopy_test

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"testing"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// TestLoginsPerSyncBounded: a source that lists many folders and hangs up on every
// EXAMINE (broken or hostile) must not get one login per folder and retry: logins
// look like password guessing to its owner's provider, which may lock the account.
// The copy fails with a reason, and the logins the source saw are counted.
func TestLoginsPerSyncBounded(t *testing.T) {
	const folders = 300
	list := func(w *bufio.Writer) error {
		for i := range folders {
			if _, err := fmt.Fprintf(w, "* LIST () \"/\" \"Folder %d\"\r\n", i); err != nil {
				return err
			}
		}
		return nil
	}
	hangUp := func(w *bufio.Writer) error {
		w.WriteString("* BYE going away\r\n")
		w.Flush()
		return errors.New("hang up")
	}
	src := imaptest.StartHostile(t, map[string]imaptest.Answer{"LIST": list, "EXAMINE": hangUp, "STATUS": hangUp})
	sp := proxytest.New(t, src.Addr())
	dst := servers[imaptest.FlavourSlash].AddUser(t)
	cfg := testConfig(t, via(src, sp), dst)
	cfg.Connections = 4
	res, err := mailcopy.Copy(testContext(t), cfg)
	logins := sp.Stats().Accepted
	t.Logf("copy: %v; %d connections to the source for %d folders", err, logins, folders)
	if err == nil && res.Complete() {
		t.Fatalf("the copy of a source that hangs up on every folder completed")
	}
	if mailcopy.KindOf(err) != mailcopy.KindTemporary || !strings.Contains(err.Error(), "logins in a row") {
		t.Errorf("copy error %v (kind %v), want a temporary failure saying why it stopped", err, mailcopy.KindOf(err))
	}
	if logins > 100 {
		t.Errorf("the source saw %d connections (logins) for one copy, want at most 100", logins)
	}
}
