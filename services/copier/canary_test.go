package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/natstest"
	"imapcopy.dev/pkg/redistest"
	"imapcopy.dev/pkg/servicetest"
	"imapcopy.dev/pkg/syncstatus"
	"imapcopy.dev/pkg/taskseal"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// copierCanary is the password of every account of TestCopierSecretsNeverLeak (and
// the wrong password it sends). Its quote and backslash make its escaped forms (JSON,
// Go, IMAP quoted strings) differ from the raw one, and all are searched.
const copierCanary = `CANARY-c0p1er-"9d4e"\b7-pw`

// canaryForms are the ways the canary could come out: as is, escaped for JSON, Go
// and IMAP quoted strings, and in base64 (standard and URL alphabets) at each of the
// three alignments it may have inside a longer encoded string (AUTHENTICATE PLAIN
// sends base64 of "\x00login\x00password").
func canaryForms(s string) []string {
	q, _ := json.Marshal(s)
	forms := []string{s, string(q[1 : len(q)-1]), strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for pad := range 3 {
			b := enc.EncodeToString(append(make([]byte, pad), s...))
			// Drop the characters that mix in the bytes before or after the canary.
			skip := []int{0, 2, 3}[pad]
			forms = append(forms, b[skip:len(b)-4])
		}
	}
	return forms
}

