package syncapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"imapcopy.dev/pkg/syncapi"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// httpClient calls the JSON/HTTP API as a control panel or the page would.
type httpClient struct {
	t     *testing.T
	base  string
	token string            // sent as a bearer token when set
	hdr   map[string]string // more request headers
}

type httpAnswer struct {
	code int
	hdr  http.Header
	body map[string]any
	raw  string
}

// str is a string at a dotted path of the answer ("status.state").
func (a httpAnswer) str(path string) string {
	var v any = a.body
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

func (c httpClient) do(method, path string, body any) httpAnswer {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case proto.Message:
		raw, err := protojson.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	a := httpAnswer{code: resp.StatusCode, hdr: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func (c httpClient) want(a httpAnswer, code int, what string) {
	c.t.Helper()
	if a.code != code {
		c.t.Fatalf("%s: HTTP %d, want %d: %s", what, a.code, code, a.raw)
	}
}

// TestHTTPAPI goes through the six paths with a plain HTTP client, anonymously on the
// public page and with a token: bodies in protobuf's JSON mapping, the error mapping,
// what an anonymous caller sees and may cancel, the watch stream and the OpenAPI
// description.
func TestHTTPAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "redis", withHTTP(syncapi.HTTPOptions{Public: true}))
	anon := httpClient{t: t, base: e.httpURL}
	panel := httpClient{t: t, base: e.httpURL, token: testToken}
	src, dst := newUser(t), newUser(t)

	t.Run("openapi", func(t *testing.T) {
		a := anon.do("GET", "/v1/openapi.json", nil)
		anon.want(a, 200, "openapi")
		paths, _ := a.body["paths"].(map[string]any)
		for _, p := range []string{"/v1/providers", "/v1/accounts:test", "/v1/syncs", "/v1/syncs:plan", "/v1/syncs/{source_email}",
			"/v1/syncs/{source_email}:watch", "/v1/syncs/{source_email}:cancel", "/v1/syncs/{source_email}:retry"} {
			if _, ok := paths[strings.ReplaceAll(p, "{source_email}", "{sourceEmail}")]; !ok {
				t.Errorf("the OpenAPI description lacks %s (it has %v)", p, keys(paths))
			}
		}
	})

	a := anon.do("GET", "/v1/providers?role=ACCOUNT_ROLE_SOURCE", nil)
	anon.want(a, 200, "providers")
	if list, _ := a.body["providers"].([]any); len(list) == 0 || !strings.Contains(a.raw, `"displayName"`) {
		t.Errorf("providers: %s", a.raw)
	}

	a = anon.do("POST", "/v1/accounts:test", &imapcopyv1.TestAccountRequest{Account: src.proto(), Role: imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE})
	anon.want(a, 200, "account test")
	if a.body["ok"] != true {
		t.Errorf("account test: %s", a.raw)
	}
	a = anon.do("POST", "/v1/accounts:test", &imapcopyv1.TestAccountRequest{Account: src.withPassword("wrong"), Role: imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE})
	anon.want(a, 200, "account test with a wrong password")
	if a.body["ok"] != false || a.str("failure") != "TEST_FAILURE_AUTH_FAILED" || a.str("message") == "" {
		t.Errorf("account test with a wrong password: %s", a.raw)
	}

	// Bad input: 400 naming the field.
	a = anon.do("POST", "/v1/accounts:test", `{"account": {"login": "x@example.test"}, "rol": "ACCOUNT_ROLE_SOURCE"}`)
	anon.want(a, 400, "unknown field")
	if !strings.Contains(a.str("message"), "rol") {
		t.Errorf("unknown field: the message does not name it: %s", a.raw)
	}
	noLogin := &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()}
	noLogin.Source.Login = ""
	a = anon.do("POST", "/v1/syncs", noLogin)
	anon.want(a, 400, "start without a source login")
	if !strings.Contains(a.str("message"), "source.login") {
		t.Errorf("start without a source login: the message does not name the field: %s", a.raw)
	}
	if _, ok := a.body["code"]; !ok {
		t.Errorf("error body without code: %s", a.raw)
	}

	// Start, then start again.
	start := &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto(), Options: &imapcopyv1.SyncOptions{Language: "fr-FR"}}
	a = anon.do("POST", "/v1/syncs", start)
	anon.want(a, 200, "start")
	secret := a.str("cancelSecret")
	if a.str("taskId") == "" || secret == "" || a.str("status.state") != "SYNC_STATE_QUEUED" {
		t.Fatalf("start: %s", a.raw)
	}
	if tasks := e.tasks(); len(tasks) != 1 || !bytes.Contains(tasks[0].Data, []byte("fr")) {
		t.Errorf("the queued task does not carry the language fr")
	}
	a = anon.do("POST", "/v1/syncs", start)
	anon.want(a, 409, "second start")
	if a.str("message") != "a sync task for this account already exists" {
		t.Errorf("second start: %s", a.raw)
	}

	// The status: reduced for an anonymous caller, whole for a token.
	path := "/v1/syncs/" + url.PathEscape(src.email)
	a = anon.do("GET", path, nil)
	anon.want(a, 200, "status")
	if a.str("status.state") != "SYNC_STATE_QUEUED" || a.str("status.message") != "not started yet, please be patient" {
		t.Errorf("status: %s", a.raw)
	}
	if a.str("status.destinationEmail") != "" || a.str("status.taskId") != "" {
		t.Errorf("an anonymous caller sees the destination or the task: %s", a.raw)
	}
	a = panel.do("GET", path, nil)
	panel.want(a, 200, "status with a token")
	if a.str("status.destinationEmail") != dst.email {
		t.Errorf("status with a token: %s", a.raw)
	}
	anon.want(anon.do("GET", "/v1/syncs/nobody@example.test", nil), 404, "status of an unknown address")
	anon.want(anon.do("GET", "/v1/syncs/not-an-address", nil), 400, "status of a malformed address")

	// Credentials: a wrong token is refused, not taken for an anonymous caller.
	a = httpClient{t: t, base: e.httpURL, token: "wrong-token-0123456789"}.do("GET", path, nil)
	anon.want(a, 401, "wrong token")
	if a.hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("401 without WWW-Authenticate")
	}
	// A client cannot pose as the gateway's identity metadata.
	spoof := httpClient{t: t, base: e.httpURL, hdr: map[string]string{"Grpc-Metadata-X-Imapcopy-Http-Public": "0", "Grpc-Metadata-X-Imapcopy-Http-Cert": "cert:admin"}}
	a = spoof.do("GET", path, nil)
	if a.code != 200 || a.str("status.destinationEmail") != "" {
		t.Errorf("forged identity headers changed what the caller sees: HTTP %d %s", a.code, a.raw)
	}

	// The watch stream: the current status at once, then each change until the end.
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		req, _ := http.NewRequestWithContext(t.Context(), "GET", e.httpURL+path+":watch", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("watch: %v", err)
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	first := <-lines
	if !strings.Contains(first, `"result"`) || !strings.Contains(first, "SYNC_STATE_QUEUED") {
		t.Fatalf("watch: first line %s", first)
	}
	// A copier would now run the task; this one completes it at once.
	task := &imapcopyv1.SyncTask{}
	if err := proto.Unmarshal(e.tasks()[0].Data, task); err != nil {
		t.Fatal(err)
	}
	st, err := e.store.Get(e.ctx(), src.email)
	if err != nil {
		t.Fatal(err)
	}
	st.State = imapcopyv1.SyncState_SYNC_STATE_RUNNING
	st.Total = &imapcopyv1.Progress{MessagesTotal: 10, MessagesCopied: 4}
	if err := e.store.Put(e.ctx(), src.email, task.GetLockToken(), st); err != nil {
		t.Fatal(err)
	}
	var running string
	select {
	case running = <-lines:
	case <-time.After(time.Minute):
		t.Fatal("watch: no line after the status changed")
	}
	if !strings.Contains(running, "SYNC_STATE_RUNNING") || !strings.Contains(running, `"messagesCopied":"4"`) {
		t.Errorf("watch: second line %s", running)
	}

	// Cancel: an anonymous caller needs the secret the start returned.
	cancelPath := path + ":cancel"
	anon.want(anon.do("POST", cancelPath, `{}`), 403, "anonymous cancel without the secret")
	anon.want(anon.do("POST", cancelPath, `{"cancelSecret": "not-the-secret"}`), 403, "anonymous cancel with a wrong secret")
	cross := httpClient{t: t, base: e.httpURL, hdr: map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}}
	cross.want(cross.do("POST", cancelPath, `{"cancelSecret": "`+secret+`"}`), 403, "cross-site cancel")
	a = anon.do("POST", cancelPath, `{"cancelSecret": "`+secret+`"}`)
	anon.want(a, 200, "cancel with the secret")
	if !strings.Contains(a.str("status.message"), "cancel requested") {
		t.Errorf("cancel: %s", a.raw)
	}
	st.State = imapcopyv1.SyncState_SYNC_STATE_CANCELLED
	if err := e.store.Put(e.ctx(), src.email, task.GetLockToken(), st); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if len(rest) == 0 || !strings.Contains(rest[len(rest)-1], "SYNC_STATE_CANCELLED") {
		t.Errorf("watch: the stream did not end with the terminal state: %q", rest)
	}

	// Listing and retrying are for API callers, not for the public page's visitors.
	anon.want(anon.do("GET", "/v1/syncs", nil), 403, "anonymous listing")
	anon.want(anon.do("POST", path+":retry", `{}`), 403, "anonymous retry")
	panel.want(panel.do("GET", "/v1/syncs?states=SYNC_STATE_CANCELLED&pageSize=500", nil), 200, "listing")
	panel.want(panel.do("GET", "/v1/syncs?pageSize=501", nil), 400, "listing with too large a page")
	a = panel.do("POST", path+":retry", `{}`)
	panel.want(a, 400, "retry of a cancelled sync") // FAILED_PRECONDITION is 400 in grpc-gateway's mapping
	if !strings.Contains(a.str("message"), "CANCELLED") {
		t.Errorf("retry of a cancelled sync: the message does not say why: %s", a.raw)
	}
}

