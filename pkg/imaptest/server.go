package imaptest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// layout is what the harness knows about an account's folders: the personal namespace
// and the LIST of every folder with its attributes.
type layout struct {
	prefix  string
	delim   string // "" for a flat server
	folders []listedFolder
	special map[string]string // special-use attribute -> folder name
}

type listedFolder struct {
	name  string
	attrs []string
}

func (f listedFolder) selectable() bool {
	for _, a := range f.attrs {
		if strings.EqualFold(a, `\Noselect`) || strings.EqualFold(a, `\NonExistent`) {
			return false
		}
	}
	return true
}

var specialUses = []string{`\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`}

func isSpecialUse(attr string) (string, bool) {
	for _, u := range specialUses {
		if strings.EqualFold(u, attr) {
			return u, true
		}
	}
	return "", false
}

// readLayout asks for the personal namespace and lists every folder.
func readLayout(c *imapclient.Client) (*layout, error) {
	l := &layout{special: map[string]string{}}
	if c.Caps().Has(imap.CapNamespace) {
		ns, err := c.Namespace().Wait()
		if err != nil {
			return nil, fmt.Errorf("namespace: %w", err)
		}
		if len(ns.Personal) > 0 {
			l.prefix = ns.Personal[0].Prefix
			if ns.Personal[0].Delim != 0 {
				l.delim = string(ns.Personal[0].Delim)
			}
		}
	}
	var opts *imap.ListOptions
	if c.Caps().Has(imap.CapSpecialUse) {
		opts = &imap.ListOptions{ReturnSpecialUse: true}
	}
	list, err := c.List("", "*", opts).Collect()
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	for _, d := range list {
		f := listedFolder{name: d.Mailbox}
		if l.delim == "" && d.Delim != 0 {
			l.delim = string(d.Delim)
		}
		for _, a := range d.Attrs {
			f.attrs = append(f.attrs, string(a))
			if u, ok := isSpecialUse(string(a)); ok {
				if _, seen := l.special[u]; !seen {
					l.special[u] = d.Mailbox
				}
			}
		}
		l.folders = append(l.folders, f)
	}
	slices.SortFunc(l.folders, func(a, b listedFolder) int { return strings.Compare(a.name, b.name) })
	return l, nil
}

func (l *layout) has(name string) bool {
	for _, f := range l.folders {
		if f.name == name || strings.EqualFold(name, "INBOX") && strings.EqualFold(f.name, "INBOX") {
			return true
		}
	}
	return false
}

// logical splits a server folder name into its logical path: the personal prefix
// stripped, split on the separator. INBOX is always ["INBOX"].
func (l *layout) logical(name string) []string {
	if strings.EqualFold(name, "INBOX") {
		return []string{"INBOX"}
	}
	rest := name
	if l.prefix != "" && strings.HasPrefix(strings.ToUpper(name), strings.ToUpper(l.prefix)) {
		rest = name[len(l.prefix):]
	}
	if l.delim == "" {
		return []string{rest}
	}
	return strings.Split(rest, l.delim)
}

// serverName is the name of the folder with the given logical path on this server:
// joined with its separator, behind its prefix; INBOX stays INBOX. On a server whose
// prefix is "INBOX." the children of INBOX are the top-level folders, so a logical
// "INBOX/x" becomes "INBOX.x" there, not "INBOX.INBOX.x".
func (l *layout) serverName(path []string) string {
	delim := l.delim
	if delim == "" {
		delim = "/"
	}
	if strings.EqualFold(path[0], "INBOX") {
		if len(path) == 1 {
			return "INBOX"
		}
		inboxPrefix := "INBOX" + delim
		if strings.EqualFold(l.prefix, inboxPrefix) {
			return l.prefix + strings.Join(path[1:], delim)
		}
		return "INBOX" + delim + strings.Join(path[1:], delim)
	}
	return l.prefix + strings.Join(path, delim)
}

// MailboxName is the name a flavour's server gives the folder with the logical path
// (separated by "/"), ignoring special use: "Projects/2024" is "INBOX.Projects.2024" on
// FlavourDot; "INBOX" and "INBOX/x" are "INBOX" and "INBOX.x" there.
func (f Flavour) MailboxName(logical string) string {
	l := &layout{prefix: f.Prefix(), delim: f.Separator()}
	return l.serverName(strings.Split(logical, "/"))
}
