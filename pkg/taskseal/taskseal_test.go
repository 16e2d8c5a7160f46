package taskseal_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"imapcopy.dev/pkg/taskseal"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

const canary = "Canary-P4ssw0rd-ZQXJ"

func secrets() *imapcopyv1.TaskSecrets {
	return &imapcopyv1.TaskSecrets{
		SourcePassword:               canary,
		DestinationPassword:          "dest-" + canary,
		DestinationOauth2AccessToken: "ya29.token-" + canary,
		SourceOauth2AccessToken:      "",
	}
}

// task is a queued task as the api makes it, before its secrets are sealed.
func task(id string) *imapcopyv1.SyncTask {
	return &imapcopyv1.SyncTask{
		TaskId:      id,
		SourceEmail: "alice@old.example",
		Source: &imapcopyv1.Endpoint{Provider: "gmail", Login: "alice@old.example", Host: "imap.old.example", Port: 993,
			Security: imapcopyv1.Security_SECURITY_TLS, MaxConnections: 15},
		Destination: &imapcopyv1.Endpoint{Provider: "other", Login: "alice@new.example", Host: "imap.new.example", Port: 143,
			Security: imapcopyv1.Security_SECURITY_STARTTLS},
		Options:   &imapcopyv1.SyncOptions{ExcludeFolders: []string{"Junk"}},
		LockToken: "lock-token-1",
		CreatedAt: &timestamppb.Timestamp{Seconds: 1_800_000_000, Nanos: 5},
	}
}

// withSealed returns t carrying sealed, as it travels on the queue.
func withSealed(t *imapcopyv1.SyncTask, sealed *imapcopyv1.SealedSecrets) *imapcopyv1.SyncTask {
	t.Sealed = sealed
	return t
}

func keyring(t *testing.T, keys ...taskseal.Key) *taskseal.Keyring {
	t.Helper()
	kr, err := taskseal.NewKeyring(keys...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return kr
}

func TestSealOpenRoundTrip(t *testing.T) {
	kr := keyring(t, taskseal.GenerateKey())
	sealed, err := kr.Seal(task("task-1"), secrets())
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if sealed.GetKeyId() != kr.CurrentKeyID() || sealed.GetAlgorithm() != taskseal.Algorithm || len(sealed.GetNonce()) != 12 {
		t.Errorf("sealed header = key %q alg %q nonce %d bytes, want key %q alg %q nonce 12 bytes",
			sealed.GetKeyId(), sealed.GetAlgorithm(), len(sealed.GetNonce()), kr.CurrentKeyID(), taskseal.Algorithm)
	}
	got, err := kr.Open(withSealed(task("task-1"), sealed))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !proto.Equal(got, secrets()) {
		t.Errorf("Open(Seal(s)) = %v, want the original secrets", got)
	}
}

func TestSealedHoldsNoPlaintext(t *testing.T) {
	kr := keyring(t, taskseal.GenerateKey())
	sealed, err := kr.Seal(task("task-1"), secrets())
	if err != nil {
		t.Fatal(err)
	}
	queued := withSealed(task("task-1"), sealed)
	wire, err := proto.Marshal(queued)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"ciphertext":           sealed.GetCiphertext(),
		"marshalled task":      wire,
		"task String()":        []byte(queued.String()),
		"sealed %v":            []byte(fmt.Sprintf("%v", sealed)),
		"base64 of ciphertext": []byte(base64.StdEncoding.EncodeToString(sealed.GetCiphertext())),
	} {
		if bytes.Contains(b, []byte(canary)) || bytes.Contains(b, []byte("Canary")) {
			t.Errorf("%s contains the canary password", name)
		}
	}
}

