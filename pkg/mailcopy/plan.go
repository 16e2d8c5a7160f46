package mailcopy

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
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
	var opts *imap.ListOptions
	if caps.Has(imap.CapSpecialUse) || caps.Has(imap.CapListStatus) {
		opts = &imap.ListOptions{ReturnSpecialUse: caps.Has(imap.CapSpecialUse)}
		if caps.Has(imap.CapListStatus) {
			opts.ReturnStatus = listStatus(caps)
		}
	}
	// NAMESPACE and LIST are pipelined: one round trip for both.
	var nsCmd *imapclient.NamespaceCommand
	if caps.Has(imap.CapNamespace) {
		nsCmd = cl.Namespace()
	}
	listCmd := cl.List("", "*", opts)
	haveNS := false
	if nsCmd != nil {
		ns, err := nsCmd.Wait()
		if err != nil {
			// go-imap's Close waits for the LIST to be read: drain it first.
			_, _ = CollectList(cl, listCmd)
			return nil, fmt.Errorf("namespace: %w", err)
		}
		if len(ns.Personal) > 0 {
			l.side.Prefix, l.side.Delim = ns.Personal[0].Prefix, ns.Personal[0].Delim
			haveNS = true
		}
	}
	boxes, err := CollectList(cl, listCmd)
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
	boxes, err := CollectList(cl, cl.List("", "*", &imap.ListOptions{ReturnStatus: listStatus(c.Caps())}))
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

// CollectList reads a LIST's answer, at most MaxFolders of it. Past that it closes the
// connection and fails (a *Error of KindConnect).
func CollectList(c *imapclient.Client, cmd *imapclient.ListCommand) ([]*imap.ListData, error) {
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

	// dstConn is the planning's destination connection, kept for the
	// creation of the folders (see engine.create); nil when there is none to
	// create (or in a dry run).
	dstConn *imapconn.Client
	// done is closed once the destination folders are created (see
	// engine.create); created, refused and createErr, and the created
	// folders' entries of dst.status, are read only after it.
	done    chan struct{}
	created map[string]bool // destination folders created by this run
	// refused are the destination folders the server would not create, with
	// its answer: each is a failed folder of the result; the rest is copied.
	refused   map[string]string
	createErr error // the creation failed: the copy stops with it
}

