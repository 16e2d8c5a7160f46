package imaptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// upper passes the bytes written to it on to w in upper case (ASCII letters only).
type upper struct{ w io.Writer }

func (u upper) Write(p []byte) (int, error) { return u.w.Write(asciiUpper(p)) }

func asciiUpper(p []byte) []byte {
	out := bytes.Clone(p)
	for i, b := range out {
		if 'a' <= b && b <= 'z' {
			out[i] = b - 'a' + 'A'
		}
	}
	return out
}

// TestScan loads a few messages into a real Dovecot and checks what Scan reads of each:
// UID order, the hash and length of the bytes, the size, flags and internal date, the
// head it keeps, the hash of the filtered bytes; with SELECT as with EXAMINE; a missing
// folder gives ErrSelect.
func TestScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := StartDovecot(t, FlavourSlash)
	acct := d.AddUser(t)
	mb := Generate(9, Spec{Count: 12, Folders: -1})
	inbox := mb.Folder("INBOX")
	if err := Load(ctx, acct, Mailbox{Folders: []Folder{*inbox}}); err != nil {
		t.Fatalf("Load: %v", err)
	}
	c, err := Dial(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	got, err := Scan(c, "INBOX", ScanOptions{Head: 100, Filter: func(w io.Writer) io.Writer { return upper{w} }})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if len(got) != len(inbox.Messages) {
		t.Fatalf("Scan read %d messages, want %d", len(got), len(inbox.Messages))
	}
	for i, d := range got {
		want := inbox.Messages[i]
		wantFlags := slices.Sorted(slices.Values(want.Flags))
		if d.UID != imap.UID(i+1) || d.SHA256 != sha256.Sum256(want.Raw) || d.Bytes != int64(len(want.Raw)) || d.Size != d.Bytes ||
			!slices.Equal(d.Flags, wantFlags) || !d.InternalDate.Equal(want.InternalDate) {
			t.Errorf("message %d = uid %d, %d/%d bytes, flags %q, %v; want uid %d, %d bytes, %q, %v",
				i, d.UID, d.Bytes, d.Size, d.Flags, d.InternalDate, i+1, len(want.Raw), wantFlags, want.InternalDate)
		}
		if !bytes.Equal(d.Head, want.Raw[:100]) {
			t.Errorf("message %d: head %q, want %q", i, d.Head, want.Raw[:100])
		}
		if d.Filtered != sha256.Sum256(asciiUpper(want.Raw)) {
			t.Errorf("message %d: filtered hash is not the hash of the upper-cased bytes", i)
		}
	}

	if again, err := Scan(c, "INBOX", ScanOptions{Select: true}); err != nil || len(again) != len(got) {
		t.Errorf("Scan with Select: %d messages, %v; want %d", len(again), err, len(got))
	}
	if _, err := Scan(c, "Nonexistent", ScanOptions{}); !errors.Is(err, ErrSelect) {
		t.Errorf("Scan of a missing folder: %v, want ErrSelect", err)
	}
}
