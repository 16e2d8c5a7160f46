package imapconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/internal/imapwire"
)

// Kind classifies a connection failure by what the user or operator can do about it.
type Kind int

const (
	KindUnknown             Kind = iota
	KindUnreachable              // DNS failure, connection refused, no route, the server turned us away
	KindTimeout                  // nothing came back in time
	KindTLS                      // certificate or handshake failure
	KindStartTLSUnavailable      // STARTTLS required but not offered
	KindNotIMAP                  // something that is not an IMAP server answered
	KindAuth                     // the server refused the login
	KindRefusedByPolicy          // our own network policy refused the address
	KindProtocol                 // the server broke the protocol
	KindClosed                   // the connection was closed under a command
)

var kindNames = [...]string{
	KindUnknown:             "unknown",
	KindUnreachable:         "unreachable",
	KindTimeout:             "timeout",
	KindTLS:                 "tls",
	KindStartTLSUnavailable: "starttls-unavailable",
	KindNotIMAP:             "not-imap",
	KindAuth:                "auth",
	KindRefusedByPolicy:     "refused-by-policy",
	KindProtocol:            "protocol",
	KindClosed:              "closed",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is a classified connection failure. Op says what was being done ("log in to
// imap.example.com:993 as bob@example.com"); Err says what went wrong in words a person can
// act on. Neither ever contains a password or a token.
type Error struct {
	Kind Kind
	Op   string
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Op
	}
	return e.Op + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf classifies any error: the Kind of the first *Error in the chain, else a
// classification of the chain itself. An error in the chain that implements
// RefusedByPolicy() bool and returns true always gives KindRefusedByPolicy.
func KindOf(err error) Kind {
	if err == nil {
		return KindUnknown
	}
	var p interface{ RefusedByPolicy() bool }
	if errors.As(err, &p) && p.RefusedByPolicy() {
		return KindRefusedByPolicy
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return classify(err)
}

// classify guesses the Kind of an error from the network, TLS or IMAP layers.
func classify(err error) Kind {
	var p interface{ RefusedByPolicy() bool }
	if errors.As(err, &p) && p.RefusedByPolicy() {
		return KindRefusedByPolicy
	}
	var (
		dnsErr     *net.DNSError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		certErr    x509.CertificateInvalidError
		verifyErr  *tls.CertificateVerificationError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		echErr     *tls.ECHRejectionError
		imapErr    *imap.Error
		netErr     net.Error
		syscallErr syscall.Errno
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &certErr),
		errors.As(err, &verifyErr), errors.As(err, &recordErr), errors.As(err, &alertErr),
		errors.As(err, &echErr):
		return KindTLS
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return KindTimeout
	case errors.As(err, &dnsErr):
		if dnsErr.IsTimeout {
			return KindTimeout
		}
		return KindUnreachable
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		return KindUnreachable
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, context.Canceled):
		return KindClosed
	case errors.As(err, &imapErr):
		return KindProtocol
	case errors.As(err, &netErr) && netErr.Timeout():
		return KindTimeout
	case errors.As(err, &syscallErr):
		return KindUnreachable
	}
	// go-imap flattens the errors below it with %v: fall back on their words.
	switch msg := err.Error(); {
	case strings.Contains(msg, "tls: "), strings.Contains(msg, "x509: "):
		return KindTLS
	case strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "deadline exceeded"):
		return KindTimeout
	case strings.Contains(msg, "use of closed network connection"), strings.Contains(msg, "EOF"),
		strings.Contains(msg, "connection reset"), strings.Contains(msg, "broken pipe"):
		return KindClosed
	}
	return KindUnknown
}

// ResponseCode returns the response code of the first IMAP status response (*imap.Error)
// in err's chain, or "" when there is none.
func ResponseCode(err error) imap.ResponseCode {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return imap.ResponseCode(strings.ToUpper(string(imapErr.Code)))
	}
	return ""
}

// IsOverQuota reports whether err carries a server's refusal because the account is over
// quota: the OVERQUOTA response code (RFC 5530), or, from servers that predate it, a NO
// whose text speaks of a quota.
func IsOverQuota(err error) bool {
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) {
		return false
	}
	if _, throttled := Throttled(err); throttled {
		return false
	}
	if strings.EqualFold(string(imapErr.Code), string(imap.ResponseCodeOverQuota)) {
		return true
	}
	if imapErr.Type != imap.StatusResponseTypeNo {
		return false
	}
	text := strings.ToLower(imapErr.Text)
	return strings.Contains(text, "quota") || strings.Contains(text, "mailbox is full") ||
		strings.Contains(text, "mailbox full")
}

