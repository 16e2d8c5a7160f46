package imaptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/internal/utf7"
)

// Profile is what a provider is known to do differently from a plain Dovecot, as a
// ProfileProxy reproduces it in front of one. The zero Profile changes nothing.
type Profile struct {
	Name string
	// MaxConnections: a connection beyond this many open at once is greeted with
	// `* BYE [UNAVAILABLE] Too many simultaneous connections` and closed; 0: no cap.
	MaxConnections int
	// DropCaps are capabilities removed from the greeting and every CAPABILITY
	// answer. Dropping LITERAL+ drops LITERAL- too, CONDSTORE drops QRESYNC, and
	// SPECIAL-USE also removes the special-use attributes from LIST answers.
	DropCaps []string
	// SplitWrites writes each server line (and each literal) in 2 or 3 writes with a
	// short pause in between; a literal's announcement `{123}` is cut in its middle.
	SplitWrites bool
	// ThrottleEvery: every ThrottleEvery-th APPEND, FETCH or UID FETCH through the
	// proxy (all connections counted together) is not forwarded but answered with
	// its tag and ThrottleReply; at most MaxThrottles times (0: no limit).
	ThrottleEvery int
	ThrottleReply string
	MaxThrottles  int
	// ByeAfter: a connection's ByeAfter-th command is not forwarded; the client gets
	// `* BYE [UNAVAILABLE] Server Unavailable. 15` and the connection is closed; at
	// most MaxByes times in all (0: no limit).
	ByeAfter int
	MaxByes  int

	// Microsoft 365 / Exchange traits (issue 15).
	//
	// SizeLie: the RFC822.SIZE of FETCH answers is SizeLie bytes more than the
	// message's length (Exchange reports the size of its own MIME conversion),
	// for every SizeLieEvery-th message by sequence number (0: every message).
	// The bodies are sent as they are.
	SizeLie      int
	SizeLieEvery int
	// PasswordRefused: LOGIN and AUTHENTICATE with any mechanism but XOAUTH2 and
	// OAUTHBEARER are not forwarded but answered `NO LOGIN failed.` or `NO
	// AUTHENTICATE failed.` (Exchange Online with basic authentication turned
	// off); OAuth2 goes through.
	PasswordRefused bool
	// Gmail's traits (issue 15).

	// AddCaps are capabilities added to the greeting and every CAPABILITY answer
	// (Gmail: X-GM-EXT-1). The proxy only announces them: a client that used
	// X-GM-MSGID or X-GM-LABELS would get Dovecot's BAD.
	AddCaps []string
	// ListAttrs, when not nil, gives the LIST answers exactly these special-use
	// attributes, as a Gmail account has only its own: the folder named by a key
	// (the name as the client reads it, decoded: "[Gmail]/Messages envoyés") gets
	// the key's attribute, every other folder loses those Dovecot gave it.
	ListAttrs map[string]string
	// HideFolders are left out of LIST answers (full names, decoded): the harness
	// Dovecot's own special-use folders, which a Gmail account does not have.
	HideFolders []string
	// CutAfterBytes, CutAfterCommands: a connection that carried this many bytes
	// (both directions together) or this many commands is cut at the next
	// boundary between two commands or two responses, even while a command is in
	// progress: CutReply is sent first when it is not "" (else a plain close).
	// Unlimited times, every connection; 0: no such limit.
	CutAfterBytes    int64
	CutAfterCommands int
	CutReply         string

	// BeforeBody, when not nil, is called before the proxy forwards a FETCH
	// response that carries a whole message (BODY[]), with n counting such
	// responses over all connections from 1. That connection's responses wait
	// until it returns: a test changes the mailbox there (through another
	// connection) at a known point of a copy's body pass. Dovecot has begun
	// the held response, and may have answered more of the same FETCH: the
	// change is seen by the commands that follow.
	BeforeBody func(n int)
}

