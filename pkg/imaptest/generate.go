package imaptest

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Mailbox is the content of an account: its folders and their messages.
type Mailbox struct {
	Folders []Folder
}

// Folder is one folder of a Mailbox.
type Folder struct {
	// Name is the logical path with "/" as the separator ("Projects/2024/Q1"); "INBOX"
	// is the inbox and "INBOX/x" a child of it. Load maps it to the server's separator
	// and personal namespace prefix.
	Name string
	// SpecialUse is `\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive` or "". Load puts
	// such a folder into the server's folder with that attribute, whatever its name.
	SpecialUse string
	Messages   []Message
}

// Message is one message: its exact bytes (CRLF line endings), flags and keywords, and
// INTERNALDATE.
type Message struct {
	Raw          []byte
	Flags        []string
	InternalDate time.Time
}

// Count is the number of messages in the mailbox.
func (mb Mailbox) Count() int {
	n := 0
	for _, f := range mb.Folders {
		n += len(f.Messages)
	}
	return n
}

// Size is the total size of the messages in bytes.
func (mb Mailbox) Size() int64 {
	var n int64
	for _, f := range mb.Folders {
		for _, m := range f.Messages {
			n += int64(len(m.Raw))
		}
	}
	return n
}

// Folder returns the folder with the given name, or nil.
func (mb Mailbox) Folder(name string) *Folder {
	for i := range mb.Folders {
		if mb.Folders[i].Name == name {
			return &mb.Folders[i]
		}
	}
	return nil
}

// Spec says what Generate builds.
type Spec struct {
	// Count is the number of messages in total (0: 100). Duplicates count.
	Count int
	// Folders is the number of user folders besides INBOX and the five special-use
	// folders (0: all of the built-in names, 12; -1: none). The built-in names come
	// first (nested, non-ASCII, an INBOX child, a child of Archive, an empty folder);
	// more are numbered "Folder N".
	Folders int
	// Sizes is the size mix (nil: DefaultSizes()).
	Sizes []SizeClass
}

// SizeClass is one class of the size mix: a share of the messages (Weight relative to
// the other classes) with a size between Min and Max bytes. Attachment makes them
// multipart messages with a base64 attachment.
type SizeClass struct {
	Weight     int
	Min, Max   int
	Attachment bool
}

// DefaultSizes is a realistic mix: mostly small text mails, some bigger HTML mails and a
// few messages with attachments of up to 1.5 MB.
func DefaultSizes() []SizeClass {
	return []SizeClass{
		{Weight: 80, Min: 600, Max: 6_000},
		{Weight: 17, Min: 6_000, Max: 60_000},
		{Weight: 3, Min: 100_000, Max: 1_500_000, Attachment: true},
	}
}

// builtinFolders are the user folders Generate uses first. Every name works on both
// Dovecot flavours: no component contains "." or "/".
var builtinFolders = []string{
	"Projects",
	"Projects/2024",
	"Projects/2024/Q1",
	"Reçus",
	"Données",
	"Données/Été",
	"日本語",
	"INBOX/Factures",
	"Archive/2023",
	"Vide",
	"Family & Friends",
	"Newsletters",
}

// emptyFolder is the built-in folder that Generate leaves empty, so that copies are
// checked to create empty folders too.
const emptyFolder = "Vide"

var specialFolders = []struct{ Name, Use string }{
	{"Sent", `\Sent`},
	{"Drafts", `\Drafts`},
	{"Trash", `\Trash`},
	{"Junk", `\Junk`},
	{"Archive", `\Archive`},
}

// Generate builds a realistic mailbox deterministically from seed, in memory: the
// same seed and spec give the same bytes. It has INBOX, the five special-use folders,
// nested and non-ASCII user folders (one of them empty), flags (\Seen \Answered
// \Flagged \Draft and \Deleted, not expunged) and keywords ($Forwarded $Label1 Work),
// internal dates spread over five years in several time zones, messages without
// Message-ID, identical duplicates (the same bytes twice in one folder), CRLF line
// endings, RFC 2047 and raw UTF-8 headers, and a few big messages with base64
// attachments. It plans the mailbox (GeneratePlan) and renders every message with the
// renderer of the benchmark's PlanSized.
func Generate(seed int64, spec Spec) Mailbox {
	return GeneratePlan(seed, spec).Mailbox()
}

