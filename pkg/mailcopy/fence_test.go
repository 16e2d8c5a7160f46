package mailcopy_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// TestFenceStopsAppends: once Config.Fence fails (a copier whose lease ran out, as
// after a SIGSTOP past the ack wait), the copy stops with the fence's error and not
// one message whose body was not yet on its way is stored: the APPEND in flight is
// cut mid-literal. Without the fence a paused copier went on appending for about a
// second after resuming, while the redelivered task ran elsewhere (duplicates).
func TestFenceStopsAppends(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourDot].AddUser(t)
	mb := imaptest.Generate(78, imaptest.Spec{Count: 300})
	mustLoad(t, src, mb)

	errLease := errors.New("the lease of this copy ran out")
	const leaseEndsAt = 60 // the lease runs out when this many bodies have started
	var expired atomic.Bool
	var started atomic.Int64 // bodies whose first byte was read before the lease ran out
	cfg := mailcopy.Config{
		Source: src, Destination: dst, NoReport: true,
		Fence: func() error {
			if expired.Load() {
				return errLease
			}
			return nil
		},
	}
	cfg = mailcopy.WithBodyWrapper(cfg, func(_ uint32, body io.Reader) io.Reader {
		return &firstRead{r: body, first: func() {
			if !expired.Load() && started.Add(1) > leaseEndsAt {
				expired.Store(true)
			}
		}}
	})
	_, err := mailcopy.Copy(context.Background(), cfg)
	if !errors.Is(err, errLease) {
		t.Fatalf("Copy = %v, want it stopped by the fence (%v)", err, errLease)
	}
	stored := countMessages(t, dst)
	if stored >= mb.Count() {
		t.Fatalf("destination holds %d of %d messages: the copy did not stop", stored, mb.Count())
	}
	if n := started.Load(); int64(stored) > n {
		t.Errorf("destination holds %d messages, but only %d bodies started before the fence failed", stored, n)
	}
}

// firstRead calls first before the first read of r.
type firstRead struct {
	r     io.Reader
	first func()
	done  bool
}

func (f *firstRead) Read(p []byte) (int, error) {
	if !f.done {
		f.done = true
		f.first()
	}
	return f.r.Read(p)
}

func countMessages(t *testing.T, acct imapconn.Account) int {
	t.Helper()
	folders, err := imaptest.ListFolders(testContext(t), acct)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name := range folders {
		msgs, err := imaptest.ReadFolder(testContext(t), acct, name)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		n += len(msgs)
	}
	return n
}