// Throttled reports whether err carries a server's refusal because the client sends
// too much too fast, not because of the account's state: the THROTTLED code (Microsoft
// 365, Exchange), Gmail's "Account exceeded command or bandwidth limits" (under
// OVERQUOTA, though the account is not full), or a NO whose text speaks of
// throttling. wait is the back-off the server suggests ("Suggested Backoff Time: 2000
// milliseconds"), 0 when it suggests none.
func Throttled(err error) (wait time.Duration, ok bool) {
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type == imap.StatusResponseTypeBad {
		return 0, false
	}
	text := strings.ToLower(imapErr.Text)
	ok = strings.EqualFold(string(imapErr.Code), "THROTTLED") ||
		strings.Contains(text, "throttl") ||
		strings.Contains(text, "bandwidth limit") || strings.Contains(text, "exceeded command")
	if !ok {
		return 0, false
	}
	if m := suggestedBackoffRE.FindStringSubmatch(text); m != nil {
		if n, err := strconv.ParseInt(m[1], 10, 64); err == nil && n > 0 {
			unit := time.Millisecond
			if strings.HasPrefix(m[2], "s") {
				unit = time.Second
			}
			wait = min(time.Duration(n)*unit, maxSuggestedBackoff)
		}
	}
	return wait, true
}

// ErrOversized is in the chain of every error about a server's response over a size
// bound (a line, a literal, untagged data without end): the server is hostile or
// broken, and a retry will not mend it.
var ErrOversized = imapwire.ErrOversized

// IsOversized reports whether err is about a response over a size bound: ErrOversized
// in its chain, or the guard's words in its text (go-imap flattens the errors of the
// connection below it with %v).
func IsOversized(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrOversized) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, guardLineWords) || strings.Contains(msg, guardLiteralWords)
}

// TooManyConnections reports whether err is a server's refusal of one more connection
// (too many for the account or for our address), whichever way it says so: Gmail's
// greeting `* BYE [UNAVAILABLE] Too many simultaneous connections`, Dovecot's
// `Maximum number of connections from user+IP exceeded`, Courier's "Too many
// connections from your IP address". Fewer connections get through.
func TooManyConnections(err error) bool {
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) {
		return false
	}
	text := strings.ToLower(imapErr.Text)
	return strings.Contains(text, "too many") && strings.Contains(text, "connection") ||
		strings.Contains(text, "maximum number of connections") || strings.Contains(text, "connection limit")
}

// suggestedBackoffRE finds Exchange's "Suggested Backoff Time: 2000 milliseconds".
var suggestedBackoffRE = regexp.MustCompile(`backoff time:\s*(\d+)\s*(milliseconds|ms|seconds|s)\b`)

// maxSuggestedBackoff bounds the wait a server may ask for.
const maxSuggestedBackoff = time.Hour

// IsTooBig reports whether err carries a server's refusal of a message for its size
// (TOOBIG from RFC 7889, or LIMIT from RFC 5530).
func IsTooBig(err error) bool {
	switch ResponseCode(err) {
	case imap.ResponseCodeTooBig, imap.ResponseCodeLimit:
		return true
	}
	return false
}

// serverText makes a server's free text safe to show: printable, bounded, and without the
// account's secrets (a hostile server could echo them back).
func serverText(s string, acct Account) string {
	const max = 200
	// Redact before cutting, so that no part of a secret straddling the cut stays;
	// and after cleaning, in case invisible characters were hiding one.
	s = acct.Redact(s)
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		if b.Len() >= max {
			b.WriteString("…")
			break
		}
		r := rs[i]
		switch {
		case r == 0x1b:
			// A terminal escape: drop it with its CSI parameters and final byte.
			if i+1 < len(rs) && rs[i+1] == '[' {
				i++
				for i+1 < len(rs) && (rs[i+1] < 0x40 || rs[i+1] > 0x7e) {
					i++
				}
				i++
			}
			continue
		case r < 0x20 || r == 0x7f:
			r = ' '
		case !unicode.IsPrint(r) && r != ' ':
			// Bidirectional overrides, zero-width and other invisible characters.
			continue
		}
		b.WriteRune(r)
	}
	return acct.Redact(strings.TrimSpace(b.String()))
}

// Redact removes the account's password and token from s, in clear and in the forms
// they take in a SASL exchange (base64 of PLAIN and XOAUTH2), should a server or an
// error have echoed them. It is the one redaction of account secrets: every text that
// may hold a server's words or an error goes through it before a log, a status or an
// answer.
func (acct Account) Redact(s string) string {
	secrets := []string{acct.Password, acct.OAuth2Token}
	if acct.Password != "" {
		secrets = append(secrets, encodeSASL([]byte("\x00"+acct.Login+"\x00"+acct.Password)))
	}
	if acct.OAuth2Token != "" {
		secrets = append(secrets, encodeSASL(xoauth2Response(acct.Login, acct.OAuth2Token)))
	}
	for _, secret := range secrets {
		if len(secret) >= 3 {
			s = strings.ReplaceAll(s, secret, "REDACTED")
		}
	}
	return s
}
