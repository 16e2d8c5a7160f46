package imapappend

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"imapcopy.dev/pkg/internal/utf7"
)

// decodeMailbox is a reference decoder of modified UTF-7 (RFC 3501 section 5.1.3), for
// the round trip only: it reports false on anything that is not canonical modified UTF-7.
// mutf7 is modified UTF-7's base64 alphabet, for the reference decoder.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

func decodeMailbox(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", false
		}
		if c != '&' {
			b.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '-')
		if end < 0 {
			return "", false
		}
		enc := s[i+1 : i+end]
		i += end + 1
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := mutf7.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", false
		}
		units := make([]uint16, len(raw)/2)
		for j := range units {
			units[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		b.WriteString(string(utf16.Decode(units)))
	}
	return b.String(), true
}

// FuzzEncodeMailbox: the encoding is printable ASCII, decodes back to the name (invalid
// UTF-8 decodes to U+FFFD, as Go's range over a string reads it), and its quoted form
// for APPEND holds no CR, LF, NUL or unescaped quote.
func FuzzEncodeMailbox(f *testing.F) {
	for _, s := range []string{"INBOX", "Entwürfe", "&", "A&B", "日本語/メール", "😀 emoji", "tab\there", "\x00\r\n", "\xff\xfe", `quote"back\slash`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		enc := utf7.Encode(name)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] > 0x7e {
				t.Fatalf("EncodeMailbox(%q) = %q: byte %#x is not printable ASCII", name, enc, enc[i])
			}
		}
		want := strings.ToValidUTF8(name, "\uFFFD")
		if !utf8.ValidString(name) {
			// Each invalid byte becomes one U+FFFD when ranged over.
			var b strings.Builder
			for _, r := range name {
				b.WriteRune(r)
			}
			want = b.String()
		}
		got, ok := decodeMailbox(enc)
		if !ok || got != want {
			t.Fatalf("EncodeMailbox(%q) = %q decodes to %q (ok %v), want %q", name, enc, got, ok, want)
		}
		q := quoteMailbox(name)
		if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
			t.Fatalf("quoteMailbox(%q) = %q is not quoted", name, q)
		}
		inner := q[1 : len(q)-1]
		for i := 0; i < len(inner); i++ {
			switch inner[i] {
			case '\\':
				i++
			case '"':
				t.Fatalf("quoteMailbox(%q) = %q has an unescaped quote", name, q)
			}
		}
	})
}
