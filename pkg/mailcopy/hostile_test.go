package mailcopy_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// hostileServer is a raw TCP server on loopback that speaks just enough IMAP to let a
// client log in, then answers a command named in answers with what its function writes
// (until the client hangs up) and any other with OK. It uses no IMAP library: it must
// be able to break the protocol.
type hostileServer struct {
	ln      net.Listener
	answers map[string]func(w *bufio.Writer) error // by command, upper case
	wg      sync.WaitGroup
}

func startHostile(t *testing.T, list func(w *bufio.Writer) error) imapconn.Account {
	t.Helper()
	return startHostileServer(t, map[string]func(w *bufio.Writer) error{"LIST": list})
}

func startHostileServer(t *testing.T, answers map[string]func(w *bufio.Writer) error) imapconn.Account {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	h := &hostileServer{ln: ln, answers: answers}
	h.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.wg.Go(func() { h.serve(c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		h.wg.Wait()
	})
	addr := ln.Addr().(*net.TCPAddr)
	return imapconn.Account{Host: "127.0.0.1", Port: addr.Port, Security: imapconn.SecurityPlaintext, Login: "u", Password: "p"}
}

func (h *hostileServer) serve(c net.Conn) {
	defer func() { _ = c.Close() }()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	send := func(s string) error {
		if _, err := w.WriteString(s); err != nil {
			return err
		}
		return w.Flush()
	}
	if send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hostile\r\n") != nil {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return
		}
		tag, verb := f[0], strings.ToUpper(f[1])
		switch verb {
		case "AUTHENTICATE":
			if len(f) == 3 { // no initial response
				if send("+ \r\n") != nil {
					return
				}
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
			}
			err = send(tag + " OK [CAPABILITY IMAP4rev1] logged in\r\n")
		case "LOGIN":
			err = send(tag + " OK [CAPABILITY IMAP4rev1] logged in\r\n")
		case "LOGOUT":
			_ = send("* BYE bye\r\n" + tag + " OK LOGOUT done\r\n")
			return
		default:
			if answer := h.answers[verb]; answer != nil {
				err = answer(w)
			}
			if err == nil {
				err = send(tag + " OK done\r\n")
			}
		}
		if err != nil {
			return
		}
	}
}

// The answers of a hostile server that try to make a client buffer without bound.
var (
	hostileFiller = strings.Repeat("a", 32<<10)
	// endless writes chunk until the client hangs up.
	endless = func(w *bufio.Writer, chunk string) error {
		for {
			if _, err := w.WriteString(chunk); err != nil {
				return err
			}
		}
	}
	// literal4GB announces a 4 GB literal after prefix and sends it.
	literal4GB = func(prefix string) func(w *bufio.Writer) error {
		return func(w *bufio.Writer) error {
			if _, err := w.WriteString(prefix + "{4294967296}\r\n"); err != nil {
				return err
			}
			return endless(w, hostileFiller)
		}
	}
	// endlessLine starts a line with prefix and never ends it.
	endlessLine = func(prefix string) func(w *bufio.Writer) error {
		return func(w *bufio.Writer) error {
			if _, err := w.WriteString(prefix); err != nil {
				return err
			}
			return endless(w, hostileFiller)
		}
	}
	endlessList = func(w *bufio.Writer) error {
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "* LIST () \"/\" \"Folder %d with a name of some length\"\r\n", i); err != nil {
				return err
			}
		}
	}
)

// hostileBound is how much a copy's heap may grow against a hostile server (issue 14,
// promise 7).
const hostileBound = 64 << 20

// TestHostileSource points the copier at sources that try to make it buffer without
// bound: a 4 GB literal for a folder name, a response line that never ends, and a LIST
// that never ends. Each copy must fail with a reason, its heap growing by less than
// hostileBound. Not parallel: it measures the process's heap.
func TestHostileSource(t *testing.T) {
	for _, tc := range []struct {
		name string
		list func(w *bufio.Writer) error
		want string // in the error
	}{
		{"4 GB literal", literal4GB(`* LIST () "/" `), "literal"},
		{"endless line", endlessLine(`* LIST () "/" `), "line longer"},
		{"endless LIST", endlessList, "folders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := startHostile(t, tc.list)
			dst := servers[imaptest.FlavourSlash].AddUser(t)
			copyHostile(t, src, dst, tc.want)
		})
	}
}

// TestHostileDestination: the same against the destination, in its LIST and in the
// answer to an APPEND (the copier's own append pipeline reads those).
func TestHostileDestination(t *testing.T) {
	inbox := func(w *bufio.Writer) error {
		_, err := w.WriteString(`* LIST () "/" INBOX` + "\r\n")
		return err
	}
	for _, tc := range []struct {
		name    string
		answers map[string]func(w *bufio.Writer) error
		want    string // in the error
	}{
		{"LIST with a 4 GB literal", map[string]func(w *bufio.Writer) error{"LIST": literal4GB(`* LIST () "/" `)}, "literal"},
		{"endless LIST", map[string]func(w *bufio.Writer) error{"LIST": endlessList}, "folders"},
		{"APPEND answered by an endless line", map[string]func(w *bufio.Writer) error{
			"LIST": inbox, "APPEND": endlessLine("* OK ")}, "line longer"},
		{"APPEND answered by a 4 GB literal", map[string]func(w *bufio.Writer) error{
			"LIST": inbox, "APPEND": literal4GB("* 1 FETCH (BODY[] ")}, "literal"},
		{"APPEND answered by untagged data without end", map[string]func(w *bufio.Writer) error{
			"LIST": inbox, "APPEND": func(w *bufio.Writer) error {
				return endless(w, "* OK "+strings.Repeat("still busy ", 100)+"\r\n")
			}}, "untagged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := servers[imaptest.FlavourSlash].AddUser(t)
			mustLoad(t, src, imaptest.Generate(792, imaptest.Spec{Count: 5, Folders: -1}))
			dst := startHostileServer(t, tc.answers)
			copyHostile(t, src, dst, tc.want)
		})
	}
}

// copyHostile copies from src to dst, one of them hostile: the copy must fail with an
// error that mentions want, its heap growing by less than hostileBound.
func copyHostile(t *testing.T, src, dst imapconn.Account, want string) {
	t.Helper()
	var err error
	peak := measurePeakHeap(func() {
		cfg := testConfig(t, src, dst)
		cfg.MaxRetries = 2
		_, err = mailcopy.Copy(testContext(t), cfg)
	})
	t.Logf("peak heap growth %.1f MiB; error: %v", float64(peak)/(1<<20), err)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Copy error = %v, want one that mentions %q", err, want)
	}
	if peak > hostileBound {
		t.Errorf("peak heap growth %d bytes, want at most %d", peak, hostileBound)
	}
}
