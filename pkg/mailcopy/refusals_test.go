package mailcopy_test

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
)

// TestRefusedFolder: Cyrus refuses to create a folder named "100% done" ("NO
// Invalid mailbox name"). That folder and its child are listed as failed folders
// with the server's answer, every other folder is copied, the result is not
// complete (the CLI exits 3), and a rerun does the same without copying anything
// twice.
func TestRefusedFolder(t *testing.T) {
	t.Parallel()
	src := dovecotSlash.addUser(t)
	dst := cyrusSlash.addUser(t)
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{msg("in inbox", "a@x", 500, baseDate)}},
		{Name: "100% done", Messages: []imaptest.Message{msg("done", "d@x", 500, baseDate)}},
		{Name: "100% done/inner", Messages: []imaptest.Message{msg("inner", "i@x", 500, baseDate)}},
		{Name: "Projects", Messages: []imaptest.Message{msg("project", "p@x", 500, baseDate), msg("plan", "q@x", 600, baseDate)}},
	}})
	refused := func(folder string) bool { return strings.HasPrefix(folder, "100% done") }

	for run := range 2 {
		cfg := testConfig(t, src, dst)
		cfg.NoReport = run > 0
		res := mustCopy(t, cfg)
		wantCopied := 3
		if run > 0 {
			wantCopied = 0
		}
		if res.Complete() || res.Totals.Copied != wantCopied || res.Totals.Present != 3-wantCopied {
			t.Errorf("run %d: totals %+v complete=%v, want %d copied and the result incomplete", run, res.Totals, res.Complete(), wantCopied)
		}
		failed := res.FailedFolders()
		if len(failed) != 2 {
			t.Fatalf("run %d: failed folders %+v, want 100%% done and its child", run, failed)
		}
		for _, f := range failed {
			if !refused(f.Source) || !strings.Contains(f.Error, "Invalid mailbox name") || !strings.Contains(f.Error, f.Destination) {
				t.Errorf("run %d: failed folder %+v, want one of 100%% done with Cyrus's answer", run, f)
			}
		}
		mustCheck(t, src, dst, imaptest.CheckOptions{SkipSource: refused})
	}
}

// courierSession is go-imap's in-memory server answering CREATE of a folder that
// exists like Courier-IMAP 5.0: "NO Cannot create this folder.". appearing names a
// folder that another client creates just before this one (a race the real Courier
// of TestCourierCreate cannot be made to show), holding the messages with.
type courierSession struct {
	*imapmemserver.UserSession
	user      *imapmemserver.User
	appearing string
	with      [][]byte
}

func (s *courierSession) Login(username, password string) error {
	return s.user.Login(username, password)
}

func (s *courierSession) Create(name string, opts *imap.CreateOptions) error {
	err := s.UserSession.Create(name, opts)
	if err == nil && name == s.appearing {
		for _, raw := range s.with {
			if _, err := s.UserSession.Append(name, bytes.NewReader(raw), &imap.AppendOptions{Time: baseDate}); err != nil {
				return err
			}
		}
	}
	if err != nil || name == s.appearing {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Cannot create this folder."}
	}
	return nil
}

// courierDest starts the Courier-like destination on loopback.
func courierDest(t *testing.T, appearing string, with ...[]byte) imapconn.Account {
	t.Helper()
	user := imapmemserver.NewUser("courier", "secret")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &courierSession{UserSession: imapmemserver.NewUserSession(user), user: user, appearing: appearing, with: with}, nil, nil
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
	return imapconn.Account{Host: host, Port: p, Security: imapconn.SecurityPlaintext, Login: "courier", Password: "secret"}
}

