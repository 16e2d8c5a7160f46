package imapconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/internal/imapwire"
)

// Session is a logged-in IMAP connection for code that speaks the protocol itself
// (pkg/imapappend; Dial builds go-imap's client on one). Write commands to Conn and read
// responses from Reader (with imapwire.ReadResponse); tags starting with "L" are used up by the
// login, any other tags are free.
type Session struct {
	Conn   net.Conn      // the secured connection; closed when the ctx given to DialSession ends
	Reader *bufio.Reader // reads Conn; positioned after the login's tagged response
	Caps   imap.CapSet   // the capabilities the server announced after login

	raw     *conn
	capList string // Caps as the server spelled them
}

// BytesRead is the number of bytes read from the network so far (TLS included).
func (s *Session) BytesRead() int64 { return s.raw.read.Load() }

// BytesWritten is the number of bytes written to the network so far (TLS included).
func (s *Session) BytesWritten() int64 { return s.raw.written.Load() }

// Close closes the connection at once (no LOGOUT, no TLS close_notify).
func (s *Session) Close() error {
	if err := s.raw.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// DialSession connects to the account's server, secures the connection as acct.Security
// says, reads the greeting and logs in: AUTHENTICATE XOAUTH2 when acct.OAuth2Token is set,
// else AUTHENTICATE PLAIN when the server offers it, else LOGIN (unless LOGINDISABLED).
// STARTTLS is required for SecurityStartTLS: there is no fallback to plaintext.
// Connecting, TLS, the greeting and STARTTLS are bounded by opts.DialTimeout, the login by
// opts.LoginTimeout; the connection is closed when ctx ends. Errors are *Error.
func DialSession(ctx context.Context, acct Account, opts Options) (*Session, error) {
	opts = opts.withDefaults()
	start := time.Now()

	dialCtx, cancelDial := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancelDial()
	nc, raw, err := dialTransport(ctx, dialCtx, acct, opts)
	if err != nil {
		opts.Logger.Debug("imap_connect_failed", "account", acct, "error", err)
		return nil, err
	}
	s := &Session{Conn: nc, Reader: bufio.NewReader(nc), raw: raw}
	h := &handshake{s: s, acct: acct, ctx: ctx}
	ok := false
	defer func() {
		if !ok {
			raw.Close()
		}
	}()

	h.phase(dialCtx, opts.DialTimeout)
	stop := context.AfterFunc(dialCtx, func() { raw.Close() })
	err = h.greetAndSecure()
	if !stop() && err == nil {
		err = h.fail("connect to "+acct.Addr(), KindTimeout, context.DeadlineExceeded)
	}
	if err != nil {
		opts.Logger.Debug("imap_connect_failed", "account", acct, "error", err)
		return nil, err
	}

	if opts.BeforeLogin != nil {
		if err := opts.BeforeLogin(ctx); err != nil {
			return nil, err
		}
	}
	loginCtx, cancelLogin := context.WithTimeout(ctx, opts.LoginTimeout)
	defer cancelLogin()
	h.phase(loginCtx, opts.LoginTimeout)
	stop = context.AfterFunc(loginCtx, func() { raw.Close() })
	err = h.login()
	if !stop() && err == nil {
		err = h.fail(h.loginOp(), KindTimeout, context.DeadlineExceeded)
	}
	if err != nil {
		opts.Logger.Debug("imap_login_failed", "account", acct, "error", err)
		return nil, err
	}
	ok = true
	opts.Logger.Debug("imap_logged_in", "account", acct, "duration", time.Since(start))
	return s, nil
}

// handshake is the state of DialSession between the greeting and the login.
type handshake struct {
	s    *Session
	acct Account
	ctx  context.Context

	phaseCtx   context.Context // the current phase's deadline
	phaseLimit time.Duration

	preauth   bool
	caps      imap.CapSet // nil: unknown, ask
	capList   string
	capsFresh bool // caps were sent since the login began
	tag       int
	bye       *imapwire.Response // a BYE seen before the connection dropped
}

func (h *handshake) phase(ctx context.Context, limit time.Duration) {
	h.phaseCtx, h.phaseLimit = ctx, limit
}

func (h *handshake) loginOp() string {
	return fmt.Sprintf("log in to %s as %s", h.acct.Addr(), h.acct.Login)
}

// fail builds the *Error for a failed step: the end of ctx or of the phase take precedence
// over what the failed read or write said, then a BYE the server sent before hanging up.
func (h *handshake) fail(op string, kind Kind, err error) *Error {
	var se *statusError
	isStatus := errors.As(err, &se)
	ioErr := !isStatus
	if ioErr && (h.ctx.Err() != nil || h.phaseCtx.Err() != nil) {
		return phaseError(h.ctx, h.phaseCtx, op, h.phaseLimit, err)
	}
	if ioErr && h.bye != nil {
		return &Error{Kind: KindUnknown, Op: op, Err: h.status("the server closed the connection", h.bye)}
	}
	if kind == KindUnknown {
		kind = classify(err)
	}
	if kind == KindClosed {
		err = fmt.Errorf("the server closed the connection: %w", err)
	}
	return &Error{Kind: kind, Op: op, Err: err}
}

func (h *handshake) greetAndSecure() error {
	addr := h.acct.Addr()
	op := "connect to " + addr
	resp, err := imapwire.ReadResponse(h.s.Reader)
	if err != nil {
		if h.acct.Security == SecurityStartTLS || h.acct.Security == SecurityPlaintext {
			if e := h.fail(op, KindUnknown, err); e.Kind == KindTimeout && h.ctx.Err() == nil {
				e.Err = fmt.Errorf("no greeting within %v: an IMAP server greets at once; is this an implicit TLS port (use TLS), or not an IMAP server at all?: %w", h.phaseLimit, context.DeadlineExceeded)
				return e
			}
		}
		if errors.Is(err, io.ErrUnexpectedEOF) && h.ctx.Err() == nil && h.phaseCtx.Err() == nil {
			return &Error{Kind: KindClosed, Op: op, Err: fmt.Errorf("the server closed the connection before its greeting: %w", err)}
		}
		return h.fail(op, KindUnknown, err)
	}
	if resp.Tag != "*" || (resp.Type != "OK" && resp.Type != "PREAUTH" && resp.Type != "BYE") {
		return &Error{Kind: KindNotIMAP, Op: op, Err: fmt.Errorf("this is not an IMAP server: it said %q", serverText(resp.Line, h.acct))}
	}
	if resp.Type == "BYE" {
		return &Error{Kind: KindUnreachable, Op: op, Err: h.status("the server turned us away", resp)}
	}
	h.preauth = resp.Type == "PREAUTH"
	h.noteCaps(resp)

	if h.acct.Security != SecurityStartTLS {
		return nil
	}
	op = "start TLS with " + addr
	if h.preauth {
		return &Error{Kind: KindStartTLSUnavailable, Op: op, Err: errors.New("the server logged us in before STARTTLS: refusing an unencrypted session")}
	}
	if err := h.ensureCaps(op); err != nil {
		return err
	}
	if !h.caps.Has(imap.CapStartTLS) {
		return &Error{Kind: KindStartTLSUnavailable, Op: op, Err: errors.New("the server does not offer STARTTLS (or something on the way removed it): choose implicit TLS (usually port 993), or allow plaintext explicitly")}
	}
	resp, err = h.simple(op, "STARTTLS")
	if err != nil {
		return err
	}
	if resp.Type != "OK" {
		return &Error{Kind: KindStartTLSUnavailable, Op: op, Err: h.status("the server refused STARTTLS", resp)}
	}
	if h.s.Reader.Buffered() > 0 || h.s.raw.Buffered() > 0 {
		// Anything sent before the handshake could be injected by a man in the middle.
		return &Error{Kind: KindProtocol, Op: op, Err: errors.New("the server sent data before the TLS handshake")}
	}
	tc := tls.Client(h.s.raw, TLSConfig(h.acct))
	if err := tc.HandshakeContext(h.phaseCtx); err != nil {
		return tlsError(h.ctx, h.phaseCtx, op, h.phaseLimit, err)
	}
	h.s.Conn = tlsConn{tc, h.s.raw}
	h.s.Reader = bufio.NewReader(tc)
	h.caps, h.capList = nil, "" // what was said in plaintext does not count
	return nil
}

func (h *handshake) login() error {
	op := h.loginOp()
	if err := h.ensureCaps(op); err != nil {
		return err
	}
	if !h.preauth {
		// Capabilities change with the login: keep those the server sends with it, else ask.
		h.capsFresh = false
		var err error
		switch {
		case h.acct.OAuth2Token != "":
			if !h.caps.Has("AUTH=XOAUTH2") {
				return &Error{Kind: KindAuth, Op: op, Err: errors.New("the server does not offer OAuth2 (AUTH=XOAUTH2): log in with a password")}
			}
			err = h.authenticate(op, "XOAUTH2", xoauth2Response(h.acct.Login, h.acct.OAuth2Token))
		case h.caps.Has("AUTH=PLAIN"):
			err = h.authenticate(op, "PLAIN", []byte("\x00"+h.acct.Login+"\x00"+h.acct.Password))
		case h.caps.Has(imap.CapLoginDisabled) && h.offersOAuth():
			return &Error{Kind: KindAuth, Op: op, Err: errors.New("the server accepts no password (LOGINDISABLED) and offers OAuth2 (AUTH=XOAUTH2): " + oauthAdvice)}
		case h.caps.Has(imap.CapLoginDisabled):
			return &Error{Kind: KindAuth, Op: op, Err: errors.New("the server does not allow logging in on this connection (LOGINDISABLED): use TLS or STARTTLS")}
		default:
			err = h.loginCommand(op)
		}
		if err != nil {
			return err
		}
		if !h.capsFresh {
			h.caps, h.capList = nil, ""
		}
	}
	if err := h.ensureCaps(op); err != nil {
		return err
	}
	h.s.Caps, h.s.capList = h.caps, h.capList
	return nil
}

func (h *handshake) nextTag() string {
	h.tag++
	return fmt.Sprintf("L%d", h.tag)
}

func (h *handshake) noteCaps(resp *imapwire.Response) {
	switch {
	case resp.Tag == "*" && resp.Type == "CAPABILITY":
		h.caps, h.capList, h.capsFresh = imapwire.ParseCaps(resp.Text), resp.Text, true
	case resp.Code == "CAPABILITY":
		h.caps, h.capList, h.capsFresh = imapwire.ParseCaps(resp.CodeArgs), resp.CodeArgs, true
	}
}

func (h *handshake) ensureCaps(op string) error {
	if h.caps != nil {
		return nil
	}
	resp, err := h.simple(op, "CAPABILITY")
	if err != nil {
		return err
	}
	if resp.Type != "OK" || h.caps == nil {
		return &Error{Kind: KindProtocol, Op: op, Err: h.status("the server did not list its capabilities", resp)}
	}
	return nil
}

// simple sends a command without arguments and reads up to its tagged response.
func (h *handshake) simple(op, command string) (*imapwire.Response, error) {
	tag := h.nextTag()
	if _, err := io.WriteString(h.s.Conn, tag+" "+command+"\r\n"); err != nil {
		return nil, h.fail(op, KindUnknown, err)
	}
	return h.await(op, tag, nil)
}

// await reads responses up to the one tagged tag. Continuation requests go to onCont;
// without onCont they break the protocol.
func (h *handshake) await(op, tag string, onCont func(*imapwire.Response) error) (*imapwire.Response, error) {
	for {
		resp, err := imapwire.ReadResponse(h.s.Reader)
		if err != nil {
			return nil, h.fail(op, KindUnknown, err)
		}
		switch {
		case resp.Tag == tag:
			h.noteCaps(resp)
			return resp, nil
		case resp.Tag == "+":
			if onCont == nil {
				return nil, &Error{Kind: KindProtocol, Op: op, Err: errors.New("unexpected continuation request")}
			}
			if err := onCont(resp); err != nil {
				return nil, err
			}
		case resp.Tag == "*":
			if resp.Type == "BYE" {
				h.bye = resp
			}
			h.noteCaps(resp)
		default:
			return nil, &Error{Kind: KindProtocol, Op: op, Err: fmt.Errorf("response with an unknown tag %q", serverText(resp.Tag, h.acct))}
		}
	}
}

func (h *handshake) authenticate(op, mech string, ir []byte) error {
	tag := h.nextTag()
	line := tag + " AUTHENTICATE " + mech
	sentIR := false
	if h.caps.Has(imap.CapSASLIR) {
		line += " " + encodeSASL(ir)
		sentIR = true
	}
	if _, err := io.WriteString(h.s.Conn, line+"\r\n"); err != nil {
		return h.fail(op, KindUnknown, err)
	}
	var challenges int
	var report string // the server's explanation, sent as a challenge (XOAUTH2)
	resp, err := h.await(op, tag, func(cont *imapwire.Response) error {
		var answer string
		switch {
		case !sentIR:
			answer, sentIR = encodeSASL(ir), true
			if _, err := io.WriteString(h.s.Conn, answer+"\r\n"); err != nil {
				return h.fail(op, KindUnknown, err)
			}
			return nil
		case mech == "XOAUTH2" && challenges == 0:
			// The token was refused: the challenge is a JSON report, and an empty line
			// asks for the final NO.
			report = xoauth2Report(cont.Text)
			answer = ""
		default:
			answer = "*" // cancel: PLAIN and XOAUTH2 have no further steps
		}
		challenges++
		if challenges > 3 {
			return &Error{Kind: KindProtocol, Op: op, Err: errors.New("the server keeps sending challenges")}
		}
		if _, err := io.WriteString(h.s.Conn, answer+"\r\n"); err != nil {
			return h.fail(op, KindUnknown, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return h.loginResult(op, resp, report)
}

func (h *handshake) loginCommand(op string) error {
	tag := h.nextTag()
	// Each segment after the first goes out after a continuation request: a literal
	// waits for the server's "+" unless the server takes LITERAL+.
	segments := []string{tag + " LOGIN "}
	sync := !h.caps.Has(imap.CapLiteralPlus)
	for i, arg := range []string{h.acct.Login, h.acct.Password} {
		last := len(segments) - 1
		if i > 0 {
			segments[last] += " "
		}
		switch q, ok := imapwire.Quote(arg); {
		case ok:
			segments[last] += q
		case !sync:
			segments[last] += fmt.Sprintf("{%d+}\r\n", len(arg)) + arg
		default:
			segments[last] += fmt.Sprintf("{%d}\r\n", len(arg))
			segments = append(segments, arg)
		}
	}
	segments[len(segments)-1] += "\r\n"
	if _, err := io.WriteString(h.s.Conn, segments[0]); err != nil {
		return h.fail(op, KindUnknown, err)
	}
	next := 1
	resp, err := h.await(op, tag, func(*imapwire.Response) error {
		if next >= len(segments) {
			return &Error{Kind: KindProtocol, Op: op, Err: errors.New("unexpected continuation request")}
		}
		if _, err := io.WriteString(h.s.Conn, segments[next]); err != nil {
			return h.fail(op, KindUnknown, err)
		}
		next++
		return nil
	})
	if err != nil {
		return err
	}
	return h.loginResult(op, resp, "")
}

// oauthAdvice is what a refused password login says when the server offers
// OAuth2 sign-in.
const oauthAdvice = "if the account signs in with OAuth only (Microsoft 365 with basic authentication off, Gmail without app passwords), give an OAuth2 access token instead of the password"

// offersOAuth reports whether the server offers an OAuth2 SASL mechanism.
func (h *handshake) offersOAuth() bool {
	return h.caps.Has("AUTH=XOAUTH2") || h.caps.Has("AUTH=OAUTHBEARER")
}

func (h *handshake) loginResult(op string, resp *imapwire.Response, report string) error {
	if resp.Type == "OK" {
		return nil
	}
	what := "the password"
	if h.acct.OAuth2Token != "" {
		what = "the OAuth2 token"
	}
	msg := "the server refused " + what
	if report != "" {
		msg += " (" + report + ")"
	}
	kind := KindAuth
	switch resp.Code {
	case "UNAVAILABLE", "SERVERBUG", "INUSE", "LIMIT":
		kind, msg = KindUnknown, "the server could not log us in now"
	case "PRIVACYREQUIRED":
		msg = "the server requires a secure connection to log in"
	case "EXPIRED":
		msg = "the server says the credentials have expired"
	case "CONTACTADMIN":
		msg = "the server refused the login: the account needs its provider's attention"
	case "":
		// Exchange Online with basic authentication off answers a password
		// with a bare "NO LOGIN failed." (or "NO AUTHENTICATE failed.").
		if h.acct.OAuth2Token == "" && h.offersOAuth() {
			msg += "; it offers OAuth2 (AUTH=XOAUTH2): " + oauthAdvice
		}
	}
	return &Error{Kind: kind, Op: op, Err: h.status(msg, resp)}
}

// status describes a status response: msg, the code in parentheses, the server's text.
func (h *handshake) status(msg string, resp *imapwire.Response) error {
	return newStatusError(msg, resp, h.acct)
}

// statusError is an explanation of a server's status response. It unwraps to the
// (sanitized) *imap.Error, so ResponseCode and IsOverQuota see it.
type statusError struct {
	msg string
	err *imap.Error
}

func newStatusError(msg string, resp *imapwire.Response, acct Account) *statusError {
	e := &statusError{msg: msg, err: &imap.Error{
		Type: imap.StatusResponseType(resp.Type),
		Code: imap.ResponseCode(resp.Code),
		Text: serverText(resp.Text, acct),
	}}
	return e
}

func (e *statusError) Error() string {
	s := e.msg
	if e.err.Code != "" {
		s += " (" + string(e.err.Code) + ")"
	}
	if e.err.Text != "" {
		s += ": " + e.err.Text
	}
	return s
}

func (e *statusError) Unwrap() error { return e.err }

func encodeSASL(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// xoauth2Response is the XOAUTH2 initial response (Google's and Microsoft's OAuth2 for
// IMAP; go-imap has no XOAUTH2).
func xoauth2Response(user, token string) []byte {
	return []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
}

// xoauth2Report summarises the JSON error report a server sends as a challenge after
// refusing an XOAUTH2 token ({"status":"401","schemes":"Bearer","scope":"..."}).
func xoauth2Report(challenge string) string {
	raw, err := base64.StdEncoding.DecodeString(challenge)
	if err != nil {
		return ""
	}
	var report struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(raw, &report) != nil || report.Status == "" {
		return ""
	}
	return "status " + report.Status
}
