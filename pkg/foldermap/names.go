package foldermap

import (
	"cmp"
	"sort"
	"strings"
)

const inbox = "INBOX"

// Logical returns a folder's logical path on side: the name without the personal
// namespace prefix, its components joined with "/". INBOX, in any case, is "INBOX", and on
// a server without prefix so is the first component of INBOX's children ("INBOX/Receipts").
// On an "INBOX." server, "INBOX.Receipts" is "Receipts". A namespace root is "".
func Logical(name string, side Side) string {
	return strings.Join(components(name, side), "/")
}

// MissingParents returns the ancestors of name on side that do not exist there,
// outermost first: the folders to create before name. An ancestor exists when the
// listing has it (not as \NonExistent) or has an existing folder below it. INBOX and the
// namespace prefix are never among them.
func MissingParents(name string, side Side) []string {
	idx := newDestIndex(side)
	var missing []string
	for _, parent := range ancestors(name, side) {
		if !idx.named(parent) {
			missing = append(missing, parent)
		}
	}
	return missing
}

// ancestors returns the ancestors of name below the namespace prefix, outermost first,
// INBOX excluded.
func ancestors(name string, side Side) []string {
	if side.Delim == 0 {
		return nil
	}
	var out []string
	for i, r := range name {
		if r != side.Delim || i == 0 || i < len(side.Prefix) {
			continue
		}
		if parent := name[:i]; !strings.EqualFold(parent, inbox) {
			out = append(out, parent)
		}
	}
	return out
}

// components splits a name into its logical path.
func components(name string, s Side) []string {
	if strings.EqualFold(name, inbox) {
		return []string{inbox}
	}
	rest, stripped := stripPrefix(name, s.Prefix)
	if rest == "" {
		return nil
	}
	if s.Delim == 0 {
		return []string{rest}
	}
	parts := strings.Split(rest, string(s.Delim))
	if !stripped && strings.EqualFold(parts[0], inbox) {
		parts[0] = inbox
	}
	return parts
}

// stripPrefix removes the namespace prefix; an "INBOX" in the prefix matches in any case.
func stripPrefix(name, prefix string) (string, bool) {
	if prefix == "" || len(name) < len(prefix) {
		return name, false
	}
	head := name[:len(prefix)]
	inboxPrefix := len(prefix) > len(inbox) && strings.EqualFold(prefix[:len(inbox)], inbox)
	if head == prefix || inboxPrefix && strings.EqualFold(head, prefix) {
		return name[len(prefix):], true
	}
	return name, false
}

// sanitize makes a component one the destination can hold: the delimiter replaced by "_"
// ("-" when the delimiter is "_"), and an empty component made that substitute.
func sanitize(comp string, delim rune) (string, bool) {
	sub := "_"
	if delim == '_' {
		sub = "-"
	}
	if comp == "" {
		return sub, true
	}
	if delim == 0 || !strings.ContainsRune(comp, delim) {
		return comp, false
	}
	return strings.ReplaceAll(comp, string(delim), sub), true
}

// splitName splits a destination name for ordering; flat servers are joined with "/".
func splitName(name string, delim rune) []string {
	if delim == 0 {
		delim = '/'
	}
	return strings.Split(name, string(delim))
}

