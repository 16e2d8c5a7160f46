package syncapi

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// minTokenLen refuses tokens short enough to be guessed.
const minTokenLen = 16

// Token is a bearer token a caller presents as "authorization: Bearer <secret>".
type Token struct {
	// Name identifies the caller in logs, metrics and rate limits; the token itself
	// never appears anywhere.
	Name string
	// Admin sees and cancels every sync; other callers see only the syncs they
	// started (SyncStatus.caller).
	Admin  bool
	secret [sha256.Size]byte
}

// String names the token without its secret.
func (t Token) String() string { return "token " + t.Name }

// NewToken makes a token. An empty name is replaced by a fingerprint of the secret.
func NewToken(name, secret string) (Token, error) {
	if len(secret) < minTokenLen {
		return Token{}, fmt.Errorf("token %q: shorter than %d characters", name, minTokenLen)
	}
	if strings.ContainsFunc(secret, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return Token{}, fmt.Errorf("token %q: contains white space or a control character", name)
	}
	sum := sha256.Sum256([]byte(secret))
	if name == "" {
		name = "token-" + hex.EncodeToString(sum[:4])
	}
	return Token{Name: name, secret: sum}, nil
}

// ParseTokens reads tokens, one per line or comma-separated: "secret", "name secret",
// or "name secret admin" for an operator's token that sees every sync. Blank lines and
// lines starting with # are skipped. The error never quotes a secret.
func ParseTokens(r io.Reader) ([]Token, error) {
	var tokens []Token
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		for entry := range strings.SplitSeq(text, ",") {
			fields := strings.Fields(entry)
			var name, secret string
			admin := false
			switch len(fields) {
			case 0:
				continue
			case 1:
				secret = fields[0]
			case 2:
				name, secret = fields[0], fields[1]
			case 3:
				if fields[2] != "admin" {
					return nil, fmt.Errorf("tokens line %d: the third field may only be \"admin\"", line)
				}
				name, secret, admin = fields[0], fields[1], true
			default:
				return nil, fmt.Errorf("tokens line %d: expected \"secret\", \"name secret\" or \"name secret admin\"", line)
			}
			t, err := NewToken(name, secret)
			if err != nil {
				return nil, fmt.Errorf("tokens line %d: %w", line, err)
			}
			t.Admin = admin
			tokens = append(tokens, t)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	return tokens, nil
}

// Auth decides who may call: a caller with one of the bearer tokens, or with a client
// certificate that the TLS handshake verified against the configured client CAs. With
// neither configured, every caller is let in (a loopback-only deployment) and is named
// by its IP address. The gRPC health service is always open, so that probes need no
// credentials.
type Auth struct {
	tokens      []Token
	clientCerts bool
}

// NewAuth returns the access rule; clientCerts says that the listener verifies client
// certificates (mTLS), which then authenticate a caller on their own.
func NewAuth(tokens []Token, clientCerts bool) *Auth {
	return &Auth{tokens: tokens, clientCerts: clientCerts}
}

// Open reports whether every caller is let in.
func (a *Auth) Open() bool { return len(a.tokens) == 0 && !a.clientCerts }

type callerKey struct{}

// caller is who calls: a name, whether the caller may see every sync (an admin
// token, or open access), whether access is open (callers not told apart), and
// whether it is an anonymous caller of the public page (see view.go).
type caller struct {
	name              string
	all, open, public bool
}

// Caller returns the name of the authenticated caller of ctx (a token name, a
// certificate subject, or an IP address when access is open), "" when unknown.
func Caller(ctx context.Context) string {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c.name
}

// owner is what StartSync records as a sync's caller: the caller's name when callers
// are told apart (tokens, certificates), "" with open access.
func owner(ctx context.Context) string {
	c, _ := ctx.Value(callerKey{}).(caller)
	if c.open || c.public {
		return ""
	}
	return c.name
}

// mayAccess reports whether the caller of ctx may read st: the caller that started
// it, an admin, anyone with open access, anyone for a sync started with open access
// or from the public page, and an anonymous caller of the public page (which sees
// only a reduced view: see view.go).
func mayAccess(ctx context.Context, st *imapcopyv1.SyncStatus) bool {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c.all || c.public || st.GetCaller() == "" || st.GetCaller() == c.name
}

var errUnauthenticated = status.Error(codes.Unauthenticated,
	"missing or unknown credentials: send \"authorization: Bearer <token>\" or a client certificate the server trusts")

// authenticate returns ctx carrying the caller, or Unauthenticated.
func (a *Auth) authenticate(ctx context.Context, method string) (context.Context, error) {
	if strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		return context.WithValue(ctx, callerKey{}, caller{name: "health"}), nil
	}
	if a.Open() {
		return context.WithValue(ctx, callerKey{}, caller{name: peerIP(ctx), all: true, open: true}), nil
	}
	if t, ok := a.bearer(ctx); ok {
		return context.WithValue(ctx, callerKey{}, caller{name: t.Name, all: t.Admin}), nil
	}
	if a.clientCerts {
		if name, ok := verifiedCert(ctx); ok {
			return context.WithValue(ctx, callerKey{}, caller{name: name}), nil
		}
	}
	return ctx, errUnauthenticated
}

