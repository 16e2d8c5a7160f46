package imaptest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"imapcopy.dev/pkg/imapconn"
)

// Snapshot is the state of an account that a read-only copy must leave as it is.
type Snapshot struct {
	Folders map[string]FolderState // by server name
}

// FolderState is the state of one folder.
type FolderState struct {
	UIDValidity   uint32
	UIDNext       imap.UID
	HighestModSeq uint64              // 0 without CONDSTORE
	Messages      map[imap.UID]string // UID -> flags, sorted, without \Recent
	// Recent counts the messages with \Recent. EXAMINE leaves \Recent alone and the
	// first SELECT takes it away: a drop means someone SELECTed the folder.
	Recent int
}

// TakeSnapshot records the account's folders, their UIDVALIDITY, UIDNEXT,
// HIGHESTMODSEQ, UIDs and flags, reading with EXAMINE only.
func TakeSnapshot(ctx context.Context, acct imapconn.Account) (*Snapshot, error) {
	c, err := Dial(ctx, acct)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	defer c.Close()
	l, err := readLayout(c)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	condstore := c.Caps().Has(imap.CapCondStore)
	s := &Snapshot{Folders: map[string]FolderState{}}
	for _, f := range l.folders {
		if !f.selectable() {
			continue
		}
		fs, err := folderState(c, f.name, condstore)
		if err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		s.Folders[f.name] = fs
	}
	c.Logout().Wait()
	return s, nil
}

func folderState(c *imapclient.Client, name string, condstore bool) (FolderState, error) {
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true, CondStore: condstore}).Wait()
	if err != nil {
		return FolderState{}, fmt.Errorf("examine %q: %w", name, err)
	}
	fs := FolderState{
		UIDValidity:   sel.UIDValidity,
		UIDNext:       sel.UIDNext,
		HighestModSeq: sel.HighestModSeq,
		Messages:      map[imap.UID]string{},
	}
	if sel.NumMessages == 0 {
		return fs, nil
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		return FolderState{}, fmt.Errorf("fetch %q: %w", name, err)
	}
	for _, m := range msgs {
		for _, f := range m.Flags {
			if strings.EqualFold(string(f), `\Recent`) {
				fs.Recent++
			}
		}
		fs.Messages[m.UID] = strings.Join(cleanFlags(m.Flags), " ")
	}
	return fs, nil
}

// Unchanged takes a new snapshot of acct and reports every difference from s as an
// error (nil when there is none): folders created or deleted, UIDVALIDITY, UIDNEXT or
// HIGHESTMODSEQ changed, messages added, expunged or re-flagged, \Recent taken away.
func (s *Snapshot) Unchanged(ctx context.Context, acct imapconn.Account) error {
	now, err := TakeSnapshot(ctx, acct)
	if err != nil {
		return err
	}
	diffs := s.Diff(now)
	if len(diffs) == 0 {
		return nil
	}
	const maxShown = 30
	if len(diffs) > maxShown {
		diffs = append(diffs[:maxShown], fmt.Sprintf("... and %d more", len(diffs)-maxShown))
	}
	return errors.New("source changed:\n  " + strings.Join(diffs, "\n  "))
}

// Diff lists the differences between s and a later snapshot, in a stable order.
func (s *Snapshot) Diff(later *Snapshot) []string {
	var diffs []string
	names := make([]string, 0, len(s.Folders)+len(later.Folders))
	for n := range s.Folders {
		names = append(names, n)
	}
	for n := range later.Folders {
		if _, ok := s.Folders[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		a, aok := s.Folders[n]
		b, bok := later.Folders[n]
		switch {
		case !bok:
			diffs = append(diffs, fmt.Sprintf("folder %q deleted", n))
			continue
		case !aok:
			diffs = append(diffs, fmt.Sprintf("folder %q created", n))
			continue
		}
		if a.UIDValidity != b.UIDValidity {
			diffs = append(diffs, fmt.Sprintf("folder %q: UIDVALIDITY %d -> %d", n, a.UIDValidity, b.UIDValidity))
			continue
		}
		if a.UIDNext != b.UIDNext {
			diffs = append(diffs, fmt.Sprintf("folder %q: UIDNEXT %d -> %d (something was appended)", n, a.UIDNext, b.UIDNext))
		}
		if a.HighestModSeq != b.HighestModSeq {
			diffs = append(diffs, fmt.Sprintf("folder %q: HIGHESTMODSEQ %d -> %d (something was modified)", n, a.HighestModSeq, b.HighestModSeq))
		}
		if b.Recent < a.Recent {
			diffs = append(diffs, fmt.Sprintf("folder %q: \\Recent on %d messages -> %d (the folder was SELECTed, not EXAMINEd)", n, a.Recent, b.Recent))
		}
		uids := make([]imap.UID, 0, len(a.Messages))
		for u := range a.Messages {
			uids = append(uids, u)
		}
		for u := range b.Messages {
			if _, ok := a.Messages[u]; !ok {
				uids = append(uids, u)
			}
		}
		slices.Sort(uids)
		for _, u := range uids {
			fa, aok := a.Messages[u]
			fb, bok := b.Messages[u]
			switch {
			case !bok:
				diffs = append(diffs, fmt.Sprintf("folder %q: uid %d expunged", n, u))
			case !aok:
				diffs = append(diffs, fmt.Sprintf("folder %q: uid %d added", n, u))
			case fa != fb:
				diffs = append(diffs, fmt.Sprintf("folder %q: uid %d flags [%s] -> [%s]", n, u, fa, fb))
			}
		}
	}
	return diffs
}
