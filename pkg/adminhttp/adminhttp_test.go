package adminhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestHealthzAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	copied := prometheus.NewCounter(prometheus.CounterOpts{Name: "imapcopy_test_messages_total", Help: "test"})
	reg.MustRegister(copied)
	copied.Add(3)
	s := New("127.0.0.1:0", reg, nil, nil)

	if code, body := get(t, s.Handler(), "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 \"ok\\n\"", code, body)
	}
	code, body := get(t, s.Handler(), "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "imapcopy_test_messages_total 3") {
		t.Errorf("GET /metrics = %d %q, want 200 with imapcopy_test_messages_total 3", code, body)
	}
	if code, _ := get(t, s.Handler(), "/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}

func TestReadyz(t *testing.T) {
	const secret = "canary-s3cret"
	pass := func(context.Context) error { return nil }
	fail := func(context.Context) error { return errors.New("dial redis://:" + secret + "@127.0.0.1: refused") }
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	ignoreCtx := make(chan struct{})
	t.Cleanup(func() { close(ignoreCtx) })
	deaf := func(context.Context) error { <-ignoreCtx; return nil }
	boom := func(context.Context) error { panic("boom") }

	tests := []struct {
		name     string
		checks   map[string]func(context.Context) error
		wantCode int
		wantBody string
	}{
		{"no checks", nil, http.StatusOK, "ok\n"},
		{"all pass", map[string]func(context.Context) error{"nats": pass, "store": pass}, http.StatusOK, "ok\n"},
		{"one fails", map[string]func(context.Context) error{"nats": pass, "store": fail}, http.StatusServiceUnavailable, "not ready: store\n"},
		{"failing names sorted", map[string]func(context.Context) error{"store": fail, "nats": fail, "dovecot": pass}, http.StatusServiceUnavailable, "not ready: nats, store\n"},
		{"hung check times out", map[string]func(context.Context) error{"nats": hang, "store": pass}, http.StatusServiceUnavailable, "not ready: nats\n"},
		{"check ignoring its context", map[string]func(context.Context) error{"store": deaf}, http.StatusServiceUnavailable, "not ready: store\n"},
		{"panicking check", map[string]func(context.Context) error{"store": boom}, http.StatusServiceUnavailable, "not ready: store\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			s := New("127.0.0.1:0", nil, tt.checks, slog.New(slog.NewTextHandler(&logs, nil)))
			s.CheckTimeout = 50 * time.Millisecond // only hung checks ever wait for it
			code, body := get(t, s.Handler(), "/readyz")
			if code != tt.wantCode || body != tt.wantBody {
				t.Errorf("GET /readyz = %d %q, want %d %q", code, body, tt.wantCode, tt.wantBody)
			}
			if strings.Contains(body, secret) {
				t.Errorf("GET /readyz body %q contains the check's error", body)
			}
			if tt.wantCode != http.StatusOK && !strings.Contains(logs.String(), "readiness_check_failed") {
				t.Errorf("logs = %q, want the failure logged", logs.String())
			}
		})
	}
}

func TestReadinessCheckMetric(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	var storeUp atomic.Bool
	s := New("127.0.0.1:0", reg, map[string]func(context.Context) error{
		"nats": func(context.Context) error { return nil },
		"store": func(context.Context) error {
			if !storeUp.Load() {
				return errors.New("refused")
			}
			return nil
		},
	}, nil)
	expect := func(step string, nats, store int) {
		t.Helper()
		want := fmt.Sprintf(`
# HELP imapcopy_readiness_check_up 1 when the readiness check of this name passed at its last run (each /readyz), 0 when it failed or has not run yet.
# TYPE imapcopy_readiness_check_up gauge
imapcopy_readiness_check_up{check="nats"} %d
imapcopy_readiness_check_up{check="store"} %d
`, nats, store)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "imapcopy_readiness_check_up"); err != nil {
			t.Errorf("%s: %v", step, err)
		}
	}
	expect("before any probe", 0, 0)
	get(t, s.Handler(), "/readyz")
	expect("store down", 1, 0)
	storeUp.Store(true)
	get(t, s.Handler(), "/readyz")
	expect("store back", 1, 1)
}

func TestDrain(t *testing.T) {
	s := New("127.0.0.1:0", nil, map[string]func(context.Context) error{"nats": func(context.Context) error { return nil }}, nil)
	if code, _ := get(t, s.Handler(), "/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz before Drain = %d, want 200", code)
	}
	s.Drain()
	if code, body := get(t, s.Handler(), "/readyz"); code != http.StatusServiceUnavailable || body != "not ready: shutting down\n" {
		t.Errorf("GET /readyz after Drain = %d %q, want 503 \"not ready: shutting down\\n\"", code, body)
	}
	if code, _ := get(t, s.Handler(), "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz after Drain = %d, want 200 (still alive)", code)
	}
}

// A real listener on loopback: serves, then shuts down when the context ends.
func TestServeListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	s := New(addr, nil, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.ServeListener(ctx, ln) }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 \"ok\\n\"", resp.StatusCode, body)
	}

	cancel()
	if err := <-served; err != nil {
		t.Errorf("ServeListener after cancel = %v, want nil", err)
	}
	if resp, err := client.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("GET /healthz after shutdown succeeded, want a connection error")
	}
}

func TestServeListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	err = New(ln.Addr().String(), nil, nil, nil).Serve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "admin http listen") {
		t.Errorf("Serve on a busy address = %v, want a listen error", err)
	}
}