// Replies of the providers, as they are reported.
const (
	M365Throttled  = "NO [THROTTLED] Request is throttled. Suggested Backoff Time: 2000 milliseconds"
	GmailBandwidth = "NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"
	M365Bye        = "* BYE [UNAVAILABLE] Server Unavailable. 15"
	M365LoginNo    = "NO LOGIN failed."
	M365AuthNo     = "NO AUTHENTICATE failed."
	TooManyBye     = "* BYE [UNAVAILABLE] Too many simultaneous connections. (Failure)"
	// GmailBye ends a session Gmail drops (modelled: Gmail also closes without one).
	GmailBye = "* BYE [UNAVAILABLE] Temporary System Error"
)

// The special-use folders of a Gmail account in three of its languages, for
// Profile.ListAttrs: the views (\All, \Flagged, \Important) and the special uses.
// A Gmail account's labels are plain folders, nested ones with "/".
var (
	GmailFoldersEN = map[string]string{
		"[Gmail]/Sent Mail": `\Sent`, "[Gmail]/Drafts": `\Drafts`, "[Gmail]/Trash": `\Trash`,
		"[Gmail]/Spam": `\Junk`, "[Gmail]/All Mail": `\All`, "[Gmail]/Starred": `\Flagged`,
		"[Gmail]/Important": `\Important`,
	}
	GmailFoldersDE = map[string]string{
		"[Google Mail]/Gesendet": `\Sent`, "[Google Mail]/Entwürfe": `\Drafts`,
		"[Google Mail]/Papierkorb": `\Trash`, "[Google Mail]/Spam": `\Junk`,
		"[Google Mail]/Alle Nachrichten": `\All`, "[Google Mail]/Markiert": `\Flagged`,
		"[Google Mail]/Wichtig": `\Important`,
	}
	GmailFoldersFR = map[string]string{
		"[Gmail]/Messages envoyés": `\Sent`, "[Gmail]/Brouillons": `\Drafts`,
		"[Gmail]/Corbeille": `\Trash`, "[Gmail]/Spam": `\Junk`,
		"[Gmail]/Tous les messages": `\All`, "[Gmail]/Suivis": `\Flagged`,
		"[Gmail]/Important": `\Important`,
	}
)

// The profiles of the providers whose published or widely reported traits the tests
// reproduce. Tests copy and adjust them (a throttle every few commands, so that a
// small mailbox meets it).
var (
	// ProfileGmail: 15 connections at most, bandwidth-limit refusals, X-GM-EXT-1,
	// its special-use folders and views under "[Gmail]/", sessions cut each time
	// they carried 1.25 MiB: more than the largest message Generate makes, as a
	// session must carry at least one message (Gmail's last many minutes).
	ProfileGmail = Profile{Name: "gmail", MaxConnections: 15, ThrottleEvery: 10, ThrottleReply: GmailBandwidth, MaxThrottles: 3,
		AddCaps: []string{"X-GM-EXT-1"}, ListAttrs: GmailFoldersEN, CutAfterBytes: 1280 << 10, CutAfterCommands: 8, CutReply: GmailBye}
	// ProfileM365: no MULTIAPPEND, throttling with a suggested back-off, "server
	// unavailable" BYE mid-session, RFC822.SIZE bigger than the message for some
	// messages, passwords refused (XOAUTH2 only).
	ProfileM365 = Profile{Name: "m365", MaxConnections: 16, DropCaps: []string{"MULTIAPPEND"},
		ThrottleEvery: 10, ThrottleReply: M365Throttled, MaxThrottles: 2, ByeAfter: 4, MaxByes: 2,
		SizeLie: 9, SizeLieEvery: 4, PasswordRefused: true}
	// ProfileYahoo: 5 connections, no UIDPLUS, responses split at odd places.
	ProfileYahoo = Profile{Name: "yahoo", MaxConnections: 5, DropCaps: []string{"UIDPLUS"}, SplitWrites: true}
	// ProfileOldServer: IMAP4rev1 only, no LITERAL+, no CONDSTORE, no SPECIAL-USE,
	// no MULTIAPPEND, no UIDPLUS.
	ProfileOldServer = Profile{Name: "old-server", DropCaps: []string{"IMAP4rev2", "LITERAL+", "CONDSTORE", "SPECIAL-USE", "MULTIAPPEND", "UIDPLUS"}}
)

