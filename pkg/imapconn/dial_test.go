package imapconn_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/internal/imapwire"
	"imapcopy.dev/pkg/proxytest"
)

// canary is a password that must never show in an error.
const canary = "canary-Pa55-w0rd-91f3"

// checkErr fails t unless err is an *imapconn.Error of kind want whose message names no
// secret of acct.
func checkErr(t *testing.T, err error, want imapconn.Kind, acct imapconn.Account) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want kind %v", want)
	}
	var e *imapconn.Error
	if !errors.As(err, &e) {
		t.Errorf("err = %T %v, want an *imapconn.Error", err, err)
	}
	if got := imapconn.KindOf(err); got != want {
		t.Errorf("KindOf(%q) = %v, want %v", err, got, want)
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	for _, secret := range []string{canary, acct.Password, acct.OAuth2Token} {
		if secret != "" && strings.Contains(msg, secret) {
			t.Errorf("error %q contains a secret", msg)
		}
	}
	if msg != strings.ToLower(msg[:1])+msg[1:] {
		t.Errorf("error %q does not start in lower case", msg)
	}
}

func TestDovecotLogin(t *testing.T) {
	t.Parallel()
	for _, f := range []imaptest.Flavour{imaptest.FlavourSlash, imaptest.FlavourDot} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			d := imaptest.StartDovecot(t, f)
			acct := d.AddUser(t)
			oauth := acct
			oauth.Password = ""
			oauth.OAuth2Token = d.OAuth2Token(acct.Login)
			insecure := acct
			insecure.RootCAs = nil
			insecure.InsecureSkipVerify = true
			for _, tc := range []struct {
				name string
				acct imapconn.Account
			}{
				{"tls", acct},
				{"starttls", d.StartTLS(acct)},
				{"plaintext", d.Plaintext(acct)},
				{"xoauth2", oauth},
				{"insecure-skip-verify", insecure},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					c, err := imapconn.Dial(context.Background(), tc.acct, imapconn.Options{})
					if err != nil {
						t.Fatalf("Dial(%v) = %v", tc.acct, err)
					}
					defer c.Close()
					list, err := c.IMAP().List("", "*", nil).Collect()
					if err != nil {
						t.Fatalf("LIST: %v", err)
					}
					if len(list) == 0 {
						t.Errorf("LIST returned nothing, want at least INBOX")
					}
					for _, want := range []imap.Cap{imap.CapIMAP4rev1, imap.CapMultiAppend, imap.CapLiteralPlus, imap.CapUIDPlus} {
						if !c.Caps().Has(want) {
							t.Errorf("Caps() lacks %s", want)
						}
					}
					if c.BytesRead() == 0 || c.BytesWritten() == 0 {
						t.Errorf("BytesRead, BytesWritten = %d, %d, want both > 0", c.BytesRead(), c.BytesWritten())
					}
					if err := c.Logout(); err != nil {
						t.Errorf("Logout() = %v", err)
					}
				})
			}
		})
	}
}

func TestDovecotRefusals(t *testing.T) {
	t.Parallel()
	d := imaptest.StartDovecot(t, imaptest.FlavourSlash)
	good := d.AddUser(t)
	wrong := good
	wrong.Password = canary
	badToken := good
	badToken.Password = ""
	badToken.OAuth2Token = canary
	unknownCA := good
	unknownCA.RootCAs = x509.NewCertPool()
	tlsOnPlainPort := d.StartTLS(good)
	tlsOnPlainPort.Security = imapconn.SecurityTLS
	startTLSOnTLSPort := good
	startTLSOnTLSPort.Security = imapconn.SecurityStartTLS

	for _, tc := range []struct {
		name     string
		acct     imapconn.Account
		want     imapconn.Kind
		contains string
	}{
		{"wrong password", wrong, imapconn.KindAuth, "the server refused the password (AUTHENTICATIONFAILED)"},
		{"wrong password starttls", d.StartTLS(wrong), imapconn.KindAuth, "AUTHENTICATIONFAILED"},
		{"wrong password plaintext", d.Plaintext(wrong), imapconn.KindAuth, "AUTHENTICATIONFAILED"},
		{"bad oauth2 token", badToken, imapconn.KindAuth, "the server refused the OAuth2 token"},
		{"unknown CA", unknownCA, imapconn.KindTLS, "certificate"},
		{"TLS on the STARTTLS port", tlsOnPlainPort, imapconn.KindTLS, "does not speak TLS"},
		{"STARTTLS on the TLS port", startTLSOnTLSPort, imapconn.KindTimeout, "implicit TLS port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := imapconn.Options{DialTimeout: 2 * time.Second}
			c, err := imapconn.Dial(context.Background(), tc.acct, opts)
			if err == nil {
				c.Close()
			}
			checkErr(t, err, tc.want, tc.acct)
			if err != nil && !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not contain %q", err, tc.contains)
			}
			if err != nil && tc.want == imapconn.KindAuth && !strings.HasPrefix(err.Error(), "log in to "+tc.acct.Addr()+" as "+tc.acct.Login+": ") {
				t.Errorf("error %q does not say what was done", err)
			}
		})
	}
}

