// Package taskseal owns the encryption of a sync task's secrets (passwords and OAuth2
// tokens) while the task waits on the queue.
//
// Guarantees:
//   - Sealed secrets are AES-256-GCM ciphertext with a fresh random 96-bit nonce per
//     seal; nothing secret is readable in the queue's storage.
//   - The associated data binds a sealed blob to the whole task it travels in: the
//     key id, the task id, the source address, both endpoints (provider, login, host,
//     port, security, certificate checking, connection cap), the options, the lock
//     token, the creation time and the caller. A blob copied into another task, a
//     task whose destination host or any other of those fields was changed, or a
//     blob altered in any bit, does not open (ErrOpen): the passwords go only where
//     the api sent them, and a sync stays its caller's.
//     A new SyncTask field that says where or how the secrets are used must be added
//     to associatedData in the same change (and copiers upgraded before apis). A
//     field added later is bound when it is set, appended after the others: a task
//     sealed before the field existed (unset) keeps its encoding and still opens,
//     while setting, changing or removing it in a task that had it does not open.
//   - Keys rotate: a Keyring seals with its current key and opens with any of its
//     keys, each blob naming the key that sealed it. Opening a blob whose key is not
//     in the ring fails with ErrUnknownKey and an error that names the key id.
//   - Keys never appear in a String, GoString, %v or slog rendering.
//
// # Key file
//
// A key file is text, one key per line, "keyid:base64key", where base64key is the
// standard base64 encoding (with padding) of 32 random bytes. The FIRST key is the
// current one, used to seal; all keys open. Blank lines and lines starting with "#"
// are ignored. Key ids are 1 to 64 characters of [A-Za-z0-9._-]. To rotate, put a new
// key on the first line and keep the old ones until the tasks sealed with them have
// left the queue. GenerateKey makes a key; EnsureKeyFile creates a file with one key
// on first start (standalone mode).
package taskseal

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Algorithm is the AEAD this package seals with, as recorded in SealedSecrets.algorithm.
const Algorithm = "AES-256-GCM"

// KeySize is the size of a key in bytes.
const KeySize = 32

const (
	nonceSize = 12
	maxIDLen  = 64
	// adPrefix separates this use of the keys from any other (domain separation).
	// v1 bound the task id only; a v1 blob does not open as v2 (ErrOpen).
	adPrefix = "imapcopy taskseal v2\x00"
)

var (
	// ErrUnknownKey: the sealed secrets name a key id that the keyring does not have.
	ErrUnknownKey = errors.New("unknown key id")
	// ErrOpen: the sealed secrets do not authenticate (wrong task id, tampered data,
	// or a different key under the same id).
	ErrOpen = errors.New("sealed secrets do not authenticate: another task, a task altered since it was sealed, tampered data, or a different key under this key id")
)

// Key is one named key. Its String and LogValue never show the secret.
type Key struct {
	ID     string
	Secret []byte // KeySize bytes
}

// String shows the key id only.
func (k Key) String() string { return "taskseal.Key{ID: " + k.ID + ", Secret: REDACTED}" }

// GoString shows the key id only (for %#v).
func (k Key) GoString() string { return k.String() }

// LogValue shows the key id only.
func (k Key) LogValue() slog.Value { return slog.GroupValue(slog.String("id", k.ID)) }

// GenerateKey returns a new random key with an id made of today's date (UTC) and
// random hex, such as "k20260131-9f2c81d4".
func GenerateKey() Key {
	secret := make([]byte, KeySize)
	rand.Read(secret) // never fails (crypto/rand since Go 1.24)
	suffix := make([]byte, 4)
	rand.Read(suffix)
	return Key{
		ID:     "k" + time.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(suffix),
		Secret: secret,
	}
}

// Keyring holds named keys: the current one seals, all of them open. It is safe for
// concurrent use.
type Keyring struct {
	current string
	ids     []string // in file order, current first
	aeads   map[string]cipher.AEAD
	macKeys map[string][]byte // per key id, for Tag (derived: never the sealing key itself)
}

// NewKeyring builds a keyring from keys; keys[0] is the current key.
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("keyring: no key")
	}
	kr := &Keyring{current: keys[0].ID, aeads: make(map[string]cipher.AEAD, len(keys)), macKeys: make(map[string][]byte, len(keys))}
	for _, k := range keys {
		if err := validID(k.ID); err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		if _, dup := kr.aeads[k.ID]; dup {
			return nil, fmt.Errorf("keyring: key id %q appears twice", k.ID)
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("keyring: key %q is %d bytes, want %d", k.ID, len(k.Secret), KeySize)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q: %w", k.ID, err)
		}
		kr.aeads[k.ID] = aead
		derive := hmac.New(sha256.New, k.Secret)
		derive.Write([]byte(macKeyLabel))
		kr.macKeys[k.ID] = derive.Sum(nil)
		kr.ids = append(kr.ids, k.ID)
	}
	return kr, nil
}

