package syncworker

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/providers"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// maxFailedInStatus, maxFoldersInStatus and maxRenamesInStatus bound the lists of the
// status (the report lists everything), so that a status stays well under the stores'
// value limits and a client's default message size (4 MiB) even for a source with
// 100,000 folders (mailcopy.MaxFolders).
const (
	maxFailedInStatus  = 500
	maxFoldersInStatus = 1000
	maxRenamesInStatus = 500
)

// folderRank orders the folders kept in a long status: the ones a person looks for
// (failed, being copied) before the others.
var folderRank = map[imapcopyv1.FolderState]int{
	imapcopyv1.FolderState_FOLDER_STATE_FAILED:  0,
	imapcopyv1.FolderState_FOLDER_STATE_COPYING: 1,
	imapcopyv1.FolderState_FOLDER_STATE_SKIPPED: 2,
	imapcopyv1.FolderState_FOLDER_STATE_PENDING: 3,
	imapcopyv1.FolderState_FOLDER_STATE_DONE:    4,
}

// capFolders keeps at most maxFoldersInStatus entries, the most wanted first (else
// in their order), the last saying how many more the report lists.
func capFolders(fs []*imapcopyv1.FolderProgress) []*imapcopyv1.FolderProgress {
	if len(fs) <= maxFoldersInStatus {
		return fs
	}
	slices.SortStableFunc(fs, func(a, b *imapcopyv1.FolderProgress) int {
		return folderRank[a.GetState()] - folderRank[b.GetState()]
	})
	kept := fs[:maxFoldersInStatus-1]
	return append(kept, &imapcopyv1.FolderProgress{
		Reason: fmt.Sprintf("and %d more folders, listed in the report in the destination INBOX", len(fs)-len(kept)),
	})
}

// checkEndpoints reports an invalid task (FAILED: a person must start it again).
func checkEndpoints(t *imapcopyv1.SyncTask, allowPlaintext bool) error {
	for _, side := range []struct {
		name string
		ep   *imapcopyv1.Endpoint
	}{{"source", t.GetSource()}, {"destination", t.GetDestination()}} {
		ep := side.ep
		switch {
		case ep == nil:
			return invalidf(true, "no %s account", side.name)
		case ep.GetHost() == "" || ep.GetPort() == 0 || ep.GetPort() > 65535:
			return invalidf(true, "the %s account has no valid server address", side.name)
		case ep.GetLogin() == "":
			return invalidf(true, "the %s account has no login", side.name)
		}
		sec, ok := providers.SecurityFromProto(ep.GetSecurity())
		if !ok {
			return invalidf(true, "the %s account has no connection security", side.name)
		}
		if sec == imapconn.SecurityPlaintext && !allowPlaintext {
			return invalidf(true, "the %s account uses IMAP without encryption, which this copier does not allow", side.name)
		}
	}
	if t.GetSealed() == nil {
		return invalidf(true, "no credentials")
	}
	return nil
}

// account builds the engine's account for one endpoint (checked by checkEndpoints).
func account(ep *imapcopyv1.Endpoint, password, token string, cfg Config) imapconn.Account {
	sec, _ := providers.SecurityFromProto(ep.GetSecurity())
	return imapconn.Account{
		Host:               ep.GetHost(),
		Port:               int(ep.GetPort()),
		Security:           sec,
		Login:              ep.GetLogin(),
		Password:           password,
		OAuth2Token:        token,
		InsecureSkipVerify: ep.GetInsecureSkipVerify(),
		RootCAs:            cfg.RootCAs,
	}
}

// connections is the per-account connection cap: the task's option, else the
// worker's default, capped by both providers' limits where set. A provider's limit
// is for the whole account (the customer's phone and mail client count too), so it
// caps the copy; it never raises the default.
func connections(t *imapcopyv1.SyncTask, def int) int {
	n := def
	if c := t.GetOptions().GetMaxConnections(); c > 0 {
		n = int(c)
	}
	for _, c := range []uint32{t.GetSource().GetMaxConnections(), t.GetDestination().GetMaxConnections()} {
		if c > 0 && int(c) < n {
			n = int(c)
		}
	}
	return n
}

