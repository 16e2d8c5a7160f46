package syncapi_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"imapcopy.dev/pkg/syncapi"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Stand-in for pkg/taskqueue until it lands: a work-queue stream and a publisher
// that uses the task id as the message id.
const (
	testStream  = "IMAPCOPY_TASKS"
	testSubject = "imapcopy.tasks"
)

type jsPublisher struct{ js jetstream.JetStream }

func (p jsPublisher) Publish(ctx context.Context, task *imapcopyv1.SyncTask) error {
	b, err := proto.Marshal(task)
	if err != nil {
		return err
	}
	_, err = p.js.Publish(ctx, testSubject, b, jetstream.WithMsgID(task.GetTaskId()))
	return err
}

func newQueue(t *testing.T, js jetstream.JetStream) (syncapi.Publisher, jetstream.Stream) {
	t.Helper()
	st, err := js.CreateOrUpdateStream(t.Context(), jetstream.StreamConfig{
		Name: testStream, Subjects: []string{testSubject},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return jsPublisher{js}, st
}
