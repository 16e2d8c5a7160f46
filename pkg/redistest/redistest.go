// Package redistest starts a real redis-server for tests, the way httptest starts an
// HTTP server.
//
// Each Server is its own redis-server process on a random free 127.0.0.1 port, with
// its own temporary directory and no persistence (no RDB snapshots, no AOF), so tests
// never share state with each other or with a Redis installed on the machine. The
// binary is /usr/bin/redis-server (Debian package redis-server) or the first
// redis-server on PATH; when there is none the test fails with the command that
// installs it. It never skips.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// InstallHint is the command that installs the redis-server the tests need.
const InstallHint = "sudo apt-get install -y redis-server (or: make test-deps)"

// startTimeout bounds how long one start may take before it counts as failed.
const startTimeout = 20 * time.Second

// Server is a running redis-server.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	// Dir is the server's working directory; its log is Dir/redis.log.
	Dir string

	bin  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts a redis-server for the test and stops it in tb.Cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	dir := tb.TempDir()
	s, err := start(dir)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartMain starts a redis-server for a whole test binary, from TestMain, where no
// testing.TB exists yet. The returned stop func stops the server and removes its
// directory; call it after m.Run.
//
//	func TestMain(m *testing.M) {
//		srv, stop, err := redistest.StartMain()
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		stop()
//		os.Exit(code)
//	}
func StartMain() (*Server, func(), error) {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, nil, fmt.Errorf("redistest: %w", err)
	}
	s, err := start(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("redistest: %w", err)
	}
	return s, func() { s.Stop(); os.RemoveAll(dir) }, nil
}

// URL is the server's address as a redis:// URL (database 0), as redis.ParseURL reads it.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Options returns client options for the server: fresh on each call, ready to adjust.
func (s *Server) Options() *redis.Options {
	return &redis.Options{Addr: s.Addr}
}

// Client returns a go-redis client for the server, closed in tb.Cleanup.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(s.Options())
	tb.Cleanup(func() { c.Close() })
	return c
}

// Stop stops the server (SIGTERM, then SIGKILL after a few seconds). It may be called
// more than once; data is gone, since nothing is persisted.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops the server and starts a new one on the same address, empty. Tests use
// it to check how clients behave while the store is down and after it comes back.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		tb.Fatalf("redistest: restart: %v", err)
	}
}

func start(dir string) (*Server, error) {
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bin: bin}
	// The free port is found by listening and closing, so another process may take
	// it before redis-server binds: retry with a new port when that happens.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		lastErr = s.launch()
		if lastErr == nil {
			return s, nil
		}
		if !errors.Is(lastErr, errAddrInUse) {
			return nil, lastErr
		}
	}
	return nil, lastErr
}

var errAddrInUse = errors.New("address already in use")

func findBinary() (string, error) {
	const debianPath = "/usr/bin/redis-server"
	if _, err := os.Stat(debianPath); err == nil {
		return debianPath, nil
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("redis-server not found (looked at /usr/bin/redis-server and PATH); install it with: %s", InstallHint)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch starts redis-server on s.port and waits until it answers PING.
func (s *Server) launch() error {
	logFile := filepath.Join(s.Dir, "redis.log")
	// A fresh log per launch, so that errors below quote this launch only.
	_ = os.Remove(logFile)
	cmd := exec.Command(s.bin,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(s.port),
		"--dir", s.Dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--protected-mode", "yes",
		"--logfile", logFile,
	)
	cmd.Dir = s.Dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if ping(ctx, s.Addr) == nil {
			s.mu.Lock()
			s.cmd, s.done = cmd, done
			s.mu.Unlock()
			return nil
		}
		select {
		case <-done:
			log := tail(logFile)
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("port %d: %w", s.port, errAddrInUse)
			}
			return fmt.Errorf("redis-server exited before answering PING (%s); log:\n%s", cmd.ProcessState, log)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server did not answer PING on %s within %v; log:\n%s", s.Addr, startTimeout, tail(logFile))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ping sends an inline PING and expects +PONG; it avoids a client library so that
// readiness does not depend on client retries.
func ping(ctx context.Context, addr string) error {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
