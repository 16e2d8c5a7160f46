package mailcopy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// identityFields are the header fields fetched in the metadata pass
// (BODY.PEEK[HEADER.FIELDS (...)]): Message-ID for the identity, the others
// for the fallback identity of messages without one.
var identityFields = []string{"MESSAGE-ID", "DATE", "FROM", "TO", "SUBJECT"}

// maxIdentityHeader bounds how much of the identity header block is read:
// a hostile server cannot make the metadata pass hold more than this per message.
const maxIdentityHeader = 16 << 10

// key identifies a message for deduplication. Two messages with the same key
// are the same message; the identity is count-aware (see diff), so two
// identical source messages still make two destination copies.
//
// With a Message-ID: sha256("m", normalized Message-ID, RFC822.SIZE).
// Without one: sha256("h", the unfolded Date/From/To/Subject values,
// RFC822.SIZE, INTERNALDATE in Unix seconds). INTERNALDATE is part of the
// fallback because it is preserved by the copy and tells apart automated
// messages that share their headers; it is not part of the Message-ID
// identity because a destination filled by another tool may not have kept it.
type key [16]byte

// The identity header block is read with every byte >= 0x80 taken as 'X'
// (mungeHeader): Cyrus by default stores raw 8-bit header bytes that way, and a
// key that changed with them made every rerun append such messages again. Two
// messages that differ only in which non-ASCII bytes their identity fields hold,
// at the same places and with the same size (and, without a Message-ID, the same
// INTERNALDATE), are taken for one.
//
// identity computes the key of a message from its identity header block (the
// response to BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)]),
// its RFC822.SIZE and its INTERNALDATE.
func identity(header []byte, size int64, internalDate time.Time) key {
	return withSize(identityBase(header, internalDate), size)
}

// identityBase is the part of the identity that does not depend on the size,
// so that a corrected size gives the key the destination will show.
func identityBase(header []byte, internalDate time.Time) key {
	fields := parseHeader(mungeHeader(header))
	h := sha256.New()
	if id := normalizeMessageID(fields["message-id"]); id != "" {
		h.Write([]byte("m\x00"))
		h.Write([]byte(id))
	} else {
		h.Write([]byte("h\x00"))
		for _, name := range []string{"date", "from", "to", "subject"} {
			h.Write([]byte(fields[name]))
			h.Write([]byte{0})
		}
		var num [8]byte
		binary.BigEndian.PutUint64(num[:], uint64(internalDate.Unix()))
		h.Write(num[:])
	}
	var k key
	copy(k[:], h.Sum(nil))
	return k
}

// has8bit reports whether b holds a byte >= 0x80.
func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// mungeHeader returns header with every byte >= 0x80 replaced by 'X', as
// Cyrus stores it (imapd.conf munge8bit, on by default); header itself is left
// alone. A header without such bytes is returned as it is.
func mungeHeader(header []byte) []byte {
	if !has8bit(header) {
		return header
	}
	out := bytes.Clone(header)
	for j := range out {
		if out[j] >= 0x80 {
			out[j] = 'X'
		}
	}
	return out
}

func withSize(base key, size int64) key {
	var buf [len(base) + 8]byte
	copy(buf[:], base[:])
	binary.BigEndian.PutUint64(buf[len(base):], uint64(size))
	sum := sha256.Sum256(buf[:])
	var k key
	copy(k[:], sum[:])
	return k
}

// parseHeader returns the first value of each header field (lower-case name),
// unfolded and with surrounding white space trimmed. It is tolerant: lines
// without a colon are ignored, bare LF line ends are accepted.
func parseHeader(b []byte) map[string]string {
	fields := make(map[string]string)
	var name string
	var value strings.Builder
	flush := func() {
		if name != "" {
			if _, seen := fields[name]; !seen {
				fields[name] = strings.Join(strings.Fields(value.String()), " ")
			}
		}
		name = ""
		value.Reset()
	}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			flush()
			break // end of the header block
		}
		if line[0] == ' ' || line[0] == '\t' {
			if name != "" {
				value.WriteByte(' ')
				value.Write(line)
			}
			continue
		}
		flush()
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		name = strings.ToLower(strings.TrimSpace(string(line[:i])))
		value.Write(line[i+1:])
	}
	flush()
	return fields
}

// normalizeMessageID returns the identifier between the first angle brackets
// (or the trimmed value when there are none), without white space. Case is
// kept: the local part of a Message-ID is case-sensitive.
func normalizeMessageID(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i+1:], '>'); j >= 0 {
			v = v[i+1 : i+1+j]
		}
	}
	return strings.Join(strings.Fields(v), "")
}

// diff returns the source messages missing from the destination, in source
// order, and how many source messages are already present. It is count-aware:
// a key present n times on the destination accounts for its first n
// occurrences in the source; the later ones are missing. A rerun against an
// unchanged source therefore finds nothing missing, and two identical source
// messages make two destination copies.
func diff(src []srcMessage, dst map[key]int) (missing []srcMessage, present int) {
	missing, present, _ = diffAltered(src, dst, nil)
	return missing, present
}