// TestCourierCreate: the real Courier refuses a folder name with an emoji ("NO Error
// in IMAP command received by server.", and the same answer to a LIST of it): the
// folder is listed as failed with Courier's answer, the rest is copied (the copy
// stopped before, the LIST refusal taken for a broken session).
func TestCourierCreate(t *testing.T) {
	t.Parallel()
	src := dovecotSlash.addUser(t)
	dst := courier.addUser(t)
	party := "Party 🎉"
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{msg("in inbox", "a@x", 500, baseDate)}},
		{Name: "Work", Messages: []imaptest.Message{msg("work", "w@x", 500, baseDate)}},
		{Name: party, Messages: []imaptest.Message{msg("party", "p@x", 500, baseDate)}},
	}})
	cfg := testConfig(t, src, dst)
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if res.Complete() || res.Totals.Copied != 2 {
		t.Errorf("totals %+v complete=%v, want 2 copied and the result incomplete", res.Totals, res.Complete())
	}
	failed := res.FailedFolders()
	if len(failed) != 1 || failed[0].Source != party || !strings.Contains(failed[0].Error, "Error in IMAP command received by server.") {
		t.Fatalf("failed folders %+v, want only %q with Courier's answer", failed, party)
	}
	// The created folder is subscribed, the refused one is not.
	if subs := subscribed(t, dst); !slices.ContainsFunc(subs, func(s string) bool { return strings.HasSuffix(s, "Work") }) ||
		slices.ContainsFunc(subs, func(s string) bool { return strings.Contains(s, "Party") }) {
		t.Errorf("subscribed folders %q, want Work and not %q", subs, party)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{SkipSource: func(f string) bool { return f == party }})
}

