// Package foldermap plans where each folder of a source mailbox goes on the destination.
//
// It owns the folder half of invariant 5 (docs/design.md): the hierarchy survives different
// delimiters and namespace prefixes, special-use folders land on the destination's own,
// Unicode names stay Unicode, INBOX maps to INBOX. It is pure logic: the engine LISTs both
// sides, calls Map, creates Plan.Create in order and copies each Plan.Folders entry.
//
// Guarantees of a Plan:
//   - every listed source folder appears exactly once, in Folders or in Skipped;
//   - no two source folders share a destination name, compared case-insensitively
//     (servers such as Exchange fold case); a name that would be shared is reported as a
//     Collision and the later folder gets a " (2)" suffix. The one exception is an
//     ArchiveOnly mapping (see Views below), which may share the destination's archive
//     folder with the source's own archive folder: the messages it brings are in no
//     other source folder, so the two never hold the same message;
//   - Create lists parents before children, and every destination name in the plan has
//     its parents either on the destination or earlier in Create;
//   - the output does not depend on the order of the input listings, and a rerun against
//     the destination that the first run produced yields the same names.
//
// # Logical paths
//
// A folder's logical path is its name with the side's personal namespace prefix stripped,
// split on the side's delimiter. The destination name is the logical path joined with the
// destination's delimiter, behind the destination's prefix.
//
// INBOX is special: on a server with the "INBOX." prefix (Maildir++, Courier, Cyrus)
// INBOX's children and the top-level folders are the same thing, so "INBOX.Receipts" is the
// top-level folder "Receipts". On a "/" server without prefix, "INBOX/Receipts" is a real
// child of INBOX, a different folder from "Receipts". Hence:
//
//	"/" server            "INBOX." server
//	Receipts         -->  INBOX.Receipts  -->  Receipts
//	INBOX/Receipts   -->  INBOX.Receipts  -->  Receipts   (the only faithful place for it)
//
// The round trip of a "/" server's INBOX child through a dot server therefore yields a
// top-level folder: the dot server cannot tell the two apart. When a "/" source has both
// "Receipts" and "INBOX/Receipts", the shallower one keeps "INBOX.Receipts" and the other is
// reported as a Collision.
//
// # Names the destination cannot hold
//
// A name component containing the destination's delimiter (a "v1.2" onto a "." server)
// has each delimiter replaced by "_" ("-" when the delimiter itself is "_"): "v1_2",
// reported as a Rename. An empty component ("a//b") becomes the substitute. Onto a flat server (no
// delimiter) the logical path is kept joined with "/".
//
// # Special-use folders
//
// A source folder with \Sent, \Drafts, \Trash, \Junk or \Archive maps onto the destination
// folder with the same attribute, whatever the names, and its children follow it. A side
// that carries no folder with a given attribute has its folders recognised by well-known
// names in the main languages (top level, or under INBOX, "[Gmail]" or "[Google Mail]").
// When the destination has no folder for the use, the source folder keeps its own mapped
// name and is created. Each destination folder receives at most one source folder; a
// destination folder whose name a plain source folder would take anyway stays with that
// folder (see matchSpecialUse: the choice must survive reruns).
//
// Views (\All, \Flagged, \Important: virtual collections such as Gmail's "All Mail",
// "Starred" and "Important") are not copied as folders unless Options.IncludeGmailViews.
// With Gmail rules (Options.Provider "gmail", or a "[Gmail]" or "[Google Mail]" folder on
// the source) they are also recognised by name. Included views map onto the destination's
// own only when the destination is a Gmail-like server; appending to another server's
// virtual folder would fail. A destination is Gmail-like when a folder under its "[Gmail]"
// or "[Google Mail]" root carries a view attribute (\All, \Flagged, \Important), as
// Gmail's own do. A Gmail root alone is not enough: copying a Gmail source with its views
// onto another server creates "[Gmail]" and its views there as plain folders, and a rerun
// that then took the destination for Gmail would send those views onto the server's own
// \All folder (Dovecot's virtual one), which the first run did not: folders a copy creates
// carry no attributes, so the rule gives the same answer before and after a run.
//
// Several source folders may be views of one kind (Dovecot marks each virtual folder \All;
// a Gmail source has "All Mail"). On a Gmail-like destination one of them goes onto the
// destination's view, by the rule of the other special uses (see matchSpecialUse: the one
// whose own name is that view first, then the shallowest, then by path); the others keep
// their own mapped names, created, and keep them on every rerun.
//
// Without IncludeGmailViews, \Flagged and \Important views are skipped: each of their
// messages is also in \All. Under the Gmail rules an \All view is not skipped (elsewhere,
// as Dovecot's virtual folders, it is), because a Gmail message that was
// archived (no label left) lives only there: it becomes an ArchiveOnly mapping onto the
// destination's archive folder (the \Archive one, else one recognised by name, else
// "Archive" behind the destination's prefix, created), and the engine copies only those of
// its messages that occur in no folder of Plan.Elsewhere. Elsewhere is every listed
// selectable source folder that is not a view, whether the copy includes it or not: a
// message that the user's patterns leave out is filed elsewhere, not archived, and stays
// out. Views are not in Elsewhere: an archived starred message is in "Starred" and
// "All Mail" only, and is archived mail. A pattern that excludes (or does not include) the
// \All view itself wins: it is skipped.
package foldermap

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// Folder is one LIST entry.
type Folder struct {
	Name  string   // as the server lists it, decoded to UTF-8 (go-imap decodes modified UTF-7)
	Attrs []string // LIST attributes, any case: `\Noselect`, `\NonExistent`, `\Sent`, ...
}