// ProfileStats counts what a ProfileProxy did.
type ProfileStats struct {
	Connections int // connections served
	Peak        int // most connections served at once
	Refused     int // connections refused for the cap
	Throttled   int // commands answered with ThrottleReply
	Byes        int // sessions cut with the BYE
	Sizes       int // RFC822.SIZE items reported bigger than the message
	Logins      int // password logins refused (PasswordRefused)
	Cuts        int // sessions cut for CutAfterBytes
}

// ProfileProxy is an IMAP-aware proxy on 127.0.0.1 in front of a Dovecot of the
// harness, behaving as a Profile says. Clients reach it with implicit TLS and the
// Dovecot's certificate (CAPool verifies it); it reaches Dovecot's TLS port.
// IMAP is lines and `{n}` literals: literals pass through untouched.
type ProfileProxy struct {
	Addr    string
	profile Profile
	drop    map[string]bool
	attrs   map[string]string // Profile.ListAttrs by the name on the wire
	hide    map[string]bool   // Profile.HideFolders by the name on the wire
	ln      net.Listener
	tlsConf *tls.Config
	backend string
	backTLS *tls.Config

	commands atomic.Int64 // APPEND/FETCH commands seen, for ThrottleEvery
	bodies   atomic.Int64 // FETCH responses with BODY[], for BeforeBody

	mu    sync.Mutex
	cond  *sync.Cond
	open  int
	stats ProfileStats
	wg    sync.WaitGroup
	conns map[net.Conn]bool
}

// ProfileProxy starts a proxy with profile p in front of d, stopped by tb.Cleanup.
func (d *Dovecot) ProfileProxy(tb testing.TB, p Profile) *ProfileProxy {
	tb.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(d.Dir, "cert.pem"), filepath.Join(d.Dir, "key.pem"))
	if err != nil {
		tb.Fatalf("imaptest: profile proxy: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("imaptest: profile proxy: %v", err)
	}
	px := &ProfileProxy{
		Addr: ln.Addr().String(), profile: p, drop: map[string]bool{}, attrs: map[string]string{}, hide: map[string]bool{}, ln: ln,
		tlsConf: &tls.Config{Certificates: []tls.Certificate{cert}},
		backend: d.TLSAddr,
		backTLS: &tls.Config{RootCAs: d.CAPool, ServerName: "127.0.0.1"},
		conns:   map[net.Conn]bool{},
	}
	px.cond = sync.NewCond(&px.mu)
	for _, c := range p.DropCaps {
		c = strings.ToUpper(c)
		px.drop[c] = true
		switch c {
		case "LITERAL+":
			px.drop["LITERAL-"] = true
		case "CONDSTORE":
			px.drop["QRESYNC"] = true
		}
	}
	for name, attr := range p.ListAttrs {
		px.attrs[utf7.Encode(name)] = attr
	}
	for _, name := range p.HideFolders {
		px.hide[utf7.Encode(name)] = true
	}
	px.wg.Add(1)
	go px.serve()
	tb.Cleanup(px.close)
	return px
}

// Account returns acct changed to reach the server through the proxy.
func (px *ProfileProxy) Account(acct imapconn.Account) imapconn.Account {
	host, port := splitAddr(px.Addr)
	acct.Host, acct.Port, acct.Security = host, port, imapconn.SecurityTLS
	return acct
}

// Stats returns what the proxy did so far.
func (px *ProfileProxy) Stats() ProfileStats {
	px.mu.Lock()
	defer px.mu.Unlock()
	return px.stats
}

func (px *ProfileProxy) close() {
	px.ln.Close()
	px.mu.Lock()
	for c := range px.conns {
		c.Close()
	}
	px.mu.Unlock()
	px.wg.Wait()
}

