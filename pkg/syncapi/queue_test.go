package syncapi_test

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/taskqueue"
)

// newQueue sets up the task stream as the services do and returns the api's publisher
// and the stream, for the tests to read the raw tasks.
func newQueue(t *testing.T, js jetstream.JetStream) (syncapi.Publisher, jetstream.Stream) {
	t.Helper()
	if _, err := taskqueue.EnsureStream(t.Context(), js, taskqueue.Config{}); err != nil {
		t.Fatalf("ensure stream: %v", err)
	}
	st, err := js.Stream(t.Context(), taskqueue.StreamName)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	return taskqueue.NewPublisher(js), st
}
