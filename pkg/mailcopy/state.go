package mailcopy

import (
	"net"
	"strconv"
	"time"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/imapconn"
)

// State is what a copy proved about the folders it completed: for each, the
// source and destination folders' UIDVALIDITY, UIDNEXT and message count at a
// moment when every source message in scope was on the destination. Handed to
// the next copy of the same accounts (Config.Previous), it lets that copy skip
// the metadata passes of a folder that LIST-STATUS proves unchanged since.
//
// A folder is skipped only when both of these hold, else it gets the full
// metadata pass and diff:
//
//   - source: same UIDVALIDITY, same UIDNEXT and same message count. UIDNEXT
//     changes whenever a message is added, even one expunged since (RFC 3501
//     2.3.1.1), so no message was added, and with the same count none was
//     expunged: the same messages, all on the destination.
//   - destination: same UIDVALIDITY, and the message count grew by exactly as
//     much as UIDNEXT (or neither moved). Every UID allocated since is still
//     there, and so is every message of then: nothing was expunged (an
//     expunge makes the count lag behind UIDNEXT for good). Messages added to
//     the destination take nothing away; the copy's own report is one.
//
// The state is recorded only for a folder whose last attempt found nothing
// missing that it did not append: no failed or skipped message, not a dry run,
// not Gmail's archive-only All Mail (whose scope depends on the other folders).
// A copy with another Since, or of other accounts, ignores it.
type State struct {
	Source      string       `json:"source"`      // account: login@host:port (stateAccount)
	Destination string       `json:"destination"` // account: login@host:port
	Since       time.Time    `json:"since,omitzero"`
	Folders     []Checkpoint `json:"folders"`
}

// Checkpoint is one completed folder of a State.
type Checkpoint struct {
	Source      string       `json:"source"`
	Destination string       `json:"destination"`
	Src         MailboxState `json:"src"`
	Dst         MailboxState `json:"dst"`
	// Total and TotalBytes are the folder's source messages in scope then
	// (Counts.Total, Counts.TotalBytes): with the source unchanged, they are
	// the counts of a skipped folder.
	Total      int   `json:"total"`
	TotalBytes int64 `json:"total_bytes"`
}

// MailboxState is what STATUS (or SELECT) says of one folder.
type MailboxState struct {
	UIDValidity uint32 `json:"uidvalidity"`
	UIDNext     uint32 `json:"uidnext"`
	Messages    uint32 `json:"messages"`
}

func (m MailboxState) known() bool { return m.UIDValidity != 0 && m.UIDNext != 0 }

func fromStatus(st *imap.StatusData) (MailboxState, bool) {
	if st == nil || st.NumMessages == nil {
		return MailboxState{}, false
	}
	m := MailboxState{UIDValidity: st.UIDValidity, UIDNext: uint32(st.UIDNext), Messages: *st.NumMessages}
	return m, m.known()
}

func fromSelect(sel *imap.SelectData) (MailboxState, bool) {
	m := MailboxState{UIDValidity: sel.UIDValidity, UIDNext: uint32(sel.UIDNext), Messages: sel.NumMessages}
	return m, m.known()
}

// sourceUnchanged: the same messages as then (see State).
func sourceUnchanged(then, now MailboxState) bool {
	return then.known() && then == now
}

// destinationKept: every message of then is still there (see State).
func destinationKept(then, now MailboxState) bool {
	if !then.known() || now.UIDValidity != then.UIDValidity || now.UIDNext < then.UIDNext || now.Messages < then.Messages {
		return false
	}
	return now.Messages-then.Messages == now.UIDNext-then.UIDNext
}

// previous returns the state recorded for the folder pair, when cfg.Previous
// is about these accounts and this scope.
func (e *engine) previous(source, dest string) (Checkpoint, bool) {
	p := e.cfg.Previous
	if p == nil || p.Source != stateAccount(e.cfg.Source) || p.Destination != stateAccount(e.cfg.Destination) || !p.Since.Equal(e.cfg.Since) {
		return Checkpoint{}, false
	}
	for _, f := range p.Folders {
		if f.Source == source && f.Destination == dest {
			return f, true
		}
	}
	return Checkpoint{}, false
}

// unchanged says whether the folder can be taken as complete without its
// metadata passes, and with what state (the destination's as it is now).
func (e *engine) unchanged(p *planned, j *job) (Checkpoint, bool) {
	if j.m.ArchiveOnly || e.cfg.Previous == nil {
		return Checkpoint{}, false
	}
	prev, ok := e.previous(j.m.Source, j.m.Dest)
	if !ok {
		return Checkpoint{}, false
	}
	src, ok := fromStatus(p.src.status[j.m.Source])
	if !ok || !sourceUnchanged(prev.Src, src) {
		return Checkpoint{}, false
	}
	dst, ok := fromStatus(p.dst.status[j.m.Dest])
	if !ok || !destinationKept(prev.Dst, dst) {
		return Checkpoint{}, false
	}
	prev.Dst = dst
	return prev, true
}

// stateAccount names an account in a State: login, host and port, no secret.
func stateAccount(a imapconn.Account) string {
	return a.Login + "@" + net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
}
