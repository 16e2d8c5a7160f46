package natsembed

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A message published before a restart is still in its stream after it: the
// standalone mode keeps queued tasks across restarts.
func TestRestartKeepsStream(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	srv, err := Start(Config{StoreDir: dir}, logger)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.one", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	srv.Shutdown()

	srv, err = Start(Config{StoreDir: dir}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err = srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	msg, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("message after restart: %v", err)
	}
	if got := string(msg.Data); got != "kept" {
		t.Errorf("message after restart = %q, want %q", got, "kept")
	}
	t.Logf("embedded JetStream in %s kept message %q across a restart", dir, msg.Data)
}

func TestStartNeedsDir(t *testing.T) {
	if _, err := Start(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Error("Start with no data directory: no error, want one")
	}
}