func (px *ProfileProxy) serve() {
	defer px.wg.Done()
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		px.mu.Lock()
		px.conns[c] = true
		px.mu.Unlock()
		px.wg.Add(1)
		go func() {
			defer px.wg.Done()
			defer func() {
				c.Close()
				px.mu.Lock()
				delete(px.conns, c)
				px.mu.Unlock()
			}()
			px.handle(c)
		}()
	}
}

// connGrace is how long a connection over the cap waits for another to end before it
// is refused: a client that closed a connection and dialed the next at once is not
// over the cap, though the proxy may see the new one before the end of the old one.
const connGrace = time.Second

// admit counts a new connection in, or reports that it is over the cap.
func (px *ProfileProxy) admit() bool {
	px.mu.Lock()
	defer px.mu.Unlock()
	if cap := px.profile.MaxConnections; cap > 0 && px.open >= cap {
		deadline := time.Now().Add(connGrace)
		t := time.AfterFunc(connGrace, func() { px.mu.Lock(); px.cond.Broadcast(); px.mu.Unlock() })
		defer t.Stop()
		for px.open >= cap && time.Now().Before(deadline) {
			px.cond.Wait()
		}
		if px.open >= cap {
			px.stats.Refused++
			return false
		}
	}
	px.open++
	px.stats.Connections++
	px.stats.Peak = max(px.stats.Peak, px.open)
	return true
}

func (px *ProfileProxy) release() {
	px.mu.Lock()
	px.open--
	px.cond.Broadcast()
	px.mu.Unlock()
}

func (px *ProfileProxy) handle(raw net.Conn) {
	client := tls.Server(raw, px.tlsConf)
	if err := client.Handshake(); err != nil {
		return
	}
	if !px.admit() {
		io.WriteString(client, TooManyBye+"\r\n")
		return
	}
	defer px.release()
	back, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", px.backend, px.backTLS)
	if err != nil {
		return
	}
	defer back.Close()
	px.mu.Lock()
	px.conns[back] = true
	px.mu.Unlock()
	defer func() { px.mu.Lock(); delete(px.conns, back); px.mu.Unlock() }()

	s := &session{px: px, client: client, back: back}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.downstream()
		client.Close()
	}()
	s.upstream()
	back.Close()
	client.Close()
	<-done
}

// session is one client connection and its connection to Dovecot. wmu serializes
// writes to the client: the server's responses (each whole, literals included) and
// the proxy's own answers.
type session struct {
	px           *ProfileProxy
	client, back net.Conn
	wmu          sync.Mutex
	bytes        atomic.Int64 // carried both ways, for CutAfterBytes
	commands     atomic.Int64 // for CutAfterCommands
	cut          atomic.Bool
}

// cutDue reports whether the session carried enough to be cut.
func (s *session) cutDue() bool {
	p := s.px.profile
	return p.CutAfterBytes > 0 && s.bytes.Load() >= p.CutAfterBytes ||
		p.CutAfterCommands > 0 && s.commands.Load() >= int64(p.CutAfterCommands)
}

// cutLocked ends the session for CutAfterBytes, once; the caller holds wmu.
func (s *session) cutLocked() {
	if s.cut.Swap(true) {
		return
	}
	s.px.mu.Lock()
	s.px.stats.Cuts++
	s.px.mu.Unlock()
	if r := s.px.profile.CutReply; r != "" {
		io.WriteString(s.client, r+"\r\n")
	}
	s.client.Close()
	s.back.Close()
}

var literalRE = regexp.MustCompile(`~?\{(\d+)(\+|-)?\}\r?\n$`)

// literalAt returns the size of the literal announced at the end of line, and whether
// it is synchronizing, or -1.
func literalAt(line []byte) (int64, bool) {
	m := literalRE.FindSubmatch(line)
	if m == nil {
		return -1, false
	}
	n, err := strconv.ParseInt(string(m[1]), 10, 64)
	if err != nil {
		return -1, false
	}
	return n, len(m[2]) == 0
}