func TestNoncesDiffer(t *testing.T) {
	kr := keyring(t, taskseal.GenerateKey())
	a, _ := kr.Seal(task("t"), secrets())
	b, _ := kr.Seal(task("t"), secrets())
	if bytes.Equal(a.GetNonce(), b.GetNonce()) || bytes.Equal(a.GetCiphertext(), b.GetCiphertext()) {
		t.Fatal("two seals of the same secrets share a nonce or a ciphertext")
	}
}

func TestOpenRefuses(t *testing.T) {
	k1, k2 := taskseal.GenerateKey(), taskseal.GenerateKey()
	kr := keyring(t, k1, k2)
	// Another key under k1's id: opens nothing sealed with the real k1.
	impostor := keyring(t, taskseal.Key{ID: k1.ID, Secret: k2.Secret})

	good, err := kr.Seal(task("task-1"), secrets())
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(s *imapcopyv1.SealedSecrets)) *imapcopyv1.SealedSecrets {
		s := proto.Clone(good).(*imapcopyv1.SealedSecrets)
		f(s)
		return s
	}
	tests := []struct {
		name    string
		kr      *taskseal.Keyring
		taskID  string
		sealed  *imapcopyv1.SealedSecrets
		wantErr error
		wantIn  string // in the error message
	}{
		{"wrong task id", kr, "task-2", good, taskseal.ErrOpen, `"task-2"`},
		{"tampered ciphertext", kr, "task-1", mutate(func(s *imapcopyv1.SealedSecrets) { s.Ciphertext[0] ^= 1 }), taskseal.ErrOpen, k1.ID},
		{"tampered tag", kr, "task-1", mutate(func(s *imapcopyv1.SealedSecrets) { s.Ciphertext[len(s.Ciphertext)-1] ^= 0x80 }), taskseal.ErrOpen, k1.ID},
		{"tampered nonce", kr, "task-1", mutate(func(s *imapcopyv1.SealedSecrets) { s.Nonce[3] ^= 1 }), taskseal.ErrOpen, k1.ID},
		{"short nonce", kr, "task-1", mutate(func(s *imapcopyv1.SealedSecrets) { s.Nonce = s.Nonce[:8] }), taskseal.ErrOpen, "nonce"},
		{"key id swapped to another key in the ring", kr, "task-1", mutate(func(s *imapcopyv1.SealedSecrets) { s.KeyId = k2.ID }), taskseal.ErrOpen, k2.ID},
		{"different key under the same id", impostor, "task-1", good, taskseal.ErrOpen, k1.ID},
		{"unknown key id", kr, "task-1", mutate(func(s *imapcopyv1.SealedSecrets) { s.KeyId = "k-retired-2019" }), taskseal.ErrUnknownKey, `"k-retired-2019"`},
		{"other algorithm", kr, "task-1", mutate(func(s *imapcopyv1.SealedSecrets) { s.Algorithm = "XChaCha20-Poly1305" }), nil, "XChaCha20-Poly1305"},
		{"nil", kr, "task-1", nil, nil, "no sealed secrets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.kr.Open(withSealed(task(tt.taskID), tt.sealed))
			if err == nil {
				t.Fatalf("Open = %v, nil; want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Open error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("Open error = %q, want it to mention %s", err, tt.wantIn)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("Open error contains the canary: %q", err)
			}
		})
	}
}

