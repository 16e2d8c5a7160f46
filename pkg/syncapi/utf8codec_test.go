package syncapi_test

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// rawCodec sends bytes as they are: a client that sends what proto's Marshal would
// refuse (invalid UTF-8), as any non-Go client may.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// withInvalidUTF8 marshals m and replaces the placeholder "\x01\x01\x01\x01" of one of
// its strings with bytes that are not UTF-8.
func withInvalidUTF8(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("\x01\x01\x01\x01")) {
		t.Fatal("no placeholder in the request")
	}
	return bytes.Replace(b, []byte("\x01\x01\x01\x01"), []byte("\xff\xfe\xc3\x28"), 1)
}

// TestInvalidUTF8 sends requests whose string fields are not UTF-8 through a real gRPC
// connection: each is answered InvalidArgument naming the field (grpc-go answers a
// codec's error with Internal, before any handler), unary calls and streams alike;
// the service still answers a valid request afterwards.
func TestInvalidUTF8(t *testing.T) {
	e := newEnv(t, "redis")
	raw := grpc.ForceCodecV2(rawCodec{})
	acct := func(login string) *imapcopyv1.Account {
		return &imapcopyv1.Account{Provider: "other", Login: login, Password: "pw", Host: "127.0.0.1", Port: 993, Security: imapcopyv1.Security_SECURITY_TLS}
	}
	for _, tc := range []struct {
		method, field string
		req           proto.Message
	}{
		{"StartSync", "source.login", &imapcopyv1.StartSyncRequest{Source: acct("a\x01\x01\x01\x01@example.com"), Destination: acct("b@example.com")}},
		{"StartSync", "destination.password", &imapcopyv1.StartSyncRequest{Source: acct("a@example.com"), Destination: &imapcopyv1.Account{Provider: "other", Login: "b@example.com", Password: "\x01\x01\x01\x01"}}},
		{"GetSyncStatus", "source_email", &imapcopyv1.GetSyncStatusRequest{SourceEmail: "a\x01\x01\x01\x01@example.com"}},
		{"TestAccount", "account.host", &imapcopyv1.TestAccountRequest{Account: &imapcopyv1.Account{Provider: "other", Login: "a@example.com", Password: "pw", Host: "\x01\x01\x01\x01"}}},
	} {
		var out []byte
		err := e.conn.Invoke(e.ctx(), "/imapcopy.v1.SyncService/"+tc.method, withInvalidUTF8(t, tc.req), &out, raw)
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.field+": not valid UTF-8") {
			t.Errorf("%s with invalid UTF-8 in %s: %v %q, want InvalidArgument naming the field", tc.method, tc.field, st.Code(), st.Message())
		}
	}

	stream, err := e.conn.NewStream(e.ctx(), &grpc.StreamDesc{ServerStreams: true}, "/imapcopy.v1.SyncService/WatchSyncStatus", raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(withInvalidUTF8(t, &imapcopyv1.WatchSyncStatusRequest{SourceEmail: "\x01\x01\x01\x01@example.com"})); err != nil {
		t.Fatal(err)
	}
	stream.CloseSend()
	var out []byte
	if st := status.Convert(stream.RecvMsg(&out)); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "source_email: not valid UTF-8") {
		t.Errorf("WatchSyncStatus with invalid UTF-8: %v %q, want InvalidArgument naming source_email", st.Code(), st.Message())
	}

	// Valid requests are decoded as before.
	if _, err := e.client.GetSyncStatus(e.ctx(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: "nobody@example.com"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetSyncStatus of an unknown address: %v, want NotFound", err)
	}
}