// upstream forwards the client's commands to Dovecot, except those the profile
// answers itself.
func (s *session) upstream() {
	r := bufio.NewReaderSize(s.client, 64<<10)
	p := s.px.profile
	count := 0
	for {
		if s.cutDue() {
			s.wmu.Lock()
			s.cutLocked()
			s.wmu.Unlock()
			return
		}
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		count++
		s.commands.Add(1)
		tag, cmd := commandOf(line)
		if p.PasswordRefused && passwordLogin(cmd, line) {
			if err := s.refuseLogin(r, tag, cmd, line); err != nil {
				return
			}
			continue
		}
		if p.ByeAfter > 0 && count == p.ByeAfter && s.px.take(&s.px.stats.Byes, p.MaxByes) {
			s.wmu.Lock()
			io.WriteString(s.client, M365Bye+"\r\n")
			s.wmu.Unlock()
			return
		}
		if p.ThrottleEvery > 0 && (cmd == "APPEND" || cmd == "FETCH" || cmd == "UID FETCH") &&
			s.px.commands.Add(1)%int64(p.ThrottleEvery) == 0 && s.px.take(&s.px.stats.Throttled, p.MaxThrottles) {
			if err := s.swallow(r, line); err != nil {
				return
			}
			s.wmu.Lock()
			_, err := io.WriteString(s.client, tag+" "+p.ThrottleReply+"\r\n")
			s.wmu.Unlock()
			if err != nil {
				return
			}
			continue
		}
		// Forward the command, its literals and the lines after them.
		for {
			if _, err := s.back.Write(line); err != nil {
				return
			}
			s.bytes.Add(int64(len(line)))
			n, _ := literalAt(line)
			if n < 0 {
				break
			}
			if _, err := io.CopyN(s.back, r, n); err != nil {
				return
			}
			s.bytes.Add(n)
			if line, err = r.ReadBytes('\n'); err != nil {
				return
			}
		}
	}
}

// take counts one more of what *counter counts, unless limit (when not 0) is reached.
func (px *ProfileProxy) take(counter *int, limit int) bool {
	px.mu.Lock()
	defer px.mu.Unlock()
	if limit > 0 && *counter >= limit {
		return false
	}
	*counter++
	return true
}

// swallow reads the rest of a command that is not forwarded: its literals (asking for
// the synchronizing ones as a server would) and the lines after them.
func (s *session) swallow(r *bufio.Reader, line []byte) error {
	for {
		n, sync := literalAt(line)
		if n < 0 {
			return nil
		}
		if sync {
			s.wmu.Lock()
			_, err := io.WriteString(s.client, "+ OK\r\n")
			s.wmu.Unlock()
			if err != nil {
				return err
			}
		}
		if _, err := io.CopyN(io.Discard, r, n); err != nil {
			return err
		}
		var err error
		if line, err = r.ReadBytes('\n'); err != nil {
			return err
		}
	}
}

// commandOf returns a command line's tag and its command name in upper case ("UID
// FETCH" for a UID command).
func commandOf(line []byte) (tag, cmd string) {
	f := strings.Fields(string(line[:min(len(line), 64)]))
	if len(f) < 2 {
		return "", ""
	}
	tag, cmd = f[0], strings.ToUpper(f[1])
	if cmd == "UID" && len(f) > 2 {
		cmd += " " + strings.ToUpper(f[2])
	}
	return tag, cmd
}

