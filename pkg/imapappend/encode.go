package imapappend

import (
	"encoding/base64"
	"strings"
	"time"
	"unicode/utf16"
)

// mutf7 is the base64 alphabet of IMAP's modified UTF-7 (RFC 3501 section 5.1.3): ","
// instead of "/", no padding.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// EncodeMailbox encodes a mailbox name in modified UTF-7 (RFC 3501 section 5.1.3):
// printable ASCII stays as it is ("&" becomes "&-"), every other run of characters
// becomes "&" + base64(UTF-16BE) + "-". Dovecot names its Maildir folders so too.
func EncodeMailbox(name string) string {
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

// quoteMailbox is the APPEND command's mailbox argument: modified UTF-7, quoted.
func quoteMailbox(name string) string {
	enc := EncodeMailbox(name) // only printable ASCII is left
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(enc) + `"`
}

// dateTime formats an INTERNALDATE for APPEND: "02-Jan-2006 15:04:05 -0700". Zone offsets
// with seconds (historical local mean times) are not representable: such dates go in UTC.
func dateTime(t time.Time) string {
	if _, offset := t.Zone(); offset%60 != 0 {
		t = t.UTC()
	}
	return t.Format("02-Jan-2006 15:04:05 -0700")
}

// validDate reports whether t can be sent as an INTERNALDATE (a four-digit year).
func validDate(t time.Time) bool {
	return !t.IsZero() && t.Year() >= 1000 && t.Year() <= 9999
}

var systemFlags = map[string]string{
	`\seen`:     `\Seen`,
	`\answered`: `\Answered`,
	`\flagged`:  `\Flagged`,
	`\deleted`:  `\Deleted`,
	`\draft`:    `\Draft`,
}

// CleanFlags returns the flags that APPEND may carry: the system flags \Seen, \Answered,
// \Flagged, \Deleted and \Draft in their canonical case, and keywords that are valid IMAP
// atoms, each once. \Recent, \* and anything else are dropped: a server that rejects a flag
// while parsing an APPEND may read the message body as commands.
func CleanFlags(flags []string) []string {
	var out []string
	seen := make(map[string]bool, len(flags))
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			canon, ok := systemFlags[strings.ToLower(f)]
			if !ok {
				continue
			}
			f = canon
		} else if !isAtom(f) {
			continue
		}
		key := strings.ToLower(f)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, f)
	}
	return out
}

// isAtom reports whether s is an IMAP atom: ATOM-CHARs only (RFC 3501 section 9).
func isAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '{', '%', '*', '"', '\\', ']':
			return false
		}
	}
	return true
}
