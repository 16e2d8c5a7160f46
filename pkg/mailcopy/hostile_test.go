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
// client log in, then answers LIST with what list writes (until the client hangs up).
// It uses no IMAP library: it must be able to break the protocol.
type hostileServer struct {
	ln   net.Listener
	list func(w *bufio.Writer) error
	wg   sync.WaitGroup
}

func startHostile(t *testing.T, list func(w *bufio.Writer) error) imapconn.Account {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	h := &hostileServer{ln: ln, list: list}
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
		case "LIST":
			if err = h.list(w); err == nil {
				err = send(tag + " OK LIST done\r\n")
			}
		case "LOGOUT":
			_ = send("* BYE bye\r\n" + tag + " OK LOGOUT done\r\n")
			return
		default:
			err = send(tag + " OK done\r\n")
		}
		if err != nil {
			return
		}
	}
}

// TestHostileSource points the copier at sources that try to make it buffer without
// bound: a 4 GB literal for a folder name, a response line that never ends, and a LIST
// that never ends. Each copy must fail with a reason, its heap growing by less than
// 64 MiB (issue 14, promise 7). Not parallel: it measures the process's heap.
func TestHostileSource(t *testing.T) {
	const bound = 64 << 20
	endless := func(w *bufio.Writer, chunk string) error {
		for {
			if _, err := w.WriteString(chunk); err != nil {
				return err
			}
		}
	}
	filler := strings.Repeat("a", 32<<10)
	for _, tc := range []struct {
		name string
		list func(w *bufio.Writer) error
		want string // in the error
	}{
		{"4 GB literal", func(w *bufio.Writer) error {
			if _, err := w.WriteString("* LIST () \"/\" {4294967296}\r\n"); err != nil {
				return err
			}
			return endless(w, filler)
		}, "literal"},
		{"endless line", func(w *bufio.Writer) error {
			if _, err := w.WriteString("* LIST () \"/\" "); err != nil {
				return err
			}
			return endless(w, filler)
		}, "line longer"},
		{"endless LIST", func(w *bufio.Writer) error {
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(w, "* LIST () \"/\" \"Folder %d with a name of some length\"\r\n", i); err != nil {
					return err
				}
			}
		}, "folders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := startHostile(t, tc.list)
			dst := servers[imaptest.FlavourSlash].AddUser(t)
			var err error
			peak := measurePeakHeap(func() {
				cfg := testConfig(t, src, dst)
				cfg.MaxRetries = 2
				_, err = mailcopy.Copy(testContext(t), cfg)
			})
			t.Logf("peak heap growth %.1f MiB; error: %v", float64(peak)/(1<<20), err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Copy error = %v, want one that mentions %q", err, tc.want)
			}
			if peak > bound {
				t.Errorf("peak heap growth %d bytes, want at most %d", peak, bound)
			}
		})
	}
}