// downstream forwards Dovecot's responses to the client, rewritten as the profile
// says, each response written whole under wmu.
func (s *session) downstream() {
	r := bufio.NewReaderSize(s.back, 64<<10)
	buf := make([]byte, 32<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		seq := fetchSeq(line)
		if hook := s.px.profile.BeforeBody; hook != nil && seq != 0 && bytes.Contains(line, []byte(" BODY[] {")) {
			hook(int(s.px.bodies.Add(1)))
		}
		s.wmu.Lock()
		err = func() error {
			for {
				line = s.px.rewriteSize(line, seq)
				line = s.px.rewrite(line)
				if len(line) == 0 {
					return nil // a hidden folder's LIST answer
				}
				if err := s.write(line); err != nil {
					return err
				}
				n, _ := literalAt(line)
				if n < 0 {
					return nil
				}
				for n > 0 {
					k, err := io.ReadFull(r, buf[:min(int64(len(buf)), n)])
					if err != nil {
						return err
					}
					if err := s.write(buf[:k]); err != nil {
						return err
					}
					n -= int64(k)
				}
				if line, err = r.ReadBytes('\n'); err != nil {
					return err
				}
			}
		}()
		if err == nil && s.cutDue() {
			s.cutLocked()
			err = net.ErrClosed
		}
		s.wmu.Unlock()
		if err != nil {
			return
		}
	}
}

// write sends b to the client, in pieces when the profile splits writes: a literal's
// announcement is cut inside its braces.
func (s *session) write(b []byte) error {
	s.bytes.Add(int64(len(b)))
	if !s.px.profile.SplitWrites || len(b) < 3 {
		_, err := s.client.Write(b)
		return err
	}
	cuts := []int{len(b) / 3, 2 * len(b) / 3}
	if m := literalRE.FindIndex(b); m != nil {
		cuts = []int{m[0] + 1, m[1] - 3}
	}
	prev := 0
	for _, c := range append(cuts, len(b)) {
		if c <= prev || c > len(b) {
			continue
		}
		if _, err := s.client.Write(b[prev:c]); err != nil {
			return err
		}
		prev = c
		if c < len(b) {
			time.Sleep(200 * time.Microsecond)
		}
	}
	return nil
}

var capRE = regexp.MustCompile(`(?i)(\[CAPABILITY |^\* CAPABILITY )([^\]\r\n]*)`)

// specialUseAttrs are the attributes of RFC 6154 and Gmail's views.
var specialUseAttrs = []string{`\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`, `\All`, `\Flagged`, `\Important`}

// rewrite changes one server line as the profile says.
func (px *ProfileProxy) rewrite(line []byte) []byte {
	if len(px.drop) == 0 && len(px.profile.AddCaps) == 0 && px.profile.ListAttrs == nil && len(px.hide) == 0 {
		return line
	}
	s := string(line)
	if loc := capRE.FindStringSubmatchIndex(s); loc != nil {
		caps := strings.Fields(s[loc[4]:loc[5]])
		caps = slices.DeleteFunc(caps, func(c string) bool { return px.drop[strings.ToUpper(c)] })
		caps = append(caps, px.profile.AddCaps...)
		return []byte(s[:loc[4]] + strings.Join(caps, " ") + s[loc[5]:])
	}
	if strings.HasPrefix(s, "* LIST (") {
		if end := strings.IndexByte(s, ')'); end > 0 && px.hide[listName(s[end+1:])] {
			return nil
		}
		if px.profile.ListAttrs != nil {
			return []byte(px.listAttrs(s))
		}
	}
	if px.drop["SPECIAL-USE"] && strings.HasPrefix(s, "* LIST (") {
		end := strings.IndexByte(s, ')')
		if end > 0 {
			attrs := strings.Fields(s[len("* LIST ("):end])
			attrs = slices.DeleteFunc(attrs, func(a string) bool {
				return slices.ContainsFunc(specialUseAttrs, func(u string) bool { return strings.EqualFold(u, a) })
			})
			return []byte("* LIST (" + strings.Join(attrs, " ") + s[end:])
		}
	}
	return line
}

// passwordLogin reports whether a command logs in with a password: LOGIN, or
// AUTHENTICATE with a mechanism other than XOAUTH2 and OAUTHBEARER.
func passwordLogin(cmd string, line []byte) bool {
	switch cmd {
	case "LOGIN":
		return true
	case "AUTHENTICATE":
		f := strings.Fields(string(line[:min(len(line), 64)]))
		return len(f) < 3 || !strings.EqualFold(f[2], "XOAUTH2") && !strings.EqualFold(f[2], "OAUTHBEARER")
	}
	return false
}