// TestCopierSecretsNeverLeak: a real copier process (worker mode, debug logs) runs
// syncs whose accounts all have the canary password: one that succeeds (COMPLETED,
// with its report), one with a wrong destination password, one with a wrong source
// password, and one whose destination refuses mid-copy (over quota). Then the canary,
// in every form of canaryForms, is looked for in the copier's output (stdout and
// stderr), its /metrics, every Redis key and value, every file of the JetStream
// store, each final status, and every message of every destination mailbox (the
// report included): 0 hits. (pkg/syncapi TestSecretsNeverLeak is the api side.)
func TestCopierSecretsNeverLeak(t *testing.T) {
	ns, rs := natstest.Start(t), redistest.Start(t)
	key := taskseal.GenerateKey()
	keyFile := filepath.Join(t.TempDir(), "task.key")
	if err := os.WriteFile(keyFile, taskseal.FormatKeys(key), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := servicetest.FreeAddr(t)
	copier := servicetest.StartChild(t, "copier",
		childWorkerEnv+"=1",
		"IMAPCOPY_NATS_URL="+ns.ClientURL(),
		"IMAPCOPY_REDIS_URL="+rs.URL(),
		"IMAPCOPY_STORE=redis",
		"IMAPCOPY_TASK_KEY_FILE="+keyFile,
		"IMAPCOPY_ALLOW_NETWORKS=127.0.0.1",
		"IMAPCOPY_IMAP_CA_FILE="+caBundle(t),
		"IMAPCOPY_COPIER_CONCURRENCY=4",
		"IMAPCOPY_COPIER_CONNECTIONS=2",
		"IMAPCOPY_LOG_LEVEL=debug",
		"IMAPCOPY_ADMIN_ADDR="+admin,
	)
	store := syncstatus.NewRedis(rs.Client(t), syncstatus.RedisOptions{})
	js := ns.JetStream(t)
	withCanary := imaptest.WithPassword(copierCanary)

	type syncCase struct {
		name     string
		src, dst imapconn.Account
		secrets  *imapcopyv1.TaskSecrets
		want     func(imapcopyv1.SyncState) bool
	}
	completed := func(s imapcopyv1.SyncState) bool { return s == imapcopyv1.SyncState_SYNC_STATE_COMPLETED }
	failed := func(s imapcopyv1.SyncState) bool { return s == imapcopyv1.SyncState_SYNC_STATE_FAILED }
	refused := func(s imapcopyv1.SyncState) bool {
		return s == imapcopyv1.SyncState_SYNC_STATE_FAILED || s == imapcopyv1.SyncState_SYNC_STATE_COMPLETED_WITH_ERRORS
	}
	canary := &imapcopyv1.TaskSecrets{SourcePassword: copierCanary, DestinationPassword: copierCanary}
	syncs := []syncCase{
		{"ok", slash.AddUser(t, withCanary), dot.AddUser(t, withCanary), canary, completed},
		// The destination's real password is another: the canary is a wrong one.
		{"wrong-destination-password", slash.AddUser(t, withCanary), dot.AddUser(t), canary, failed},
		{"wrong-source-password", slash.AddUser(t), dot.AddUser(t, withCanary), canary, failed},
		// 40 messages of about 10 KB or more into 64 KB: refused mid-copy.
		{"over-quota", slash.AddUser(t, withCanary), dot.AddUser(t, withCanary, imaptest.WithQuota(64<<10)), canary, refused},
	}
	for i, s := range syncs {
		mb := imaptest.Generate(int64(40+i), imaptest.Spec{Count: 40, Folders: 2})
		if err := imaptest.Load(t.Context(), s.src, mb); err != nil {
			t.Fatal(err)
		}
		queueTask(t, store, js, key, &imapcopyv1.SyncTask{
			TaskId: "canary-" + s.name, SourceEmail: s.src.Login + "@source.test",
			Source: endpoint(s.src, s.src.Host, s.src.Port), Destination: endpoint(s.dst, s.dst.Host, s.dst.Port),
		}, s.secrets, stringer(copier.Logs))
	}

	var statuses []string
	for _, s := range syncs {
		source := s.src.Login + "@source.test"
		var st *imapcopyv1.SyncStatus
		waitUntil(t, "the "+s.name+" sync ended", func() (bool, string) {
			var err error
			st, err = store.Get(t.Context(), source)
			return err == nil && syncstatus.Terminal(st.GetState()), st.String()
		})
		if !s.want(st.GetState()) {
			t.Errorf("%s: final status %v (%s), not the expected end", s.name, st.GetState(), st.GetMessage())
		}
		t.Logf("%s: %v: %s", s.name, st.GetState(), st.GetMessage())
		statuses = append(statuses, prototext.Format(st))
	}
	if n := servicetest.Reports(t, syncs[0].dst); n != 1 {
		t.Errorf("the successful sync's destination holds %d reports, want 1", n)
	}

	forms := canaryForms(copierCanary)
	// The forms find the canary where it would hide: AUTHENTICATE PLAIN's base64 and
	// the escaped strings.
	for _, leak := range []string{
		base64.StdEncoding.EncodeToString([]byte("\x00" + syncs[0].src.Login + "\x00" + copierCanary)),
		base64.URLEncoding.EncodeToString([]byte("x" + copierCanary + "y")),
		base64.StdEncoding.EncodeToString([]byte("xy" + copierCanary)),
		string(must(json.Marshal(map[string]string{"password": copierCanary}))),
		prototext.Format(&imapcopyv1.TaskSecrets{SourcePassword: copierCanary}),
	} {
		if !slices.ContainsFunc(forms, func(f string) bool { return strings.Contains(leak, f) }) {
			t.Fatalf("no form of the canary is found in %q: the search would miss it", leak)
		}
	}
	searched := map[string]int{} // where → bytes searched
	check := func(where, what string, data []byte) {
		t.Helper()
		searched[where] += len(data)
		for _, f := range forms {
			if i := bytes.Index(data, []byte(f)); i >= 0 {
				t.Errorf("the canary (as %q) appears in %s: …%q…", f, what, data[max(i-80, 0):min(i+len(f)+20, len(data))])
			}
		}
	}

	// Statuses, and the copier's output (its process ends first: nothing more to come).
	for _, st := range statuses {
		check("statuses", "a final status", []byte(st))
	}
	code, metrics := servicetest.Get(t, "http://"+admin+"/metrics")
	if code != 200 || !strings.Contains(metrics, "imapcopy_") {
		t.Fatalf("/metrics = %d, without imapcopy's metrics: the check would prove nothing", code)
	}
	check("metrics", "the copier's /metrics", []byte(metrics))
	copier.Cmd.Process.Kill()
	<-copier.Exited
	logs := copier.Logs()
	for _, want := range []string{`"msg":"task_received"`, `"level":"DEBUG"`} {
		if !strings.Contains(logs, want) {
			t.Fatalf("the copier's output lacks %s: the check would prove nothing", want)
		}
	}
	check("copier output", "the copier's stdout and stderr", []byte(logs))

	// Every Redis key and value, whatever its type.
	rdb := rs.Client(t)
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		check("redis", "a Redis key", []byte(k))
		v, err := rdb.Dump(ctx, k).Bytes() // the value's serialized form, any type
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		check("redis", "the Redis value of "+k, v)
		if typ, _ := rdb.Type(ctx, k).Result(); typ == "string" {
			raw, _ := rdb.Get(ctx, k).Bytes() // DUMP may compress a long string
			check("redis", "the Redis value of "+k, raw)
		} else if typ == "hash" {
			fields, _ := rdb.HGetAll(ctx, k).Result()
			for f, v := range fields {
				check("redis", "a field of the Redis hash "+k, []byte(f+" "+v))
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}

	// Every file JetStream wrote (the sealed tasks, acknowledged or not).
	err := filepath.WalkDir(ns.StoreDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		check("jetstream", "JetStream file "+strings.TrimPrefix(path, ns.StoreDir), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Every message of every destination the canary opens (the report included).
	for _, s := range syncs {
		if s.secrets.GetDestinationPassword() != s.dst.Password {
			continue
		}
		folders, err := imaptest.ListFolders(t.Context(), s.dst)
		if err != nil {
			t.Fatal(err)
		}
		for name := range folders {
			msgs, err := imaptest.ReadFolder(t.Context(), s.dst, name)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				check("destination mail", s.name+"'s destination message in "+name, m.Raw)
			}
		}
	}

	for _, where := range []string{"statuses", "metrics", "copier output", "redis", "jetstream", "destination mail"} {
		if searched[where] == 0 {
			t.Errorf("nothing searched in %s: the check would prove nothing", where)
		}
	}
	t.Logf("searched for %d forms of the canary: %v (bytes)", len(forms), searched)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
