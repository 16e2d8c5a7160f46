package imapconn_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
)

// syscallConn records the sizes of the reads asked of it and of the writes made
// to it: one each per syscall on the TCP connection.
type syscallConn struct {
	net.Conn
	mu     sync.Mutex
	reads  []int // len(p) of each Read
	writes []int // len(p) of each Write
}

func (c *syscallConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	c.reads = append(c.reads, len(p))
	c.mu.Unlock()
	return c.Conn.Read(p)
}

func (c *syscallConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, len(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// since returns the reads and writes recorded after the given counts.
func (c *syscallConn) since(reads, writes int) ([]int, []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.reads[reads:]...), append([]int(nil), c.writes[writes:]...)
}

func (c *syscallConn) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.reads), len(c.writes)
}

type syscallDialer struct{ conn *syscallConn }

func (d *syscallDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.conn = &syscallConn{Conn: c}
	return d.conn, nil
}

// TestNetworkChunks: over TLS (and STARTTLS) a session writes a 1 MiB APPEND in
// writes of about 64 KiB, not one per TLS record (16 KiB), and reads the network
// 64 KiB at a time, not a record at a time: a copy moves hundreds of MB, and
// a syscall per record cost a tenth of the copier's CPU. The message comes back
// whole.
func TestNetworkChunks(t *testing.T) {
	t.Parallel()
	d := imaptest.StartDovecot(t, imaptest.FlavourSlash)
	for _, tc := range []struct {
		name string
		acct imapconn.Account
	}{{"tls", d.AddUser(t)}, {"starttls", d.StartTLS(d.AddUser(t))}} {
		t.Run(tc.name, func(t *testing.T) {
			dialer := &syscallDialer{}
			s, err := imapconn.DialSession(context.Background(), tc.acct, imapconn.Options{Dialer: dialer})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			body := bytes.Repeat([]byte(strings.Repeat("x", 76)+"\r\n"), (1<<20)/78)
			body = append([]byte("Subject: chunks "+tc.name+"\r\n\r\n"), body...)
			r0, w0 := dialer.conn.counts()
			w := bufio.NewWriterSize(s.Conn, 64<<10)
			fmt.Fprintf(w, "A1 APPEND INBOX {%d+}\r\n", len(body))
			w.Write(body)
			w.WriteString("\r\n")
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if line := readTagged(t, s.Reader, "A1"); !strings.HasPrefix(line, "A1 OK") {
				t.Fatalf("APPEND: %q", line)
			}
			_, writes := dialer.conn.since(r0, w0)
			sent := 0
			for _, n := range writes {
				sent += n
			}
			t.Logf("%d bytes sent in %d writes", sent, len(writes))
			// A 16 KiB record a write would be at least 64 writes.
			if max := sent/(64<<10) + 3; len(writes) > max {
				t.Errorf("%d bytes sent in %d writes %v, want at most %d", sent, len(writes), writes, max)
			}

			r1, w1 := dialer.conn.counts()
			fmt.Fprintf(s.Conn, "A2 EXAMINE INBOX\r\nA3 FETCH 1 BODY.PEEK[]\r\n")
			readTagged(t, s.Reader, "A2")
			var got []byte
			for {
				line, err := s.Reader.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(line, "A3 ") {
					break
				}
				var n int
				if i := strings.LastIndex(line, "{"); i >= 0 && strings.HasPrefix(line, "* 1 FETCH") {
					fmt.Sscanf(line[i:], "{%d}", &n)
					got = make([]byte, n)
					if _, err := io.ReadFull(s.Reader, got); err != nil {
						t.Fatal(err)
					}
				}
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("FETCH returned %d bytes, want the %d appended", len(got), len(body))
			}
			reads, _ := dialer.conn.since(r1, w1)
			for _, n := range reads {
				if n < 64<<10 {
					t.Errorf("a read of the network asked for %d bytes, want at least 64 KiB (reads %v)", n, reads)
					break
				}
			}
		})
	}
}

// readTagged reads lines until the tagged answer of tag, and returns it.
func readTagged(t *testing.T, r *bufio.Reader, tag string) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, tag+" ") {
			return line
		}
	}
}