func TestDovecotContextCancelClosesConnection(t *testing.T) {
	t.Parallel()
	d := imaptest.StartDovecot(t, imaptest.FlavourDot)
	acct := d.AddUser(t)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := imapconn.Dial(ctx, acct, imapconn.Options{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if err := c.IMAP().Noop().Wait(); err != nil {
		t.Fatalf("NOOP before cancel: %v", err)
	}
	cancel()
	select {
	case <-c.IMAP().Closed():
	case <-time.After(30 * time.Second):
		t.Fatal("connection still open 30s after its context ended")
	}
	if err := c.IMAP().Noop().Wait(); err == nil {
		t.Error("NOOP after cancel succeeded, want an error")
	}
}

func TestDialSessionRaw(t *testing.T) {
	t.Parallel()
	d := imaptest.StartDovecot(t, imaptest.FlavourSlash)
	acct := d.AddUser(t)
	s, err := imapconn.DialSession(context.Background(), acct, imapconn.Options{})
	if err != nil {
		t.Fatalf("DialSession: %v", err)
	}
	defer s.Close()
	if _, err := io.WriteString(s.Conn, "A1 NOOP\r\n"); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := imapwire.ReadResponse(s.Reader)
		if err != nil {
			t.Fatalf("ReadResponse: %v", err)
		}
		if resp.Tag == "A1" {
			if resp.Type != "OK" {
				t.Errorf("NOOP answered %+v, want OK", resp)
			}
			break
		}
	}
}

// server is a scripted IMAP server on loopback. Each connection runs serve.
type server struct {
	acct imapconn.Account
	mu   sync.Mutex
	seen []string // lines received, in order
}

func scripted(t *testing.T, serve func(s *server, c net.Conn, r *bufio.Reader)) *server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	host, portStr, _ := net.SplitHostPort(l.Addr().String())
	port, _ := strconv.Atoi(portStr)
	s := &server{acct: imapconn.Account{Host: host, Port: port, Security: imapconn.SecurityPlaintext, Login: "bob", Password: canary}}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(s, c, bufio.NewReader(c))
			}()
		}
	}()
	return s
}

// line reads one line and records it.
func (s *server) line(r *bufio.Reader) (string, bool) {
	l, err := r.ReadString('\n')
	if err != nil {
		return "", false
	}
	l = strings.TrimRight(l, "\r\n")
	s.mu.Lock()
	s.seen = append(s.seen, l)
	s.mu.Unlock()
	return l, true
}

func (s *server) received() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.seen, "\n")
}

// okAll answers every further command with OK.
func (s *server) okAll(c net.Conn, r *bufio.Reader) {
	for {
		l, ok := s.line(r)
		if !ok {
			return
		}
		tag, cmd, _ := strings.Cut(l, " ")
		if strings.EqualFold(cmd, "LOGOUT") {
			fmt.Fprintf(c, "* BYE bye\r\n%s OK done\r\n", tag)
			return
		}
		fmt.Fprintf(c, "%s OK done\r\n", tag)
	}
}

