package copybench

import (
	"fmt"
	"slices"

	"imapcopy.dev/pkg/imaptest"
)

// Spec says what mailbox to generate. The same Spec always gives the same mailbox, byte
// for byte.
type Spec struct {
	Seed  uint64
	Count int   // messages
	Bytes int64 // approximate total size of the messages
	// Folders, when set, makes a mailbox of small messages only (about Bytes/Count
	// each), spread evenly over that many folders: 1 puts them all in INBOX, n more
	// adds "Folder 2" to "Folder n" (message i goes to folder i mod n). The messages are
	// the same, byte for byte, whatever Folders is. 0: the realistic mix and folder tree
	// of imaptest.PlanSized.
	Folders int
}

// DefaultSpec is the benchmark's default mailbox: 5,000 messages, about 300 MB.
func DefaultSpec() Spec { return Spec{Seed: 1, Count: 5000, Bytes: 300 << 20} }

// SmallSpec is the mailbox of BENCH_SIZE=small: the whole benchmark in about a minute.
func SmallSpec() Spec { return Spec{Seed: 1, Count: 500, Bytes: 30 << 20} }

// Rerun100kSpec is the mailbox of BENCH_SIZE=rerun100k, for reruns at 100,000 messages
// (issue 12, goal 5): the generator's size mix makes it about 1.8 GB.
func Rerun100kSpec() Spec { return Spec{Seed: 1, Count: 100_000, Bytes: 300 << 20} }

// HugeSpec is the mailbox of BENCH_SIZE=huge: one INBOX of 50,000 small messages (about
// 4 KB each), the shape of many real mailboxes, copied by splitting the folder across
// the connections.
func HugeSpec() Spec { return Spec{Seed: 1, Count: 50_000, Bytes: 200 << 20, Folders: 1} }

// HugeSpreadSpec is the mailbox of BENCH_SIZE=huge-spread: HugeSpec's messages spread
// over 20 folders, the yardstick of HugeSpec's messages/s.
func HugeSpreadSpec() Spec {
	s := HugeSpec()
	s.Folders = 20
	return s
}

// Generate plans the mailbox of spec with imaptest's generator (imaptest.PlanSized, or
// imaptest.GeneratePlan's small messages when Folders is set): message bytes are
// rendered on demand (Plan.Render), so that a 300 MB mailbox never sits in memory.
func Generate(spec Spec) (*imaptest.Plan, error) {
	if spec.Folders <= 0 {
		return imaptest.PlanSized(spec.Seed, spec.Count, spec.Bytes)
	}
	if spec.Count <= 0 {
		return nil, fmt.Errorf("plan: count %d, want > 0", spec.Count)
	}
	// Sizes from half to one and a half times the mean, at least 600 bytes.
	mean := max(spec.Bytes/int64(spec.Count), 1000)
	p := imaptest.GeneratePlan(int64(spec.Seed), imaptest.Spec{
		Count: spec.Count, Folders: -1,
		Sizes: []imaptest.SizeClass{{Weight: 1, Min: int(mean / 2), Max: int(mean * 3 / 2)}},
	})
	// The renderer reads only the name and the special use of a message's folder:
	// plain folders render every message the same way wherever it is filed.
	p.Folders = []imaptest.PlannedFolder{{Name: "INBOX"}}
	for i := 2; i <= spec.Folders; i++ {
		p.Folders = append(p.Folders, imaptest.PlannedFolder{Name: fmt.Sprintf("Folder %d", i)})
	}
	for i := range p.Messages {
		p.Messages[i].Folder = i % spec.Folders
		slices.Sort(p.Messages[i].Flags) // as PlanSized's: the loader's verification wants them so
	}
	return p, nil
}

// ExtraMailbox is the extra mailbox named name (MailboxOneFolder, MailboxSpread,
// MailboxRerun) as `make bench` runs it, on loopback and with imapcopy only (their
// questions are imapcopy's against itself); small makes it ten times smaller.
func ExtraMailbox(name string, small bool) (Mailbox, bool) {
	scale := func(n int) int {
		if small {
			return n / 10
		}
		return n
	}
	only := func(spec Spec, tools ...Tool) Mailbox {
		return Mailbox{Name: name, Spec: spec, Networks: []Network{Loopback}, Tools: tools, CheckLast: true}
	}
	switch name {
	case MailboxOneFolder, MailboxOneSplit, MailboxSpread:
		spec := HugeSpec()
		spec.Count = scale(spec.Count)
		spec.Bytes = int64(spec.Count) * 4 << 10
		m := only(spec, Imapcopy)
		switch name {
		case MailboxSpread:
			m.Spec.Folders = 20
		case MailboxOneSplit:
			m.CopierArgs = []string{"--split-folders"}
		}
		return m, true
	case MailboxRerun:
		// Small messages (3 KB on average) in 15 folders: 100,000 of them are 300 MB.
		n := scale(100_000)
		m := only(Spec{Seed: 1, Count: n, Bytes: int64(n) * 3 << 10, Folders: 15}, Imapcopy, ImapcopyRerun, ImapcopyRerunNew)
		m.CopyOnce, m.NewMessages = true, 100
		return m, true
	}
	return Mailbox{}, false
}
