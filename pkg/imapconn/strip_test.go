package imapconn_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/redistest"
)

// stripProxy is a man in the middle between a client and a real Dovecot's plain
// port, as an attacker on the path would be: it removes STARTTLS from the greeting
// and the CAPABILITY answers, refuses the STARTTLS command if the client sends it
// anyway, and records every line the client sends.
type stripProxy struct {
	addr string
	mu   sync.Mutex
	seen []string
}

var startTLSCap = regexp.MustCompile(`(?i) STARTTLS\b`)

func startStripProxy(t *testing.T, backend string) *stripProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stripProxy{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer client.Close()
				p.serve(client, backend)
			}()
		}
	}()
	return p
}

func (p *stripProxy) serve(client net.Conn, backend string) {
	server, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	var wmu sync.Mutex // the server's lines and the proxy's own answers
	go func() {
		r := bufio.NewReader(server)
		for {
			line, err := r.ReadString('\n')
			if line != "" && strings.Contains(strings.ToUpper(line), "CAPABILITY") {
				line = startTLSCap.ReplaceAllString(line, "")
			}
			wmu.Lock()
			_, werr := io.WriteString(client, line)
			wmu.Unlock()
			if err != nil || werr != nil {
				client.Close()
				return
			}
		}
	}()
	r := bufio.NewReader(client)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		p.mu.Lock()
		p.seen = append(p.seen, strings.TrimRight(line, "\r\n"))
		p.mu.Unlock()
		tag, cmd, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		if strings.EqualFold(cmd, "STARTTLS") {
			wmu.Lock()
			fmt.Fprintf(client, "%s BAD Unknown command\r\n", tag)
			wmu.Unlock()
			continue
		}
		if _, err := io.WriteString(server, line); err != nil {
			return
		}
	}
}

func (p *stripProxy) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// TestStartTLSStripped: a proxy strips STARTTLS from a real Dovecot's capabilities.
// An account that asks for STARTTLS aborts with KindStartTLSUnavailable before any
// LOGIN or AUTHENTICATE reaches the wire, and the password is never sent; the same
// account straight to Dovecot logs in (the control).
func TestStartTLSStripped(t *testing.T) {
	t.Parallel()
	d := imaptest.StartDovecot(t, imaptest.FlavourSlash)
	acct := d.StartTLS(d.AddUser(t))

	px := startStripProxy(t, d.PlainAddr)
	stripped := acct
	host, port, _ := net.SplitHostPort(px.addr)
	stripped.Host = host
	stripped.Port, _ = strconv.Atoi(port)
	c, err := imapconn.Dial(context.Background(), stripped, imapconn.Options{DialTimeout: 5 * time.Second})
	if err == nil {
		c.Close()
	}
	checkErr(t, err, imapconn.KindStartTLSUnavailable, stripped)
	for _, line := range px.received() {
		_, cmd, _ := strings.Cut(line, " ")
		verb, _, _ := strings.Cut(cmd, " ")
		if strings.EqualFold(verb, "LOGIN") || strings.EqualFold(verb, "AUTHENTICATE") {
			t.Errorf("the client sent %q through a stripped connection", line)
		}
		if strings.Contains(line, acct.Password) {
			t.Errorf("the password crossed the stripped connection: %q", line)
		}
	}

	// The control: the same account, straight to Dovecot, upgrades and logs in.
	c, err = imapconn.Dial(context.Background(), acct, imapconn.Options{DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Dial without the proxy: %v", err)
	}
	c.Close()
}

// TestRedisOnTheIMAPPort: an account pointing at a real redis-server (which says
// nothing until spoken to) fails with a timeout that says no greeting came, sends no
// LOGIN, and leaves the Redis untouched.
func TestRedisOnTheIMAPPort(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	host, port, _ := net.SplitHostPort(r.Addr)
	acct := imapconn.Account{Login: "bob", Password: canary, Security: imapconn.SecurityPlaintext}
	acct.Host = host
	acct.Port, _ = strconv.Atoi(port)
	c, err := imapconn.Dial(context.Background(), acct, imapconn.Options{DialTimeout: 2 * time.Second})
	if err == nil {
		c.Close()
	}
	checkErr(t, err, imapconn.KindTimeout, acct)
	if !strings.Contains(err.Error(), "no greeting within") {
		t.Errorf("error %q does not say that no greeting came", err)
	}
	rc := r.Client(t)
	n, err := rc.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatalf("DBSIZE: %v", err)
	}
	if n != 0 {
		t.Errorf("the Redis holds %d keys after an IMAP dial, want 0", n)
	}
}

// TestGarbageAfterLogin: a server that logs in and then answers garbage ends the
// next command with an error, without a hang or a crash.
func TestGarbageAfterLogin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, garbage string }{
		{"binary", "\x00\xff\xfe garbage \x1b[31m\r\n"},
		{"untagged nonsense", "* 12 FETCH (UID)))) (((\r\n"},
		{"a wrong tag", "Z999 OK not yours\r\n"},
		{"a literal that lies", "* LIST () \"/\" {5}\r\nab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := scripted(t, func(s *server, c net.Conn, r *bufio.Reader) {
				fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n")
				l, ok := s.line(r)
				if !ok {
					return
				}
				tag, _, _ := strings.Cut(l, " ")
				fmt.Fprintf(c, "%s OK [CAPABILITY IMAP4rev1] logged in\r\n", tag)
				if _, ok := s.line(r); !ok {
					return
				}
				io.WriteString(c, tc.garbage)
				time.Sleep(500 * time.Millisecond)
			})
			c, err := imapconn.Dial(context.Background(), s.acct, imapconn.Options{DialTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			done := make(chan error, 1)
			go func() {
				_, err := c.IMAP().List("", "*", nil).Collect()
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("LIST answered by garbage succeeded, want an error")
				} else {
					t.Logf("LIST: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("LIST answered by garbage did not end")
			}
		})
	}
}