// TestCourierCreateAppearing: Courier's "NO Cannot create this folder." for a folder
// that another client created meanwhile is taken for "already exists": the folder
// is copied into.
func TestCourierCreateAppearing(t *testing.T) {
	t.Parallel()
	src := dovecotSlash.addUser(t)
	dst := courierDest(t, "Work")
	mustLoad(t, src, imaptest.Mailbox{Folders: []imaptest.Folder{
		{Name: "INBOX", Messages: []imaptest.Message{msg("in inbox", "a@x", 500, baseDate)}},
		{Name: "Work", Messages: []imaptest.Message{msg("work", "w@x", 500, baseDate)}},
	}})
	cfg := testConfig(t, src, dst)
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if !res.Complete() || res.Totals.Copied != 2 || len(res.FailedFolders()) != 0 {
		t.Errorf("totals %+v failed folders %+v, want 2 copied, nothing failed", res.Totals, res.FailedFolders())
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}

// TestCourierLineEnd: the real Courier stores a message whose last line has no line end
// with a CRLF added. A rerun recognises it (it appended it again, at every run),
// says the destination changed it, and appends nothing; two identical such
// messages in the source are still two on the destination.
func TestCourierLineEnd(t *testing.T) {
	t.Parallel()
	src := dovecotSlash.addUser(t)
	dst := courier.addUser(t)
	noEnd := func(subject string) imaptest.Message {
		return imaptest.Message{Raw: []byte("From: a@example.com\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@x>\r\n\r\nlast line without its end"), InternalDate: baseDate}
	}
	mustLoad(t, src, inbox(noEnd("one"), noEnd("twice"), noEnd("twice"), msg("normal", "n@x", 400, baseDate)))
	cfg := testConfig(t, src, dst)
	cfg.NoReport = true
	first := mustCopy(t, cfg)
	if !first.Complete() || first.Totals.Copied != 4 {
		t.Errorf("first copy: totals %+v, want 4 copied", first.Totals)
	}
	for run := range 2 {
		again := mustCopy(t, cfg)
		if again.Totals.Copied != 0 || again.Totals.Present != 4 {
			t.Errorf("rerun %d: totals %+v, want 0 copied, 4 present", run, again.Totals)
		}
		if len(again.Altered) != 3 {
			t.Errorf("rerun %d: altered %+v, want the 3 messages without a final line end", run, again.Altered)
		}
		for _, a := range again.Altered {
			if !strings.Contains(a.Reason, "2 bytes more") {
				t.Errorf("rerun %d: altered %+v, want a reason about the 2 bytes added", run, a)
			}
		}
	}
	got, err := imaptest.ReadFolder(testContext(t), dst, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Errorf("destination INBOX has %d messages, want 4", len(got))
	}
}

// TestTooManyKeywords: Cyrus refuses a message once its folder holds 100 keywords
// ("NO Too many user flags in mailbox"). Such a message is appended again without
// the keywords the folder cannot take, and the result lists it as altered; nothing
// fails, and a rerun appends nothing.
func TestTooManyKeywords(t *testing.T) {
	t.Parallel()
	src := dovecotSlash.addUser(t)
	dst := cyrusSlash.addUser(t)
	var msgs []imaptest.Message
	const n = 110
	for i := range n {
		m := msg(fmt.Sprintf("keyword %d", i), fmt.Sprintf("k%d@x", i), 300, baseDate, `\Seen`, fmt.Sprintf("kw%d", i))
		if i%10 == 0 {
			m.Flags = append(m.Flags, "$Shared") // the same keyword on several messages
		}
		msgs = append(msgs, m)
	}
	mustLoad(t, src, inbox(msgs...))
	cfg := testConfig(t, src, dst)
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if !res.Complete() || res.Totals.Copied != n {
		t.Errorf("totals %+v, failures %+v; want %d copied", res.Totals, res.Failures, n)
	}
	if len(res.Altered) == 0 || len(res.Altered) > n-90 {
		t.Errorf("altered = %d messages, want a few (those after about 100 keywords)", len(res.Altered))
	}
	for _, a := range res.Altered {
		if a.Folder != "INBOX" || !strings.Contains(a.Reason, "Too many user flags") || !strings.Contains(a.Reason, fmt.Sprintf("kw%d", a.UID-1)) {
			t.Errorf("altered %+v, want INBOX, its keyword and Cyrus's answer", a)
		}
	}

	// Every message is there once, \Seen kept; only the altered ones lack keywords.
	got, err := imaptest.ReadFolder(testContext(t), dst, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("destination INBOX has %d messages, want %d", len(got), n)
	}
	altered := map[string]bool{}
	for _, a := range res.Altered {
		altered[fmt.Sprintf("kw%d", a.UID-1)] = true
	}
	for _, m := range got {
		var i int
		if _, err := fmt.Sscanf(string(m.Raw[bytes.Index(m.Raw, []byte("Subject: ")):]), "Subject: keyword %d", &i); err != nil {
			t.Fatalf("destination message without its subject: %v", err)
		}
		want := fmt.Sprintf("kw%d", i)
		if !slices.Contains(m.Flags, `\Seen`) || slices.Contains(m.Flags, want) == altered[want] {
			t.Errorf("destination message %q: flags %q (altered: %v)", want, m.Flags, altered[want])
		}
	}

	again := mustCopy(t, cfg)
	if again.Totals.Copied != 0 || again.Totals.Present != n || len(again.Altered) != 0 {
		t.Errorf("rerun: totals %+v, altered %d; want 0 copied, %d present", again.Totals, len(again.Altered), n)
	}
}

// TestCyrusInvalidHeader: Cyrus refuses a message with a header line that is not
// a field ("NO Message contains invalid header"). It is listed as refused with
// Cyrus's answer, in whichever MULTIAPPEND batch it came; the others are copied.
func TestCyrusInvalidHeader(t *testing.T) {
	t.Parallel()
	src := dovecotDot.addUser(t)
	dst := cyrusDot.addUser(t)
	bad := imaptest.Message{Raw: []byte("From: a@example.com\r\nSubject: bad\r\nthis line is not a header field\r\n\r\nbody\r\n"), InternalDate: baseDate}
	var msgs []imaptest.Message
	for i := range 20 {
		msgs = append(msgs, msg(fmt.Sprintf("good %d", i), fmt.Sprintf("g%d@x", i), 400, baseDate))
	}
	msgs = slices.Insert(msgs, 7, bad)
	mustLoad(t, src, inbox(msgs...))
	cfg := testConfig(t, src, dst)
	cfg.NoReport = true
	res := mustCopy(t, cfg)
	if res.Complete() || res.Totals.Copied != 20 || res.Totals.Failed != 1 {
		t.Errorf("totals %+v, want 20 copied, 1 failed", res.Totals)
	}
	if len(res.Failures) != 1 || res.Failures[0].UID != 8 || !strings.Contains(res.Failures[0].Reason, "Message contains invalid header") {
		t.Errorf("failures %+v, want UID 8 with Cyrus's answer", res.Failures)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{AllowMissing: func(_ string, size int64) bool { return size == int64(len(bad.Raw)) }})
}