// planFolders lists both accounts and maps the folders. The planning's
// source connection then joins the pool, and its destination connection is
// kept in p.dstConn when folders are to be created (see engine.create): the
// workers start while they are.
func (e *engine) planFolders(ctx context.Context) (*planned, error) {
	p := planned{done: make(chan struct{})}
	err := e.withConns(ctx, func(src, dst *imapconn.Client) (bool, error) {
		// Both accounts are listed at once: on distant servers the plan
		// waits for the slower, not for both in turn.
		var dstErr error
		dstDone := make(chan struct{})
		go func() {
			defer close(dstDone)
			p.dst, dstErr = list(dst)
		}()
		var err error
		p.src, err = list(src)
		<-dstDone
		if err != nil {
			return false, fmt.Errorf("source: %w", err)
		}
		if dstErr != nil {
			return false, fmt.Errorf("destination: %w", dstErr)
		}
		p.plan, err = foldermap.Map(p.src.side, p.dst.side, foldermap.Options{
			Include: e.cfg.Include, Exclude: e.cfg.Exclude,
			IncludeGmailViews: e.cfg.IncludeGmailViews, Provider: e.cfg.Provider,
		})
		if err != nil {
			return false, &Error{Kind: KindConnect, Err: fmt.Errorf("plan folders: %w", err)}
		}
		if e.cfg.DryRun || len(p.plan.Create) == 0 {
			return false, nil
		}
		p.dstConn = dst
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	p.created, p.refused = map[string]bool{}, map[string]string{}
	if p.dstConn == nil {
		close(p.done)
	}
	return &p, nil
}

// create creates (and subscribes) the destination folders of the plan,
// parents first (see createFolders), on the planning's destination
// connection, while the workers start on the source side; it closes p.done
// once every folder is settled. A worker waits for it before its first
// command on a folder to create (see worker.awaitFolder), and before it dials
// a destination connection of its own (the pool's were dialed within
// Connections-1): the planning's connection is open until then.
//
// A connection that fails is replaced, with the reconnect policy, for the
// folders not settled yet (an attempt that settled some counts as the first
// failure in a row): the folders it created, answered or not, are subscribed
// unless their SUBSCRIBE was answered. A creation that fails for good stops
// the copy with its error, as a failed plan did.
func (e *engine) create(ctx context.Context, p *planned) {
	defer close(p.done)
	defer func() {
		if r := recover(); r != nil {
			// As in a worker: the stack goes to the log, the error to the status.
			e.log.Error("copy_create_panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			p.createErr = fmt.Errorf("internal error in the copy engine (a panic: %v)", r)
			e.stop(p.createErr)
		}
	}()
	conn := p.dstConn
	p.dstConn = nil
	subscribed := map[string]bool{} // SUBSCRIBE answered (or refused: not tried again)
	progress := func() int { return len(p.created) + len(p.refused) + len(subscribed) }
	err := e.retryProgress(ctx, "create folders", progress, func() error {
		c := conn
		conn = nil
		var exists, subs map[string]bool
		if c == nil {
			var err error
			if c, err = e.dialDest(ctx, nil); err != nil {
				return err
			}
			// A connection was lost: what it created (answered or not) is
			// there now, and is not created again, as a new plan would not;
			// what it subscribed is not subscribed again.
			if exists, subs, err = existing(c); err != nil {
				c.Close()
				return fmt.Errorf("destination: %w", err)
			}
		}
		// Closed, not logged out: every answer was read, and waiting for
		// LOGOUT's would hold the workers back a round trip.
		defer c.Close()
		var names, unsubscribed []string
		for _, name := range p.plan.Create {
			if subs[name] {
				subscribed[name] = true
			}
			_, refused := p.refused[name]
			switch there := p.created[name] || exists[name]; {
			case refused:
			case !there:
				names = append(names, name)
			case !subscribed[name]:
				// Created by a connection lost before its SUBSCRIBE was
				// answered (or by another client meanwhile: subscribed as
				// the copy's own would be).
				unsubscribed = append(unsubscribed, name)
			}
		}
		// The status of the created folders is asked for with the last
		// wave's SUBSCRIBEs: one round trip for both.
		return createFolders(c.IMAP(), names, unsubscribed, p.dst.side.Delim, p.created, p.refused, subscribed, func() error {
			if err := statusCreated(c, p.dst, p.created); err != nil {
				return fmt.Errorf("destination: %w", err)
			}
			return nil
		})
	})
	if conn != nil {
		conn.Close() // not used: the first attempt did not run
	}
	if err != nil && ctx.Err() != nil {
		p.createErr = err // the copy was cancelled: classifyEnd says so
		return
	}
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			ce = &Error{Kind: KindTemporary, Err: err}
		}
		p.createErr = ce
		e.stop(ce)
		return
	}
	for _, name := range p.plan.Create {
		if reason, ok := p.refused[name]; ok {
			e.log.Warn("folder_not_created", "folder", name, "answer", reason)
		}
	}
}

// existing lists the destination's folders that exist (and can be selected:
// see folderExists), by name, and with LIST-EXTENDED those that are
// subscribed (nil without).
func existing(c *imapconn.Client) (exists, subscribed map[string]bool, _ error) {
	var opts *imap.ListOptions
	if caps := c.Caps(); caps.Has(imap.CapListExtended) || caps.Has(imap.CapIMAP4rev2) {
		opts = &imap.ListOptions{ReturnSubscribed: true}
		subscribed = map[string]bool{}
	}
	boxes, err := CollectList(c.IMAP(), c.IMAP().List("", "*", opts))
	if err != nil {
		return nil, nil, fmt.Errorf("list folders: %w", err)
	}
	exists = make(map[string]bool, len(boxes))
	for _, b := range boxes {
		exists[b.Mailbox] = !slices.ContainsFunc(b.Attrs, func(a imap.MailboxAttr) bool {
			return strings.EqualFold(string(a), `\NonExistent`) || strings.EqualFold(string(a), `\Noselect`)
		})
		if subscribed != nil && slices.ContainsFunc(b.Attrs, func(a imap.MailboxAttr) bool {
			return strings.EqualFold(string(a), string(imap.MailboxAttrSubscribed))
		}) {
			subscribed[b.Mailbox] = true
		}
	}
	return exists, subscribed, nil
}

// refusedCreate is the error of a folder the destination refused to create.
func refusedCreate(name, reason string) error {
	return &refusedError{fmt.Errorf("the destination refused to create folder %q: %s", name, reason)}
}

// createFolders creates and subscribes the folders, parents first, and
// records in created those this call created; it subscribes the folders of
// unsubscribed too (they exist), and records in subscribed every folder whose
// SUBSCRIBE the server answered. A folder that exists already is
// fine, whatever the server's words for it: a CREATE refused without
// ALREADYEXISTS is followed by a LIST of the name (Courier answers "NO Cannot
// create this folder." for an existing folder). A folder that the server
// refuses to create and that does not exist ("NO Invalid mailbox name" on
// Cyrus for "100% done", "NO Error in IMAP command received by server." on
// Courier for an emoji name, which it also refuses to LIST) goes into refused with the server's answer: one such
// folder must not stop the copy of the others.
//
// The commands are pipelined: the folders are created in waves (see
// createWaves), a wave's CREATEs sent together with the SUBSCRIBEs of the
// wave before, so that a distant server costs a round trip per level of
// nesting, not two per folder. A child is never created before its parent's
// CREATE was answered. last, unless nil, is called once every folder was
// created, right behind the last wave's SUBSCRIBEs, before their answers are
// awaited: what it sends shares their round trip.
func createFolders(c *imapclient.Client, names, unsubscribed []string, delim rune, created map[string]bool, refused map[string]string, subscribed map[string]bool, last func() error) error {
	subscribe := unsubscribed // the previous wave's folders that exist
	waves := append(createWaves(names, delim), nil)
	for w, wave := range waves {
		// The CREATEs go first: a session cut after so many commands (Gmail)
		// still creates folders, and the next subscribes them.
		creates := make([]*imapclient.Command, len(wave))
		for i, name := range wave {
			creates[i] = c.Create(name, nil)
		}
		subs := make([]*imapclient.Command, len(subscribe))
		for i, name := range subscribe {
			// A client that shows only subscribed folders must see the copy.
			subs[i] = c.Subscribe(name)
		}
		if w == len(waves)-1 && last != nil {
			if err := last(); err != nil {
				return err
			}
		}
		var firstErr error
		for i, cmd := range subs {
			err := cmd.Wait()
			var imapErr *imap.Error
			switch {
			case err == nil || errors.As(err, &imapErr):
				// A refusal is not tried again: the folder is copied all the same.
				subscribed[subscribe[i]] = true
			case firstErr == nil:
				firstErr = fmt.Errorf("destination: subscribe %q: %w", subscribe[i], err)
			}
		}
		results := make([]error, len(wave))
		for i, cmd := range creates {
			results[i] = cmd.Wait()
		}
		if firstErr != nil {
			return firstErr
		}
		subscribe = nil
		for i, name := range wave {
			ok, err := createdOrExists(c, name, results[i], created, refused)
			if err != nil {
				return err
			}
			if ok {
				subscribe = append(subscribe, name)
			}
		}
	}
	return nil
}

// createdOrExists settles the answer err to CREATE name: ok when the folder
// exists now (created, or there already).
func createdOrExists(c *imapclient.Client, name string, err error, created map[string]bool, refused map[string]string) (ok bool, _ error) {
	if err == nil {
		created[name] = true
		return true, nil
	}
	var imapErr *imap.Error
	switch {
	case isAlreadyExists(err):
		return true, nil
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
			return false, fmt.Errorf("destination: create folder %q: %w (and then: %w)", name, err, lerr)
		}
		if !exists {
			refused[name] = strings.TrimSpace(string(imapErr.Type) + " " + imapErr.Text)
			return false, nil
		}
		return true, nil
	default:
		return false, fmt.Errorf("destination: create folder %q: %w", name, err)
	}
}