func TestScriptedLogin(t *testing.T) {
	t.Parallel()
	t.Run("LOGIN with a synchronising literal", func(t *testing.T) {
		t.Parallel()
		const password = "pässwörd-" + canary
		var got string
		s := scripted(t, func(s *server, c net.Conn, r *bufio.Reader) {
			fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1] hi\r\n")
			l, _ := s.line(r)
			want := fmt.Sprintf(`L1 LOGIN "bob" {%d}`, len(password))
			if l != want {
				fmt.Fprintf(c, "L1 BAD got %q want %q\r\n", l, want)
				return
			}
			fmt.Fprint(c, "+ go on\r\n")
			buf := make([]byte, len(password)+2)
			io.ReadFull(r, buf)
			got = string(buf)
			fmt.Fprint(c, "L1 OK [CAPABILITY IMAP4rev1 MULTIAPPEND] welcome\r\n")
			s.okAll(c, r)
		})
		acct := s.acct
		acct.Password = password
		c, err := imapconn.Dial(context.Background(), acct, imapconn.Options{})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer c.Close()
		if got != password+"\r\n" {
			t.Errorf("server got password %q, want %q", got, password+"\r\n")
		}
		if !c.Caps().Has(imap.CapMultiAppend) {
			t.Errorf("Caps() = %v, want the post-login capabilities", c.Caps())
		}
		if err := c.IMAP().Noop().Wait(); err != nil {
			t.Errorf("NOOP through go-imap: %v", err)
		}
	})

	t.Run("AUTHENTICATE PLAIN with SASL-IR", func(t *testing.T) {
		t.Parallel()
		s := scripted(t, func(s *server, c net.Conn, r *bufio.Reader) {
			fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] hi\r\n")
			l, _ := s.line(r)
			want := "L1 AUTHENTICATE PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00bob\x00"+canary))
			if l != want {
				fmt.Fprintf(c, "L1 NO unexpected\r\n")
				return
			}
			fmt.Fprint(c, "L1 OK logged in\r\n")
			_, _ = s.line(r)
			fmt.Fprint(c, "* CAPABILITY IMAP4rev1 UIDPLUS\r\nL2 OK done\r\n")
			s.okAll(c, r)
		})
		c, err := imapconn.Dial(context.Background(), s.acct, imapconn.Options{})
		if err != nil {
			t.Fatalf("Dial: %v (server saw %q)", err, s.received())
		}
		defer c.Close()
		if !c.Caps().Has(imap.CapUIDPlus) {
			t.Errorf("Caps() = %v, want the capabilities asked after login", c.Caps())
		}
	})

	t.Run("XOAUTH2 refused with a JSON challenge", func(t *testing.T) {
		t.Parallel()
		var answer string
		s := scripted(t, func(s *server, c net.Conn, r *bufio.Reader) {
			fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] hi\r\n")
			s.line(r) // L1 AUTHENTICATE XOAUTH2
			fmt.Fprint(c, "+ \r\n")
			ir, _ := s.line(r)
			raw, _ := base64.StdEncoding.DecodeString(ir)
			if string(raw) != "user=bob\x01auth=Bearer "+canary+"\x01\x01" {
				fmt.Fprintf(c, "L1 BAD wrong initial response\r\n")
				return
			}
			fmt.Fprint(c, "+ "+base64.StdEncoding.EncodeToString([]byte(`{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}`))+"\r\n")
			answer, _ = s.line(r)
			fmt.Fprint(c, "L1 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n")
		})
		acct := s.acct
		acct.Password = ""
		acct.OAuth2Token = canary
		_, err := imapconn.Dial(context.Background(), acct, imapconn.Options{})
		checkErr(t, err, imapconn.KindAuth, acct)
		if answer != "" {
			t.Errorf("answer to the error challenge = %q, want an empty line", answer)
		}
		if err != nil && !strings.Contains(err.Error(), "OAuth2 token (status 401) (AUTHENTICATIONFAILED)") {
			t.Errorf("error %q does not explain the refusal", err)
		}
	})

	t.Run("a server echoing the password", func(t *testing.T) {
		t.Parallel()
		s := scripted(t, func(s *server, c net.Conn, r *bufio.Reader) {
			fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1] hi\r\n")
			l, _ := s.line(r)
			fmt.Fprintf(c, "L1 NO [AUTHENTICATIONFAILED] you sent %s\r\n", l)
		})
		_, err := imapconn.Dial(context.Background(), s.acct, imapconn.Options{})
		checkErr(t, err, imapconn.KindAuth, s.acct)
		if err != nil && !strings.Contains(err.Error(), "REDACTED") {
			t.Errorf("error %q: want the echoed password redacted", err)
		}
	})
}