// refuseLogin answers a password login as Exchange Online does when basic
// authentication is off, after reading the rest of the command: LOGIN's
// literals, or AUTHENTICATE's response when it was not sent with the command.
func (s *session) refuseLogin(r *bufio.Reader, tag, cmd string, line []byte) error {
	if cmd == "AUTHENTICATE" && len(strings.Fields(string(line))) < 4 {
		s.wmu.Lock()
		_, err := io.WriteString(s.client, "+ \r\n")
		s.wmu.Unlock()
		if err != nil {
			return err
		}
		if _, err := r.ReadBytes('\n'); err != nil {
			return err
		}
	} else if err := s.swallow(r, line); err != nil {
		return err
	}
	s.px.take(&s.px.stats.Logins, 0)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	reply := M365LoginNo
	if cmd == "AUTHENTICATE" {
		reply = M365AuthNo
	}
	_, err := io.WriteString(s.client, tag+" "+reply+"\r\n")
	return err
}

var (
	fetchRE = regexp.MustCompile(`^\* (\d+) FETCH `)
	sizeRE  = regexp.MustCompile(`RFC822\.SIZE (\d+)`)
)

// fetchSeq returns the sequence number of a FETCH response's first line, or 0.
func fetchSeq(line []byte) int {
	m := fetchRE.FindSubmatch(line)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// rewriteSize reports RFC822.SIZE bigger than it is in a line of the FETCH
// response of message seq, as the profile says.
func (px *ProfileProxy) rewriteSize(line []byte, seq int) []byte {
	p := px.profile
	if p.SizeLie == 0 || seq == 0 || p.SizeLieEvery > 1 && seq%p.SizeLieEvery != 0 {
		return line
	}
	m := sizeRE.FindSubmatchIndex(line)
	if m == nil {
		return line
	}
	n, err := strconv.ParseInt(string(line[m[2]:m[3]]), 10, 64)
	if err != nil {
		return line
	}
	px.take(&px.stats.Sizes, 0)
	out := append([]byte{}, line[:m[2]]...)
	out = strconv.AppendInt(out, n+int64(p.SizeLie), 10)
	return append(out, line[m[3]:]...)
}

// listAttrs gives a LIST answer the special-use attribute Profile.ListAttrs has for
// its folder, and no other. A name sent as a literal is left alone.
func (px *ProfileProxy) listAttrs(line string) string {
	end := strings.IndexByte(line, ')')
	if end < 0 {
		return line
	}
	attrs := strings.Fields(line[len("* LIST ("):end])
	attrs = slices.DeleteFunc(attrs, func(a string) bool {
		return slices.ContainsFunc(specialUseAttrs, func(u string) bool { return strings.EqualFold(u, a) })
	})
	if attr, ok := px.attrs[listName(line[end+1:])]; ok {
		attrs = append(attrs, attr)
	}
	return "* LIST (" + strings.Join(attrs, " ") + line[end:]
}

// listName returns the mailbox name of what follows a LIST answer's attributes:
// ` "/" "name"` or ` "/" name` (the delimiter may be NIL), unquoted, or "".
func listName(rest string) string {
	rest = strings.TrimRight(rest, "\r\n")
	_, rest, ok := readAString(strings.TrimLeft(rest, " "))
	if !ok {
		return ""
	}
	name, _, ok := readAString(strings.TrimLeft(rest, " "))
	if !ok {
		return ""
	}
	return name
}

// readAString reads a quoted string or an atom at the start of s.
func readAString(s string) (v, rest string, ok bool) {
	if s == "" {
		return "", "", false
	}
	if s[0] != '"' {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			i = len(s)
		}
		return s[:i], s[i:], true
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:], true
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", false
}
