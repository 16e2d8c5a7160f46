package imaptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/sync/errgroup"

	"imapcopy.dev/pkg/imapconn"
)

// CheckOptions adjusts what Check expects.
type CheckOptions struct {
	// FolderMap overrides the expected destination name of source folders: source
	// server name -> destination server name (for renamed or colliding folders).
	FolderMap map[string]string
	// IgnoreDest reports destination messages that are not expected on the source,
	// such as the copy report in INBOX. raw is the message, or its first MiB when it is
	// bigger.
	IgnoreDest func(folder string, raw []byte) bool
	// SkipSource reports source folders that are not expected on the destination.
	SkipSource func(folder string) bool
	// AllowMissing reports source messages that may be absent from the destination
	// (refused by it: too big, over quota). size is RFC822.SIZE.
	AllowMissing func(folder string, size int64) bool
	// Munged8bitHeaders says that the destination rewrites every byte >= 0x80 of a
	// message's header into 'X' (Cyrus's default, munge8bit): the source messages
	// are compared as the destination is expected to store them.
	Munged8bitHeaders bool
}

// CheckResult is what Check found.
type CheckResult struct {
	// Problems are the differences found, one per line, in a stable order.
	Problems []string
	// Folders, Messages and Bytes count what was compared on the source.
	Folders  int
	Messages int
	Bytes    int64
}

// OK reports whether the destination holds exactly what it should.
func (r *CheckResult) OK() bool { return len(r.Problems) == 0 }

// String lists the problems, or says that all is well.
func (r *CheckResult) String() string {
	head := fmt.Sprintf("checked %d folders, %d messages, %d bytes", r.Folders, r.Messages, r.Bytes)
	if r.OK() {
		return head + ": OK"
	}
	return head + fmt.Sprintf(": %d problems:\n  ", len(r.Problems)) + strings.Join(r.Problems, "\n  ")
}

// maxIgnoreRaw bounds the part of a message that IgnoreDest sees.
const maxIgnoreRaw = 1 << 20

