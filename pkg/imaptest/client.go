package imaptest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"imapcopy.dev/pkg/imapconn"
)

// Dial connects to acct with go-imap's client and logs in (LOGIN, or AUTHENTICATE
// XOAUTH2 when acct.OAuth2Token is set). It only dials loopback addresses. The client
// is closed when ctx ends; close it (or log out) when done.
//
// Dial is the harness's own access path, independent of pkg/imapconn's dialing code.
func Dial(ctx context.Context, acct imapconn.Account) (*imapclient.Client, error) {
	addr := net.JoinHostPort(acct.Host, strconv.Itoa(acct.Port))
	if !isLoopback(acct.Host) {
		return nil, fmt.Errorf("imaptest dial %s: refusing a non-loopback address", addr)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("imaptest dial %s: %w", addr, err)
	}
	tlsConf := &tls.Config{
		RootCAs:            acct.RootCAs,
		ServerName:         acct.Host,
		InsecureSkipVerify: acct.InsecureSkipVerify,
	}
	var c *imapclient.Client
	switch acct.Security {
	case imapconn.SecurityTLS:
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("imaptest dial %s: tls: %w", addr, err)
		}
		c = imapclient.New(tc, nil)
	case imapconn.SecurityStartTLS:
		c, err = imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: tlsConf})
		if err != nil {
			return nil, fmt.Errorf("imaptest dial %s: starttls: %w", addr, err)
		}
	case imapconn.SecurityPlaintext:
		c = imapclient.New(conn, nil)
	default:
		conn.Close()
		return nil, fmt.Errorf("imaptest dial %s: unknown security %d", addr, acct.Security)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	go func() {
		<-c.Closed()
		stop()
	}()
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imaptest dial %s: greeting: %w", addr, err)
	}
	if acct.OAuth2Token != "" {
		err = c.Authenticate(&xoauth2{user: acct.Login, token: acct.OAuth2Token})
	} else {
		err = c.Login(acct.Login, acct.Password).Wait()
	}
	if err != nil {
		c.Close()
		// The error is the server's answer: it never contains the password.
		return nil, fmt.Errorf("imaptest login %s as %s: %w", addr, acct.Login, err)
	}
	return c, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// xoauth2 is the SASL XOAUTH2 client (go-imap has none); it implements go-sasl's Client.
type xoauth2 struct{ user, token string }

func (x *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

// Next is only called with the server's error challenge (a JSON status): the login
// failed. (go-imap would answer an empty response with "=", which Dovecot refuses.)
func (x *xoauth2) Next(challenge []byte) ([]byte, error) {
	return nil, fmt.Errorf("xoauth2 refused: %s", challenge)
}