func validID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("key id %q: want 1 to %d characters", id, maxIDLen)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("key id %q: only letters, digits, '.', '_' and '-' are allowed", id)
		}
	}
	return nil
}

// CurrentKeyID is the id of the key that seals.
func (kr *Keyring) CurrentKeyID() string { return kr.current }

// KeyIDs lists the key ids, the current one first.
func (kr *Keyring) KeyIDs() []string { return append([]string(nil), kr.ids...) }

// String shows the key ids only.
func (kr *Keyring) String() string {
	return fmt.Sprintf("taskseal.Keyring{current: %s, keys: %s}", kr.current, strings.Join(kr.ids, ","))
}

// GoString shows the key ids only (for %#v).
func (kr *Keyring) GoString() string { return kr.String() }

// LogValue shows the key ids only.
func (kr *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("current", kr.current), slog.Any("keys", kr.ids))
}

// associatedData is what a sealed blob is bound to: every field of the task that says
// where and how its secrets are used (see the package documentation), each
// length-prefixed so that no two tasks share an encoding.
func associatedData(keyID string, task *imapcopyv1.SyncTask) ([]byte, error) {
	opts, err := proto.MarshalOptions{Deterministic: true}.Marshal(task.GetOptions())
	if err != nil {
		return nil, fmt.Errorf("encode the options: %w", err)
	}
	ad := []byte(adPrefix)
	field := func(b []byte) {
		ad = binary.AppendUvarint(ad, uint64(len(b)))
		ad = append(ad, b...)
	}
	str := func(s string) { field([]byte(s)) }
	num := func(n uint64) { ad = binary.AppendUvarint(ad, n) }
	str(keyID)
	str(task.GetTaskId())
	str(task.GetSourceEmail())
	for _, e := range []*imapcopyv1.Endpoint{task.GetSource(), task.GetDestination()} {
		str(e.GetProvider())
		str(e.GetLogin())
		str(e.GetHost())
		num(uint64(e.GetPort()))
		num(uint64(e.GetSecurity()))
		if e.GetInsecureSkipVerify() {
			num(1)
		} else {
			num(0)
		}
		num(uint64(e.GetMaxConnections()))
	}
	field(opts)
	str(task.GetLockToken())
	num(uint64(task.GetCreatedAt().GetSeconds()))
	num(uint64(task.GetCreatedAt().GetNanos()))
	// Fields added since v2, each appended only when set: a v2 task sealed without
	// them keeps its encoding, and the length prefixes keep every encoding unique.
	if c := task.GetCaller(); c != "" {
		str("caller")
		str(c)
	}
	return ad, nil
}

// Seal encrypts secrets with the current key, bound to task (see associatedData):
// set the task's every other field before sealing, and its Sealed field to the result.
func (kr *Keyring) Seal(task *imapcopyv1.SyncTask, secrets *imapcopyv1.TaskSecrets) (*imapcopyv1.SealedSecrets, error) {
	taskID := task.GetTaskId()
	if taskID == "" {
		return nil, errors.New("seal task secrets: empty task id")
	}
	ad, err := associatedData(kr.current, task)
	if err != nil {
		return nil, fmt.Errorf("seal secrets of task %q: %w", taskID, err)
	}
	plain, err := proto.Marshal(secrets)
	if err != nil {
		return nil, fmt.Errorf("seal secrets of task %q: %w", taskID, err)
	}
	defer clear(plain)
	nonce := make([]byte, nonceSize)
	rand.Read(nonce)
	aead := kr.aeads[kr.current]
	return &imapcopyv1.SealedSecrets{
		KeyId:      kr.current,
		Algorithm:  Algorithm,
		Nonce:      nonce,
		Ciphertext: aead.Seal(nil, nonce, plain, ad),
	}, nil
}

