package syncapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"imapcopy.dev/pkg/syncapi"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// hugeRequest is the size of the flood: 100 MB.
const hugeRequest = 100 << 20

// allocBound bounds what the process may allocate while it refuses a flood: a
// server that read the request into memory would allocate more than the request.
const allocBound = 32 << 20

// allocated runs f and returns how many bytes the process allocated meanwhile.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHugeRequest: a 100 MB StartSync is refused from its length, without the
// server reading it into memory: over gRPC with RESOURCE_EXHAUSTED (MaxRecvMsgSize),
// over HTTP with 413 and the same status as JSON, whether the body's length is
// announced (refused from the header) or not (chunked: refused at the bound). Each
// refusal allocates less than allocBound in the whole process (the figure is logged).
func TestHugeRequest(t *testing.T) {
	e := newEnv(t, "redis", withHTTP(syncapi.HTTPOptions{}))
	u := newUser(t)

	t.Run("grpc", func(t *testing.T) {
		raw, err := proto.Marshal(&imapcopyv1.StartSyncRequest{Source: u.withPassword(strings.Repeat("p", hugeRequest)), Destination: u.proto()})
		if err != nil {
			t.Fatal(err)
		}
		var callErr error
		n := allocated(func() {
			// The bytes as they are (rawCodec, utf8codec_test.go): no second copy of
			// them in the client, so that what the process allocates is the server's.
			var out []byte
			callErr = e.conn.Invoke(e.ctx(), imapcopyv1.SyncService_StartSync_FullMethodName, raw, &out, grpc.ForceCodecV2(rawCodec{}))
		})
		st := status.Convert(callErr)
		if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "larger than max") {
			t.Errorf("a %d-byte StartSync = %v, want ResourceExhausted (larger than max)", len(raw), callErr)
		}
		t.Logf("a %d MB StartSync over gRPC: %v; %.1f MiB allocated by the process meanwhile", len(raw)>>20, st.Code(), float64(n)/(1<<20))
		if n > allocBound {
			t.Errorf("refusing a %d MB request allocated %d MiB, want under %d MiB", len(raw)>>20, n>>20, allocBound>>20)
		}
		runtime.KeepAlive(raw)
	})

	for _, chunked := range []bool{false, true} {
		name := "http"
		if chunked {
			name = "http_chunked"
		}
		t.Run(name, func(t *testing.T) {
			var code int
			var body []byte
			var sent int64
			n := allocated(func() { code, body, sent = postFlood(t, e.httpURL, chunked) })
			t.Logf("a %d MB POST /v1/syncs (chunked %v): HTTP %d after %.1f MiB sent; %.1f MiB allocated by the process meanwhile",
				hugeRequest>>20, chunked, code, float64(sent)/(1<<20), float64(n)/(1<<20))
			if code != http.StatusRequestEntityTooLarge {
				t.Fatalf("HTTP %d %s, want 413", code, body)
			}
			var answer struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &answer); err != nil || codes.Code(answer.Code) != codes.ResourceExhausted || !strings.Contains(answer.Message, "request body larger than") {
				t.Errorf("413 body = %s (%v), want the ResourceExhausted status as JSON", body, err)
			}
			if n > allocBound {
				t.Errorf("refusing a %d MB request allocated %d MiB, want under %d MiB", hugeRequest>>20, n>>20, allocBound>>20)
			}
		})
	}

	// A request under the bound still goes through to the validation.
	ok := httpClient{t: t, base: e.httpURL, token: testToken}
	a := ok.do("POST", "/v1/syncs", &imapcopyv1.StartSyncRequest{Source: u.withPassword(strings.Repeat("p", 2000)), Destination: u.proto()})
	ok.want(a, http.StatusBadRequest, "a StartSync with a 2000-byte password")
	if !strings.Contains(a.raw, "source.password: too long") {
		t.Errorf("a StartSync with a 2000-byte password: %s, want source.password: too long", a.raw)
	}
}