// Side describes one account's folders.
type Side struct {
	Folders []Folder
	Delim   rune   // hierarchy delimiter of the personal namespace; 0 for a flat server
	Prefix  string // personal namespace prefix, e.g. "INBOX." or ""
}

// Options select the folders to copy.
type Options struct {
	// Include and Exclude are patterns on the source's logical path ("/"-joined, prefix
	// stripped: "Receipts", not "INBOX.Receipts", on a Maildir++ server). '*' matches
	// anything, '%' anything but "/"; a leading INBOX matches in any case, the rest is
	// case-sensitive as in IMAP LIST. A pattern names folders, not subtrees: use "Archive"
	// and "Archive/*". An empty Include includes everything; Exclude wins over Include.
	Include, Exclude []string
	// IncludeGmailViews copies \All, \Flagged and \Important views (Gmail's "All Mail",
	// "Starred", "Important"): every message they hold is also in another folder, except
	// Gmail's archived messages, which live only in "All Mail".
	IncludeGmailViews bool
	// Provider is the source's provider preset id; "gmail" turns on the Gmail rules.
	Provider string
}

// Plan is where each source folder goes.
type Plan struct {
	Folders    []Mapping   // folders to copy: INBOX first, then by source path, parents first
	Create     []string    // destination folders to create, in order, parents before children
	Renames    []Rename    // components changed because the destination cannot hold them
	Collisions []Collision // folders that would have shared a destination name
	Skipped    []Skip      // listed source folders that are not copied

	// Elsewhere, when a mapping is ArchiveOnly, lists the source folders whose messages
	// are not archived mail: every listed selectable source folder but the views.
	Elsewhere []string
}

// Mapping sends one source folder to one destination folder.
type Mapping struct {
	Source     string // source name as listed
	Dest       string // destination name
	SpecialUse string // `\Sent`, ... when it serves one (attribute or recognised name), else
	Create     bool   // the destination lacks it (or has it only as \Noselect); it is in Plan.Create

	// ArchiveOnly: the source is an \All view (Gmail's "All Mail") and Dest the
	// destination's archive folder; copy only the messages that occur in no folder of
	// Plan.Elsewhere (archived mail). The identity is count-aware, as for any copy.
	ArchiveOnly bool
}

// Rename reports a destination name changed because of what the destination can hold.
type Rename struct {
	Source string
	Dest   string
	Reason Reason
}

