package copybench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

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
		sel, err := c.Select(f.Name, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			counts[DiffFolderMissing]++
			if len(f.Messages) > 0 {
				counts[DiffMissing] += len(f.Messages)
			}
			continue
		}
		var got []explained
		if sel.NumMessages > 0 {
			if got, err = scanExplained(c, sel.NumMessages); err != nil {
				return nil, fmt.Errorf("explain %q: %w", f.Name, err)
			}
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

func scanExplained(c *imapclient.Client, n uint32) ([]explained, error) {
	var seq imap.SeqSet
	seq.AddRange(1, n)
	cmd := c.Fetch(seq, &imap.FetchOptions{
		Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	defer cmd.Close()
	var out []explained
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		var e explained
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch item := item.(type) {
			case imapclient.FetchItemDataFlags:
				for _, fl := range item.Flags {
					if fl != `\Recent` {
						e.flags = append(e.flags, string(fl))
					}
				}
				slices.Sort(e.flags)
			case imapclient.FetchItemDataInternalDate:
				e.date = item.Time.Unix()
			case imapclient.FetchItemDataBodySection:
				var err error
				if e.raw, e.stripped, err = hashStripped(item.Literal); err != nil {
					return nil, err
				}
			}
		}
		out = append(out, e)
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	return out, nil
}

// hashStripped hashes a message as it is, and without its X-TUID header field (one
// line), streaming the body.
func hashStripped(r io.Reader) (raw, stripped [32]byte, err error) {
	hr, hs := sha256.New(), sha256.New()
	br := bufio.NewReaderSize(r, 64<<10)
	inHeader, lineStart, skipping := true, true, false
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			hr.Write(line)
			if lineStart {
				skipping = inHeader && len(line) >= len(addedHeaderToStrip) &&
					bytes.EqualFold(line[:len(addedHeaderToStrip)], []byte(addedHeaderToStrip))
				if inHeader && (bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n"))) {
					inHeader = false
				}
			}
			if !skipping {
				hs.Write(line)
			}
			lineStart = line[len(line)-1] == '\n'
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return raw, stripped, fmt.Errorf("read body: %w", err)
		}
	}
	hr.Sum(raw[:0])
	hs.Sum(stripped[:0])
	return raw, stripped, nil
}
