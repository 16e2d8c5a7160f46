package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/proxytest"
	"imapcopy.dev/pkg/servicetest"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// appendOKs counts the tagged OKs of APPEND commands (Dovecot's carry APPENDUID) in a
// server's answers, line by line over chunks that may split a line, and calls at
// with the count after each one.
type appendOKs struct {
	mu      sync.Mutex
	partial map[int64][]byte // each connection's unfinished line
	n       int
	at      func(n int)
}

func (a *appendOKs) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

func (a *appendOKs) observe(conn int64, b []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.partial == nil {
		a.partial = map[int64][]byte{}
	}
	buf := append(a.partial[conn], b...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		line := buf[:i]
		buf = buf[i+1:]
		// "<tag> OK [APPENDUID <uidvalidity> <uids>] ...": tagged, so never inside
		// an untagged answer's literal line (those are message headers at most).
		if f := bytes.Fields(line); len(f) >= 3 && string(f[0]) != "*" && string(f[0]) != "+" &&
			string(f[1]) == "OK" && string(f[2]) == "[APPENDUID" {
			a.n++
			a.at(a.n)
		}
	}
	a.partial[conn] = append([]byte(nil), buf[max(0, len(buf)-4096):]...)
}

// TestKilledAfterAppendOK: a copier process SIGKILLed right after the destination's
// tagged OK of an APPEND reached it, before it could record anything of it (its
// progress write, its folder's end), leaves messages in the destination that its
// status does not count. The redelivery, on a second copier, must find them there
// (the metadata pass before every append) and append only the rest: COMPLETED, and
// the checker finds every message exactly once.
//
// The kill is placed by a proxy between the copier and the destination's plain port
// (no TLS, so that the proxy reads the answers): when it has written the third
// APPEND's tagged OK to the copier, it kills the copier's process.
func TestKilledAfterAppendOK(t *testing.T) {
	const killAt = 3 // the APPEND whose OK is the copier's last word
	h := newHandoverOf(t, 13, 400)
	plainDst := dot.Plaintext(h.dst)
	var victim atomic.Pointer[os.Process]
	var killed atomic.Bool
	oks := &appendOKs{at: func(n int) {
		if n != killAt {
			return
		}
		if p := victim.Load(); p != nil && p.Signal(syscall.SIGKILL) == nil {
			killed.Store(true)
		}
	}}
	proxy := proxytest.New(t, fmt.Sprintf("%s:%d", plainDst.Host, plainDst.Port), proxytest.WithObserver(proxytest.Downstream, oks.observe))
	env := func(name string) *servicetest.Child {
		return servicetest.StartChild(t, name, append(h.env(h.ns.ClientURL(), "4s"),
			"IMAPCOPY_ALLOW_PLAINTEXT_IMAP=true", "IMAPCOPY_LOCK_TTL=5s")...)
	}

	first := env("copier-a")
	victim.Store(first.Cmd.Process)
	dstEP := endpoint(plainDst, proxy.Host(), proxy.Port())
	dstEP.Security = imapcopyv1.Security_SECURITY_PLAINTEXT
	queueTask(t, h.store, h.ns.JetStream(t), h.key, &imapcopyv1.SyncTask{
		TaskId: "killed-after-append-ok", SourceEmail: h.source,
		Source: endpoint(h.src, h.src.Host, h.src.Port), Destination: dstEP,
		Options: &imapcopyv1.SyncOptions{NoReport: true},
	}, &imapcopyv1.TaskSecrets{SourcePassword: h.src.Password, DestinationPassword: h.dst.Password}, stringer(first.Logs))

	err := first.Wait(t, 2*time.Minute)
	var exit *exec.ExitError
	if !killed.Load() || !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the first copier ended with %v after %d APPEND OKs, want it killed after the OK of APPEND %d", err, oks.count(), killAt)
	}
	atKill := h.status()
	stored := messagesIn(t, h.dst)
	t.Logf("killed after APPEND OK %d: %d messages in the destination, %d counted by the status (%v)",
		killAt, stored, atKill.GetTotal().GetMessagesCopied(), atKill.GetState())
	if stored == 0 || int64(stored) <= int64(atKill.GetTotal().GetMessagesCopied()) {
		t.Errorf("destination holds %d messages, the status counts %d: want messages stored that the status does not count (the kill came after the OK, before the progress write)",
			stored, atKill.GetTotal().GetMessagesCopied())
	}

	second := env("copier-b")
	st := h.waitEnd()
	if st.GetState() != imapcopyv1.SyncState_SYNC_STATE_COMPLETED || st.GetAttempt() < 2 {
		t.Errorf("final status %v attempt %d (%s), want COMPLETED by a redelivery", st.GetState(), st.GetAttempt(), st.GetMessage())
	}
	if st.GetTotal().GetMessagesPresent() == 0 {
		t.Errorf("the redelivery found %d messages already present, want those stored before the kill", st.GetTotal().GetMessagesPresent())
	}
	servicetest.Check(t, h.src, h.dst)
	if t.Failed() {
		t.Logf("second copier's log:\n%s", servicetest.Tail(second.Logs(), 30))
	}
}

// messagesIn counts the messages in every folder of acct.
func messagesIn(t *testing.T, acct imapconn.Account) int {
	t.Helper()
	snap, err := imaptest.TakeSnapshot(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range snap.Folders {
		n += len(f.Messages)
	}
	return n
}