// Collision reports a source folder that would have shared a destination name (compared
// case-insensitively) with another: Holder keeps Wanted, Source goes to Dest.
type Collision struct {
	Source string // the folder moved aside (it may be an unlisted parent, created as a container)
	Dest   string // where it goes: Wanted with a " (n)" suffix on its last component
	Wanted string // the contested destination name
	Holder string // the source folder that keeps Wanted ("INBOX" for the INBOX)
}

// Skip reports a listed source folder that is not copied.
type Skip struct {
	Source string
	Reason Reason
}

// Reason says why a folder is skipped or renamed.
type Reason string

const (
	ReasonNotSelectable Reason = `not selectable (\Noselect or \NonExistent): no messages of its own`
	ReasonView          Reason = `a view of messages kept in other folders (\All, \Flagged, \Important)`
	ReasonExcluded      Reason = "excluded by a pattern"
	ReasonNotIncluded   Reason = "not matched by any include pattern"
	ReasonDelimiter     Reason = "a name component contains the destination's delimiter"
)

// Lookup returns the mapping of a source folder.
func (p *Plan) Lookup(source string) (Mapping, bool) {
	for _, m := range p.Folders {
		if m.Source == source {
			return m, true
		}
	}
	return Mapping{}, false
}

// Map plans where the folders of src go on dst. It fails only on malformed input: a
// delimiter that is not a printable ASCII character, or an empty or non-UTF-8 name.
func Map(src, dst Side, opts Options) (*Plan, error) {
	if err := validate("source", src); err != nil {
		return nil, err
	}
	if err := validate("destination", dst); err != nil {
		return nil, err
	}
	m := &mapper{src: src, dst: newDestIndex(dst), opts: opts}
	m.buildTree()
	m.srcGmail = strings.EqualFold(opts.Provider, "gmail") || hasGmailRoot(m.srcPaths())
	m.srcUses = sideUses(m.srcAttrs())
	m.decide()
	m.matchSpecialUse()
	m.markNeeded(m.root)
	m.assign()
	m.assignArchive()
	return m.plan(), nil
}

func validate(what string, s Side) error {
	if s.Delim != 0 && (s.Delim < 0x21 || s.Delim > 0x7e) {
		return fmt.Errorf("foldermap: %s delimiter %q is not a printable ASCII character", what, s.Delim)
	}
	for _, f := range s.Folders {
		if f.Name == "" {
			return fmt.Errorf("foldermap: %s lists an empty folder name", what)
		}
		if !utf8.ValidString(f.Name) {
			return fmt.Errorf("foldermap: %s folder name %q is not UTF-8", what, f.Name)
		}
	}
	return nil
}

// node is one level of the source hierarchy: a listed folder or an unlisted parent.
type node struct {
	comp     string
	path     []string
	source   string // listed name, or the name an unlisted parent would have
	listed   bool
	attrs    attrs
	parent   *node
	children []*node

	skip        Reason // listed but not copied
	copied      bool
	archiveOnly bool   // an \All view whose archived messages go to the archive folder
	archiveDest string // the archive folder of an archiveOnly node (dest stays its name as a parent)
	use         string // special use it was mapped by
	rerooted    bool   // dest is the destination's special-use folder, not derived from parent
	needed      bool   // copied, or the parent of a needed non-rerooted node
	wanted      string // destination name derived from the parent's, before collisions
	dest        string
	renamed     bool // a component was changed by sanitize
}

type mapper struct {
	src    Side
	dst    *destIndex
	opts   Options
	root   *node            // the namespace root: not a folder
	inbox  *node            // nil when the source lists no INBOX and no INBOX child
	nodes  []*node          // every node but root, in path order
	index  map[string]*node // path key -> node
	claims map[string]*node // folded destination name -> node holding it

	srcGmail bool            // Gmail rules on the source
	srcUses  map[string]bool // special uses the source marks with attributes
}

