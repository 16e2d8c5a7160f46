package copybench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
)

// Differences of a copy from the loaded source, by kind, as Explain counts them.
const (
	DiffIdentical      = "identical"
	DiffHeaderAdded    = "body differs (X-TUID header added)"
	DiffBody           = "body differs (otherwise)"
	DiffKeywordsLost   = "keywords dropped"
	DiffFlags          = "flags differ (otherwise)"
	DiffDate           = "INTERNALDATE differs"
	DiffMissing        = "missing"
	DiffExtra          = "extra"
	DiffFolderMissing  = "folder missing"
	addedHeaderToStrip = "x-tuid:"
)

// Explain says how a destination account differs from the loaded source, for a tool
// known to change messages (mbsync adds an X-TUID header to every message it copies and,
// in 1.4, does not copy keywords): it matches every destination message to a source
// message by its bytes, or by its bytes without an X-TUID header field, then compares
// flags and dates, and counts each kind of difference. The destination must have the
// source's folder names (same server flavour). It complements imaptest.Check, whose
// verdict stands; this only names the causes.
func Explain(ctx context.Context, dst imapconn.Account, loaded *Loaded) (map[string]int, error) {
	c, err := imaptest.Dial(ctx, dst)
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	defer c.Close()
	counts := map[string]int{}
	for _, f := range loaded.Folders {
		var got []explained
		err := imaptest.ScanFunc(c, f.Name, imaptest.ScanOptions{Filter: stripAddedHeader}, func(d imaptest.MessageDigest) error {
			got = append(got, explained{raw: d.SHA256, stripped: d.Filtered, flags: d.Flags, date: d.InternalDate.Unix()})
			return nil
		})
		if errors.Is(err, imaptest.ErrSelect) {
			counts[DiffFolderMissing]++
			if len(f.Messages) > 0 {
				counts[DiffMissing] += len(f.Messages)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("explain: %w", err)
		}
		explainFolder(f.Messages, got, counts)
	}
	c.Logout().Wait()
	return counts, nil
}

type explained struct {
	raw, stripped [32]byte
	flags         []string
	date          int64
}

func explainFolder(want []LoadedMessage, got []explained, counts map[string]int) {
	left := slices.Clone(want)
	take := func(match func(LoadedMessage) bool) (LoadedMessage, bool) {
		for i, w := range left {
			if match(w) {
				left = slices.Delete(left, i, i+1)
				return w, true
			}
		}
		return LoadedMessage{}, false
	}
	for _, g := range got {
		w, ok := take(func(w LoadedMessage) bool { return w.SHA256 == g.raw })
		body := DiffIdentical
		if !ok {
			w, ok = take(func(w LoadedMessage) bool { return w.SHA256 == g.stripped })
			body = DiffHeaderAdded
		}
		if !ok {
			counts[DiffExtra]++
			continue
		}
		if body != DiffIdentical {
			counts[body]++
		}
		switch {
		case slices.Equal(w.Flags, g.flags):
		case onlyKeywordsLost(w.Flags, g.flags):
			counts[DiffKeywordsLost]++
		default:
			counts[DiffFlags]++
		}
		if w.InternalUnix != g.date {
			counts[DiffDate]++
		}
		if body == DiffIdentical && slices.Equal(w.Flags, g.flags) && w.InternalUnix == g.date {
			counts[DiffIdentical]++
		}
	}
	if len(left) > 0 {
		counts[DiffMissing] += len(left)
	}
}

// onlyKeywordsLost reports whether got is want without some of its keywords (mbsync
// 1.4 keeps $Forwarded and drops the others).
func onlyKeywordsLost(want, got []string) bool {
	for _, g := range got {
		if !slices.Contains(want, g) {
			return false
		}
	}
	for _, w := range want {
		if strings.HasPrefix(w, `\`) && !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

func systemFlags(flags []string) []string {
	var out []string
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			out = append(out, f)
		}
	}
	return out
}

// stripAddedHeader passes a message on to w without its X-TUID header field (one
// line); the body passes unchanged.
func stripAddedHeader(w io.Writer) io.Writer { return &headerStripper{w: w} }

type headerStripper struct {
	w    io.Writer
	body bool
	line []byte // the header line being read
}

func (s *headerStripper) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && !s.body {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.line = append(s.line, p...)
			return n, nil
		}
		s.line = append(s.line, p[:i+1]...)
		p = p[i+1:]
		if err := s.endLine(); err != nil {
			return 0, err
		}
	}
	if len(p) > 0 {
		if _, err := s.w.Write(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// endLine passes the header line read on, unless it is the header field to strip.
func (s *headerStripper) endLine() error {
	line := s.line
	s.line = s.line[:0]
	if bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")) {
		s.body = true
	}
	if len(line) >= len(addedHeaderToStrip) && bytes.EqualFold(line[:len(addedHeaderToStrip)], []byte(addedHeaderToStrip)) {
		return nil
	}
	_, err := s.w.Write(line)
	return err
}

// Close passes on a last header line that has no line break.
func (s *headerStripper) Close() error {
	if len(s.line) == 0 {
		return nil
	}
	return s.endLine()
}
