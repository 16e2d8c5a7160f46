package syncapi_test

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/syncapi"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// auditEntries are the api's JSON log lines whose msg is one of names.
func auditEntries(t *testing.T, logs string, names ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("a log line is not JSON: %v: %q", err, sc.Text())
		}
		for _, n := range names {
			if m["msg"] == n {
				out = append(out, m)
			}
		}
	}
	return out
}

// TestFailedAttemptsAudited: every TestAccount and StartSync attempt on an account
// leaves a log entry naming the account (login, host, port), the caller (the token's
// name) and the outcome: a wrong password is a warning with outcome auth_failed, an
// attempt refused by the guessing limit is a warning with outcome rate_limited, and
// no entry holds a password tried.
func TestFailedAttemptsAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "redis", withOptions(func(o *syncapi.Options) {
		o.PerAddress = syncapi.Rate{Every: time.Hour, Burst: 2}
	}))
	u, dst := newUser(t), newUser(t)
	guesses := []string{"guess-one-5f2a", "guess-two-5f2a", "guess-three-5f2a"}
	for i, pw := range guesses {
		resp, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: u.withPassword(pw)})
		if i < 2 {
			if err != nil || resp.GetFailure() != imapcopyv1.TestFailure_TEST_FAILURE_AUTH_FAILED {
				t.Fatalf("guess #%d = %v, %v, want AUTH_FAILED", i+1, resp, err)
			}
			continue
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("guess #%d = %v, want ResourceExhausted", i+1, err)
		}
	}
	// A start with a wrong source password, once the budget is spent, is audited too.
	startGuess := "guess-start-5f2a"
	if _, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: u.withPassword(startGuess), Destination: dst.proto()}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("StartSync past the budget = %v, want ResourceExhausted", err)
	}

	logs := e.logs.String()
	entries := auditEntries(t, logs, "account_tested", "account_test_refused")
	var failed, limited int
	for _, m := range entries {
		if m["login"] != u.email {
			continue
		}
		for _, k := range []string{"caller", "host", "port", "outcome"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s entry without %s: %v", m["msg"], k, m)
			}
		}
		if m["caller"] != "tests" || m["host"] != u.acct.Host || m["port"] != float64(u.acct.Port) {
			t.Errorf("%s entry = %v, want caller tests, host %s, port %d", m["msg"], m, u.acct.Host, u.acct.Port)
		}
		switch {
		case m["msg"] == "account_tested" && m["outcome"] == "auth_failed":
			failed++
			if m["level"] != "WARN" {
				t.Errorf("a failed login logged at %v, want WARN: %v", m["level"], m)
			}
		case m["msg"] == "account_test_refused" && m["outcome"] == "rate_limited":
			limited++
			if m["level"] != "WARN" || m["limit"] != "account" {
				t.Errorf("a limited attempt = %v, want WARN with limit account", m)
			}
		default:
			t.Errorf("unexpected audit entry %v", m)
		}
	}
	if failed != 2 || limited != 2 {
		t.Errorf("audit of %s: %d failed logins and %d limited attempts, want 2 and 2; entries:\n%v", u.email, failed, limited, entries)
	}
	for _, pw := range append(guesses, startGuess) {
		if strings.Contains(logs, pw) {
			t.Errorf("the log holds a password tried (%s)", pw)
		}
	}
	if t.Failed() {
		t.Logf("api log:\n%s", logs)
	}
}

// TestCallerLimitAudited: an attempt refused by the caller's own limit names the
// caller and the account it was for.
func TestCallerLimitAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "redis", withOptions(func(o *syncapi.Options) {
		o.PerCaller = syncapi.Rate{Every: time.Hour, Burst: 1}
	}))
	u := newUser(t)
	if _, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: u.withPassword("first-guess-77b1")}); err != nil {
		t.Fatalf("first test: %v", err)
	}
	if _, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: u.withPassword("second-guess-77b1")}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second test of the caller = %v, want ResourceExhausted", err)
	}
	logs := e.logs.String()
	entries := auditEntries(t, logs, "account_test_refused")
	if len(entries) != 1 || entries[0]["caller"] != "tests" || entries[0]["login"] != u.email || entries[0]["limit"] != "caller" || entries[0]["outcome"] != "rate_limited" {
		t.Errorf("account_test_refused entries = %v, want one naming caller tests, login %s, limit caller", entries, u.email)
	}
	if strings.Contains(logs, "guess-77b1") {
		t.Errorf("the log holds a password tried")
	}
}
