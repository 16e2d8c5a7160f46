package mailcopy

import "strings"

// systemFlags are the flags a client may set with APPEND, by lower-case name.
var systemFlags = map[string]string{
	`\seen`:     `\Seen`,
	`\answered`: `\Answered`,
	`\flagged`:  `\Flagged`,
	`\deleted`:  `\Deleted`,
	`\draft`:    `\Draft`,
}

// cleanFlags returns the flags that may be given to APPEND: the five system
// flags (canonical case) and the keywords that are valid IMAP atoms, without
// duplicates (case-insensitive), in their original order. \Recent, \* and any
// other backslash flag are dropped: a server rejects them while parsing the
// command, and for a small non-synchronising literal it then reads the
// message body as commands (DESIGN.md, library hazards).
func cleanFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	seen := make(map[string]bool, len(flags))
	for _, f := range flags {
		lower := strings.ToLower(f)
		if strings.HasPrefix(f, `\`) {
			canon, ok := systemFlags[lower]
			if !ok {
				continue
			}
			f = canon
		} else if !isAtom(f) {
			continue
		}
		if seen[lower] {
			continue
		}
		seen[lower] = true
		out = append(out, f)
	}
	return out
}

// isAtom reports whether s is a non-empty IMAP atom (RFC 3501 ATOM-CHAR: any
// 7-bit printable character except the atom-specials ( ) { SP % * " \ ]).
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
