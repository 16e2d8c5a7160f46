package imapappend

import (
	"strings"
	"time"

	"imapcopy.dev/pkg/internal/utf7"
)

// quoteMailbox is the APPEND command's mailbox argument: modified UTF-7, quoted.
func quoteMailbox(name string) string {
	enc := utf7.Encode(name) // only printable ASCII is left
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
