package imaptest

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
)

// An Answer writes a hostile server's answer to one command; the server sends the
// command's tagged OK after it, if it returns.
type Answer func(w *bufio.Writer) error

// StartHostile starts a raw TCP server on loopback, plaintext, that speaks just enough
// IMAP to let a client log in, then answers a command named in answers (upper case)
// with its Answer and any other with OK. It uses no IMAP library: it must be able to
// break the protocol. The account it returns logs in with any password.
func StartHostile(tb testing.TB, answers map[string]Answer) imapconn.Account {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveHostile(c, answers) })
		}
	})
	tb.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	addr := ln.Addr().(*net.TCPAddr)
	return imapconn.Account{Host: "127.0.0.1", Port: addr.Port, Security: imapconn.SecurityPlaintext, Login: "u", Password: "p"}
}

func serveHostile(c net.Conn, answers map[string]Answer) {
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
			if answer := answers[verb]; answer != nil {
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

// Endless writes chunk again and again until the client hangs up.
func Endless(chunk string) Answer {
	return func(w *bufio.Writer) error {
		for {
			if _, err := w.WriteString(chunk); err != nil {
				return err
			}
		}
	}
}

var hostileFiller = strings.Repeat("a", 32<<10)

// HugeLiteral announces a 4 GB literal after prefix (such as `* LIST () "/" `) and
// sends it.
func HugeLiteral(prefix string) Answer {
	return func(w *bufio.Writer) error {
		if _, err := w.WriteString(prefix + "{4294967296}\r\n"); err != nil {
			return err
		}
		return Endless(hostileFiller)(w)
	}
}

// EndlessLine starts a line with prefix and never ends it.
func EndlessLine(prefix string) Answer {
	return func(w *bufio.Writer) error {
		if _, err := w.WriteString(prefix); err != nil {
			return err
		}
		return Endless(hostileFiller)(w)
	}
}

// EndlessList answers LIST with folders without end.
func EndlessList(w *bufio.Writer) error {
	for i := 0; ; i++ {
		if _, err := fmt.Fprintf(w, "* LIST () \"/\" \"Folder %d with a name of some length\"\r\n", i); err != nil {
			return err
		}
	}
}

// PeakHeapGrowth runs f and returns the highest HeapInuse seen while it ran, minus
// HeapInuse after a GC before it: what f made the process hold at most. Other tests
// running at once count too: call it from a test that is not parallel.
func PeakHeapGrowth(f func()) int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := int64(ms.HeapInuse)
	var peak int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, int64(ms.HeapInuse))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	f()
	close(stop)
	wg.Wait()
	return peak - base
}