// TestHTTPLimitsAndPrivatePage: 429 with Retry-After, and a private page's API that
// wants a token.
func TestHTTPLimitsAndPrivatePage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "redis", withHTTP(syncapi.HTTPOptions{Public: false}),
		withOptions(func(o *syncapi.Options) { o.PerAddress = syncapi.Rate{Every: time.Hour, Burst: 1} }))
	anon := httpClient{t: t, base: e.httpURL}
	panel := httpClient{t: t, base: e.httpURL, token: testToken}
	anon.want(anon.do("GET", "/v1/providers", nil), 401, "anonymous call to a private page's API")
	panel.want(panel.do("GET", "/v1/providers", nil), 200, "call with a token")

	u := newUser(t)
	req := &imapcopyv1.TestAccountRequest{Account: u.proto(), Role: imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE}
	panel.want(panel.do("POST", "/v1/accounts:test", req), 200, "first test")
	a := panel.do("POST", "/v1/accounts:test", req)
	panel.want(a, 429, "second test of the address within the hour")
	if ra := a.hdr.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("429 without Retry-After (headers %v)", a.hdr)
	}
	if !strings.Contains(a.raw, "RetryInfo") {
		t.Errorf("429 without its RetryInfo detail: %s", a.raw)
	}
}

func keys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	return k
}
