package mailcopy

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"imapcopy.dev/pkg/imapappend"
)

// metadataOptions is the metadata pass: only items every server answers
// plainly (docs/design.md: anything else risks a response go-imap cannot parse,
// which kills the connection). BODY.PEEK never sets \Seen.
var metadataOptions = &imap.FetchOptions{
	UID:          true,
	Flags:        true,
	InternalDate: true,
	RFC822Size:   true,
	BodySection: []*imap.FetchItemBodySection{{
		Specifier:    imap.PartSpecifierHeader,
		HeaderFields: identityFields,
		Peek:         true,
	}},
}

// unkeyedMetadataOptions is the metadata pass without the identity header
// fields, for a folder whose destination is new or empty at its first
// attempt (see worker.keyed): every message is missing there, whatever its
// identity. The source then reads no message file before the body pass:
// Dovecot answers UID, FLAGS, INTERNALDATE and RFC822.SIZE from its index
// and cache, while the header fields mean opening and parsing every message
// (a quarter of the source's CPU for the benchmark's copy, in plain text).
var unkeyedMetadataOptions = &imap.FetchOptions{
	UID:          true,
	Flags:        true,
	InternalDate: true,
	RFC822Size:   true,
}

// allUIDs is UID 1:*.
var allUIDs = imap.UIDSet{{Start: 1, Stop: 0}}

// readMetadata reads the answer of the metadata pass cmd (UID FETCH 1:* of
// metadataOptions, see examineMetadata) on a mailbox that holds exists
// messages (a capacity hint) and returns the messages in UID order. Flags
// are cleaned (see imapappend.CleanFlags) and interned: a mailbox holds few
// distinct flag sets. Unless keyed (unkeyedMetadataOptions), the messages
// have no identity: their key and base are zero.
func readMetadata(cmd *imapclient.FetchCommand, exists uint32, keyed bool) ([]srcMessage, error) {
	// After a failed literal, do not drain (see bodyStream.dead).
	dead := false
	defer func() {
		if !dead {
			cmd.Close()
		}
	}()
	// exists is the server's word: a hostile or broken one could announce
	// 2^32-1 messages, so only a plausible count is allocated ahead.
	msgs := make([]srcMessage, 0, min(exists, maxPrealloc))
	interned := map[string][]string{}
	header := make([]byte, 0, 1024)
	for {
		data := cmd.Next()
		if data == nil {
			break
		}
		var (
			m                    srcMessage
			haveUID, haveSize    bool
			haveHeader, haveDate bool
		)
		header = header[:0]
		for {
			item := data.Next()
			if item == nil {
				break
			}
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				m.uid, haveUID = uint32(item.UID), true
			case imapclient.FetchItemDataFlags:
				m.flags = intern(interned, item.Flags)
			case imapclient.FetchItemDataInternalDate:
				m.date, haveDate = item.Time, true
			case imapclient.FetchItemDataRFC822Size:
				m.size, haveSize = item.Size, true
			case imapclient.FetchItemDataBodySection:
				haveHeader = true
				if item.Literal != nil {
					b, err := readBounded(item.Literal, header, maxIdentityHeader)
					if err == nil && int64(len(b)) < min(item.Literal.Size(), maxIdentityHeader) {
						err = errShortBody
					}
					if err != nil {
						dead = true
						return nil, fmt.Errorf("read identity header of message %d: %w", data.SeqNum, err)
					}
					header = b
				}
			}
		}
		if !haveUID || !haveSize || keyed && !haveHeader || !haveDate {
			return nil, fmt.Errorf("the server's FETCH answer for message %d lacks UID, RFC822.SIZE, INTERNALDATE or the header fields", data.SeqNum)
		}
		if keyed {
			m.base = identityBase(header, m.date)
			m.eightBit = has8bit(header)
			m.key = withSize(m.base, m.size)
		}
		msgs = append(msgs, m)
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("fetch metadata: %w", err)
	}
	sortByUID(msgs)
	return msgs, nil
}

// maxPrealloc caps the messages the metadata pass allocates room for before
// the server sent them.
const maxPrealloc = 1 << 16

// readBounded appends at most limit bytes of r to buf; the rest of r is left
// for the FETCH reader to discard.
func readBounded(r io.Reader, buf []byte, limit int) ([]byte, error) {
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

func intern(table map[string][]string, flags []imap.Flag) []string {
	raw := make([]string, len(flags))
	for i, f := range flags {
		raw[i] = string(f)
	}
	k := strings.Join(raw, " ")
	if f, ok := table[k]; ok {
		return f
	}
	clean := imapappend.CleanFlags(raw)
	table[k] = clean
	return clean
}

func sortByUID(msgs []srcMessage) {
	slices.SortFunc(msgs, func(a, b srcMessage) int { return cmp.Compare(a.uid, b.uid) })
}

// inScope drops the messages older than since (by INTERNALDATE); the zero
// time keeps everything.
func inScope(msgs []srcMessage, since time.Time) []srcMessage {
	if since.IsZero() {
		return msgs
	}
	out := msgs[:0:0]
	for _, m := range msgs {
		if !m.date.Before(since) {
			out = append(out, m)
		}
	}
	return out
}

// destKeys counts the destination's messages by identity; eightBit counts
// those whose identity header holds raw 8-bit bytes (see diffAltered).
func destKeys(msgs []srcMessage) (keys, eightBit map[key]int) {
	keys = make(map[key]int, len(msgs))
	eightBit = map[key]int{}
	for _, m := range msgs {
		keys[m.key]++
		if m.eightBit {
			eightBit[m.key]++
		}
	}
	return keys, eightBit
}