// Open decrypts the sealed secrets of task. It fails with ErrUnknownKey when the key
// that sealed them is not in the ring, and with ErrOpen when they do not authenticate
// for this task as it is (see associatedData).
func (kr *Keyring) Open(task *imapcopyv1.SyncTask) (*imapcopyv1.TaskSecrets, error) {
	taskID, sealed := task.GetTaskId(), task.GetSealed()
	if sealed == nil {
		return nil, fmt.Errorf("open secrets of task %q: no sealed secrets", taskID)
	}
	keyID := sealed.GetKeyId()
	if alg := sealed.GetAlgorithm(); alg != Algorithm {
		return nil, fmt.Errorf("open secrets of task %q: algorithm %q, want %q", taskID, alg, Algorithm)
	}
	aead, ok := kr.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("open secrets of task %q: key id %q is not in the keyring (it has %s): %w",
			taskID, keyID, strings.Join(kr.ids, ", "), ErrUnknownKey)
	}
	if len(sealed.GetNonce()) != nonceSize {
		return nil, fmt.Errorf("open secrets of task %q: nonce is %d bytes, want %d: %w", taskID, len(sealed.GetNonce()), nonceSize, ErrOpen)
	}
	ad, err := associatedData(keyID, task)
	if err != nil {
		return nil, fmt.Errorf("open secrets of task %q: %w", taskID, err)
	}
	plain, err := aead.Open(nil, sealed.GetNonce(), sealed.GetCiphertext(), ad)
	if err != nil {
		return nil, fmt.Errorf("open secrets of task %q with key %q: %w", taskID, keyID, ErrOpen)
	}
	defer clear(plain)
	var secrets imapcopyv1.TaskSecrets
	if err := proto.Unmarshal(plain, &secrets); err != nil {
		return nil, fmt.Errorf("open secrets of task %q: decode: %w", taskID, err)
	}
	return &secrets, nil
}

// macKeyLabel derives the keys of Tag from the sealing keys (domain separation).
const macKeyLabel = "imapcopy taskseal tag key v1"

// Tag authenticates msg for purpose with the current key: a short unguessable
// string that only a holder of the keyring can make (the api's cancel secrets are
// Tag("cancel", task id)). VerifyTag accepts it under any key of the ring, so a
// rotation keeps older tags valid while their key stays in the file.
func (kr *Keyring) Tag(purpose, msg string) string {
	return base64.RawURLEncoding.EncodeToString(kr.tag(kr.current, purpose, msg))
}

// VerifyTag reports whether tag is Tag(purpose, msg) under one of the ring's keys.
func (kr *Keyring) VerifyTag(purpose, msg, tag string) bool {
	got, err := base64.RawURLEncoding.DecodeString(tag)
	if err != nil {
		return false
	}
	ok := false
	for _, id := range kr.ids {
		if hmac.Equal(got, kr.tag(id, purpose, msg)) {
			ok = true
		}
	}
	return ok
}

func (kr *Keyring) tag(keyID, purpose, msg string) []byte {
	m := hmac.New(sha256.New, kr.macKeys[keyID])
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(msg))
	return m.Sum(nil)[:24]
}

// ParseKeyring reads a key file's contents (see the package documentation).
func ParseKeyring(data []byte) (*Keyring, error) {
	var keys []Key
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, b64, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("key file line %d: want keyid:base64key", n)
		}
		secret, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			// Not the decoder's error: it may quote a piece of the key.
			return nil, fmt.Errorf("key file line %d (key %q): the key is not valid standard base64", n, strings.TrimSpace(id))
		}
		keys = append(keys, Key{ID: strings.TrimSpace(id), Secret: secret})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("key file: no key (want lines keyid:base64key, the first one current)")
	}
	return NewKeyring(keys...)
}

// LoadKeyring reads and parses a key file.
func LoadKeyring(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer clear(data)
	kr, err := ParseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kr, nil
}

// FormatKeys renders keys in the key file format, keys[0] first (the current key).
func FormatKeys(keys ...Key) []byte {
	var b bytes.Buffer
	b.WriteString("# imapcopy task-seal keys: one keyid:base64key per line.\n")
	b.WriteString("# The first key seals; every key opens. To rotate, add a new first line.\n")
	for _, k := range keys {
		b.WriteString(k.ID)
		b.WriteByte(':')
		b.WriteString(base64.StdEncoding.EncodeToString(k.Secret))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// EnsureKeyFile loads the key file at path, or, when there is none, creates it (mode
// 0600) with one generated key. created reports whether it made the file. Two
// processes racing to create it end up with the same keys.
func EnsureKeyFile(path string) (kr *Keyring, created bool, err error) {
	kr, err = LoadKeyring(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return kr, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".taskseal-*")
	if err != nil {
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	data := FormatKeys(GenerateKey())
	defer clear(data)
	_, err = tmp.Write(data) // CreateTemp makes the file 0600
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("write key file: %w", err)
	}
	// Link fails when path exists: create-if-absent, never a half-written file.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			kr, err := LoadKeyring(path)
			return kr, false, err
		}
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	kr, err = LoadKeyring(path)
	return kr, err == nil, err
}
