package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// service is the standalone imapcopy, run as a child process exactly as `make run`
// runs it, on a data directory and a port of the demo's own.
type service struct {
	addr    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error

	conn   *grpc.ClientConn
	api    imapcopyv1.SyncServiceClient
	health healthpb.HealthClient
}

// findBinary returns the imapcopy binary: the one given, else the one next to this
// program (make builds both into bin/), else the one on PATH.
func findBinary(given string) (string, error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", fmt.Errorf("-imapcopy %s: %w", given, err)
		}
		return given, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "imapcopy")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("imapcopy"); err == nil {
		return p, nil
	}
	return "", errors.New("the imapcopy binary was not found: run `make demo` (it builds it), or give -imapcopy PATH")
}

// startService starts bin with its data in dir, the local servers allow-listed
// (IMAPCOPY_ALLOW_NETWORKS) and their certificates trusted (IMAPCOPY_IMAP_CA_FILE).
// The caller's own IMAPCOPY_* variables are left out, so that the demo runs the same
// everywhere.
func startService(bin, dir, caFile string) (*service, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &service{addr: addr, logPath: filepath.Join(dir, "imapcopy.log"), exited: make(chan struct{})}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IMAPCOPY_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"IMAPCOPY_ALLOW_NETWORKS=127.0.0.1/32,::1/128",
		"IMAPCOPY_IMAP_CA_FILE="+caFile,
	)
	s.cmd = exec.Command(bin, "-data-dir", filepath.Join(dir, "data"), "-grpc-addr", addr, "-admin-addr", "", "-http-addr", "off")
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = childAttr()
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.err = s.cmd.Wait(); logFile.Close(); close(s.exited) }()

	s.conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.stop()
		return nil, err
	}
	s.api = imapcopyv1.NewSyncServiceClient(s.conn)
	s.health = healthpb.NewHealthClient(s.conn)
	return s, nil
}

// waitServing waits until the gRPC health service answers SERVING.
func (s *service) waitServing(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := s.health.Check(cctx, &healthpb.HealthCheckRequest{})
		ccancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-s.exited:
			exit := s.err
			if exit == nil {
				exit = errors.New("exit status 0")
			}
			return fmt.Errorf("imapcopy exited before serving (%w); its log:\n%s", exit, s.logTail(20))
		case <-ctx.Done():
			return fmt.Errorf("imapcopy not serving within %v; its log:\n%s", d, s.logTail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop asks the service to shut down (SIGTERM) and waits for it, killing it after 30s.
func (s *service) stop() error {
	if s.conn != nil {
		s.conn.Close()
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return s.err
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		return errors.New("imapcopy did not stop within 30s after SIGTERM: killed")
	}
}

func (s *service) logTail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