// copyConfig turns a checked task and its opened secrets into the engine's
// configuration (without progress and logger, which the task adds).
func copyConfig(t *imapcopyv1.SyncTask, s *imapcopyv1.TaskSecrets, cfg Config) (mailcopy.Config, error) {
	src := account(t.GetSource(), s.GetSourcePassword(), s.GetSourceOauth2AccessToken(), cfg)
	dst := account(t.GetDestination(), s.GetDestinationPassword(), s.GetDestinationOauth2AccessToken(), cfg)
	if src.Password == "" && src.OAuth2Token == "" {
		return mailcopy.Config{}, invalidf(true, "no password or token for the source account")
	}
	if dst.Password == "" && dst.OAuth2Token == "" {
		return mailcopy.Config{}, invalidf(true, "no password or token for the destination account")
	}
	o := t.GetOptions()
	mc := mailcopy.Config{
		Source:            src,
		Destination:       dst,
		Dial:              cfg.Dial,
		Connections:       connections(t, cfg.Connections),
		Include:           o.GetIncludeFolders(),
		Exclude:           o.GetExcludeFolders(),
		Provider:          t.GetSource().GetProvider(),
		DryRun:            o.GetDryRun(),
		NoReport:          o.GetNoReport(),
		Language:          o.GetLanguage(),
		IncludeGmailViews: o.GetIncludeGmailViews(),
		// The api logged in to both accounts before it queued the task: a failed
		// handshake now is the network's, and retried.
		Reached: true,
	}
	// The presets' handling, as data: the longer throttling back-off of the two
	// sides, and no MULTIAPPEND to a destination whose preset says so.
	srcH, dstH := handling(cfg.Providers, t.GetSource()), handling(cfg.Providers, t.GetDestination())
	mc.ThrottleBackoff = max(srcH.ThrottleBackoff, dstH.ThrottleBackoff)
	mc.NoMultiappend = dstH.NoMultiappend
	if m := o.GetMaxMessageSize(); m > 0 {
		if m > 1<<62 {
			return mailcopy.Config{}, invalidf(true, "max_message_size %d is too large", m)
		}
		mc.MaxMessageSize = int64(m)
	}
	if o.GetSince() != nil {
		if err := o.GetSince().CheckValid(); err != nil {
			return mailcopy.Config{}, invalidf(true, "since: %v", err)
		}
		mc.Since = o.GetSince().AsTime()
	}
	return mc, nil
}

// handling is the handling of the endpoint's provider preset; none for an unknown
// preset (a catalogue without it) or without a catalogue.
func handling(c *providers.Catalog, ep *imapcopyv1.Endpoint) providers.Handling {
	if c == nil {
		return providers.Handling{}
	}
	p, _ := c.Get(ep.GetProvider())
	return p.Handling
}

func countsProto(c mailcopy.Counts) *imapcopyv1.Progress {
	return &imapcopyv1.Progress{
		MessagesTotal:   uint64(max(c.Total, 0)),
		MessagesCopied:  uint64(max(c.Copied, 0)),
		MessagesPresent: uint64(max(c.Present, 0)),
		MessagesFailed:  uint64(max(c.Failed, 0)),
		MessagesSkipped: uint64(max(c.Skipped, 0)),
		BytesTotal:      uint64(max(c.TotalBytes, 0)),
		BytesCopied:     uint64(max(c.Bytes, 0)),
	}
}

var folderStates = map[mailcopy.FolderState]imapcopyv1.FolderState{
	mailcopy.FolderPending: imapcopyv1.FolderState_FOLDER_STATE_PENDING,
	mailcopy.FolderRunning: imapcopyv1.FolderState_FOLDER_STATE_COPYING,
	mailcopy.FolderDone:    imapcopyv1.FolderState_FOLDER_STATE_DONE,
	mailcopy.FolderFailed:  imapcopyv1.FolderState_FOLDER_STATE_FAILED,
}

// applyProgress writes a running copy's snapshot into st.
func applyProgress(st *imapcopyv1.SyncStatus, p *mailcopy.Progress) {
	// "throttled until T" while a server makes the copy wait: in throttled_until,
	// and in the message for a person.
	if i := strings.Index(st.Message, throttledNote); i >= 0 {
		st.Message = st.Message[:i]
	}
	st.ThrottledUntil = nil
	if !p.ThrottledUntil.IsZero() {
		st.Message += throttledNote + p.ThrottledUntil.UTC().Format(time.RFC3339)
		st.ThrottledUntil = timestamppb.New(p.ThrottledUntil)
	}
	st.Total = countsProto(p.Totals)
	st.Folders = make([]*imapcopyv1.FolderProgress, 0, len(p.Folders))
	for _, f := range p.Folders {
		st.Folders = append(st.Folders, &imapcopyv1.FolderProgress{
			SourceName:      f.Source,
			DestinationName: f.Destination,
			State:           folderStates[f.State],
			Progress:        countsProto(f.Counts),
		})
	}
	st.Folders = capFolders(st.Folders)
}

