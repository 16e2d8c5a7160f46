package imapconn

import (
	"net"

	"golang.org/x/sys/unix"
)

// setUnsentLimit sets TCP_NOTSENT_LOWAT on the TCP connection under nc (see
// Options.UnsentLimit). A connection with no TCP under it is left as it is.
func setUnsentLimit(nc net.Conn, n int) error {
	tc := tcpConn(nc)
	if tc == nil {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n)
	}); err != nil {
		return err
	}
	return serr
}