func (m *mapper) buildTree() {
	m.root = &node{}
	m.index = map[string]*node{}
	folders := dedupe(m.src.Folders)
	for _, f := range folders {
		path := components(f.Name, m.src)
		if len(path) == 0 { // the namespace root itself
			n := &node{source: f.Name, listed: true, attrs: newAttrs(f.Attrs), parent: m.root}
			m.root.children = append(m.root.children, n)
			m.nodes = append(m.nodes, n)
			continue
		}
		parent := m.root
		for i := range len(path) - 1 {
			parent = m.child(parent, path[:i+1])
		}
		key := pathKey(path)
		n, ok := m.index[key]
		switch {
		case !ok:
			n = m.child(parent, path)
		case n.listed:
			// Another name with the same logical path ("INBOX" and "inbox"): keep it as a
			// sibling of its own; it will collide and be reported.
			n = &node{comp: path[len(path)-1], path: path, parent: parent}
			parent.children = append(parent.children, n)
			m.nodes = append(m.nodes, n)
		}
		n.source, n.listed, n.attrs = f.Name, true, newAttrs(f.Attrs)
	}
	sort.SliceStable(m.nodes, func(i, j int) bool { return comparePaths(m.nodes[i].path, m.nodes[j].path) < 0 })
	m.inbox = m.index[pathKey([]string{inbox})]
}

// child returns the node at path under parent, creating an unlisted one.
func (m *mapper) child(parent *node, path []string) *node {
	key := pathKey(path)
	if n, ok := m.index[key]; ok {
		return n
	}
	n := &node{comp: path[len(path)-1], path: path, parent: parent, source: m.unlistedName(parent, path)}
	m.index[key] = n
	parent.children = append(parent.children, n)
	m.nodes = append(m.nodes, n)
	return n
}

func (m *mapper) unlistedName(parent *node, path []string) string {
	if parent == m.root {
		if len(path) == 1 && path[0] == inbox {
			return inbox
		}
		return m.src.Prefix + path[0]
	}
	return parent.source + string(m.src.Delim) + path[len(path)-1]
}

