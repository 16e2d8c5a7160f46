package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// TestHugeRequestRefused: the standalone, as configured by its flags, refuses a
// 100 MB StartSync over gRPC with RESOURCE_EXHAUSTED and over HTTP with 413, and
// then still serves. (pkg/syncapi TestHugeRequest measures the memory it takes.)
func TestHugeRequestRefused(t *testing.T) {
	t.Parallel()
	const size = 100 << 20
	base, grpcAddr := startStandalone(t)
	c := dial(t, grpcAddr)
	huge := &imapcopyv1.Account{Provider: "other", Login: "a@example.test", Password: strings.Repeat("p", size), Host: "127.0.0.1", Port: 993}
	_, err := c.StartSync(t.Context(), &imapcopyv1.StartSyncRequest{Source: huge, Destination: huge})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted {
		t.Errorf("a 100 MB StartSync over gRPC = %v, want ResourceExhausted", err)
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		// The body is never valid JSON: the answer must come from its length alone.
		fmt.Fprintf(conn, "POST /v1/syncs HTTP/1.1\r\nHost: standalone.test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", size)
		chunk := []byte(strings.Repeat("p", 64<<10))
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the answer to a 100 MB POST: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "request body larger than") {
		t.Errorf("a 100 MB POST /v1/syncs = %d %s, want 413", resp.StatusCode, body)
	}
	conn.Close()

	if _, err := c.ListProviders(t.Context(), &imapcopyv1.ListProvidersRequest{}); err != nil {
		t.Errorf("ListProviders after the floods: %v", err)
	}
}
