package mailcopy_test

import (
	"bytes"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
)

// memSource starts go-imap's in-memory server on loopback with one user whose
// INBOX holds msgs with exactly the given flags — flags no real server would
// accept in an APPEND, which is the point.
func memSource(t *testing.T, msgs []imaptest.Message) imapconn.Account {
	t.Helper()
	user := imapmemserver.NewUser("mem", "secret")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		var flags []imap.Flag
		for _, f := range m.Flags {
			flags = append(flags, imap.Flag(f))
		}
		if _, err := user.Append("INBOX", bytes.NewReader(m.Raw), &imap.AppendOptions{Flags: flags, Time: m.InternalDate}); err != nil {
			t.Fatal(err)
		}
	}
	mem := imapmemserver.New()
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	return imapconn.Account{Host: host, Port: p, Security: imapconn.SecurityPlaintext, Login: "mem", Password: "secret"}
}

// TestInjectionFlags: a small source message carrying \Recent, \* and an
// unknown system flag — each of which makes a server reject the APPEND
// while parsing it and then read the body as commands — and a body made of
// IMAP command lines. The destination gets the message byte-identical with
// its valid flags only, and nothing else.
func TestInjectionFlags(t *testing.T) {
	t.Parallel()
	raw := []byte("From: mallory@example.com\r\nSubject: flags\r\n\r\nA1 CREATE Injected\r\nA2 LOGOUT\r\n")
	src := memSource(t, []imaptest.Message{{Raw: raw, InternalDate: baseDate,
		Flags: []string{`\Recent`, `\*`, `\Unknown`, `\Seen`, "$Label1"}}})
	dst := servers[imaptest.FlavourDot].AddUser(t)

	cfg := testConfig(t, src, dst)
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if res.Totals.Copied != 1 || !res.Complete() {
		t.Fatalf("totals = %+v, want 1 copied", res.Totals)
	}
	got, err := imaptest.ReadFolder(testContext(t), dst, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("destination INBOX has %d messages, want 1", len(got))
	}
	if !bytes.Equal(got[0].Raw, raw) {
		t.Errorf("destination message = %q, want %q", got[0].Raw, raw)
	}
	// The in-memory server lower-cases keywords.
	flags := slices.Sorted(slices.Values(got[0].Flags))
	if want := []string{"$label1", `\Seen`}; !slices.Equal(flags, want) {
		t.Errorf("destination flags = %q, want %q", flags, want)
	}
	if !got[0].InternalDate.Equal(baseDate) {
		t.Errorf("INTERNALDATE = %v, want %v", got[0].InternalDate, baseDate)
	}
	folders, err := imaptest.ListFolders(testContext(t), dst)
	if err != nil {
		t.Fatal(err)
	}
	for name := range folders {
		if bytes.Contains(bytes.ToLower([]byte(name)), []byte("injected")) {
			t.Errorf("destination has a folder %q", name)
		}
	}
}
