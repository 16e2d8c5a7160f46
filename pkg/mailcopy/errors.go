package mailcopy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"imapcopy.dev/pkg/imapconn"
)

// Kind classifies why a copy stopped. Only KindTemporary is worth retrying
// as is; the others need a person to change something first.
type Kind int

const (
	// KindTemporary: connections kept failing after the bounded reconnects,
	// or an unclassified failure. Retrying later resumes where the copy stopped.
	KindTemporary Kind = iota
	// KindLogin: a server refused the login (wrong password, account locked).
	KindLogin
	// KindOverQuota: the destination account is full.
	KindOverQuota
	// KindConnect: the account's server cannot be used as configured (TLS
	// certificate rejected, STARTTLS not offered, not an IMAP server, address
	// refused by the network policy).
	KindConnect
	// KindCancelled: the caller's context ended.
	KindCancelled
)

var kindNames = [...]string{
	KindTemporary: "temporary",
	KindLogin:     "login-refused",
	KindOverQuota: "over-quota",
	KindConnect:   "cannot-connect",
	KindCancelled: "cancelled",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Side names the account an error is about.
type Side string

const (
	SideSource      Side = "source"
	SideDestination Side = "destination"
)

// Error is a classified failure that stopped a copy. Its message says which
// account is at fault and never contains a secret.
type Error struct {
	Kind Kind
	Side Side // "" when not about one account
	Err  error
}

func (e *Error) Error() string {
	if e.Side == "" {
		return e.Err.Error()
	}
	return string(e.Side) + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of the first *Error in err's chain; a response over
// a size bound (imapconn.IsOversized) is KindConnect; a context cancellation
// is KindCancelled; anything else is KindTemporary.
func KindOf(err error) Kind {
	if imapconn.IsOversized(err) {
		return KindConnect // a hostile or broken server: retries would not mend it
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, context.Canceled) {
		return KindCancelled
	}
	return KindTemporary
}

// IsPermanent reports whether err stopped the copy for a reason that a retry
// cannot fix (login refused, destination over quota, unusable server).
func IsPermanent(err error) bool {
	switch KindOf(err) {
	case KindLogin, KindOverQuota, KindConnect:
		return true
	}
	return false
}

// isCertError reports whether err is a certificate that did not verify (as
// opposed to a handshake cut short).
func isCertError(err error) bool {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
	)
	return errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &certErr) || errors.As(err, &verifyErr)
}

// refusedError is a command that the server refused (a tagged NO or BAD) on
// a working connection: doing the same again will not help, reconnecting is
// pointless.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// throttledError is a server's throttling refusal (imapconn.Throttled): the
// folder waits and resumes, the messages are not refused.
type throttledError struct {
	side Side
	wait time.Duration // suggested by the server, 0: none
	err  error
}

func (e *throttledError) Error() string { return string(e.side) + ": throttled: " + e.err.Error() }
func (e *throttledError) Unwrap() error { return e.err }

// ThrottledFor reports whether err ends a copy because a server kept throttling
// it (longer than Config.MaxThrottles allows), and how long that server last
// asked to wait (0: it did not say).
func ThrottledFor(err error) (time.Duration, bool) {
	t, ok := asThrottled(err)
	if !ok {
		return 0, false
	}
	return t.wait, true
}

// asThrottled finds a throttling refusal in err's chain.
func asThrottled(err error) (*throttledError, bool) {
	var t *throttledError
	if errors.As(err, &t) {
		return t, true
	}
	if wait, ok := imapconn.Throttled(err); ok {
		return &throttledError{wait: wait, err: err}, true
	}
	return nil, false
}