// TestOpenRefusesAlteredTask: the secrets are bound to where they go. A task
// republished with any field that says where or how they are used changed (another
// destination host, another source address...) does not open.
func TestOpenRefusesAlteredTask(t *testing.T) {
	kr := keyring(t, taskseal.GenerateKey())
	good := task("task-1")
	good.Caller = "alice"
	sealed, err := kr.Seal(good, secrets())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(withSealed(proto.Clone(good).(*imapcopyv1.SyncTask), sealed)); err != nil {
		t.Fatalf("Open of the task as sealed: %v", err)
	}
	for name, alter := range map[string]func(*imapcopyv1.SyncTask){
		"destination host":     func(t *imapcopyv1.SyncTask) { t.Destination.Host = "listener.attacker.example" },
		"destination port":     func(t *imapcopyv1.SyncTask) { t.Destination.Port = 1993 },
		"destination login":    func(t *imapcopyv1.SyncTask) { t.Destination.Login = "mallory@new.example" },
		"destination security": func(t *imapcopyv1.SyncTask) { t.Destination.Security = imapcopyv1.Security_SECURITY_PLAINTEXT },
		"source certificate":   func(t *imapcopyv1.SyncTask) { t.Source.InsecureSkipVerify = true },
		"source provider":      func(t *imapcopyv1.SyncTask) { t.Source.Provider = "other" },
		"source host":          func(t *imapcopyv1.SyncTask) { t.Source.Host = "imap.attacker.example" },
		"source connections":   func(t *imapcopyv1.SyncTask) { t.Source.MaxConnections = 50 },
		"source address":       func(t *imapcopyv1.SyncTask) { t.SourceEmail = "bob@old.example" },
		"options":              func(t *imapcopyv1.SyncTask) { t.Options.IncludeFolders = []string{"Archive"} },
		"no options":           func(t *imapcopyv1.SyncTask) { t.Options = nil },
		"lock token":           func(t *imapcopyv1.SyncTask) { t.LockToken = "another-token" },
		"creation time":        func(t *imapcopyv1.SyncTask) { t.CreatedAt.Seconds++ },
		// Whoever may read and cancel the sync once its status is written afresh.
		"caller":    func(t *imapcopyv1.SyncTask) { t.Caller = "bob" },
		"no caller": func(t *imapcopyv1.SyncTask) { t.Caller = "" },
	} {
		altered := proto.Clone(good).(*imapcopyv1.SyncTask)
		alter(altered)
		if got, err := kr.Open(withSealed(altered, sealed)); !errors.Is(err, taskseal.ErrOpen) {
			t.Errorf("%s changed: Open = %v, %v; want ErrOpen", name, got, err)
		}
	}
}

