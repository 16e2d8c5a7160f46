package mailcopy

import (
	"bytes"
	"testing"
	"time"
)

// FuzzIdentity: the identity key never panics, is a pure function of its inputs, does not
// depend on the line-end style (CRLF or bare LF) of the header block, and is the same
// when withSize is applied to identityBase.
func FuzzIdentity(f *testing.F) {
	f.Add([]byte("Message-ID: <a@b>\r\n\r\n"), int64(10), int64(0))
	f.Add([]byte("Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nFrom: a@b\r\nTo: c@d\r\nSubject: hi\r\n there\r\n\r\n"), int64(1234), int64(1700000000))
	f.Add([]byte("message-id:\r\n <x@y>\r\n"), int64(-1), int64(-62135596800))
	f.Add([]byte("no colon here\n\n"), int64(0), int64(253402300799))
	f.Fuzz(func(t *testing.T, header []byte, size, unix int64) {
		date := time.Unix(unix, 0)
		k := identity(header, size, date)
		if k != identity(bytes.Clone(header), size, date) {
			t.Fatal("identity is not stable under re-parsing")
		}
		if k != withSize(identityBase(header, date), size) {
			t.Fatal("identity differs from withSize(identityBase)")
		}
		if !bytes.Contains(header, []byte("\r")) {
			crlf := bytes.ReplaceAll(header, []byte("\n"), []byte("\r\n"))
			if identity(crlf, size, date) != k {
				t.Fatalf("identity depends on the line ends: %q", header)
			}
		}
	})
}