// createWaves cuts names (parents before children) into waves that can be
// created with pipelined commands: a folder is in the wave after the latest
// of its ancestors that names holds, so no wave holds a folder and one of its
// ancestors. Without a delimiter there is no hierarchy: one wave. The order
// of names is kept within each wave.
func createWaves(names []string, delim rune) [][]string {
	level := make(map[string]int, len(names))
	var waves [][]string
	for _, name := range names {
		n := 0
		if delim != 0 {
			for parent := name; ; {
				i := strings.LastIndex(parent, string(delim))
				if i <= 0 {
					break
				}
				parent = parent[:i]
				if l, ok := level[parent]; ok {
					n = max(n, l+1)
				}
			}
		}
		if _, dup := level[name]; !dup {
			level[name] = n
		}
		for len(waves) <= n {
			waves = append(waves, nil)
		}
		waves[n] = append(waves[n], name)
	}
	return waves
}

// folderExists asks LIST whether the folder exists (and can be selected).
// LIST's wildcards in the name ('%', '*') can match other folders too: only
// the exact name counts.
func folderExists(c *imapclient.Client, name string) (bool, error) {
	boxes, err := CollectList(c, c.List("", name, nil))
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

// wantConns tells the pool which of its early dials log in (see dialPool):
// a source connection for each worker but one (which gets the planning's),
// and a write connection for each worker whose first folder, the biggest
// first, has messages and is new or empty on the destination (it needs no
// metadata pass there).
func (e *engine) wantConns(runnable []*job) {
	order := byWeight(runnable)
	workers := min(e.cfg.Connections, len(order))
	fresh := 0
	for _, j := range order[:workers] {
		if !j.srcEmpty && (j.creating || j.dstEmpty) {
			fresh++
		}
	}
	e.pool.want(workers-1, fresh)
}
