//go:build !linux

package imapconn

import "net"

// setUnsentLimit does nothing where TCP_NOTSENT_LOWAT is not known to behave as
// on Linux (see Options.UnsentLimit).
func setUnsentLimit(net.Conn, int) error { return nil }
