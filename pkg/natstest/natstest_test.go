package natstest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"imapcopy.dev/pkg/natstest"
)

func TestJetStreamPublishConsume(t *testing.T) {
	srv := natstest.Start(t)
	if !strings.HasPrefix(srv.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("ClientURL = %q, want a 127.0.0.1 URL", srv.ClientURL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := srv.JetStream(t)

	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "T",
		Subjects: []string{"t.>"},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	ack, err := js.Publish(ctx, "t.hello", []byte("hello"))
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("CreateConsumer: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if got, want := string(msg.Data()), "hello"; got != want {
		t.Fatalf("consumed %q, want %q", got, want)
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Fatalf("DoubleAck: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Storage != jetstream.FileStorage {
		t.Errorf("storage = %v, want file", info.Config.Storage)
	}
	t.Logf("embedded nats-server %s with JetStream (store %s): published seq %d to stream %q, consumed and acked %q",
		server.VERSION, srv.StoreDir, ack.Sequence, ack.Stream, msg.Data())
}

func TestRestartKeepsStreams(t *testing.T) {
	srv := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc := srv.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()

	srv.Shutdown()
	// While the server is down, a JetStream call fails instead of hanging.
	downCtx, downCancel := context.WithTimeout(ctx, time.Second)
	_, err = js.Stream(downCtx, "T")
	downCancel()
	if err == nil {
		t.Fatal("Stream() with the server down succeeded, want an error")
	}

	srv.Restart(t)
	if got := srv.ClientURL(); got != url {
		t.Fatalf("ClientURL after Restart = %q, want %q", got, url)
	}
	// The old connection reconnects by itself.
	if err := waitConnected(ctx, nc); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatalf("Stream after Restart: %v", err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, "t")
	if err != nil {
		t.Fatalf("GetLastMsgForSubject after Restart: %v", err)
	}
	if got, want := string(m.Data), "kept"; got != want {
		t.Fatalf("message after Restart = %q, want %q", got, want)
	}
}

func TestMonitorJSZ(t *testing.T) {
	srv := natstest.Start(t)
	resp, err := http.Get(srv.MonitorURL() + "/jsz")
	if err != nil {
		t.Fatalf("GET /jsz: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var jsz struct {
		Config *struct {
			StoreDir string `json:"store_dir"`
		} `json:"config"`
	}
	if err := json.Unmarshal(body, &jsz); err != nil {
		t.Fatalf("GET /jsz: %v in %s", err, body)
	}
	if jsz.Config == nil || jsz.Config.StoreDir == "" {
		t.Fatalf("GET /jsz shows no JetStream config: %s", body)
	}
}

func waitConnected(ctx context.Context, nc *nats.Conn) error {
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			return errors.New("client did not reconnect after Restart")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
