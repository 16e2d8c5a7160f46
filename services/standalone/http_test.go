package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/servicetest"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// TestHTTPFlow is the README's curl sequence against the standalone's HTTP address
// with its defaults (the public page): providers, both account tests, a start with
// the report in Polish, the watch stream to COMPLETED, the status, a cancel after the
// end with the start's cancel secret; then the destination is checked and its report
// is in Polish.
func TestHTTPFlow(t *testing.T) {
	t.Parallel()
	base := startHTTP(t)

	call := func(method, path string, body proto.Message, want int) map[string]any {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, err := protojson.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, want, raw)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, raw)
		}
		return m
	}

	src, dst := shared.slash.AddUser(t), shared.dot.AddUser(t)
	mb := imaptest.Generate(11, imaptest.Spec{Count: 40})
	if err := imaptest.Load(t.Context(), src, mb); err != nil {
		t.Fatalf("load the source: %v", err)
	}
	source := src.Login + "@source.test"
	srcReq, dstReq := servicetest.Account(src, source), servicetest.Account(dst, dst.Login+"@destination.test")

	if p := call("GET", "/v1/providers?role=ACCOUNT_ROLE_SOURCE", nil, 200); len(p["providers"].([]any)) == 0 {
		t.Errorf("no providers")
	}
	for role, acct := range map[imapcopyv1.AccountRole]*imapcopyv1.Account{
		imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE: srcReq, imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION: dstReq,
	} {
		if r := call("POST", "/v1/accounts:test", &imapcopyv1.TestAccountRequest{Account: acct, Role: role}, 200); r["ok"] != true {
			t.Fatalf("account test %v: %v", role, r)
		}
	}
	started := call("POST", "/v1/syncs", &imapcopyv1.StartSyncRequest{Source: srcReq, Destination: dstReq,
		Options: &imapcopyv1.SyncOptions{Language: "pl"}}, 200)
	secret, _ := started["cancelSecret"].(string)
	call("POST", "/v1/syncs", &imapcopyv1.StartSyncRequest{Source: srcReq, Destination: dstReq}, 409)

	// The watch stream, line by line, to the end.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/v1/syncs/"+source+":watch", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		last = sc.Text()
	}
	resp.Body.Close()
	if !strings.Contains(last, `"state":"SYNC_STATE_COMPLETED"`) {
		t.Fatalf("the watch stream ended with %s, want COMPLETED", last)
	}

	st := call("GET", "/v1/syncs/"+strings.ToUpper(source), nil, 200)["status"].(map[string]any)
	if st["state"] != "SYNC_STATE_COMPLETED" || st["total"].(map[string]any)["messagesCopied"] != "40" {
		t.Errorf("status: %v", st)
	}
	if st["destinationEmail"] != "" {
		t.Errorf("an anonymous lookup shows the destination: %v", st)
	}
	if c := call("POST", "/v1/syncs/"+source+":cancel", &imapcopyv1.CancelSyncRequest{CancelSecret: secret}, 200); c["status"].(map[string]any)["state"] != "SYNC_STATE_COMPLETED" {
		t.Errorf("cancel after the end: %v", c)
	}
	call("GET", "/v1/syncs/nobody@source.test", nil, 404)
	servicetest.Check(t, src, dst)

	msgs, err := imaptest.ReadFolder(t.Context(), dst, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, m := range msgs {
		if servicetest.IsReport("INBOX", m.Raw) {
			msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
			if err != nil {
				t.Fatal(err)
			}
			s, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			subjects = append(subjects, s)
		}
	}
	if len(subjects) != 1 || !strings.Contains(subjects[0], "kopiowanie z") {
		t.Errorf("report subjects %q, want one in Polish", subjects)
	}
}
