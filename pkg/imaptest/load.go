package imaptest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/sync/errgroup"

	"imapcopy.dev/pkg/imapconn"
)

// loadConnections is how many connections Load uses in parallel (one folder each).
const loadConnections = 4

// appendWindow is how many APPENDs Load keeps in flight on one connection.
const appendWindow = 32

// Load fills the account with mb: it creates every folder (mapping the logical "/"
// names to the server's separator and personal namespace prefix; special-use folders go
// to the server's folder with the same attribute) and appends the messages in order,
// with their flags and internal dates, several in flight per connection.
func Load(ctx context.Context, acct imapconn.Account, mb Mailbox) error {
	c, err := Dial(ctx, acct)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer c.Close()
	l, err := readLayout(c)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	names := l.mapMailbox(mb)

	// Parents before children, whatever order the mailbox lists them in.
	order := make([]int, len(mb.Folders))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return strings.Count(mb.Folders[a].Name, "/") - strings.Count(mb.Folders[b].Name, "/")
	})
	for _, i := range order {
		name := names[i]
		if l.has(name) {
			continue
		}
		if err := c.Create(name, nil).Wait(); err != nil {
			return fmt.Errorf("load: create %q: %w", name, err)
		}
		l.folders = append(l.folders, listedFolder{name: name})
	}
	if err := c.Logout().Wait(); err != nil {
		return fmt.Errorf("load: logout: %w", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(loadConnections)
	for i, f := range mb.Folders {
		if len(f.Messages) == 0 {
			continue
		}
		g.Go(func() error {
			if err := Append(gctx, acct, names[i], f.Messages...); err != nil {
				return fmt.Errorf("load: %w", err)
			}
			return nil
		})
	}
	return g.Wait()
}

// mapMailbox returns the server name of each of mb's folders.
func (l *layout) mapMailbox(mb Mailbox) []string {
	special := map[string]string{} // logical name of a special-use folder -> server name
	for _, f := range mb.Folders {
		if name, ok := l.special[f.SpecialUse]; ok && f.SpecialUse != "" {
			special[f.Name] = name
		}
	}
	names := make([]string, len(mb.Folders))
	for i, f := range mb.Folders {
		path := strings.Split(f.Name, "/")
		names[i] = l.serverName(path)
		// A special-use folder, or a child of one, lives in the server's own.
		for k := len(path); k > 0; k-- {
			if base, ok := special[strings.Join(path[:k], "/")]; ok {
				names[i] = base
				if k < len(path) {
					names[i] += l.delim + strings.Join(path[k:], l.delim)
				}
				break
			}
		}
	}
	return names
}

// Append appends msgs to the mailbox (the server's name for it) in order, keeping
// several APPENDs in flight.
func Append(ctx context.Context, acct imapconn.Account, mailbox string, msgs ...Message) error {
	c, err := Dial(ctx, acct)
	if err != nil {
		return err
	}
	defer c.Close()
	var pending []*imapclient.AppendCommand
	wait := func(cmd *imapclient.AppendCommand) error {
		if _, err := cmd.Wait(); err != nil {
			return fmt.Errorf("append to %q: %w", mailbox, err)
		}
		return nil
	}
	for _, m := range msgs {
		cmd := c.Append(mailbox, int64(len(m.Raw)), &imap.AppendOptions{Flags: toFlags(m.Flags), Time: m.InternalDate})
		if _, err := cmd.Write(m.Raw); err != nil {
			return fmt.Errorf("append to %q: %w", mailbox, err)
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("append to %q: %w", mailbox, err)
		}
		pending = append(pending, cmd)
		if len(pending) >= appendWindow {
			if err := wait(pending[0]); err != nil {
				return err
			}
			pending = pending[1:]
		}
	}
	for _, cmd := range pending {
		if err := wait(cmd); err != nil {
			return err
		}
	}
	if err := c.Logout().Wait(); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// AppendRaw appends one message to the mailbox (the server's name for it) and returns
// its UID (from UIDPLUS).
func AppendRaw(ctx context.Context, acct imapconn.Account, mailbox string, raw []byte, date time.Time, flags ...string) (imap.UID, error) {
	c, err := Dial(ctx, acct)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	cmd := c.Append(mailbox, int64(len(raw)), &imap.AppendOptions{Flags: toFlags(flags), Time: date})
	if _, err := cmd.Write(raw); err != nil {
		return 0, fmt.Errorf("append to %q: %w", mailbox, err)
	}
	if err := cmd.Close(); err != nil {
		return 0, fmt.Errorf("append to %q: %w", mailbox, err)
	}
	data, err := cmd.Wait()
	if err != nil {
		return 0, fmt.Errorf("append to %q: %w", mailbox, err)
	}
	c.Logout().Wait()
	return data.UID, nil
}

// CreateFolder creates the mailbox (the server's name for it).
func CreateFolder(ctx context.Context, acct imapconn.Account, mailbox string) error {
	c, err := Dial(ctx, acct)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Create(mailbox, nil).Wait(); err != nil {
		return fmt.Errorf("create %q: %w", mailbox, err)
	}
	return c.Logout().Wait()
}

// ListFolders lists the account's folders (server names, sorted) with their LIST
// attributes, special-use included.
func ListFolders(ctx context.Context, acct imapconn.Account) (map[string][]string, error) {
	c, err := Dial(ctx, acct)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	l, err := readLayout(c)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(l.folders))
	for _, f := range l.folders {
		out[f.name] = f.attrs
	}
	return out, c.Logout().Wait()
}

// ReadFolder returns every message of the mailbox (the server's name for it) in UID
// order, with flags (\Recent dropped) and internal date, reading it with EXAMINE and
// BODY.PEEK[] so that nothing changes. It holds the messages in memory: for small
// mailboxes in tests.
func ReadFolder(ctx context.Context, acct imapconn.Account, mailbox string) ([]Message, error) {
	c, err := Dial(ctx, acct)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	digests, err := Scan(c, mailbox, ScanOptions{Head: -1})
	if err != nil {
		return nil, err
	}
	var out []Message
	for _, d := range digests {
		out = append(out, Message{Raw: d.Head, Flags: d.Flags, InternalDate: d.InternalDate})
	}
	return out, c.Logout().Wait()
}

func toFlags(flags []string) []imap.Flag {
	out := make([]imap.Flag, 0, len(flags))
	for _, f := range flags {
		out = append(out, imap.Flag(f))
	}
	return out
}

// cleanFlags drops \Recent (a session property, not a flag of the message) and sorts
// the rest; system flags are given their canonical case.
func cleanFlags(flags []imap.Flag) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		s := string(f)
		if strings.EqualFold(s, `\Recent`) {
			continue
		}
		for _, sys := range []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`} {
			if strings.EqualFold(s, sys) {
				s = sys
			}
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}