func dedupe(folders []Folder) []Folder {
	byName := map[string]int{}
	var out []Folder
	for _, f := range folders {
		if i, ok := byName[f.Name]; ok {
			out[i].Attrs = append(out[i].Attrs, f.Attrs...)
			continue
		}
		byName[f.Name] = len(out)
		out = append(out, Folder{Name: f.Name, Attrs: append([]string(nil), f.Attrs...)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// decide marks each listed node copied or skipped.
func (m *mapper) decide() {
	for _, n := range m.nodes {
		if !n.listed {
			continue
		}
		logical := strings.Join(n.path, "/")
		switch {
		case len(n.path) == 0 || !n.attrs.selectable():
			n.skip = ReasonNotSelectable
		case matchAny(m.opts.Exclude, logical):
			n.skip = ReasonExcluded
		case len(m.opts.Include) > 0 && !matchAny(m.opts.Include, logical):
			n.skip = ReasonNotIncluded
		case !m.opts.IncludeGmailViews && m.srcGmail && isCandidate(n.path, n.attrs, `\All`, m.srcUses, m.srcGmail):
			n.archiveOnly = true
		case !m.opts.IncludeGmailViews && isView(n.path, n.attrs, m.srcUses, m.srcGmail):
			n.skip = ReasonView
		default:
			n.copied = true
		}
	}
}

func (m *mapper) srcPaths() [][]string {
	var paths [][]string
	for _, n := range m.nodes {
		if n.listed {
			paths = append(paths, n.path)
		}
	}
	return paths
}

func (m *mapper) srcAttrs() []attrs {
	var as []attrs
	for _, n := range m.nodes {
		if n.listed {
			as = append(as, n.attrs)
		}
	}
	return as
}

// matchSpecialUse sends source folders with a special use onto the destination's
// folders with that use. Several source folders may carry one use (Dovecot marks both
// "Sent" and "Sent Messages"): each goes to a different destination folder or keeps its
// own name, never two into one. The choice must not change when a rerun sees the folders
// the first run created, which are the "natural" names of source folders (owned names):
//
//  1. a folder whose natural name is a destination candidate (owned by it alone) goes
//     there;
//  2. the others, in rank order (shallower first, then by path), take unowned
//     candidates, one with the same last component first;
//  3. a folder left without one keeps its natural name, created.
//
// A candidate owned by another source folder (a plain "Sent" beside a marked "Sent
// Messages") stays with its owner: taking it would depend on whether the first run
// created it, and a rerun would copy the folder a second time elsewhere.
func (m *mapper) matchSpecialUse() {
	dstUses := sideUses(m.dst.attrList())
	dstGmail := m.dst.gmailLike()
	// Owners: the folders copied and their parents, which may be created as containers.
	owners := map[string][]*node{}
	for _, c := range m.nodes {
		for n := c; c.copied && n != m.root; n = n.parent {
			key := fold(m.simpleNatural(n.path))
			if !slices.Contains(owners[key], n) {
				owners[key] = append(owners[key], n)
			}
		}
	}
	ownedByOther := func(d *destFolder, s *node) bool {
		for _, o := range owners[fold(d.name)] {
			if o != s {
				return true
			}
		}
		return false
	}
	used := map[string]bool{fold(inbox): true} // destination folders already taken
	for _, use := range specialUses {
		var srcs []*node
		for _, n := range m.nodes {
			if n.copied && n != m.inbox && n.use == "" && isCandidate(n.path, n.attrs, use, m.srcUses, m.srcGmail) {
				srcs = append(srcs, n)
			}
		}
		var dsts []*destFolder
		if !isViewUse(use) || dstGmail {
			for _, d := range m.dst.folders {
				if d.selectable() && !used[fold(d.name)] && isCandidate(d.path, d.attrs, use, dstUses, dstGmail) {
					dsts = append(dsts, d)
				}
			}
		}
		sort.SliceStable(srcs, func(i, j int) bool { return rankLess(srcs[i].path, srcs[j].path) })
		sort.SliceStable(dsts, func(i, j int) bool { return rankLess(dsts[i].path, dsts[j].path) })
		take := func(s *node, d *destFolder) {
			s.use = use
			if d != nil {
				s.rerooted, s.dest = true, d.name
				used[fold(d.name)] = true
			}
		}
		free := func(d *destFolder) bool { return !used[fold(d.name)] }
		for _, s := range srcs {
			for _, d := range dsts {
				if free(d) && fold(d.name) == fold(m.simpleNatural(s.path)) && !ownedByOther(d, s) {
					take(s, d)
					break
				}
			}
		}
		steps := []func(s *node, d *destFolder) bool{
			func(s *node, d *destFolder) bool {
				return !ownedByOther(d, s) && fold(last(s.path)) == fold(last(d.path))
			},
			func(s *node, d *destFolder) bool { return !ownedByOther(d, s) },
		}
		for _, ok := range steps {
			for _, s := range srcs {
				if s.use != "" {
					continue
				}
				for _, d := range dsts {
					if free(d) && ok(s, d) {
						take(s, d)
						break
					}
				}
			}
		}
		for _, s := range srcs {
			if s.use == "" {
				take(s, nil)
			}
		}
	}
}

// simpleNatural is the destination name of a source path when nothing is in the way:
// no special-use folder above it, no collision.
func (m *mapper) simpleNatural(path []string) string {
	if len(path) == 0 {
		return ""
	}
	delim := m.dst.side.Delim
	sep := string(delim)
	if delim == 0 {
		sep = "/"
	}
	comps := make([]string, len(path))
	for i, c := range path {
		comps[i], _ = sanitize(c, delim)
	}
	if path[0] == inbox {
		return strings.Join(append([]string{inbox}, comps[1:]...), sep)
	}
	return m.dst.side.Prefix + strings.Join(comps, sep)
}

func rankLess(a, b []string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return comparePaths(a, b) < 0
}

// markNeeded marks the nodes whose destination name is needed: copied ones and the
// parents of needed ones (a rerooted node does not need its source parent).
func (m *mapper) markNeeded(n *node) bool {
	needed := n.copied
	for _, c := range n.children {
		if m.markNeeded(c) && !c.rerooted {
			needed = true
		}
	}
	n.needed = needed && n != m.root
	return needed
}

// assign gives every needed node its destination name, claiming names case-insensitively.
// Priority for a contested name: INBOX, then special-use folders, then shallower source
// folders, then a folder whose name already exists exactly on the destination (a folder
// or a level above one), then one not renamed for its delimiter, then source path order.
func (m *mapper) assign() {
	m.claims = map[string]*node{fold(inbox): m.inbox}
	if m.inbox != nil {
		m.inbox.dest = inbox
	}
	for _, n := range m.nodes {
		if n.rerooted {
			m.claims[fold(n.dest)] = n
		}
	}
	byDepth := map[int][]*node{}
	maxDepth := 0
	for _, n := range m.nodes {
		if n.needed && !n.rerooted && n != m.inbox {
			byDepth[len(n.path)] = append(byDepth[len(n.path)], n)
			maxDepth = max(maxDepth, len(n.path))
		}
	}
	for depth := 1; depth <= maxDepth; depth++ {
		m.assignLevel(byDepth[depth])
	}
}

type proposal struct {
	n     *node
	comp  string // sanitized component
	exact bool   // n.wanted exists exactly on the destination (a folder or a level)
}

func (m *mapper) assignLevel(level []*node) {
	props := make([]proposal, 0, len(level))
	for _, n := range level {
		comp, changed := sanitize(n.comp, m.dst.side.Delim)
		n.renamed = changed
		n.wanted = m.join(n.parent, comp)
		props = append(props, proposal{n: n, comp: comp, exact: m.dst.named(n.wanted)})
	}
	sort.SliceStable(props, func(i, j int) bool {
		a, b := props[i], props[j]
		if a.exact != b.exact {
			return a.exact
		}
		if a.n.renamed != b.n.renamed {
			return !a.n.renamed
		}
		return comparePaths(a.n.path, b.n.path) < 0
	})
	var lost []proposal
	for _, p := range props {
		if name, ok := m.claim(p.n.wanted, p.n); ok {
			p.n.dest = name
		} else {
			lost = append(lost, p)
		}
	}
	// The suffixes go in source path order: which of the losers found its wanted name on
	// the destination (a rerun) must not change who gets " (2)".
	sort.SliceStable(lost, func(i, j int) bool { return comparePaths(lost[i].n.path, lost[j].n.path) < 0 })
	for _, p := range lost {
		for i := 2; ; i++ {
			if name, ok := m.claim(m.join(p.n.parent, fmt.Sprintf("%s (%d)", p.comp, i)), p.n); ok {
				p.n.dest = name
				break
			}
		}
	}
}

// claim takes name for n unless another node holds it (case-insensitively). A destination
// folder that differs only by case is adopted with its own spelling, unless it sits under
// a parent spelled otherwise: n must sit under its parent's destination name (FuzzMap).
// Onto a flat destination a parent is only part of a name, and the whole name is adopted.
func (m *mapper) claim(name string, n *node) (string, bool) {
	key := fold(name)
	if _, taken := m.claims[key]; taken {
		return "", false
	}
	m.claims[key] = n
	if !m.dst.named(name) {
		if existing, ok := m.dst.byFold[key]; ok && (m.dst.side.Delim == 0 || strings.HasPrefix(existing, m.join(n.parent, ""))) {
			name = existing
		}
	}
	return name, true
}

// join names the child comp of parent on the destination.
func (m *mapper) join(parent *node, comp string) string {
	if parent == m.root {
		return m.dst.side.Prefix + comp
	}
	delim := m.dst.side.Delim
	if delim == 0 {
		delim = '/'
	}
	return parent.dest + string(delim) + comp
}

func (m *mapper) plan() *Plan {
	p := &Plan{}
	archive := false
	holder := func(wanted string) string {
		if n := m.claims[fold(wanted)]; n != nil {
			return n.source
		}
		return inbox // reserved even when the source lists no INBOX
	}
	for _, n := range m.nodes {
		if n.archiveOnly {
			// Its archived messages go to the archive folder; its own name may still be
			// needed below as the parent of copied folders.
			archive = true
			d := n.archiveDest
			create := m.claims[fold(d)] == n && (!m.dst.exists(d) || !m.dst.selectable(d))
			if create {
				p.Create = append(p.Create, d)
			}
			p.Folders = append(p.Folders, Mapping{Source: n.source, Dest: d, SpecialUse: `\All`, Create: create, ArchiveOnly: true})
		}
		if n.listed && !n.copied && !n.archiveOnly {
			p.Skipped = append(p.Skipped, Skip{Source: n.source, Reason: n.skip})
		}
		if !n.needed {
			continue
		}
		// Onto a flat destination a parent is only part of a name: nothing to create.
		// A level the destination lists \NonExistent above existing folders holds its
		// children already: only a folder copied into it is created (FuzzMap).
		mustCreate := n != m.inbox && (n.copied || m.dst.side.Delim != 0) &&
			(!m.dst.named(n.dest) || n.copied && !m.dst.selectable(n.dest))
		if mustCreate && !slices.Contains(p.Create, n.dest) { // an archive folder may be a parent too
			p.Create = append(p.Create, n.dest)
		}
		if n.copied {
			p.Folders = append(p.Folders, Mapping{Source: n.source, Dest: n.dest, SpecialUse: n.use, Create: mustCreate})
		}
		if n.renamed {
			p.Renames = append(p.Renames, Rename{Source: n.source, Dest: n.dest, Reason: ReasonDelimiter})
		}
		if n.wanted != "" && fold(n.wanted) != fold(n.dest) {
			p.Collisions = append(p.Collisions, Collision{Source: n.source, Dest: n.dest, Wanted: n.wanted, Holder: holder(n.wanted)})
		}
	}
	if archive {
		for i, f := range p.Folders {
			if f.ArchiveOnly && !f.Create {
				// Shared with a folder that creates it.
				p.Folders[i].Create = slices.Contains(p.Create, f.Dest)
			}
		}
		for _, n := range m.nodes {
			if n.listed && n.attrs.selectable() && len(n.path) > 0 && !isView(n.path, n.attrs, m.srcUses, m.srcGmail) {
				p.Elsewhere = append(p.Elsewhere, n.source)
			}
		}
	}
	// Every created name has its parents on the destination or created too: an archive
	// folder found by name deep in the hierarchy may sit below a level the destination
	// lists as \NonExistent with nothing existing below it (FuzzMap). A level with
	// existing folders below it is left as it is: created, it would be a plain folder
	// that a rerun could match by its name ("Sent") to a special use (FuzzMap).
	for _, c := range slices.Clone(p.Create) {
		for _, parent := range ancestors(c, m.dst.side) {
			if !m.dst.named(parent) && !slices.Contains(p.Create, parent) {
				p.Create = append(p.Create, parent)
			}
		}
	}
	delim := m.dst.side.Delim
	sort.Slice(p.Create, func(i, j int) bool {
		return comparePaths(splitName(p.Create[i], delim), splitName(p.Create[j], delim)) < 0
	})
	return p
}

// assignArchive gives each ArchiveOnly node the destination's archive folder: the one
// that serves \Archive (by attribute, else by a well-known name), else "Archive" behind
// the destination's prefix, which a copied source folder may hold already (the
// folders then share it) or which is created.
func (m *mapper) assignArchive() {
	dstGmail := m.dst.gmailLike()
	dstUses := sideUses(m.dst.attrList())
	var best *destFolder
	for _, d := range m.dst.folders {
		if d.selectable() && isCandidate(d.path, d.attrs, `\Archive`, dstUses, dstGmail) &&
			(best == nil || rankLess(d.path, best.path)) {
			best = d
		}
	}
	for _, n := range m.nodes {
		if !n.archiveOnly {
			continue
		}
		switch {
		case best != nil:
			n.archiveDest = best.name
		default:
			name := m.dst.side.Prefix + "Archive"
			if holder := m.claims[fold(name)]; holder != nil {
				n.archiveDest = holder.dest
				if holder.archiveOnly && fold(holder.archiveDest) == fold(name) {
					n.archiveDest = holder.archiveDest // another \All view took it first
				}
				break
			}
			if existing, ok := m.dst.byFold[fold(name)]; ok {
				name = existing
			}
			n.archiveDest = name
			m.claims[fold(name)] = n
		}
	}
}
