package imapconn

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUnsentLimit: with Options.UnsentLimit the kernel takes from a writer only
// what the receiver's window holds plus the limit, while without it the writer
// fills the whole send buffer: what a frozen copier leaves behind in the kernel.
// The receiver never reads and has a small receive buffer; the writer has the
// appenders' send buffer.
func TestUnsentLimit(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	const sndbuf = 512 << 10 // the kernel doubles it
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<10) })
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // never read
		}
	}()
	accepted := func(unsent int) (int, int) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := setWriteBuffer(wrapped{c}, sndbuf); err != nil {
			t.Fatal(err)
		}
		if unsent > 0 {
			if err := setUnsentLimit(wrapped{c}, unsent); err != nil {
				t.Fatal(err)
			}
		}
		var got int
		rc, _ := c.(*net.TCPConn).SyscallConn()
		rc.Control(func(fd uintptr) { got, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT) })
		// Write until the kernel takes no more; the deadline only ends the loop.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 16<<10)
		total := 0
		for {
			n, err := c.Write(buf)
			total += n
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return total, got
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	limited, opt := accepted(limit)
	if opt != limit {
		t.Errorf("TCP_NOTSENT_LOWAT = %d, want %d", opt, limit)
	}
	unlimited, _ := accepted(0)
	t.Logf("the kernel took %d bytes with a %d-byte unsent limit, %d without (send buffer %d)", limited, limit, unlimited, 2*sndbuf)
	if limited > 4*limit {
		t.Errorf("with the limit the kernel took %d bytes, want at most %d (the receiver's small window and the limit)", limited, 4*limit)
	}
	if unlimited < sndbuf {
		t.Errorf("without the limit the kernel took %d bytes, want at least %d: the test no longer shows what the limit changes", unlimited, sndbuf)
	}
}

// wrapped hides a connection as TLS and the engine's wrappers do.
type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }
