// Package imapconn owns the way to an IMAP account: dialing (through an injectable
// Dialer, so a network policy or a test proxy can sit in the way), TLS or STARTTLS, the
// greeting and the login (LOGIN, AUTHENTICATE PLAIN, XOAUTH2), and the classification of
// everything that can go wrong on the way into an *Error with a Kind.
//
// Guarantees:
//   - Certificates are verified unless the account says InsecureSkipVerify. STARTTLS, when
//     asked for, is required: a server without it is refused, never used in plaintext.
//     Plaintext happens only for SecurityPlaintext.
//   - Every connection is bound to a context by closing it when the context ends (go-imap
//     has no context), counts its bytes, and fails when no byte moves for the idle
//     timeout while an answer is awaited; a long transfer that keeps moving never times
//     out (go-imap's own deadlines, 5 minutes per literal, are ignored).
//   - Error messages never contain a password or a token, even one a server echoes back.
//   - A server cannot make the client buffer without bound: a response line longer than
//     MaxResponseLine, or a literal larger than MaxBufferedLiteral that is not a message
//     body (bodies are streamed), fails the connection with a KindProtocol error. go-imap's
//     client would otherwise hold both whole (ReadResponse keeps MaxLine of a line).
//
// The login is done by this package's own protocol code (Session), shared by
// pkg/imapappend's raw write path. Dial then hands the logged-in connection to go-imap's
// client, which starts from a PREAUTH greeting carrying the server's post-login
// capabilities: go-imap cannot be given a connection in the middle of a session, and its
// SASL support cannot answer an XOAUTH2 error challenge with the empty line servers expect.
package imapconn

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Client is a logged-in go-imap client bound to the context given to Dial.
type Client struct {
	client *imapclient.Client
	sess   *Session
	logout time.Duration
}

// Dial connects, secures and logs in (see DialSession), and returns go-imap's client on the
// connection. The connection is closed when ctx ends. Errors are *Error.
func Dial(ctx context.Context, acct Account, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	sess, err := DialSession(ctx, acct, opts)
	if err != nil {
		return nil, err
	}
	caps := sess.capList
	if caps == "" {
		caps = string(imap.CapIMAP4rev1)
	}
	greeting := "* PREAUTH [CAPABILITY " + caps + "] logged in by imapconn\r\n"
	pc := &preauthConn{
		Conn: sess.Conn,
		r:    newResponseGuard(io.MultiReader(strings.NewReader(greeting), sess.Reader)),
		raw:  sess.raw,
	}
	client := imapclient.New(pc, &imapclient.Options{})
	if err := client.WaitGreeting(); err != nil {
		sess.Close()
		return nil, &Error{Kind: KindProtocol, Op: "start the IMAP client for " + acct.Addr(), Err: err}
	}
	return &Client{client: client, sess: sess, logout: opts.LoginTimeout}, nil
}

// IMAP is go-imap's client. Do not call its Close or Logout: use the Client's.
func (c *Client) IMAP() *imapclient.Client { return c.client }

// Caps returns the capabilities the server announced after login.
func (c *Client) Caps() imap.CapSet { return c.sess.Caps }

// Close closes the connection at once.
func (c *Client) Close() error {
	err := c.client.Close()
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return nil
}

// Logout sends a polite LOGOUT, waits a bounded time for its answer, then closes.
func (c *Client) Logout() error {
	done := make(chan error, 1)
	go func() { done <- c.client.Logout().Wait() }()
	timer := time.NewTimer(c.logout)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
	}
	c.Close()
	return err
}

// BytesRead is the number of bytes read from the network so far (TLS included).
func (c *Client) BytesRead() int64 { return c.sess.BytesRead() }

// BytesWritten is the number of bytes written to the network so far (TLS included).
func (c *Client) BytesWritten() int64 { return c.sess.BytesWritten() }

// preauthConn feeds go-imap a PREAUTH greeting, then what the session had buffered, then the
// connection. Closing it closes the TCP connection at once, without TLS close_notify (which
// could wait for a peer that does not read).
type preauthConn struct {
	net.Conn
	r   io.Reader
	raw *conn
	// readEnded: a Read failed, go-imap's reader goroutine hands out no more data.
	readEnded atomic.Bool
}

func (c *preauthConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil {
		c.readEnded.Store(true)
	}
	return n, err
}

func (c *preauthConn) Close() error { return c.raw.Close() }

// Write passes go-imap's commands on. A write that fails while go-imap's reader still
// runs closes the connection and reports success: the reader fails next and ends every
// command in flight, this one included, from its own goroutine. Reported to the writer,
// the failure makes go-imap end them from the writing goroutine, closing the channel of
// a FETCH that its reader may be sending that FETCH's next message on: a data race, and
// a send on a closed channel that would crash the process (seen under the race detector
// when a command was sent behind a FETCH being read, on a connection being cut). Once the
// reader has ended, the failure is reported: nothing could end the command otherwise.
func (c *preauthConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && !c.readEnded.Load() {
		c.raw.Close()
		return len(p), nil
	}
	return n, err
}