// Check compares the destination account with the source account against the copy
// invariants (docs/design.md, 2 and 5), independently of pkg/foldermap:
//
//   - every selectable source folder has its destination folder: the logical path
//     (prefix stripped, split on the source separator) joined with the destination's
//     separator behind its prefix; INBOX is INBOX; a special-use folder (and its
//     children) goes to the destination folder with the same attribute; FolderMap
//     overrides;
//   - each destination folder holds the multiset of the messages of the source folders
//     mapped to it, compared by (SHA-256 of BODY[], flags minus \Recent, INTERNALDATE to
//     the second): missing, extra, duplicated messages and flag and date differences
//     are reported.
//
// Both accounts are only read (EXAMINE, BODY.PEEK[]). Bodies are streamed into the hash:
// memory stays bounded whatever the message sizes. Destination folders that no source
// folder maps to are not looked at.
func Check(ctx context.Context, src, dst imapconn.Account, opts CheckOptions) (*CheckResult, error) {
	sc, err := Dial(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("check: source: %w", err)
	}
	defer sc.Close()
	dc, err := Dial(ctx, dst)
	if err != nil {
		return nil, fmt.Errorf("check: destination: %w", err)
	}
	defer dc.Close()
	sl, err := readLayout(sc)
	if err != nil {
		return nil, fmt.Errorf("check: source: %w", err)
	}
	dl, err := readLayout(dc)
	if err != nil {
		return nil, fmt.Errorf("check: destination: %w", err)
	}

	res := &CheckResult{}
	// Destination name -> the source folders mapped to it, in source order.
	groups := map[string][]string{}
	var order []string
	for _, f := range sl.folders {
		if !f.selectable() || opts.SkipSource != nil && opts.SkipSource(f.name) {
			continue
		}
		res.Folders++
		to := expectedName(sl, dl, f.name, opts.FolderMap)
		if _, ok := groups[to]; !ok {
			order = append(order, to)
		}
		groups[to] = append(groups[to], f.name)
	}

	for _, to := range order {
		from := groups[to]
		var srcMsgs, dstMsgs []scanned
		g, _ := errgroup.WithContext(ctx)
		g.Go(func() error {
			for _, name := range from {
				m, err := scanFolder(sc, name, nil, opts.Munged8bitHeaders)
				if err != nil {
					return fmt.Errorf("check: source: %w", err)
				}
				srcMsgs = append(srcMsgs, m...)
			}
			return nil
		})
		dstExists := dl.has(to)
		if dstExists {
			g.Go(func() error {
				var err error
				dstMsgs, err = scanFolder(dc, to, opts.IgnoreDest, false)
				if err != nil {
					return fmt.Errorf("check: destination: %w", err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		for _, m := range srcMsgs {
			res.Messages++
			res.Bytes += m.size
		}
		label := fmt.Sprintf("%q -> %q", strings.Join(from, `", "`), to)
		if !dstExists {
			res.Problems = append(res.Problems, fmt.Sprintf("folder %s: destination folder missing (%d source messages)", label, len(srcMsgs)))
			continue
		}
		res.Problems = append(res.Problems, compare(label, from[0], srcMsgs, dstMsgs, opts.AllowMissing)...)
	}
	sc.Logout().Wait()
	dc.Logout().Wait()
	return res, nil
}

// expectedName maps a source folder to the destination name a faithful copy gives it.
func expectedName(sl, dl *layout, name string, override map[string]string) string {
	if to, ok := override[name]; ok {
		return to
	}
	path := sl.logical(name)
	// The folder itself or its nearest ancestor with a special use that the
	// destination has too: the destination's own folder takes its place.
	for k := len(path); k > 0; k-- {
		ancestor := sl.serverName(path[:k])
		for use, srcName := range sl.special {
			if srcName != ancestor {
				continue
			}
			if dstName, ok := dl.special[use]; ok {
				if k == len(path) {
					return dstName
				}
				return dstName + dl.delim + strings.Join(path[k:], dl.delim)
			}
		}
	}
	return dl.serverName(path)
}

// scanned is what Check knows of one message.
type scanned struct {
	uid   imap.UID
	hash  [sha256.Size]byte
	flags string // sorted, \Recent dropped, space-separated
	date  int64  // INTERNALDATE, Unix seconds
	size  int64
	ident string // Subject or Message-ID, for the report
}

func (s scanned) describe() string {
	return fmt.Sprintf("uid %d %s (%d bytes, sha256 %s)", s.uid, s.ident, s.size, hex.EncodeToString(s.hash[:6]))
}

// scanFolder reads every message of a folder with Scan. Messages that ignore reports
// are left out. With munge, the header's 8-bit bytes are hashed as 'X'.
func scanFolder(c *imapclient.Client, name string, ignore func(string, []byte) bool, munge bool) ([]scanned, error) {
	opts := ScanOptions{Head: 16 << 10}
	if ignore != nil {
		opts.Head = maxIgnoreRaw
	}
	if munge {
		opts.Filter = func(w io.Writer) io.Writer { return &mungeWriter{w: w} }
	}
	var out []scanned
	err := ScanFunc(c, name, opts, func(d MessageDigest) error {
		if ignore != nil && ignore(name, d.Head) {
			return nil
		}
		s := scanned{uid: d.UID, hash: d.SHA256, flags: strings.Join(d.Flags, " "),
			date: d.InternalDate.Unix(), size: d.Size, ident: identify(d.Head)}
		if munge {
			s.hash = d.Filtered
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// identify names a message for a person: its Subject, else its Message-ID.
func identify(raw []byte) string {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(raw)
	}
	var subject, msgID string
	for _, line := range strings.Split(string(raw[:end]), "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "subject":
			subject = strings.TrimSpace(v)
			if dec, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
				subject = dec
			}
		case "message-id":
			msgID = strings.TrimSpace(v)
		}
	}
	switch {
	case subject != "":
		return fmt.Sprintf("%q", subject)
	case msgID != "":
		return msgID
	}
	return "(no subject)"
}

// compare reports the differences between the source messages and the destination
// messages of one folder.
func compare(label, srcFolder string, src, dst []scanned, allowMissing func(string, int64) bool) []string {
	var problems []string
	byHash := func(list []scanned) (map[[sha256.Size]byte][]scanned, [][sha256.Size]byte) {
		m := map[[sha256.Size]byte][]scanned{}
		var order [][sha256.Size]byte
		for _, s := range list {
			if _, ok := m[s.hash]; !ok {
				order = append(order, s.hash)
			}
			m[s.hash] = append(m[s.hash], s)
		}
		return m, order
	}
	srcBy, srcOrder := byHash(src)
	dstBy, dstOrder := byHash(dst)

	for _, h := range srcOrder {
		s, d := srcBy[h], dstBy[h]
		// Pair exact matches first; what is left differs in flags or date, or is missing.
		var sLeft []scanned
		dLeft := slices.Clone(d)
		for _, sm := range s {
			i := slices.IndexFunc(dLeft, func(dm scanned) bool { return dm.flags == sm.flags && dm.date == sm.date })
			if i < 0 {
				sLeft = append(sLeft, sm)
				continue
			}
			dLeft = slices.Delete(dLeft, i, i+1)
		}
		for len(sLeft) > 0 && len(dLeft) > 0 {
			sm, dm := sLeft[0], dLeft[0]
			sLeft, dLeft = sLeft[1:], dLeft[1:]
			if sm.flags != dm.flags {
				problems = append(problems, fmt.Sprintf("folder %s: flags differ for %s: source [%s], destination [%s]", label, sm.describe(), sm.flags, dm.flags))
			}
			if sm.date != dm.date {
				problems = append(problems, fmt.Sprintf("folder %s: INTERNALDATE differs for %s: source %d, destination %d (destination uid %d)", label, sm.describe(), sm.date, dm.date, dm.uid))
			}
		}
		for _, sm := range sLeft {
			if allowMissing != nil && allowMissing(srcFolder, sm.size) {
				continue
			}
			problems = append(problems, fmt.Sprintf("folder %s: missing on destination: %s (%d on source, %d on destination)", label, sm.describe(), len(s), len(d)))
		}
		for _, dm := range dLeft {
			problems = append(problems, fmt.Sprintf("folder %s: duplicated on destination: %s (%d on source, %d on destination)", label, dm.describe(), len(s), len(d)))
		}
	}
	for _, h := range dstOrder {
		if _, ok := srcBy[h]; ok {
			continue
		}
		for _, dm := range dstBy[h] {
			problems = append(problems, fmt.Sprintf("folder %s: extra message on destination: %s", label, dm.describe()))
		}
	}
	return problems
}

// mungeWriter passes a message to w with every byte >= 0x80 of its header (up to
// the first empty line) replaced by 'X', as Cyrus stores it by default.
type mungeWriter struct {
	w    io.Writer
	tail uint32 // the last four bytes seen, to find CRLF CRLF across writes
	body bool
	buf  []byte
}

func (m *mungeWriter) Write(p []byte) (int, error) {
	if m.body {
		return m.w.Write(p)
	}
	m.buf = append(m.buf[:0], p...)
	for i, b := range p {
		if m.body {
			break
		}
		m.tail = m.tail<<8 | uint32(b)
		if m.tail == 0x0d0a0d0a {
			m.body = true
		}
		if b >= 0x80 {
			m.buf[i] = 'X'
		}
	}
	if _, err := m.w.Write(m.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
