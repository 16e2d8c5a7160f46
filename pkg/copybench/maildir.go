package copybench

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/internal/utf7"
)

// Layout is a Dovecot Maildir layout.
type Layout int

const (
	LayoutFS              Layout = iota + 1 // maildir:~/Maildir:LAYOUT=fs — "/" separator, folders as nested dirs
	LayoutMaildirPlusPlus                   // maildir:~/Maildir — "." separator, ".Folder.Sub" dirs
)

// MaildirTarget is an account's Maildir as a Dovecot server lays it out.
type MaildirTarget struct {
	Root   string // the account's Maildir (INBOX lives in it)
	Layout Layout
	Prefix string // namespace prefix ("INBOX." on Maildir++ servers), stripped from names on disk
	// SpecialUse maps an attribute (`\Sent`) to the full name of the server's folder
	// that carries it; generated special-use folders are written there.
	SpecialUse map[string]string
	UID, GID   int // owner of what is written; -1 leaves the owner alone
}

// Loaded says what a loader put into an account, folder by folder, to verify it and to
// size the runs.
type Loaded struct {
	Messages int
	Bytes    int64
	Folders  []LoadedFolder
}

// LoadedFolder is one folder of a loaded account, under its name on the server.
type LoadedFolder struct {
	Name     string // full mailbox name on the server (UTF-8, server separator and prefix)
	Messages []LoadedMessage
}

// LoadedMessage is what the server must show for one loaded message.
type LoadedMessage struct {
	SHA256       [32]byte
	Size         int64
	Flags        []string // sorted
	InternalUnix int64
}

// ServerName is the full name on the server of the generated folder f: special-use
// folders (and their children) move under the server's own folder with the attribute,
// "/" becomes the separator, the namespace prefix is added (never to INBOX).
func (t MaildirTarget) ServerName(mb *imaptest.Plan, f int) string {
	sep := t.separator()
	parts := strings.Split(mb.Folders[f].Name, "/")
	if parts[0] == "INBOX" && len(parts) == 1 {
		return "INBOX"
	}
	// A special-use folder, or the child of one, goes under the server's folder.
	for _, g := range mb.Folders {
		if g.SpecialUse == "" || t.SpecialUse[g.SpecialUse] == "" {
			continue
		}
		if name := mb.Folders[f].Name; name == g.Name || strings.HasPrefix(name, g.Name+"/") {
			rest := strings.TrimPrefix(name, g.Name)
			return t.SpecialUse[g.SpecialUse] + strings.ReplaceAll(rest, "/", sep)
		}
	}
	return t.Prefix + strings.Join(parts, sep)
}

func (t MaildirTarget) separator() string {
	if t.Layout == LayoutMaildirPlusPlus {
		return "."
	}
	return "/"
}

// dir is the directory of the folder with the given full server name.
func (t MaildirTarget) dir(serverName string) string {
	if serverName == "INBOX" {
		return t.Root
	}
	name := strings.TrimPrefix(serverName, t.Prefix)
	sep := t.separator()
	var parts []string
	for _, p := range strings.Split(name, sep) {
		parts = append(parts, utf7.Encode(p))
	}
	if t.Layout == LayoutMaildirPlusPlus {
		return filepath.Join(t.Root, "."+strings.Join(parts, "."))
	}
	return filepath.Join(append([]string{t.Root}, parts...)...)
}

// maildirFlag is the Maildir info letter of each IMAP system flag that has one.
var maildirFlag = map[string]byte{
	`\Draft`: 'D', `\Flagged`: 'F', `\Answered`: 'R', `\Seen`: 'S', `\Deleted`: 'T',
}

