// Package utf7 is IMAP's modified UTF-7 (RFC 3501 section 5.1.3), the encoding of
// mailbox names on the wire, as go-imap keeps it in its internal/utf7. Only the
// encoder is needed: names read from servers are decoded by go-imap.
package utf7

import (
	"encoding/base64"
	"strings"
	"unicode/utf16"
)

// mutf7 is the base64 alphabet of IMAP's modified UTF-7 (RFC 3501 section 5.1.3): ","
// instead of "/", no padding.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// Encode encodes a mailbox name in modified UTF-7 (RFC 3501 section 5.1.3):
// printable ASCII stays as it is ("&" becomes "&-"), every other run of characters
// becomes "&" + base64(UTF-16BE) + "-". Dovecot names its Maildir folders so too.
func Encode(name string) string {
	var b strings.Builder
	var run []uint16
	flush := func() {
		if len(run) == 0 {
			return
		}
		raw := make([]byte, 0, 2*len(run))
		for _, u := range run {
			raw = append(raw, byte(u>>8), byte(u))
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(raw))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range name {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = utf16.AppendRune(run, r)
	}
	flush()
	return b.String()
}
