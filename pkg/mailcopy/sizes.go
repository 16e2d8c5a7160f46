package mailcopy

import (
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// A server may report an RFC822.SIZE that is not the length of the message it
// sends as BODY[] (Exchange reports the size of its own MIME conversion). The
// identity holds the size, so such a message, copied once, looked missing to
// every rerun: the source's size and the destination's disagree.
//
// matchSizes settles it without trusting either size: a source message the
// diff found missing, whose identity without the size (Message-ID, or the
// fallback fields and INTERNALDATE) is that of a destination message no source
// message accounted for, is a candidate; the bodies of the candidates are read
// on both sides (BODY.PEEK[], hashed as they stream, nothing kept) and a source
// message is present when a destination candidate has the same bytes, or the
// same bytes and a CRLF when the source message's last line has none (what
// Courier stores, see diffAltered: a misreporting source onto Courier). The
// matching is count-aware as diff is: each destination message accounts for one
// source message at most. A message with the same Message-ID and other bytes is
// still missing, and copied.
//
// The cost falls only on candidates: with servers whose sizes are right there
// are none but the rare messages that share a Message-ID and differ, and
// against a server that misreports, a rerun reads those messages' bodies from
// both sides instead of appending them again.
//
// missing are the diff's missing messages (in source order), left the
// destination identities it left unmatched (see diffLeft), dstMsgs the
// destination's metadata pass; src and dst have the source and the destination
// folder open. It returns the messages still missing and those found present.
func matchSizes(src, dst *imapclient.Client, missing, dstMsgs []srcMessage, left map[key]int) (still, found []srcMessage, err error) {
	if len(missing) == 0 || len(left) == 0 || dst == nil {
		return missing, nil, nil
	}
	// The destination messages no source message accounted for, by identity
	// without the size: of n messages with one key, n-left[key] were matched.
	unmatched := map[key][]srcMessage{}
	taken := map[key]int{}
	for _, d := range dstMsgs {
		if taken[d.key] < left[d.key] {
			taken[d.key]++
			unmatched[d.base] = append(unmatched[d.base], d)
		}
	}
	var srcC, dstC []srcMessage
	bases := map[key]bool{}
	for _, m := range missing {
		if len(unmatched[m.base]) > 0 {
			srcC = append(srcC, m)
			bases[m.base] = true
		}
	}
	if len(srcC) == 0 {
		return missing, nil, nil
	}
	for b := range bases {
		dstC = append(dstC, unmatched[b]...)
	}
	srcSums, err := bodySums(src, srcC)
	if err != nil {
		return nil, nil, fmt.Errorf("source: read the bodies of %d messages whose size the destination reports otherwise: %w", len(srcC), err)
	}
	dstSums, err := bodySums(dst, dstC)
	if err != nil {
		return nil, nil, fmt.Errorf("destination: read the bodies of %d messages whose size the source reports otherwise: %w", len(dstC), err)
	}
	used := map[uint32]bool{}
	same := func(m srcMessage) bool {
		sum, ok := srcSums[m.uid]
		if !ok {
			return false
		}
		for _, d := range unmatched[m.base] {
			if ds, ok := dstSums[d.uid]; ok && !used[d.uid] && (ds.sum == sum.sum || sum.crlf && ds.sum == sum.withCRLF) {
				used[d.uid] = true
				return true
			}
		}
		return false
	}
	for _, m := range missing {
		if same(m) {
			found = append(found, m)
		} else {
			still = append(still, m)
		}
	}
	return still, found, nil
}

// bodySum is what matchSizes compares: the SHA-256 of the body, and when its
// last line has no line end (crlf), that of the body with a CRLF added.
type bodySum struct {
	sum, withCRLF [sha256.Size]byte
	crlf          bool
}

// tailWriter remembers the last two bytes written to it.
type tailWriter struct{ tail [2]byte }

func (w *tailWriter) Write(p []byte) (int, error) {
	switch len(p) {
	case 0:
	case 1:
		w.tail = [2]byte{w.tail[1], p[0]}
	default:
		w.tail = [2]byte{p[len(p)-2], p[len(p)-1]}
	}
	return len(p), nil
}

// bodySums reads the bodies of msgs on c (their folder open) and returns the
// sum of each one the server sent; a message without a body (expunged
// meanwhile, NIL) has none, so it matches nothing.
func bodySums(c *imapclient.Client, msgs []srcMessage) (map[uint32]bodySum, error) {
	var uids imap.UIDSet
	for _, m := range msgs {
		uids.AddNum(imap.UID(m.uid))
	}
	cmd := c.Fetch(uids, bodyOptions)
	// After a failed literal, do not drain (see bodyStream.dead).
	dead := false
	defer func() {
		if !dead {
			cmd.Close()
		}
	}()
	sums := make(map[uint32]bodySum, len(msgs))
	for {
		data := cmd.Next()
		if data == nil {
			break
		}
		var (
			uid     uint32
			haveUID bool
			sum     bodySum
			haveSum bool
		)
		for {
			item := data.Next()
			if item == nil {
				break
			}
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				uid, haveUID = uint32(item.UID), true
			case imapclient.FetchItemDataBodySection:
				if item.Literal == nil {
					continue
				}
				h, h2, tail := sha256.New(), sha256.New(), &tailWriter{}
				n, err := io.Copy(io.MultiWriter(h, h2, tail), item.Literal)
				if err == nil && n < item.Literal.Size() {
					err = errShortBody
				}
				if err != nil {
					dead = true
					return nil, fmt.Errorf("read the body of message %d: %w", data.SeqNum, err)
				}
				copy(sum.sum[:], h.Sum(nil))
				if sum.crlf = n < 2 || tail.tail != [2]byte{'\r', '\n'}; sum.crlf {
					h2.Write([]byte("\r\n"))
					copy(sum.withCRLF[:], h2.Sum(nil))
				}
				haveSum = true
			}
		}
		if haveUID && haveSum {
			sums[uid] = sum
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, err
	}
	return sums, nil
}
