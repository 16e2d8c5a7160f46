//go:build linux

package imapconn_test

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
)

// wrappedConn hides the TCP connection as the engine's own wrappers do, giving it
// only through NetConn.
type wrappedConn struct{ net.Conn }

func (w wrappedConn) NetConn() net.Conn { return w.Conn }

// recordingDialer dials loopback and keeps the TCP connections it made.
type recordingDialer struct {
	mu    sync.Mutex
	conns []*net.TCPConn
}

func (d *recordingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conns = append(d.conns, c.(*net.TCPConn))
	d.mu.Unlock()
	return wrappedConn{c}, nil
}

func sndbuf(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var serr error
	if err := rc.Control(func(fd uintptr) { n, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return n
}

// TestWriteBuffer: Options.WriteBuffer sets the send buffer of the TCP connection
// under the dialer's wrapper and TLS (the kernel reports it doubled), which bounds
// what a frozen copier's kernel still sends; without it the kernel's default holds.
func TestWriteBuffer(t *testing.T) {
	t.Parallel()
	d := imaptest.StartDovecot(t, imaptest.FlavourSlash)
	acct := d.AddUser(t)
	const want = 96 << 10
	for _, tc := range []struct {
		name   string
		buffer int
	}{{"set", want}, {"default", 0}} {
		rd := &recordingDialer{}
		c, err := imapconn.Dial(context.Background(), acct, imapconn.Options{Dialer: rd, WriteBuffer: tc.buffer})
		if err != nil {
			t.Fatalf("%s: Dial: %v", tc.name, err)
		}
		got := sndbuf(t, rd.conns[0])
		c.Close()
		t.Logf("%s: SO_SNDBUF %d", tc.name, got)
		if tc.buffer > 0 && (got < tc.buffer || got > 2*tc.buffer) {
			t.Errorf("%s: SO_SNDBUF = %d, want between %d and %d", tc.name, got, tc.buffer, 2*tc.buffer)
		}
		if tc.buffer == 0 && got == 2*want {
			t.Errorf("%s: SO_SNDBUF = %d, the value of the other case: the test cannot tell them apart", tc.name, got)
		}
	}
}