// TestOpenTaskSealedBeforeTheCaller: a task sealed before SyncTask had its caller
// (by an api not yet upgraded, waiting in the queue during a rollout) still opens:
// the caller is bound only when set. The blob below was sealed by that code. Given
// a caller, the same task does not open.
func TestOpenTaskSealedBeforeTheCaller(t *testing.T) {
	key := taskseal.Key{ID: "k-v2", Secret: make([]byte, taskseal.KeySize)}
	for i := range key.Secret {
		key.Secret[i] = byte(i)
	}
	kr := keyring(t, key)
	sealed := &imapcopyv1.SealedSecrets{
		KeyId:      "k-v2",
		Algorithm:  taskseal.Algorithm,
		Nonce:      unhex(t, "c1da41833cd156c465e023ca"),
		Ciphertext: unhex(t, "4c30705f1cbdba0c766524553f67a551858a53c1b00d63d53b300716937108809baac537614cba95a929f654bb20e25e5e47134c0dd78ee5a5acdb7e9004b2865389e19d4972a1c403d556dceaf5eadf6657d3ad8f139d9ac602f21b286df85f8063"),
	}
	got, err := kr.Open(withSealed(task("task-v2"), sealed))
	if err != nil {
		t.Fatalf("Open of a task sealed without a caller: %v", err)
	}
	if !proto.Equal(got, secrets()) {
		t.Errorf("Open = %v, want the original secrets", got)
	}
	withCaller := task("task-v2")
	withCaller.Caller = "alice"
	if got, err := kr.Open(withSealed(withCaller, sealed)); !errors.Is(err, taskseal.ErrOpen) {
		t.Errorf("caller added to a task sealed without one: Open = %v, %v; want ErrOpen", got, err)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealRefusesEmptyTaskID(t *testing.T) {
	kr := keyring(t, taskseal.GenerateKey())
	if _, err := kr.Seal(task(""), secrets()); err == nil {
		t.Fatal(`Seal("") succeeded, want an error`)
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := taskseal.GenerateKey(), taskseal.GenerateKey()
	before := keyring(t, oldKey)
	queued, err := before.Seal(task("queued-task"), secrets())
	if err != nil {
		t.Fatal(err)
	}

	after := keyring(t, newKey, oldKey) // new key first: it seals from now on
	if got := after.CurrentKeyID(); got != newKey.ID {
		t.Fatalf("CurrentKeyID = %q, want %q", got, newKey.ID)
	}
	if _, err := after.Open(withSealed(task("queued-task"), queued)); err != nil {
		t.Fatalf("opening a task sealed before the rotation: %v", err)
	}
	fresh, err := after.Seal(task("new-task"), secrets())
	if err != nil {
		t.Fatal(err)
	}
	if fresh.GetKeyId() != newKey.ID {
		t.Errorf("sealed with %q, want the new current key %q", fresh.GetKeyId(), newKey.ID)
	}
	// A copier not yet given the new key says which key it lacks.
	_, err = before.Open(withSealed(task("new-task"), fresh))
	if !errors.Is(err, taskseal.ErrUnknownKey) || !strings.Contains(err.Error(), newKey.ID) {
		t.Errorf("old keyring opening a new task: err = %v, want ErrUnknownKey naming %q", err, newKey.ID)
	}
}

func TestParseKeyring(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, n)) }
	k := b64(32)
	tests := []struct {
		name     string
		file     string
		wantIDs  []string // nil: want an error
		errNotIn string   // the error must not quote this (key material)
	}{
		{"one key", "k1:" + k + "\n", []string{"k1"}, ""},
		{"first is current, comments and blanks", "# keys\n\n  new.2026-01_a : " + k + "  \nold:" + k + "\n", []string{"new.2026-01_a", "old"}, ""},
		{"no trailing newline", "k1:" + k, []string{"k1"}, ""},
		{"empty", "", nil, ""},
		{"only comments", "# nothing\n", nil, ""},
		{"missing colon", "k1" + k + "\n", nil, k},
		{"bad base64", "k1:" + k[:20] + "!!" + k[22:] + "\n", nil, k[:20]},
		{"short key", "k1:" + b64(16) + "\n", nil, ""},
		{"duplicate id", "k1:" + k + "\nk1:" + k + "\n", nil, ""},
		{"bad id", "k 1:" + k + "\n", nil, ""},
		{"empty id", ":" + k + "\n", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := taskseal.ParseKeyring([]byte(tt.file))
			if tt.wantIDs == nil {
				if err == nil {
					t.Fatalf("ParseKeyring = %v, want an error", kr)
				}
				if tt.errNotIn != "" && strings.Contains(err.Error(), tt.errNotIn) {
					t.Errorf("error %q quotes key material", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeyring: %v", err)
			}
			if got := kr.KeyIDs(); strings.Join(got, ",") != strings.Join(tt.wantIDs, ",") {
				t.Errorf("KeyIDs = %q, want %q", got, tt.wantIDs)
			}
			if got := kr.CurrentKeyID(); got != tt.wantIDs[0] {
				t.Errorf("CurrentKeyID = %q, want %q", got, tt.wantIDs[0])
			}
		})
	}
}

func TestFormatParseRoundTrip(t *testing.T) {
	k1, k2 := taskseal.GenerateKey(), taskseal.GenerateKey()
	if k1.ID == k2.ID {
		t.Fatalf("two generated keys share the id %q", k1.ID)
	}
	kr, err := taskseal.ParseKeyring(taskseal.FormatKeys(k1, k2))
	if err != nil {
		t.Fatalf("ParseKeyring(FormatKeys): %v", err)
	}
	sealed, err := keyring(t, k2).Seal(task("t"), secrets())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(withSealed(task("t"), sealed)); err != nil {
		t.Errorf("keyring parsed from FormatKeys does not open what k2 sealed: %v", err)
	}
	if kr.CurrentKeyID() != k1.ID {
		t.Errorf("CurrentKeyID = %q, want %q", kr.CurrentKeyID(), k1.ID)
	}
}

func TestEnsureKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "task-keys")
	kr1, created, err := taskseal.EnsureKeyFile(path)
	if err != nil || !created {
		t.Fatalf("EnsureKeyFile on a new path = created %v, err %v; want true, nil", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %v, want 0600", got)
	}
	kr2, created, err := taskseal.EnsureKeyFile(path)
	if err != nil || created {
		t.Fatalf("EnsureKeyFile on an existing file = created %v, err %v; want false, nil", created, err)
	}
	sealed, err := kr1.Seal(task("t"), secrets())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr2.Open(withSealed(task("t"), sealed)); err != nil {
		t.Errorf("the reloaded keyring does not open what the first sealed: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("key dir holds %d entries, want only the key file (no temp file left)", len(entries))
	}
}

func TestEnsureKeyFileRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "task-keys")
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			kr, _, err := taskseal.EnsureKeyFile(path)
			if err != nil {
				t.Errorf("EnsureKeyFile: %v", err)
				return
			}
			ids[i] = kr.CurrentKeyID()
		})
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if ids[i] != ids[0] {
			t.Fatalf("racing EnsureKeyFile calls got different keys: %q", ids)
		}
	}
}

