// Package natstest runs a real NATS server with JetStream inside the test process,
// the way httptest runs an HTTP server.
//
// Each Server is github.com/nats-io/nats-server/v2 embedded, listening on a random
// 127.0.0.1 port, with JetStream on file storage in the test's own temporary directory
// and the monitoring endpoint (/jsz, as KEDA reads it) on another random loopback port.
// It is shut down in tb.Cleanup. Restart stops it and starts it again on the same
// port and store, so tests can check what clients do while NATS is down and that
// JetStream data survives.
package natstest

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readyTimeout bounds how long the server may take to accept connections.
const readyTimeout = 20 * time.Second

// Server is a running embedded NATS server with JetStream.
type Server struct {
	// StoreDir holds JetStream's files; it survives Restart.
	StoreDir string

	mu       sync.Mutex
	ns       *server.Server
	port     int
	httpPort int
}

// Start starts an embedded NATS server with JetStream for the test and shuts it down
// in tb.Cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{StoreDir: tb.TempDir(), port: server.RANDOM_PORT, httpPort: server.RANDOM_PORT}
	if err := s.start(); err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	tb.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start() error {
	opts := &server.Options{
		ServerName: "natstest",
		Host:       "127.0.0.1",
		Port:       s.port,
		HTTPHost:   "127.0.0.1",
		HTTPPort:   s.httpPort,
		JetStream:  true,
		StoreDir:   s.StoreDir,
		NoLog:      true,
		NoSigs:     true,
		// Small limits: tests never need more, and the machine is shared.
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("new nats server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		return fmt.Errorf("nats server not ready for connections within %v", readyTimeout)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return fmt.Errorf("nats server started without JetStream")
	}
	addr, ok := ns.Addr().(*net.TCPAddr)
	if !ok {
		ns.Shutdown()
		return fmt.Errorf("nats server address %v is not TCP", ns.Addr())
	}
	// Keep the ports picked the first time, so that a restarted server is found by
	// clients that reconnect to the old URL.
	s.port = addr.Port
	if m := ns.MonitorAddr(); m != nil {
		s.httpPort = m.Port
	}
	s.mu.Lock()
	s.ns = ns
	s.mu.Unlock()
	return nil
}

// NATS returns the running embedded server (nil between Shutdown and Restart).
func (s *Server) NATS() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ns
}

// ClientURL is the nats:// URL clients connect to; it stays the same across Restart.
func (s *Server) ClientURL() string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// MonitorURL is the base URL of the monitoring endpoint, such as MonitorURL()+"/jsz".
func (s *Server) MonitorURL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.httpPort))
}

// Connect connects a client to the server over TCP, closed in tb.Cleanup. The client
// retries forever while the server is down (for Restart tests); pass opts to change that.
func (s *Server) Connect(tb testing.TB, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	all := append([]nats.Option{
		nats.Name(tb.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(s.ClientURL(), all...)
	if err != nil {
		tb.Fatalf("natstest: connect to %s: %v", s.ClientURL(), err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// JetStream connects a client (see Connect) and returns its JetStream context.
func (s *Server) JetStream(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(s.Connect(tb))
	if err != nil {
		tb.Fatalf("natstest: jetstream: %v", err)
	}
	return js
}

// Shutdown stops the server and waits for it to be gone. It may be called more than once.
func (s *Server) Shutdown() {
	s.mu.Lock()
	ns := s.ns
	s.ns = nil
	s.mu.Unlock()
	if ns == nil {
		return
	}
	ns.Shutdown()
	ns.WaitForShutdown()
}

// Restart shuts the server down (if it runs) and starts it again on the same ports
// with the same StoreDir: streams, consumers and key-value buckets come back.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Shutdown()
	if err := s.start(); err != nil {
		tb.Fatalf("natstest: restart: %v", err)
	}
}
