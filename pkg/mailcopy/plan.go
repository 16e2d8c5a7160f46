package mailcopy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"imapcopy.dev/pkg/foldermap"
	"imapcopy.dev/pkg/imapconn"
)

// listing is what LIST and NAMESPACE say about one account.
type listing struct {
	side   foldermap.Side
	status map[string]*imap.StatusData // by folder name; only with LIST-STATUS
	caps   imap.CapSet
}

// list reads an account's personal namespace and folders: NAMESPACE for the
// prefix and delimiter, LIST "" "*" with SPECIAL-USE attributes, and with
// LIST-STATUS the message counts (for early progress totals and to skip the
// metadata pass of an empty destination folder).
func list(c *imapconn.Client) (*listing, error) {
	caps := c.Caps()
	cl := c.IMAP()
	l := &listing{caps: caps, status: map[string]*imap.StatusData{}}
	haveNS := false
	if caps.Has(imap.CapNamespace) {
		ns, err := cl.Namespace().Wait()
		if err != nil {
			return nil, fmt.Errorf("namespace: %w", err)
		}
		if len(ns.Personal) > 0 {
			l.side.Prefix, l.side.Delim = ns.Personal[0].Prefix, ns.Personal[0].Delim
			haveNS = true
		}
	}
	var opts *imap.ListOptions
	if caps.Has(imap.CapSpecialUse) || caps.Has(imap.CapListStatus) {
		opts = &imap.ListOptions{ReturnSpecialUse: caps.Has(imap.CapSpecialUse)}
		if caps.Has(imap.CapListStatus) {
			opts.ReturnStatus = listStatus(caps)
		}
	}
	boxes, err := collectList(cl, cl.List("", "*", opts))
	if err != nil {
		return nil, fmt.Errorf("list folders: %w", err)
	}
	for _, b := range boxes {
		f := foldermap.Folder{Name: b.Mailbox}
		for _, a := range b.Attrs {
			f.Attrs = append(f.Attrs, string(a))
		}
		l.side.Folders = append(l.side.Folders, f)
		if b.Status != nil {
			l.status[b.Mailbox] = b.Status
		}
		if !haveNS && b.Delim != 0 {
			l.side.Delim = b.Delim
		}
	}
	return l, nil
}

// listStatus is what LIST-STATUS asks of each folder: the counts, and UIDNEXT
// and UIDVALIDITY for the rerun shortcut (see State).
func listStatus(caps imap.CapSet) *imap.StatusOptions {
	return &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, Size: caps.Has(imap.CapStatusSize)}
}

// statusCreated reads, with LIST-STATUS, the status of the folders this run
// created: the starting point of their State (see worker.attempt).
func statusCreated(c *imapconn.Client, l *listing, created map[string]bool) error {
	if len(created) == 0 || !c.Caps().Has(imap.CapListStatus) {
		return nil
	}
	cl := c.IMAP()
	boxes, err := collectList(cl, cl.List("", "*", &imap.ListOptions{ReturnStatus: listStatus(c.Caps())}))
	if err != nil {
		return fmt.Errorf("list folders: %w", err)
	}
	for _, b := range boxes {
		if created[b.Mailbox] && b.Status != nil {
			l.status[b.Mailbox] = b.Status
		}
	}
	return nil
}

// MaxFolders is the most folders a LIST may return: a server that lists more (a hostile
// one that never ends its LIST) fails the plan rather than fill the memory.
const MaxFolders = 100_000

// collectList reads a LIST's answer, at most MaxFolders of it. Past that it closes the
// connection and fails.
func collectList(c *imapclient.Client, cmd *imapclient.ListCommand) ([]*imap.ListData, error) {
	var boxes []*imap.ListData
	for {
		b := cmd.Next()
		if b == nil {
			return boxes, cmd.Close()
		}
		if len(boxes) == MaxFolders {
			// go-imap's Close waits for its reader, which waits for the next folder
			// to be taken: drain while closing.
			drained := make(chan struct{})
			go func() {
				defer close(drained)
				for cmd.Next() != nil {
				}
			}()
			_ = c.Close()
			<-drained
			_ = cmd.Close()
			return nil, &Error{Kind: KindConnect, Err: fmt.Errorf("the server lists more than %d folders", MaxFolders)}
		}
		boxes = append(boxes, b)
	}
}