// twinsPresent decides which occurrences of a twin are the destination's
// copies: for each identity that occurs in src more often than dst holds it,
// and at least once there, the source occurrences whose INTERNALDATE and flags
// are those of the destination's copies (dstMsgs), then whose INTERNALDATE
// is, then whose flags are, then the first ones. The copy keeps both, so after
// a failure that appended a later twin and not an earlier one (two ranges of a
// split folder, see appendRanges), the one appended is found present and the
// other is appended with its own date and flags. Twins alike in both cannot be
// told apart, and need not be. The result is nil when no identity is in doubt.
func twinsPresent(src []srcMessage, dst map[key]int, dstMsgs []srcMessage) map[key][]bool {
	if len(dstMsgs) == 0 {
		return nil
	}
	count := map[key]int{}
	for _, m := range src {
		count[m.key]++
	}
	var chosen map[key][]bool // per doubtful identity, per occurrence in src
	for k, n := range count {
		if n > 1 && dst[k] > 0 && dst[k] < n {
			if chosen == nil {
				chosen = map[key][]bool{}
			}
			chosen[k] = make([]bool, n)
		}
	}
	if chosen == nil {
		return nil
	}
	occ := map[key][]srcMessage{} // the source occurrences of doubtful identities
	for _, m := range src {
		if chosen[m.key] != nil {
			occ[m.key] = append(occ[m.key], m)
		}
	}
	copies := map[key][]srcMessage{}
	for _, d := range dstMsgs {
		if chosen[d.key] != nil {
			copies[d.key] = append(copies[d.key], d)
		}
	}
	sameDate := func(a, b srcMessage) bool { return a.date.Unix() == b.date.Unix() }
	tests := []func(a, b srcMessage) bool{
		func(a, b srcMessage) bool { return sameDate(a, b) && sameFlags(a.flags, b.flags) },
		sameDate,
		func(a, b srcMessage) bool { return sameFlags(a.flags, b.flags) },
		func(a, b srcMessage) bool { return true },
	}
	for k, ds := range copies {
		ds = ds[:min(len(ds), dst[k])]
		paired := make([]bool, len(ds))
		for _, same := range tests {
			for i, d := range ds {
				if paired[i] {
					continue
				}
				for o, m := range occ[k] {
					if !chosen[k][o] && same(m, d) {
						chosen[k][o], paired[i] = true, true
						break
					}
				}
			}
		}
	}
	return chosen
}

// sameFlags reports whether a and b hold the same flags, in any order and
// case.
func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !slices.ContainsFunc(b, func(g string) bool { return strings.EqualFold(f, g) }) {
			return false
		}
	}
	return true
}

// alteration is a source message found on the destination in a form the
// destination changed when it was appended.
type alteration struct {
	m      srcMessage
	reason string
}

// diffAltered is diff, tolerant of what destinations change in a message on
// APPEND, and says which source messages it found changed:
//
//   - a CRLF added at the end of a message whose last line has none (Courier):
//     a source message of N bytes that no destination message of N bytes is
//     left for matches one of N+2 bytes with the same identity;
//   - raw 8-bit header bytes rewritten to 'X' (Cyrus): the identity reads them
//     as 'X' on both sides (see mungeHeader); dst8 counts the destination
//     messages whose identity header kept its 8-bit bytes, so a source message
//     with such bytes that only a rewritten one is left for is reported (nil
//     dst8: not looked at).
//
// Exact matches are made first, over the whole folder, so that the count-aware
// guarantee of diff holds: each destination message accounts for one source
// message at most.
func diffAltered(src []srcMessage, dst, dst8 map[key]int) (missing []srcMessage, present int, altered []alteration) {
	missing, present, altered, _ = diffLeft(src, dst, dst8, nil)
	return missing, present, altered
}

// diffLeft is diffAltered, and also returns the destination identities no
// source message accounted for, with their counts (see matchSizes). Given the
// destination's messages (dstMsgs), the occurrences of a twin found present
// are those that look like the destination's copies (see twinsPresent), not
// the first ones.
func diffLeft(src []srcMessage, dst, dst8 map[key]int, dstMsgs []srcMessage) (missing []srcMessage, present int, altered []alteration, left map[key]int) {
	missing, present, altered, left, doubt := diffTwins(src, dst, dst8, nil)
	if doubt && len(dstMsgs) > 0 {
		missing, present, altered, left, _ = diffTwins(src, dst, dst8, twinsPresent(src, dst, dstMsgs))
	}
	return missing, present, altered, left
}

// diffTwins is diffLeft given, for the identities in doubt, which occurrences
// are present (twins: see twinsPresent; nil: the first ones). doubt: an
// identity occurs more often in src than on the destination, which holds it.
func diffTwins(src []srcMessage, dst, dst8 map[key]int, twins map[key][]bool) (missing []srcMessage, present int, altered []alteration, left map[key]int, doubt bool) {
	left = maps.Clone(dst)
	left8 := maps.Clone(dst8)
	matched := make([]bool, len(src))
	seen := map[key]int{} // occurrences of a doubtful identity so far
	for i, m := range src {
		if left[m.key] == 0 {
			doubt = doubt || dst[m.key] > 0
			continue
		}
		if t := twins[m.key]; t != nil {
			o := seen[m.key]
			seen[m.key]++
			if !t[o] {
				continue
			}
		}
		left[m.key]--
		present++
		matched[i] = true
		if !m.eightBit || dst8 == nil {
			continue
		}
		if left8[m.key] > 0 {
			left8[m.key]--
		} else {
			altered = append(altered, alteration{m, "the destination replaced the raw 8-bit bytes of its header with 'X'"})
		}
	}
	for i, m := range src {
		if matched[i] {
			continue
		}
		if len(left) > 0 {
			if k := withSize(m.base, m.size+2); left[k] > 0 {
				left[k]--
				present++
				altered = append(altered, alteration{m, fmt.Sprintf("the destination stored it with 2 bytes more (%d): a line end added at its end", m.size+2)})
				continue
			}
		}
		missing = append(missing, m)
	}
	return missing, present, altered, left, doubt
}