// comparePaths orders paths with INBOX and its children first, then component by
// component (ignoring case, then by case), so that a parent comes before its children.
func comparePaths(a, b []string) int {
	if len(a) > 0 && len(b) > 0 {
		ai, bi := a[0] == inbox, b[0] == inbox
		if ai != bi {
			if ai {
				return -1
			}
			return 1
		}
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := strings.Compare(fold(a[i]), fold(b[i])); c != 0 {
			return c
		}
		if c := strings.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

func pathKey(path []string) string { return strings.Join(path, "\x00") }

func last(path []string) string { return path[len(path)-1] }

// fold is the key under which destination names are compared: servers such as Exchange
// and every server's INBOX ignore case.
func fold(name string) string { return strings.ToLower(name) }

// attrs is a set of LIST attributes, lower-cased.
type attrs map[string]bool

func newAttrs(list []string) attrs {
	a := attrs{}
	for _, s := range list {
		a[strings.ToLower(s)] = true
	}
	return a
}

func (a attrs) has(attr string) bool { return a[strings.ToLower(attr)] }

func (a attrs) selectable() bool { return !a.has(`\Noselect`) && !a.has(`\NonExistent`) }

// destIndex answers questions about the destination's listing.
type destIndex struct {
	side    Side
	folders []*destFolder          // sorted by name
	byName  map[string]*destFolder // exact name
	byFold  map[string]string      // folded name -> the spelling of an existing folder or level
	implied map[string]bool        // unlisted ancestors of existing folders
	levels  map[string]bool        // ancestors of existing folders, listed or not
}

type destFolder struct {
	name  string
	path  []string
	attrs attrs
}

func (d *destFolder) selectable() bool { return d.attrs.selectable() }

func newDestIndex(s Side) *destIndex {
	idx := &destIndex{side: s, byName: map[string]*destFolder{}, byFold: map[string]string{}, implied: map[string]bool{}, levels: map[string]bool{}}
	for _, f := range dedupe(s.Folders) { // sorted by name
		d := &destFolder{name: f.Name, path: components(f.Name, s), attrs: newAttrs(f.Attrs)}
		idx.folders = append(idx.folders, d)
		idx.byName[d.name] = d
	}
	// A level listed \NonExistent above an existing folder is no mailbox, but its name
	// is taken in the hierarchy: its spelling is adopted like an existing folder's.
	levels := idx.levels
	for _, d := range idx.folders {
		if d.attrs.has(`\NonExistent`) {
			continue
		}
		for _, a := range ancestors(d.name, s) {
			if _, listed := idx.byName[a]; !listed {
				idx.implied[a] = true
			}
			levels[a] = true
		}
	}
	existing := make([]string, 0, len(idx.folders)+len(levels))
	for _, d := range idx.folders {
		if idx.exists(d.name) || levels[d.name] {
			existing = append(existing, d.name)
		}
	}
	for a := range idx.implied {
		existing = append(existing, a)
	}
	sort.Strings(existing)
	for _, name := range existing {
		if _, ok := idx.byFold[fold(name)]; !ok {
			idx.byFold[fold(name)] = name
		}
	}
	return idx
}

func (idx *destIndex) exists(name string) bool {
	if d, ok := idx.byName[name]; ok {
		return !d.attrs.has(`\NonExistent`)
	}
	return idx.implied[name]
}

// named tells whether the destination has name, spelled so: a folder or a level
// above one (see newDestIndex).
func (idx *destIndex) named(name string) bool { return idx.exists(name) || idx.levels[name] }

func (idx *destIndex) selectable(name string) bool {
	d, ok := idx.byName[name]
	return ok && d.selectable()
}

func (idx *destIndex) attrList() []attrs {
	as := make([]attrs, 0, len(idx.folders))
	for _, d := range idx.folders {
		as = append(as, d.attrs)
	}
	return as
}

// matchAny reports whether logical matches one of patterns.
func matchAny(patterns []string, logical string) bool {
	for _, p := range patterns {
		if match(p, logical) {
			return true
		}
	}
	return false
}

// match matches an IMAP LIST-style pattern: '*' matches anything, '%' anything but "/".
// A leading INBOX matches in any case.
func match(pattern, name string) bool {
	if len(pattern) >= len(inbox) && strings.EqualFold(pattern[:len(inbox)], inbox) &&
		(len(pattern) == len(inbox) || strings.ContainsRune("/*%", rune(pattern[len(inbox)]))) {
		pattern = inbox + pattern[len(inbox):]
	}
	p, s := []rune(pattern), []rune(name)
	prev := make([]bool, len(s)+1) // prev[j]: p[:i] matches s[:j]
	prev[0] = true
	for i := range p {
		cur := make([]bool, len(s)+1)
		switch p[i] {
		case '*':
			cur[0] = prev[0]
			for j := 1; j <= len(s); j++ {
				cur[j] = prev[j] || cur[j-1]
			}
		case '%':
			cur[0] = prev[0]
			for j := 1; j <= len(s); j++ {
				cur[j] = prev[j] || cur[j-1] && s[j-1] != '/'
			}
		default:
			for j := 1; j <= len(s); j++ {
				cur[j] = prev[j-1] && s[j-1] == p[i]
			}
		}
		prev = cur
	}
	return prev[len(s)]
}
