package syncapi_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// canary is a password sent through every call, that must never come out anywhere.
const canary = "CANARY-7f3e9a41-pw"

// TestSecretsNeverLeak sends the canary (and the accounts' real passwords) through
// every call, failing ones included, then looks for them in every answer and error,
// the logs, the metrics, every Redis key and value, the status, and the raw bytes
// JetStream stored on disk.
func TestSecretsNeverLeak(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			src, dst := newUser(t), newUser(t)
			secrets := []string{canary, src.acct.Password, dst.acct.Password}
			var seen []string // answers and errors, as text
			record := func(m proto.Message, err error) {
				if err != nil {
					seen = append(seen, err.Error())
				}
				if m != nil {
					seen = append(seen, prototext.Format(m))
				}
			}
			srcRole := imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE
			withCanary := func(u user, change func(*imapcopyv1.Account)) *imapcopyv1.Account {
				a := u.withPassword(canary)
				if change != nil {
					change(a)
				}
				return a
			}

			// Account tests: a failed login, bad input of every kind, an OAuth token.
			for _, a := range []*imapcopyv1.Account{
				withCanary(src, nil),
				withCanary(src, func(a *imapcopyv1.Account) { a.Login = "not-an-address" }),
				withCanary(src, func(a *imapcopyv1.Account) { a.Password = canary + "\r\nA1 LOGOUT" }),
				withCanary(src, func(a *imapcopyv1.Account) { a.Password = strings.Repeat(canary, 100) }),
				withCanary(src, func(a *imapcopyv1.Account) { a.Provider = "gmail" }),
				withCanary(src, func(a *imapcopyv1.Account) { a.Provider = "nope" }),
				withCanary(src, func(a *imapcopyv1.Account) { a.Host = "10.0.0.1" }),
				withCanary(src, func(a *imapcopyv1.Account) { a.Password = ""; a.Oauth2AccessToken = canary }),
				withCanary(src, func(a *imapcopyv1.Account) { a.Security = imapcopyv1.Security_SECURITY_PLAINTEXT }),
			} {
				resp, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: a, Role: srcRole})
				record(resp, err)
			}
			resp, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: src.proto(), Role: srcRole})
			record(resp, err)

			// Starts: failed logins on either side, bad input, then a good one.
			for _, req := range []*imapcopyv1.StartSyncRequest{
				{Source: withCanary(src, nil), Destination: dst.proto()},
				{Source: src.proto(), Destination: withCanary(dst, nil)},
				{Source: withCanary(src, func(a *imapcopyv1.Account) { a.Login = "x" }), Destination: dst.proto()},
				{Source: src.proto(), Destination: withCanary(dst, func(a *imapcopyv1.Account) { a.Password = canary + "\x00" })},
				{Source: withCanary(src, func(a *imapcopyv1.Account) { a.Host = "169.254.169.254" }), Destination: dst.proto()},
			} {
				resp, err := e.client.StartSync(e.ctx(), req)
				record(resp, err)
			}
			start, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()})
			if err != nil {
				t.Fatalf("StartSync: %v", err)
			}
			record(start, nil)
			again, err := e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: dst.proto()})
			record(again, err)

			// Status calls, and the canary typed where an address belongs.
			for _, addr := range []string{src.email, canary} {
				g, err := e.client.GetSyncStatus(e.ctx(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: addr})
				record(g, err)
				c, err := e.client.CancelSync(e.ctx(), &imapcopyv1.CancelSyncRequest{SourceEmail: addr})
				record(c, err)
			}
			e.finish(e.queuedTask(start.GetTaskId()), imapcopyv1.SyncState_SYNC_STATE_FAILED)
			for _, addr := range []string{src.email, canary} {
				stream, err := e.client.WatchSyncStatus(e.ctx(), &imapcopyv1.WatchSyncStatusRequest{SourceEmail: addr})
				for err == nil {
					var m *imapcopyv1.WatchSyncStatusResponse
					m, err = stream.Recv()
					record(m, err)
				}
			}
			if len(seen) < 20 {
				t.Fatalf("recorded %d answers, want every call's", len(seen))
			}

			check := func(where string, data []byte) {
				t.Helper()
				for _, s := range secrets {
					if bytes.Contains(data, []byte(s)) {
						i := bytes.Index(data, []byte(s))
						t.Errorf("a password appears in %s: …%q…", where, data[max(i-80, 0):min(i+len(s)+20, len(data))])
					}
				}
			}
			for _, s := range seen {
				check("an answer or error", []byte(s))
			}

			logs := e.logs.String()
			if !strings.Contains(logs, `"msg":"sync_queued"`) || !strings.Contains(logs, `"msg":"account_tested"`) {
				t.Fatalf("the logs lack sync_queued or account_tested; the check would prove nothing:\n%s", logs)
			}
			check("the logs", []byte(logs))

			families, err := e.metrics.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var metrics bytes.Buffer
			for _, mf := range families {
				expfmt.MetricFamilyToText(&metrics, mf)
			}
			check("the metrics", metrics.Bytes())

			// Every Redis key and value (all tests' keys: none may hold a secret).
			rdb := redisSrv.Client(t)
			ctx := context.Background()
			keys := 0
			iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
			for iter.Next(ctx) {
				key := iter.Val()
				keys++
				check("a Redis key", []byte(key))
				switch typ, _ := rdb.Type(ctx, key).Result(); typ {
				case "string":
					v, err := rdb.Get(ctx, key).Bytes()
					if err == nil {
						check("the Redis value of "+key, v)
					}
				case "hash": // the list index
					fields, err := rdb.HGetAll(ctx, key).Result()
					if err != nil {
						t.Fatalf("HGETALL %s: %v", key, err)
					}
					for f, v := range fields {
						check("a field of the Redis hash "+key, []byte(f+" "+v))
					}
				default:
					t.Errorf("Redis key %s has type %s; this test reads strings and hashes only", key, typ)
				}
			}
			if err := iter.Err(); err != nil {
				t.Fatalf("scan: %v", err)
			}
			if kind == "redis" && keys == 0 {
				t.Errorf("no Redis key at all: the check would prove nothing")
			}

			// The raw task on the queue, and every file JetStream wrote.
			for _, m := range e.tasks() {
				check("a raw queued message", m.Data)
			}
			files := 0
			filepath.WalkDir(e.nats.StoreDir, func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				defer f.Close()
				data, err := io.ReadAll(f)
				if err != nil {
					return err
				}
				files++
				check("JetStream file "+strings.TrimPrefix(path, e.nats.StoreDir), data)
				return nil
			})
			if files == 0 {
				t.Errorf("JetStream wrote no file under %s: the check would prove nothing", e.nats.StoreDir)
			}
		})
	}
}
