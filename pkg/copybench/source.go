package copybench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
)

// LoadSource adds a fresh user to d, writes mb into its Maildir directly (fast: no IMAP
// transaction per message) and verifies over IMAP that Dovecot shows every message with
// its bytes, flags, keywords and internal date (Verify). The verification also builds
// Dovecot's indexes and warms the page cache, so that no measured run pays for them.
func LoadSource(ctx context.Context, d *imaptest.Dovecot, mb *imaptest.Plan) (imapconn.Account, *Loaded, error) {
	acct, err := d.NewUser()
	if err != nil {
		return imapconn.Account{}, nil, fmt.Errorf("load source: %w", err)
	}
	t, err := DovecotTarget(d, acct.Login)
	if err != nil {
		return imapconn.Account{}, nil, fmt.Errorf("load source: %w", err)
	}
	if err := mkdirOwned(filepath.Dir(filepath.Dir(t.Root)), t.Root, t.UID, t.GID); err != nil {
		return imapconn.Account{}, nil, fmt.Errorf("load source: %w", err)
	}
	loaded, err := WriteMaildir(mb, t)
	if err != nil {
		return imapconn.Account{}, nil, fmt.Errorf("load source: %w", err)
	}
	if err := Verify(ctx, acct, loaded); err != nil {
		return imapconn.Account{}, nil, fmt.Errorf("load source: %w", err)
	}
	return acct, loaded, nil
}

// DovecotTarget is the Maildir of login on d: the home is d.Dir/mail/<login> (the
// harness's userdb), owned like d's mail directory.
func DovecotTarget(d *imaptest.Dovecot, login string) (MaildirTarget, error) {
	mailDir := filepath.Join(d.Dir, "mail")
	fi, err := os.Stat(mailDir)
	if err != nil {
		return MaildirTarget{}, fmt.Errorf("dovecot mail dir: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return MaildirTarget{}, fmt.Errorf("dovecot mail dir: no owner information")
	}
	layout := LayoutFS
	if d.Flavour == imaptest.FlavourDot {
		layout = LayoutMaildirPlusPlus
	}
	return MaildirTarget{
		Root:       filepath.Join(mailDir, login, "Maildir"),
		Layout:     layout,
		Prefix:     d.Flavour.Prefix(),
		SpecialUse: d.SpecialUse,
		UID:        int(st.Uid),
		GID:        int(st.Gid),
	}, nil
}

// Verify checks over IMAP that acct holds exactly what loaded says, folder by folder:
// the same messages (SHA-256 of the bytes, size), each with its flags and keywords and
// internal date. It SELECTs each folder, which clears \Recent once for all runs.
func Verify(ctx context.Context, acct imapconn.Account, loaded *Loaded) error {
	c, err := imaptest.Dial(ctx, acct)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer c.Close()
	for _, f := range loaded.Folders {
		want := make([]string, 0, len(f.Messages))
		for _, m := range f.Messages {
			want = append(want, messageKey(m))
		}
		var got []string
		err := imaptest.ScanFunc(c, f.Name, imaptest.ScanOptions{Select: true}, func(d imaptest.MessageDigest) error {
			got = append(got, messageKey(LoadedMessage{SHA256: d.SHA256, Size: d.Bytes, Flags: d.Flags, InternalUnix: d.InternalDate.Unix()}))
			return nil
		})
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		sort.Strings(want)
		sort.Strings(got)
		if missing, extra := diffSorted(want, got); len(missing)+len(extra) > 0 {
			return fmt.Errorf("verify: %q: %d messages, want %d; %d missing or different (first: %s), %d unexpected (first: %s)",
				f.Name, len(got), len(want), len(missing), first(missing), len(extra), first(extra))
		}
	}
	if err := c.Logout().Wait(); err != nil {
		return fmt.Errorf("verify: logout: %w", err)
	}
	return nil
}

func messageKey(m LoadedMessage) string {
	return fmt.Sprintf("%x size=%d date=%d flags=%s", m.SHA256[:6], m.Size, m.InternalUnix, strings.Join(m.Flags, ","))
}

// diffSorted returns the elements of the sorted multiset want missing from got, and
// those of got that want lacks.
func diffSorted(want, got []string) (missing, extra []string) {
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || (i < len(want) && want[i] < got[j]):
			missing = append(missing, want[i])
			i++
		case i == len(want) || got[j] < want[i]:
			extra = append(extra, got[j])
			j++
		default:
			i++
			j++
		}
	}
	return missing, extra
}

func first(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return s[0]
}
