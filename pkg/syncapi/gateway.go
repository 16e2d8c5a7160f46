package syncapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
	"imapcopy.dev/proto/openapi"
)

// HTTPOptions configure the JSON/HTTP side of the server (ServeHTTP).
type HTTPOptions struct {
	// Page serves everything outside /v1/ (the customer's page); nil: nothing.
	Page http.Handler
	// Public makes HTTP callers without credentials anonymous callers of the
	// public page (see view.go); otherwise they authenticate as gRPC callers do.
	Public bool
}

// maxHTTPBody bounds a request body, as MaxRecvMsgSize does for gRPC.
const maxHTTPBody = 1 << 20

// ServeHTTP serves the JSON/HTTP API and the page on lis until ctx ends:
//
//	GET  /v1/providers                       ListProviders (?role=ACCOUNT_ROLE_SOURCE)
//	POST /v1/accounts:test                   TestAccount
//	POST /v1/syncs                           StartSync
//	POST /v1/syncs:plan                      PlanSync (the body of StartSync)
//	GET  /v1/syncs/{source_email}            GetSyncStatus
//	GET  /v1/syncs/{source_email}:watch      WatchSyncStatus (newline-delimited JSON)
//	POST /v1/syncs/{source_email}:cancel     CancelSync
//	GET  /v1/openapi.json                    the OpenAPI description of the above
//
// The calls are transcoded by grpc-gateway into gRPC calls to the same service,
// through the same interceptors (limits, authentication, logs, metrics) over an
// in-process connection: no rule is written twice. Bodies are the proto messages in
// protobuf's JSON mapping; errors are the gRPC status as {"code", "message",
// "details"} with its HTTP status (ResourceExhausted: 429 with Retry-After).
// Unsafe cross-origin requests from browsers are refused (http.CrossOriginProtection).
// TLS, when configured, is the gRPC listener's.
func (s *Server) ServeHTTP(ctx context.Context, lis net.Listener) error {
	go func() { _ = s.gateway.Serve(s.pipe) }() // ends with GracefulStop below
	conn, err := grpc.NewClient("passthrough:///http-gateway",
		grpc.WithContextDialer(s.pipe.dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("http gateway: %w", err)
	}
	defer conn.Close()
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{}, // an unknown field is an error that names it
		}}),
		// No client header becomes metadata (authorization is forwarded on its own):
		// the identity metadata come from the request itself, never from a header.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithMetadata(s.httpIdentity),
		runtime.WithErrorHandler(httpError),
		runtime.WithStreamErrorHandler(func(_ context.Context, err error) *status.Status { return status.Convert(err) }),
	)
	if err := imapcopyv1.RegisterSyncServiceHandler(ctx, gw, conn); err != nil {
		return fmt.Errorf("http gateway: %w", err)
	}
	srv := &http.Server{
		Handler:           s.httpHandler(gw),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() {
		if s.tls != nil {
			srv.TLSConfig = s.tls.Clone()
			served <- srv.ServeTLS(lis, "", "")
			return
		}
		served <- srv.Serve(lis)
	}()
	select {
	case err := <-served:
		s.gateway.Stop()
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	s.svc.stop() // open watch streams end (Serve does the same for gRPC)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("http_shutdown_deadline", "drain", s.shutdown.String())
		srv.Close()
	}
	s.gateway.Stop()
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// httpHandler routes /v1/ to the gateway, /v1/openapi.json to the description and
// the rest to the page.
func (s *Server) httpHandler(gw http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.ContentLength > maxHTTPBody {
			// Refused from the header, before a byte of the body is read.
			writeTooLarge(w)
			return
		}
		// A body without a length (chunked) is read up to the bound: past it, the
		// gateway's decoding fails and httpError answers 413 (see bodyLimit).
		limit := &bodyLimit{ReadCloser: http.MaxBytesReader(w, r.Body, maxHTTPBody)}
		r = r.WithContext(context.WithValue(r.Context(), bodyLimitKey{}, limit))
		r.Body = limit
		gw.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(openapi.JSON)
	})
	if s.http.Page != nil {
		mux.Handle("/", s.http.Page)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no page here: the JSON API is under /v1/ (described at /v1/openapi.json)", http.StatusNotFound)
		})
	}
	return http.NewCrossOriginProtection().Handler(mux)
}

// httpIdentity is the metadata the gateway sends with each call: who the HTTP
// caller is, taken from the connection (see authenticateGateway).
func (s *Server) httpIdentity(_ context.Context, r *http.Request) metadata.MD {
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	md := metadata.Pairs(mdHTTPPeer, ip)
	if name, ok := certName(r.TLS); ok {
		md.Set(mdHTTPCert, name)
	}
	if s.http.Public {
		md.Set(mdHTTPPublic, "1")
	}
	return md
}

// httpError writes a gRPC error as JSON with its HTTP status, adding Retry-After
// from a RetryInfo detail and WWW-Authenticate to a 401.
func httpError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if l, _ := r.Context().Value(bodyLimitKey{}).(*bodyLimit); l != nil && l.exceeded.Load() {
		// The gateway reports a body cut at the bound as InvalidArgument (400).
		writeTooLarge(w)
		return
	}
	st := status.Convert(err)
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			secs := int64(math.Ceil(ri.GetRetryDelay().AsDuration().Seconds()))
			w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		}
	}
	if st.Code() == codes.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="imapcopy"`)
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// bodyLimitKey is the context key of a request's bodyLimit.
type bodyLimitKey struct{}

// bodyLimit is a request body bounded by http.MaxBytesReader that remembers whether
// the caller sent more than the bound.
type bodyLimit struct {
	io.ReadCloser
	exceeded atomic.Bool
}

func (b *bodyLimit) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.exceeded.Store(true)
	}
	return n, err
}

// writeTooLarge answers a body over maxHTTPBody: 413 with the gRPC status a gRPC
// caller gets for a message over MaxRecvMsgSize (ResourceExhausted), as JSON.
func writeTooLarge(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	st := status.New(codes.ResourceExhausted, fmt.Sprintf("request body larger than %d bytes: requests are small, check what is sent", maxHTTPBody))
	raw, _ := protojson.Marshal(st.Proto())
	_, _ = w.Write(raw)
}