// postFlood POSTs a 100 MB StartSync body to /v1/syncs over a raw connection,
// writing while it reads the answer (a server may answer before the body ends), and
// returns the status, the answer's body and how many body bytes it managed to send.
func postFlood(t *testing.T, base string, chunked bool) (int, []byte, int64) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /v1/syncs HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer " + testToken + "\r\nContent-Type: application/json\r\n"
	if chunked {
		head += "Transfer-Encoding: chunked\r\n\r\n"
	} else {
		head += fmt.Sprintf("Content-Length: %d\r\n\r\n", hugeRequest)
	}
	written := make(chan int64, 1)
	go func() {
		var sent int64
		defer func() { written <- sent }()
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		// The body: {"source":{"password":"pppp…"}} of hugeRequest bytes, from one small
		// buffer written again and again.
		prefix, suffix := []byte(`{"source":{"password":"`), []byte(`"}}`)
		chunk := bytes.Repeat([]byte("p"), 64<<10)
		for sent < hugeRequest {
			part := chunk
			switch {
			case sent == 0:
				part = append(append([]byte{}, prefix...), chunk[len(prefix):]...)
			case hugeRequest-sent <= int64(len(chunk)):
				part = append(append([]byte{}, chunk[:hugeRequest-sent-int64(len(suffix))]...), suffix...)
			}
			if chunked {
				if _, err := fmt.Fprintf(conn, "%x\r\n", len(part)); err != nil {
					return
				}
			}
			if _, err := conn.Write(part); err != nil {
				return
			}
			if chunked {
				if _, err := io.WriteString(conn, "\r\n"); err != nil {
					return
				}
			}
			sent += int64(len(part))
		}
		if chunked {
			_, _ = io.WriteString(conn, "0\r\n\r\n")
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to the flood: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer to the flood: %v", err)
	}
	conn.Close() // the writer stops, if still writing
	return resp.StatusCode, body, <-written
}

// TestLongFields: a 1 MB value in each string field of TestAccount and StartSync,
// through a real gRPC connection and through the HTTP gateway, is refused with
// INVALID_ARGUMENT naming the field, and the answer does not echo the value.
func TestLongFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "redis", withHTTP(syncapi.HTTPOptions{}))
	src, dst := newUser(t), newUser(t)
	long := strings.Repeat("a", 1_000_000)
	type accountField struct {
		name string
		set  func(*imapcopyv1.Account)
	}
	accountFields := []accountField{
		{"provider", func(a *imapcopyv1.Account) { a.Provider = long }},
		{"login", func(a *imapcopyv1.Account) { a.Login = long + "@example.test" }},
		{"password", func(a *imapcopyv1.Account) { a.Password = long }},
		{"host", func(a *imapcopyv1.Account) { a.Host = long }},
		{"oauth2_access_token", func(a *imapcopyv1.Account) { a.Password = ""; a.Oauth2AccessToken = long }},
	}
	type call struct {
		field, path string
		req         proto.Message
	}
	var calls []call
	for _, f := range accountFields {
		a := src.proto()
		f.set(a)
		calls = append(calls, call{"account." + f.name, "/v1/accounts:test", &imapcopyv1.TestAccountRequest{Account: a}})
		for _, side := range []string{"source", "destination"} {
			req := &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()}
			if side == "source" {
				f.set(req.Source)
			} else {
				f.set(req.Destination)
			}
			calls = append(calls, call{side + "." + f.name, "/v1/syncs", req})
		}
	}
	for field, opts := range map[string]*imapcopyv1.SyncOptions{
		"options.include_folders[0]": {IncludeFolders: []string{long}},
		"options.exclude_folders[0]": {ExcludeFolders: []string{long}},
		"options.language":           {Language: long},
	} {
		calls = append(calls, call{field, "/v1/syncs", &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto(), Options: opts}})
	}
	h := httpClient{t: t, base: e.httpURL, token: testToken}
	for _, c := range calls {
		var err error
		switch r := c.req.(type) {
		case *imapcopyv1.TestAccountRequest:
			_, err = e.client.TestAccount(e.ctx(), r)
		case *imapcopyv1.StartSyncRequest:
			_, err = e.client.StartSync(e.ctx(), r)
		}
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), c.field+": ") || len(st.Message()) > 300 {
			t.Errorf("gRPC %s with a 1 MB %s = %v %.300q, want InvalidArgument naming the field, short", c.path, c.field, st.Code(), st.Message())
		}
		raw, merr := protojson.Marshal(c.req)
		if merr != nil {
			t.Fatal(merr)
		}
		a := h.do("POST", c.path, string(raw))
		if a.code != http.StatusBadRequest || !strings.HasPrefix(a.str("message"), c.field+": ") || len(a.raw) > 1000 {
			t.Errorf("HTTP %s with a 1 MB %s = %d %.300q, want 400 naming the field, short", c.path, c.field, a.code, a.raw)
		}
	}
}