// WriteMaildir writes mb into t as Dovecot would have stored it: one file per message
// in cur/, named `<secs>.M<usecs>P<n>.bench,S=<size>,W=<size>:2,<flags>` with the system
// flags and keyword letters in the info, the keywords listed in each folder's
// dovecot-keywords, and the file's mtime = the internal date. Dovecot indexes it on
// first access, giving UIDs in filename-time order. Messages are CRLF text, so the
// physical and virtual sizes are equal. Nothing of mb is held in memory but the message
// being written.
func WriteMaildir(mb *imaptest.Plan, t MaildirTarget) (*Loaded, error) {
	type folderFiles struct {
		dir      string
		keywords []string
		kwIndex  map[string]int
	}
	folders := make([]*folderFiles, len(mb.Folders))
	loaded := &Loaded{}
	for f := range mb.Folders {
		name := t.ServerName(mb, f)
		ff := &folderFiles{dir: t.dir(name), kwIndex: map[string]int{}}
		folders[f] = ff
		loaded.Folders = append(loaded.Folders, LoadedFolder{Name: name})
		for _, sub := range []string{"", "cur", "new", "tmp"} {
			if err := t.mkdir(filepath.Join(ff.dir, sub)); err != nil {
				return nil, err
			}
		}
		if t.Layout == LayoutMaildirPlusPlus && name != "INBOX" {
			if err := t.writeFile(filepath.Join(ff.dir, "maildirfolder"), nil); err != nil {
				return nil, err
			}
		}
	}
	for _, m := range mb.Messages {
		ff := folders[m.Folder]
		for _, fl := range m.Flags {
			if _, system := maildirFlag[fl]; system || strings.HasPrefix(fl, `\`) {
				continue
			}
			if _, ok := ff.kwIndex[fl]; !ok {
				if len(ff.keywords) == 26 {
					return nil, fmt.Errorf("write maildir: folder %q: more than 26 keywords", mb.Folders[m.Folder].Name)
				}
				ff.kwIndex[fl] = len(ff.keywords)
				ff.keywords = append(ff.keywords, fl)
			}
		}
	}
	for _, ff := range folders {
		if len(ff.keywords) == 0 {
			continue
		}
		var b strings.Builder
		for i, kw := range ff.keywords {
			fmt.Fprintf(&b, "%d %s\n", i, kw)
		}
		if err := t.writeFile(filepath.Join(ff.dir, "dovecot-keywords"), []byte(b.String())); err != nil {
			return nil, err
		}
	}

	var buf []byte
	for i, m := range mb.Messages {
		ff := folders[m.Folder]
		buf = mb.Render(buf[:0], i)
		var info []byte
		for _, fl := range m.Flags {
			if c, ok := maildirFlag[fl]; ok {
				info = append(info, c)
			} else if k, ok := ff.kwIndex[fl]; ok {
				info = append(info, byte('a'+k))
			}
		}
		sort.Slice(info, func(a, b int) bool { return info[a] < info[b] })
		// The microseconds field orders messages of the same second by index, and the
		// P field keeps names unique (duplicates share a date).
		name := fmt.Sprintf("%d.M%dP%d.bench,S=%d,W=%d:2,%s",
			m.InternalDate.Unix(), i%1000000, i, len(buf), len(buf), info)
		path := filepath.Join(ff.dir, "cur", name)
		if err := t.writeFile(path, buf); err != nil {
			return nil, err
		}
		if err := os.Chtimes(path, m.InternalDate, m.InternalDate); err != nil {
			return nil, fmt.Errorf("write maildir: %w", err)
		}
		lf := &loaded.Folders[m.Folder]
		lf.Messages = append(lf.Messages, LoadedMessage{
			SHA256:       sha256.Sum256(buf),
			Size:         int64(len(buf)),
			Flags:        append([]string(nil), m.Flags...),
			InternalUnix: m.InternalDate.Unix(),
		})
		loaded.Messages++
		loaded.Bytes += int64(len(buf))
	}
	return loaded, nil
}

func (t MaildirTarget) mkdir(dir string) error {
	if err := mkdirOwned(filepath.Dir(t.Root), dir, t.UID, t.GID); err != nil {
		return fmt.Errorf("write maildir: %w", err)
	}
	return nil
}

func (t MaildirTarget) writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write maildir: %w", err)
	}
	return t.chown(path)
}

func (t MaildirTarget) chown(path string) error {
	if t.UID < 0 && t.GID < 0 {
		return nil
	}
	if err := os.Lchown(path, t.UID, t.GID); err != nil {
		return fmt.Errorf("write maildir: %w", err)
	}
	return nil
}

// mkdirOwned creates dir and its missing parents below base, owned by uid:gid.
func mkdirOwned(base, dir string, uid, gid int) error {
	rel, err := filepath.Rel(base, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("mkdir %s: not under %s", dir, base)
	}
	if rel == "." {
		return nil
	}
	cur := base
	for _, p := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, p)
		err := os.Mkdir(cur, 0o700)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("mkdir: %w", err)
		}
		if uid >= 0 || gid >= 0 {
			if err := os.Lchown(cur, uid, gid); err != nil {
				return fmt.Errorf("mkdir: %w", err)
			}
		}
	}
	return nil
}