func TestKeysNeverPrinted(t *testing.T) {
	k := taskseal.GenerateKey()
	kr := keyring(t, k)
	secretB64 := base64.StdEncoding.EncodeToString(k.Secret)
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("loaded", "keyring", kr, "key", k)
	for _, s := range []string{
		fmt.Sprintf("%v %+v %#v %s", kr, kr, kr, kr),
		fmt.Sprintf("%v %+v %#v %s", k, k, k, k),
		logBuf.String(),
	} {
		if !strings.Contains(s, k.ID) {
			t.Errorf("rendering %q does not show the key id", s)
		}
		if strings.Contains(s, secretB64) || strings.Contains(s, fmt.Sprint(k.Secret)) || strings.Contains(s, fmt.Sprintf("%x", k.Secret)) {
			t.Errorf("rendering %q shows the key", s)
		}
	}
}

// TestTag: a tag verifies for its purpose and message only, under any key of the
// ring (rotation), and not under a ring without its key.
func TestTag(t *testing.T) {
	old, cur := taskseal.GenerateKey(), taskseal.GenerateKey()
	before, err := taskseal.NewKeyring(old)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := taskseal.NewKeyring(cur, old)
	if err != nil {
		t.Fatal(err)
	}
	other, err := taskseal.NewKeyring(taskseal.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	tag := before.Tag("cancel", "task-1")
	if len(tag) < 32 {
		t.Errorf("tag %q is short", tag)
	}
	for _, c := range []struct {
		name              string
		kr                *taskseal.Keyring
		purpose, msg, tag string
		want              bool
	}{
		{"same ring", before, "cancel", "task-1", tag, true},
		{"after a rotation", rotated, "cancel", "task-1", tag, true},
		{"another task", before, "cancel", "task-2", tag, false},
		{"another purpose", before, "retry", "task-1", tag, false},
		{"another ring", other, "cancel", "task-1", tag, false},
		{"empty", before, "cancel", "task-1", "", false},
		{"not base64", before, "cancel", "task-1", "!!", false},
		{"the rotated ring's own tag", rotated, "cancel", "task-1", rotated.Tag("cancel", "task-1"), true},
	} {
		if got := c.kr.VerifyTag(c.purpose, c.msg, c.tag); got != c.want {
			t.Errorf("%s: VerifyTag = %v, want %v", c.name, got, c.want)
		}
	}
	if rotated.Tag("cancel", "task-1") == tag {
		t.Errorf("the rotated ring tags with the old key")
	}
}