// GeneratePlan is the Plan of the mailbox Generate builds.
func GeneratePlan(seed int64, spec Spec) *Plan {
	if spec.Count == 0 {
		spec.Count = 100
	}
	if spec.Sizes == nil {
		spec.Sizes = DefaultSizes()
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x1a2b3c4d))
	p := &Plan{Seed: uint64(seed)}
	p.Folders = append(p.Folders, PlannedFolder{Name: "INBOX"})
	for _, s := range specialFolders {
		p.Folders = append(p.Folders, PlannedFolder{Name: s.Name, SpecialUse: s.Use})
	}
	nUser := spec.Folders
	switch {
	case nUser == 0:
		nUser = len(builtinFolders)
	case nUser < 0:
		nUser = 0
	}
	for i := 0; i < nUser; i++ {
		name := fmt.Sprintf("Folder %d", i+1)
		if i < len(builtinFolders) {
			name = builtinFolders[i]
		}
		p.Folders = append(p.Folders, PlannedFolder{Name: name})
	}

	// Where messages go: INBOX gets the most, then Sent and Archive; user folders share
	// the rest; the empty folder gets none.
	weights := make([]int, len(p.Folders))
	for i, f := range p.Folders {
		switch {
		case f.Name == "INBOX":
			weights[i] = 40
		case f.SpecialUse == `\Sent`:
			weights[i] = 15
		case f.SpecialUse == `\Archive`:
			weights[i] = 10
		case f.SpecialUse == `\Trash`:
			weights[i] = 5
		case f.SpecialUse == `\Junk`:
			weights[i] = 3
		case f.SpecialUse == `\Drafts`:
			weights[i] = 2
		case f.Name == emptyFolder:
			weights[i] = 0
		default:
			weights[i] = max(25/max(nUser, 1), 1)
		}
	}
	total := 0
	for _, w := range weights {
		total += w
	}

	// Dates over five years back from a fixed point, to the second, in various zones.
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for len(p.Messages) < spec.Count {
		fi := pickWeighted(rng, weights, total)
		class := sizeClass(rng, spec.Sizes)
		target := class.Min
		if class.Max > class.Min {
			target += rng.IntN(class.Max - class.Min)
		}
		kind := KindText
		switch {
		case class.Attachment:
			kind = KindAttachment
		case rng.IntN(3) == 0:
			kind = KindAlternative
		}
		date := base.Add(-time.Duration(rng.Int64N(5*365*24*3600)) * time.Second).In(zones[rng.IntN(len(zones))])
		m := PlannedMessage{
			Folder:       fi,
			Kind:         kind,
			DuplicateOf:  -1,
			InternalDate: date,
			NoMessageID:  rng.IntN(12) == 0, // as some old clients and scripts send them
			target:       int64(target),
			seed:         rng.Uint64(),
			date:         date,
		}
		m.Flags = testFlags(rng, p.Folders[fi].SpecialUse)
		p.Messages = append(p.Messages, m)
		// One message in 40 is there twice, byte for byte (a client that saved it twice);
		// every other such pair also differs in its flags.
		if len(p.Messages) < spec.Count && rng.IntN(40) == 0 {
			dup := m
			dup.DuplicateOf = len(p.Messages) - 1
			dup.Flags = append([]string(nil), m.Flags...)
			if rng.IntN(2) == 0 {
				dup.Flags = toggle(dup.Flags, `\Flagged`)
			}
			p.Messages = append(p.Messages, dup)
		}
	}
	return p
}

// Mailbox renders every message of the plan into memory, folder by folder in the
// plan's order.
func (p *Plan) Mailbox() Mailbox {
	var mb Mailbox
	for _, f := range p.Folders {
		mb.Folders = append(mb.Folders, Folder{Name: f.Name, SpecialUse: f.SpecialUse})
	}
	for i, m := range p.Messages {
		f := &mb.Folders[m.Folder]
		f.Messages = append(f.Messages, Message{Raw: p.Render(nil, i), Flags: m.Flags, InternalDate: m.InternalDate})
	}
	return mb
}

func toggle(flags []string, flag string) []string {
	for i, f := range flags {
		if f == flag {
			return append(flags[:i:i], flags[i+1:]...)
		}
	}
	return append(flags, flag)
}

// testFlags draws the flags of a message of Generate's: every system flag (\Deleted too,
// in any folder) and the keywords $Forwarded, $Label1 and Work.
func testFlags(rng *rand.Rand, specialUse string) []string {
	var flags []string
	add := func(p int, f string) {
		if rng.IntN(100) < p {
			flags = append(flags, f)
		}
	}
	switch specialUse {
	case `\Sent`:
		flags = append(flags, `\Seen`)
	case `\Drafts`:
		flags = append(flags, `\Draft`)
		add(50, `\Seen`)
	default:
		add(70, `\Seen`)
	}
	add(15, `\Answered`)
	add(10, `\Flagged`)
	add(3, `\Deleted`)
	add(5, "$Forwarded")
	add(5, "$Label1")
	add(5, "Work")
	return flags
}

func sizeClass(rng *rand.Rand, sizes []SizeClass) SizeClass {
	total := 0
	for _, c := range sizes {
		total += c.Weight
	}
	if total <= 0 {
		return SizeClass{Min: 600, Max: 6000}
	}
	r := rng.IntN(total)
	for _, c := range sizes {
		if r < c.Weight {
			return c
		}
		r -= c.Weight
	}
	return sizes[len(sizes)-1]
}