// throttledNote ends a running status's message while a server throttles the copy.
const throttledNote = "; the server throttles the copy: waiting until "

// stallPrefix starts the note that ends a running status's message while the
// copy's counters do not move: a server that stopped answering shows so long
// before the connections' idle timeout ends the attempt.
const stallPrefix = "; no progress for "

// stallNote is the note after stalled without progress, "" under after. The
// seconds go in steps of 10 past a minute: one status write per step.
func stallNote(stalled, after time.Duration) string {
	if stalled < after {
		return ""
	}
	step := time.Second
	if stalled >= time.Minute {
		step = 10 * time.Second
	}
	return fmt.Sprintf("%s%d s: a server is not answering (the attempt reconnects once its connections' idle timeout passes)",
		stallPrefix, int(stalled.Truncate(step).Seconds()))
}

// setStallNote replaces the stall note of st's message with note.
func setStallNote(st *imapcopyv1.SyncStatus, note string) {
	if i := strings.Index(st.Message, stallPrefix); i >= 0 {
		st.Message = st.Message[:i]
	}
	st.Message += note
}

// applyResult writes a copy's result into st: totals, folders, the messages the
// destination refused and the renamed folders.
func applyResult(st *imapcopyv1.SyncStatus, r *mailcopy.Result) {
	st.Total = countsProto(r.Totals)
	st.Folders = make([]*imapcopyv1.FolderProgress, 0, len(r.Folders)+len(r.FolderSkips))
	for _, f := range r.Folders {
		fp := &imapcopyv1.FolderProgress{
			SourceName:      f.Source,
			DestinationName: f.Destination,
			State:           imapcopyv1.FolderState_FOLDER_STATE_DONE,
			Progress:        countsProto(f.Counts),
		}
		if f.Error != "" {
			fp.State, fp.Reason = imapcopyv1.FolderState_FOLDER_STATE_FAILED, f.Error
		}
		st.Folders = append(st.Folders, fp)
	}
	for _, s := range r.FolderSkips {
		st.Folders = append(st.Folders, &imapcopyv1.FolderProgress{
			SourceName: s.Source,
			State:      imapcopyv1.FolderState_FOLDER_STATE_SKIPPED,
			Reason:     s.Reason,
		})
	}
	st.Folders = capFolders(st.Folders)
	st.FailedMessages = nil
	for i, m := range r.Failures {
		if i == maxFailedInStatus {
			st.FailedMessages = append(st.FailedMessages, &imapcopyv1.FailedMessage{
				Reason: fmt.Sprintf("and %d more, listed in the report in the destination INBOX", len(r.Failures)-i),
			})
			break
		}
		st.FailedMessages = append(st.FailedMessages, &imapcopyv1.FailedMessage{
			Folder: m.Folder, SourceUid: m.UID, Size: uint64(max(m.Size, 0)), Reason: m.Reason,
		})
	}
	st.Renames = nil
	for _, rn := range r.Renames {
		st.Renames = append(st.Renames, &imapcopyv1.FolderRename{SourceName: rn.Source, DestinationName: rn.Destination, Reason: rn.Reason})
	}
	for _, c := range r.Collisions {
		st.Renames = append(st.Renames, &imapcopyv1.FolderRename{
			SourceName: c.Source, DestinationName: c.Destination,
			Reason: fmt.Sprintf("%q is taken by %s", c.Wanted, strings.TrimSpace(c.Holder)),
		})
	}
	if n := len(st.Renames); n > maxRenamesInStatus {
		st.Renames = append(st.Renames[:maxRenamesInStatus-1], &imapcopyv1.FolderRename{
			Reason: fmt.Sprintf("and %d more renamed folders, listed in the report in the destination INBOX", n-maxRenamesInStatus+1),
		})
	}
	st.DryRun = r.DryRun
}