// planned is the folder plan of a copy.
type planned struct {
	plan     *foldermap.Plan
	src, dst *listing
	created  map[string]bool // destination folders created by this run
	// refused are the destination folders the server would not create, with
	// its answer: each is a failed folder of the result; the rest is copied.
	refused map[string]string
}

// planFolders lists both accounts, maps the folders and, unless dry run,
// creates (and subscribes) the destination folders the plan needs, parents
// first (see createFolders).
func (e *engine) planFolders(ctx context.Context) (*planned, error) {
	var p planned
	err := e.withConns(ctx, func(src, dst *imapconn.Client) error {
		var err error
		if p.src, err = list(src); err != nil {
			return fmt.Errorf("source: %w", err)
		}
		if p.dst, err = list(dst); err != nil {
			return fmt.Errorf("destination: %w", err)
		}
		p.plan, err = foldermap.Map(p.src.side, p.dst.side, foldermap.Options{
			Include: e.cfg.Include, Exclude: e.cfg.Exclude,
			IncludeGmailViews: e.cfg.IncludeGmailViews, Provider: e.cfg.Provider,
		})
		if err != nil {
			return &Error{Kind: KindConnect, Err: fmt.Errorf("plan folders: %w", err)}
		}
		if e.cfg.DryRun {
			return nil
		}
		p.created, p.refused = map[string]bool{}, map[string]string{}
		if err := createFolders(dst.IMAP(), p.plan.Create, p.created, p.refused); err != nil {
			return err
		}
		if err := statusCreated(dst, p.dst, p.created); err != nil {
			return fmt.Errorf("destination: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// createFolders creates and subscribes the folders, parents first, and
// records in created those this call created. A folder that exists already is
// fine, whatever the server's words for it: a CREATE refused without
// ALREADYEXISTS is followed by a LIST of the name (Courier answers "NO Cannot
// create this folder." for an existing folder). A folder that the server
// refuses to create and that does not exist ("NO Invalid mailbox name" on
// Cyrus for "100% done", "NO Error in IMAP command received by server." on
// Courier for an emoji name, which it also refuses to LIST) goes into refused with the server's answer: one such
// folder must not stop the copy of the others.
func createFolders(c *imapclient.Client, names []string, created map[string]bool, refused map[string]string) error {
	for _, name := range names {
		if err := c.Create(name, nil).Wait(); err != nil {
			var imapErr *imap.Error
			switch {
			case isAlreadyExists(err):
			case errors.As(err, &imapErr):
				exists, lerr := folderExists(c, name)
				var listErr *imap.Error
				if errors.As(lerr, &listErr) {
					// The server refuses even to LIST the name (Courier: "NO Error
					// in IMAP command received by server." for an emoji name): no
					// such folder can exist there.
					exists, lerr = false, nil
				}
				if lerr != nil {
					return fmt.Errorf("destination: create folder %q: %w (and then: %w)", name, err, lerr)
				}
				if !exists {
					refused[name] = strings.TrimSpace(string(imapErr.Type) + " " + imapErr.Text)
					continue
				}
			default:
				return fmt.Errorf("destination: create folder %q: %w", name, err)
			}
		} else {
			created[name] = true
		}
		// A client that shows only subscribed folders must see the copy.
		if err := c.Subscribe(name).Wait(); err != nil {
			var imapErr *imap.Error
			if !errors.As(err, &imapErr) {
				return fmt.Errorf("destination: subscribe %q: %w", name, err)
			}
		}
	}
	return nil
}

// folderExists asks LIST whether the folder exists (and can be selected).
// LIST's wildcards in the name ('%', '*') can match other folders too: only
// the exact name counts.
func folderExists(c *imapclient.Client, name string) (bool, error) {
	boxes, err := collectList(c, c.List("", name, nil))
	if err != nil {
		return false, fmt.Errorf("list folder %q: %w", name, err)
	}
	for _, b := range boxes {
		if b.Mailbox != name {
			continue
		}
		for _, a := range b.Attrs {
			if strings.EqualFold(string(a), `\NonExistent`) || strings.EqualFold(string(a), `\Noselect`) {
				return false, nil
			}
		}
		return true, nil
	}
	return false, nil
}

func isAlreadyExists(err error) bool {
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) {
		return false
	}
	return imapErr.Code == imap.ResponseCodeAlreadyExists ||
		strings.Contains(strings.ToLower(imapErr.Text), "already exists")
}