func TestScriptedRefusals(t *testing.T) {
	t.Parallel()
	greetThen := func(greeting string) func(s *server, c net.Conn, r *bufio.Reader) {
		return func(s *server, c net.Conn, r *bufio.Reader) {
			fmt.Fprint(c, greeting)
			s.okAll(c, r)
		}
	}
	for _, tc := range []struct {
		name     string
		serve    func(s *server, c net.Conn, r *bufio.Reader)
		security imapconn.Security
		want     imapconn.Kind
		contains string
	}{
		{
			name:     "STARTTLS required but not offered",
			serve:    greetThen("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"),
			security: imapconn.SecurityStartTLS,
			want:     imapconn.KindStartTLSUnavailable,
			contains: "does not offer STARTTLS",
		},
		{
			name:     "PREAUTH before STARTTLS",
			serve:    greetThen("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"),
			security: imapconn.SecurityStartTLS,
			want:     imapconn.KindStartTLSUnavailable,
			contains: "before STARTTLS",
		},
		{
			name:     "LOGINDISABLED",
			serve:    greetThen("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi\r\n"),
			security: imapconn.SecurityPlaintext,
			want:     imapconn.KindAuth,
			contains: "LOGINDISABLED",
		},
		{
			name: "an HTTP server",
			serve: func(s *server, c net.Conn, r *bufio.Reader) {
				fmt.Fprint(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			},
			security: imapconn.SecurityPlaintext,
			want:     imapconn.KindNotIMAP,
			contains: `it said "HTTP/1.1 400 Bad Request"`,
		},
		{
			name:     "an SMTP server",
			serve:    greetThen("220 mx.example.com ESMTP\r\n"),
			security: imapconn.SecurityPlaintext,
			want:     imapconn.KindNotIMAP,
			contains: "not an IMAP server",
		},
		{
			name:     "BYE greeting",
			serve:    greetThen("* BYE [UNAVAILABLE] too many connections\r\n"),
			security: imapconn.SecurityPlaintext,
			want:     imapconn.KindUnreachable,
			contains: "too many connections",
		},
		{
			name: "a server that never answers",
			serve: func(s *server, c net.Conn, r *bufio.Reader) {
				io.Copy(io.Discard, r)
			},
			security: imapconn.SecurityPlaintext,
			want:     imapconn.KindTimeout,
			contains: "no greeting within",
		},
		{
			name:     "a server that hangs up at once",
			serve:    func(s *server, c net.Conn, r *bufio.Reader) {},
			security: imapconn.SecurityPlaintext,
			want:     imapconn.KindClosed,
			contains: "before its greeting",
		},
		{
			name: "a server that hangs up during login",
			serve: func(s *server, c net.Conn, r *bufio.Reader) {
				fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1] hi\r\n")
				s.line(r)
			},
			security: imapconn.SecurityPlaintext,
			want:     imapconn.KindClosed,
			contains: "log in to",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := scripted(t, tc.serve)
			acct := s.acct
			acct.Security = tc.security
			_, err := imapconn.Dial(context.Background(), acct, imapconn.Options{DialTimeout: 300 * time.Millisecond})
			checkErr(t, err, tc.want, acct)
			if err != nil && !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not contain %q", err, tc.contains)
			}
			if strings.Contains(s.received(), "LOGIN") || strings.Contains(s.received(), "AUTHENTICATE") {
				if tc.want != imapconn.KindClosed {
					t.Errorf("the server received a login attempt: %q", s.received())
				}
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	acct := imapconn.Account{Host: "127.0.0.1", Port: port, Security: imapconn.SecurityTLS, Login: "bob", Password: canary}
	_, err = imapconn.Dial(context.Background(), acct, imapconn.Options{})
	checkErr(t, err, imapconn.KindUnreachable, acct)
	if err != nil && !strings.HasPrefix(err.Error(), "connect to 127.0.0.1:"+strconv.Itoa(port)+": ") {
		t.Errorf("error %q does not say what was done", err)
	}
}

// refusingDialer refuses every address, as a network policy would.
type refusingDialer struct{}

type policyError struct{}

func (policyError) Error() string         { return "address not allowed by policy" }
func (policyError) RefusedByPolicy() bool { return true }

func (refusingDialer) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, fmt.Errorf("dial: %w", policyError{})
}

func TestRefusedByPolicy(t *testing.T) {
	t.Parallel()
	acct := imapconn.Account{Host: "127.0.0.1", Port: 993, Security: imapconn.SecurityTLS, Login: "bob", Password: canary}
	_, err := imapconn.Dial(context.Background(), acct, imapconn.Options{Dialer: refusingDialer{}})
	checkErr(t, err, imapconn.KindRefusedByPolicy, acct)
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	s := scripted(t, func(s *server, c net.Conn, r *bufio.Reader) {
		fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1] hi\r\n")
		s.line(r)
		fmt.Fprint(c, "L1 OK [CAPABILITY IMAP4rev1] welcome\r\n")
		io.Copy(io.Discard, r) // and never answer again
	})
	c, err := imapconn.Dial(context.Background(), s.acct, imapconn.Options{IdleTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	err = c.IMAP().Noop().Wait()
	if err == nil {
		t.Fatal("NOOP to a server that never answers succeeded")
	}
	if got := imapconn.KindOf(err); got != imapconn.KindTimeout && got != imapconn.KindClosed {
		t.Errorf("KindOf(%v) = %v, want timeout (or closed)", err, got)
	}
}

// TestNotIMAPQuotesShortSanitizedPrefix checks that a hostile greeting is quoted only
// as a short prefix with terminal escapes and bidirectional or other invisible
// format characters removed, so the error cannot repaint a terminal or a page.
func TestNotIMAPQuotesShortSanitizedPrefix(t *testing.T) {
	t.Parallel()
	hostile := "EVIL \x1b[2J\x1b[31mred \u202egnp.exe\u200b " + strings.Repeat("A", 500) + "\r\n"
	s := scripted(t, func(s *server, c net.Conn, r *bufio.Reader) {
		fmt.Fprint(c, hostile)
		s.okAll(c, r)
	})
	acct := s.acct
	acct.Security = imapconn.SecurityPlaintext
	_, err := imapconn.Dial(context.Background(), acct, imapconn.Options{DialTimeout: 300 * time.Millisecond})
	checkErr(t, err, imapconn.KindNotIMAP, acct)
	if err == nil {
		return
	}
	msg := err.Error()
	if !strings.Contains(msg, `it said "EVIL`) {
		t.Errorf("error %q does not quote the start of the greeting", msg)
	}
	for _, bad := range []string{"\x1b", "[2J", "\u202e", "\u200b", `\u202e`, `\u200b`, strings.Repeat("A", 100)} {
		if strings.Contains(msg, bad) {
			t.Errorf("error %q contains %q", msg, bad)
		}
	}
}

// TestBeforeLogin: the hook runs once the server greeted the connection and
// before any byte of the login, for as long as it takes; nil lets the login
// go on, an error ends the dial with nothing sent and closes the connection.
func TestBeforeLogin(t *testing.T) {
	t.Parallel()
	d := imaptest.StartDovecot(t, imaptest.FlavourSlash)
	acct := d.AddUser(t)
	refused := errors.New("not wanted")
	for _, tc := range []struct {
		name string
		err  error
	}{{"login", nil}, {"refused", refused}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			px := proxytest.New(t, d.PlainAddr)
			a := d.Plaintext(acct)
			a.Host, a.Port = px.Host(), px.Port()
			release := make(chan struct{})
			var before proxytest.Stats
			calls := 0
			hook := func(context.Context) error {
				calls++
				<-release
				before = px.Stats()
				return tc.err
			}
			done := make(chan error, 1)
			var c *imapconn.Client
			go func() {
				var err error
				c, err = imapconn.Dial(context.Background(), a, imapconn.Options{BeforeLogin: hook})
				done <- err
			}()
			// The hook holds the dial: nothing more happens meanwhile.
			time.Sleep(100 * time.Millisecond)
			close(release)
			err := <-done
			if calls != 1 {
				t.Fatalf("the hook ran %d times, want once", calls)
			}
			if before.Downstream == 0 || before.Upstream != 0 {
				t.Errorf("at the hook the server sent %d bytes and got %d; want its greeting, and nothing from the client", before.Downstream, before.Upstream)
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Dial = %v, want the hook's error", err)
				}
				waitFor(t, func() bool { return px.Stats().Active == 0 })
				if st := px.Stats(); st.Upstream != 0 {
					t.Errorf("the client sent %d bytes after a refusing hook, want none", st.Upstream)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial = %v", err)
			}
			defer c.Close()
			if err := c.IMAP().Noop().Wait(); err != nil {
				t.Errorf("NOOP after the login: %v", err)
			}
		})
	}
}

// waitFor polls cond until it holds, for up to 30 s (not a timed assertion: the
// limit only keeps a broken test from hanging).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition still false after 30 s")
		}
	}
}
