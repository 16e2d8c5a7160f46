package syncapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// ServerOptions configure the gRPC server around a Service.
type ServerOptions struct {
	// TLS secures the listener; nil serves plain gRPC (loopback only, see Config).
	TLS *tls.Config
	// Auth decides who may call; nil lets everyone in.
	Auth *Auth
	// Reflection registers the reflection service, so that grpcurl needs no proto files.
	Reflection bool
	// Metrics counts calls; nil counts nothing.
	Metrics *Metrics
	// ShutdownTimeout bounds the drain of running calls at shutdown (default 10s);
	// then the remaining ones are cut.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger

	// HTTP is the JSON/HTTP side (ServeHTTP): the page and who its callers are.
	HTTP HTTPOptions
}

// Server is the gRPC server: the SyncService, the standard health service (always
// open) and, if configured, reflection.
type Server struct {
	grpc     *grpc.Server
	health   *health.Server
	svc      *Service
	shutdown time.Duration
	log      *slog.Logger

	// The HTTP gateway's own gRPC server, reachable only in-process (pipe), with
	// the same interceptors but the gateway's authentication (gatewayAuth).
	gateway *grpc.Server
	pipe    *pipeListener
	tls     *tls.Config
	http    HTTPOptions
}

// NewServer returns a server for svc.
func NewServer(svc *Service, opts ServerOptions) *Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	auth := opts.Auth
	if auth == nil {
		auth = NewAuth(nil, false)
	}
	// One chain for both servers: invalid UTF-8 refused (utf8Codec), recover, metrics,
	// authentication, log.
	codec := newUTF8Codec()
	serverOptions := func(authn authenticator) []grpc.ServerOption {
		unary := []grpc.UnaryServerInterceptor{codec.unary(), recoverUnary(logger)}
		stream := []grpc.StreamServerInterceptor{codec.stream(), recoverStream(logger)}
		if opts.Metrics != nil {
			unary = append(unary, opts.Metrics.UnaryInterceptor())
			stream = append(stream, opts.Metrics.StreamInterceptor())
		}
		unary = append(unary, unaryAuth(authn), logUnary(logger))
		stream = append(stream, streamAuth(authn), logStream(logger))
		return []grpc.ServerOption{
			grpc.ForceServerCodecV2(codec),
			grpc.ChainUnaryInterceptor(unary...),
			grpc.ChainStreamInterceptor(stream...),
			grpc.MaxRecvMsgSize(1 << 20), // requests are small; refuse floods early
			// Find dead peers of long watch streams; let clients ping no more than that.
			grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		}
	}
	grpcOpts := serverOptions(auth.authenticate)
	if opts.TLS != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	gs := grpc.NewServer(grpcOpts...)
	imapcopyv1.RegisterSyncServiceServer(gs, svc)
	gateway := grpc.NewServer(serverOptions(auth.authenticateGateway)...)
	imapcopyv1.RegisterSyncServiceServer(gateway, svc)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus(imapcopyv1.SyncService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	if opts.Reflection {
		reflection.Register(gs)
	}
	shutdown := opts.ShutdownTimeout
	if shutdown <= 0 {
		shutdown = 10 * time.Second
	}
	return &Server{grpc: gs, health: hs, svc: svc, shutdown: shutdown, log: logger,
		gateway: gateway, pipe: newPipeListener(), tls: opts.TLS, http: opts.HTTP}
}

// GRPC returns the underlying server, for a caller that registers more services.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Serve serves on lis until ctx ends, then shuts down in two phases: health turns
// NOT_SERVING, open watch streams end with Unavailable (the client watches again
// elsewhere) and running calls get ShutdownTimeout to finish; then the rest is cut.
// It returns nil after a shutdown asked for by ctx.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- s.grpc.Serve(lis) }()
	select {
	case err := <-served:
		s.health.Shutdown()
		s.svc.stop()
		return fmt.Errorf("serve grpc: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("grpc_shutdown", "drain", s.shutdown.String())
	s.health.Shutdown() // every service NOT_SERVING
	s.svc.stop()
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	timer := time.NewTimer(s.shutdown)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		s.log.Warn("grpc_shutdown_deadline", "drain", s.shutdown.String())
		s.grpc.Stop()
		<-stopped
	}
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve grpc: %w", err)
	}
	return nil
}

// recoverUnary turns a panic in a handler into Internal, logged with its stack.
func recoverUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.ErrorContext(ctx, "grpc_panic", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.ErrorContext(ss.Context(), "grpc_panic", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
}

// logUnary logs every call: method, caller, code, duration and the error message,
// which the handlers make free of secrets. Requests are never logged.
func logUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logCall(ctx, logger, info.FullMethod, start, err)
		return resp, err
	}
}

func logStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logCall(ss.Context(), logger, info.FullMethod, start, err)
		return err
	}
}

func logCall(ctx context.Context, logger *slog.Logger, method string, start time.Time, err error) {
	st := status.Convert(err)
	attrs := []any{"method", methodName(method), "caller", Caller(ctx), "code", st.Code().String(), "duration", time.Since(start).Round(time.Millisecond).String()}
	if err != nil {
		attrs = append(attrs, "error", st.Message())
	}
	level := slog.LevelInfo
	switch st.Code() {
	case codes.Internal, codes.Unknown, codes.DataLoss:
		level = slog.LevelError
	case codes.Unavailable:
		level = slog.LevelWarn
	}
	logger.Log(ctx, level, "grpc_call", attrs...)
}
