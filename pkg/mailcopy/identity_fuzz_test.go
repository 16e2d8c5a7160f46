package mailcopy

import (
	"bytes"
	"fmt"
	"maps"
	"testing"
	"time"
)

// FuzzIdentity: the identity key never panics, is a pure function of its inputs, does not
// depend on the line-end style (CRLF or bare LF) of the header block, and is the same
// when withSize is applied to identityBase.
func FuzzIdentity(f *testing.F) {
	f.Add([]byte("Message-ID: <a@b>\r\n\r\n"), int64(10), int64(0))
	f.Add([]byte("Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nFrom: a@b\r\nTo: c@d\r\nSubject: hi\r\n there\r\n\r\n"), int64(1234), int64(1700000000))
	f.Add([]byte("message-id:\r\n <x@y>\r\n"), int64(-1), int64(-62135596800))
	f.Add([]byte("no colon here\n\n"), int64(0), int64(253402300799))
	f.Fuzz(func(t *testing.T, header []byte, size, unix int64) {
		date := time.Unix(unix, 0)
		k := identity(header, size, date)
		if k != identity(bytes.Clone(header), size, date) {
			t.Fatal("identity is not stable under re-parsing")
		}
		if k != withSize(identityBase(header, date), size) {
			t.Fatal("identity differs from withSize(identityBase)")
		}
		if !bytes.Contains(header, []byte("\r")) {
			crlf := bytes.ReplaceAll(header, []byte("\n"), []byte("\r\n"))
			if identity(crlf, size, date) != k {
				t.Fatalf("identity depends on the line ends: %q", header)
			}
		}
	})
}

// FuzzDiffTwins: for any folder of messages with few identities, dates and flag
// sets, and a destination holding copies of some of them (stored), the diff
// accounts for every source message once, lists the missing ones in source
// order, finds each identity present min(source, destination) times, and when
// the copies kept their flags (changed is 0) finds missing exactly the messages
// not stored, by identity, date and flags, whichever twins those are.
func FuzzDiffTwins(f *testing.F) {
	f.Add([]byte{0, 8, 0, 16, 1}, []byte{0x04}, byte(0))
	f.Add([]byte{0, 4, 8, 12, 0, 4}, []byte{0x2a}, byte(0x3))
	f.Add([]byte{1, 1, 1, 2}, []byte{0xff}, byte(0))
	f.Fuzz(func(t *testing.T, data, stored []byte, changed byte) {
		d0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
		flagSets := [][]string{nil, {`\Seen`}, {`\Flagged`}, {`\Seen`, `\Flagged`}}
		var src, dstMsgs []srcMessage
		kept := true
		for i, b := range data {
			m := srcMessage{uid: uint32(i + 1), key: key{b & 3}, date: d0.Add(time.Duration(b>>2&1) * time.Hour), flags: flagSets[b>>3&3]}
			src = append(src, m)
			if i/8 < len(stored) && stored[i/8]>>(i%8)&1 == 1 {
				c := m
				if changed>>(i%8)&1 == 1 {
					c.flags, kept = flagSets[(b>>3+1)&3], false
				}
				dstMsgs = append(dstMsgs, c)
			}
		}
		dst, dst8 := destKeys(dstMsgs)
		missing, present, _, _ := diffLeft(src, dst, dst8, dstMsgs)
		if present+len(missing) != len(src) {
			t.Fatalf("present %d + missing %d, want %d", present, len(missing), len(src))
		}
		for i := 1; i < len(missing); i++ {
			if missing[i].uid <= missing[i-1].uid {
				t.Fatalf("missing not in source order: %v", missing)
			}
		}
		srcCount, presentCount := map[key]int{}, map[key]int{}
		for _, m := range src {
			srcCount[m.key]++
			presentCount[m.key]++
		}
		for _, m := range missing {
			presentCount[m.key]--
		}
		for k, n := range srcCount {
			if want := min(n, dst[k]); presentCount[k] != want {
				t.Fatalf("identity %x present %d times, want %d", k[0], presentCount[k], want)
			}
		}
		if !kept {
			return
		}
		class := func(m srcMessage) string { return fmt.Sprint(m.key[0], m.date.Unix(), m.flags) }
		notStored, missed := map[string]int{}, map[string]int{}
		for _, m := range src {
			notStored[class(m)]++
		}
		for _, c := range dstMsgs {
			notStored[class(c)]--
		}
		for _, m := range missing {
			missed[class(m)]++
		}
		maps.DeleteFunc(notStored, func(_ string, n int) bool { return n == 0 })
		if !maps.Equal(notStored, missed) {
			t.Fatalf("missing by identity, date and flags %v, want those not stored %v", missed, notStored)
		}
	})
}