// bearer finds the token of the request. Every configured token is compared, in
// constant time, whatever matches, so that timing reveals nothing.
func (a *Auth) bearer(ctx context.Context) (Token, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	var found Token
	for _, v := range md.Get("authorization") {
		scheme, secret, ok := strings.Cut(strings.TrimSpace(v), " ")
		if !ok || !strings.EqualFold(scheme, "bearer") {
			continue
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
		for _, t := range a.tokens {
			if subtle.ConstantTimeCompare(sum[:], t.secret[:]) == 1 {
				found = t
			}
		}
	}
	return found, found.Name != ""
}

func verifiedCert(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", false
	}
	return certName(&info.State)
}

// certName names the caller of a connection whose client certificate verified.
func certName(state *tls.ConnectionState) (string, bool) {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return "", false
	}
	leaf := state.VerifiedChains[0][0]
	name := leaf.Subject.CommonName
	if name == "" && len(leaf.DNSNames) > 0 {
		name = leaf.DNSNames[0]
	}
	if name == "" {
		name = leaf.SerialNumber.String()
	}
	return "cert:" + name, true
}

func peerIP(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return host
	}
	return p.Addr.String()
}

// The metadata the HTTP gateway sets from each HTTP request (gateway.go): the
// client's address, its verified client certificate, and whether the request
// comes anonymously to the public page. The gateway forwards no client header but
// authorization, so a client cannot set these; and only the gateway can reach the
// server that reads them (pipeListener).
const (
	mdHTTPPeer   = "x-imapcopy-http-peer"
	mdHTTPCert   = "x-imapcopy-http-cert"
	mdHTTPPublic = "x-imapcopy-http-public"
)

// authenticateGateway is authenticate for the calls of the HTTP gateway. A request
// with a bearer token must carry a valid one (when tokens are configured); then a
// verified client certificate; then, on the public page, an anonymous caller named
// by its address; then open access.
func (a *Auth) authenticateGateway(ctx context.Context, _ string) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	first := func(key string) string {
		if v := md.Get(key); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	ip := first(mdHTTPPeer)
	if ip == "" {
		ip = "unknown"
	}
	if len(a.tokens) > 0 && len(md.Get("authorization")) > 0 {
		t, ok := a.bearer(ctx)
		if !ok {
			return ctx, errUnauthenticated
		}
		return context.WithValue(ctx, callerKey{}, caller{name: t.Name, all: t.Admin}), nil
	}
	if name := first(mdHTTPCert); a.clientCerts && name != "" {
		return context.WithValue(ctx, callerKey{}, caller{name: name}), nil
	}
	if first(mdHTTPPublic) == "1" {
		return context.WithValue(ctx, callerKey{}, caller{name: ip, public: true}), nil
	}
	if a.Open() {
		return context.WithValue(ctx, callerKey{}, caller{name: ip, all: true, open: true}), nil
	}
	return ctx, errUnauthenticated
}

type authenticator func(ctx context.Context, method string) (context.Context, error)

// UnaryInterceptor authenticates unary calls.
func (a *Auth) UnaryInterceptor() grpc.UnaryServerInterceptor { return unaryAuth(a.authenticate) }

// StreamInterceptor authenticates streaming calls (WatchSyncStatus, reflection).
func (a *Auth) StreamInterceptor() grpc.StreamServerInterceptor { return streamAuth(a.authenticate) }

func unaryAuth(authenticate authenticator) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func streamAuth(authenticate authenticator) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &callerStream{ServerStream: ss, ctx: ctx})
	}
}

type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }
