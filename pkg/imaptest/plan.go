package imaptest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// PlannedFolder is a folder of a Plan. Name uses "/" as the logical separator; a
// special-use folder's name is its usual name on a "/" server without prefix, and
// loaders map it to the server's own folder with that attribute.
type PlannedFolder struct {
	Name       string
	SpecialUse string // `\Sent`, ... or ""
}

// PlannedMessage is one planned message's metadata; Plan.Render produces its bytes.
type PlannedMessage struct {
	Folder       int       // index into Plan.Folders
	Flags        []string  // system flags and keywords (sorted by PlanSized)
	InternalDate time.Time // whole seconds
	Kind         Kind
	NoMessageID  bool
	DuplicateOf  int // index of the earlier message this one is an identical copy of, or -1

	target int64  // approximate size asked of the renderer
	seed   uint64 // the renderer's seed
	date   time.Time
}

// Kind is the shape of a generated message. The sizes are PlanSized's; GeneratePlan's
// come from Spec.Sizes.
type Kind int

const (
	KindText        Kind = iota + 1 // text/plain, 2–60 KB
	KindAlternative                 // multipart/alternative text + html, 2–60 KB
	KindAttachment                  // multipart/mixed with a base64 attachment, 0.2–2 MB
	KindHuge                        // multipart/mixed with a big attachment, 10–25 MB
)

func (k Kind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindAlternative:
		return "alternative"
	case KindAttachment:
		return "attachment"
	case KindHuge:
		return "huge"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Plan is a generated mailbox: folders and message metadata. Message bytes are
// rendered on demand (Render), so that a 300 MB mailbox never sits in memory; Mailbox
// renders them all. GeneratePlan and PlanSized make one; the same arguments always give
// the same plan, and the same plan the same bytes.
type Plan struct {
	Seed     uint64
	Folders  []PlannedFolder
	Messages []PlannedMessage
}

// folderPlan is the generated folder tree: nested, non-ASCII, special-use, one empty
// parent. weight is the share of the messages; years the range of their dates.
var folderPlan = []struct {
	PlannedFolder
	weight     int
	from, till int // years
}{
	{PlannedFolder{"INBOX", ""}, 30, 2023, 2025},
	{PlannedFolder{"Sent", `\Sent`}, 12, 2016, 2025},
	{PlannedFolder{"Drafts", `\Drafts`}, 1, 2024, 2025},
	{PlannedFolder{"Trash", `\Trash`}, 4, 2025, 2025},
	{PlannedFolder{"Junk", `\Junk`}, 3, 2025, 2025},
	{PlannedFolder{"Archive", `\Archive`}, 8, 2014, 2018},
	{PlannedFolder{"Archive/2019", ""}, 7, 2019, 2019},
	{PlannedFolder{"Archive/2020", ""}, 7, 2020, 2020},
	{PlannedFolder{"Work", ""}, 6, 2021, 2025},
	{PlannedFolder{"Work/Projects", ""}, 5, 2021, 2025},
	{PlannedFolder{"Work/Projects/Réunions été", ""}, 3, 2022, 2024},
	{PlannedFolder{"Lists", ""}, 0, 0, 0},
	{PlannedFolder{"Lists/golang-nuts", ""}, 9, 2018, 2025},
	{PlannedFolder{"Документы", ""}, 3, 2017, 2025},
	{PlannedFolder{"Reisen & Urlaub", ""}, 2, 2015, 2025},
}

// Size classes. Means are those of the distributions drawn from below.
const (
	smallMin, smallMax = 2 << 10, 60 << 10
	mediumMin          = 200 << 10
	mediumMax          = 2 << 20
	hugeMin, hugeMax   = 10 << 20, 25 << 20
	hugeShare          = 0.25 // of the bytes, in messages of 10–25 MB
)

// PlanSized plans a mailbox of count messages and about size bytes from seed, the
// benchmark's (copybench): folders, and for every message its folder, size class (a
// quarter of the bytes in messages of 10–25 MB when size allows), flags and keywords,
// internal date, whether it lacks a Message-ID and whether it is an identical duplicate
// of another message of its folder.
func PlanSized(seed uint64, count int, size int64) (*Plan, error) {
	if count <= 0 {
		return nil, fmt.Errorf("plan: count %d, want > 0", count)
	}
	if size < int64(count)*smallMin {
		return nil, fmt.Errorf("plan: %d bytes for %d messages: want at least %d KB each", size, count, smallMin>>10)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	mb := &Plan{Seed: seed}
	var weights []int
	for _, f := range folderPlan {
		mb.Folders = append(mb.Folders, f.PlannedFolder)
		weights = append(weights, f.weight)
	}

	// Size classes: a few huge messages carry about a quarter of the bytes (none when
	// the mailbox is too small for one), small text messages are the bulk, and enough
	// attachment messages fill the rest of the byte budget.
	nHuge := int(math.Round(float64(size) * hugeShare / ((hugeMin + hugeMax) / 2)))
	if nHuge == 0 && size >= 3*hugeMin && count >= 100 {
		nHuge = 1
	}
	nHuge = min(nHuge, count/20)
	sizes := make([]int64, count)
	kinds := make([]Kind, count)
	var hugeBytes int64
	for i := range nHuge {
		sizes[i] = hugeMin + rng.Int64N(hugeMax-hugeMin)
		kinds[i] = KindHuge
		hugeBytes += sizes[i]
	}
	rest := count - nHuge
	meanSmall := logUniformMean(smallMin, smallMax) * 1.05 // headers and signature on top
	meanMedium := logUniformMean(mediumMin, mediumMax)
	nMedium := int((float64(size-hugeBytes) - float64(rest)*meanSmall) / (meanMedium - meanSmall))
	nMedium = max(0, min(nMedium, rest/4))
	for i := nHuge; i < nHuge+nMedium; i++ {
		sizes[i] = logUniform(rng, mediumMin, mediumMax)
		kinds[i] = KindAttachment
	}
	for i := nHuge + nMedium; i < count; i++ {
		sizes[i] = smallSize(rng)
		kinds[i] = KindText
		if rng.IntN(3) == 0 {
			kinds[i] = KindAlternative
		}
	}
	// Spread the classes over the mailbox.
	rng.Shuffle(count, func(i, j int) {
		sizes[i], sizes[j] = sizes[j], sizes[i]
		kinds[i], kinds[j] = kinds[j], kinds[i]
	})

	total := 0
	for _, w := range weights {
		total += w
	}
	for i := range count {
		f := pickWeighted(rng, weights, total)
		if kinds[i] == KindHuge {
			f = []int{0, 1, 5}[rng.IntN(3)] // INBOX, Sent, Archive
		}
		plan := folderPlan[f]
		m := PlannedMessage{
			Folder:      f,
			Kind:        kinds[i],
			DuplicateOf: -1,
			target:      sizes[i],
			seed:        rng.Uint64(),
			NoMessageID: rng.IntN(50) == 0,
		}
		m.date = randomDate(rng, plan.from, plan.till)
		// Arrival a little after the Date header, whole seconds (Maildir keeps seconds).
		m.InternalDate = m.date.Add(time.Duration(2+rng.IntN(900)) * time.Second).Truncate(time.Second)
		m.Flags = randomFlags(rng, plan.PlannedFolder, m.date)
		mb.Messages = append(mb.Messages, m)
	}

	// Identical duplicates: about one in 250 (at least one), each a copy of an earlier
	// non-huge message of a folder, with the same bytes, flags and date.
	nDup := max(1, count/250)
	if count < 10 {
		nDup = 0
	}
	for range nDup {
		i := 1 + rng.IntN(count-1)
		j := rng.IntN(i)
		for k := 0; k < 20 && (mb.Messages[j].Kind == KindHuge || mb.Messages[j].DuplicateOf >= 0); k++ {
			j = rng.IntN(i)
		}
		if mb.Messages[j].Kind == KindHuge || mb.Messages[j].DuplicateOf >= 0 || mb.Messages[i].Kind == KindHuge {
			continue
		}
		d := mb.Messages[j]
		d.DuplicateOf = j
		d.Flags = append([]string(nil), d.Flags...)
		mb.Messages[i] = d
	}
	// At least one message without a Message-ID.
	if count >= 10 {
		hasNoID := false
		for _, m := range mb.Messages {
			hasNoID = hasNoID || m.NoMessageID
		}
		if !hasNoID {
			mb.Messages[count/2].NoMessageID = true
		}
	}
	return mb, nil
}

func pickWeighted(rng *rand.Rand, weights []int, total int) int {
	n := rng.IntN(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}

// smallSize draws from 2–60 KB, most messages small: a log-uniform draw.
func smallSize(rng *rand.Rand) int64 { return logUniform(rng, smallMin, smallMax) }

// logUniformMean is the mean of a log-uniform distribution on [lo, hi].
func logUniformMean(lo, hi int64) float64 {
	return float64(hi-lo) / math.Log(float64(hi)/float64(lo))
}

func logUniform(rng *rand.Rand, lo, hi int64) int64 {
	return int64(math.Exp(math.Log(float64(lo)) + rng.Float64()*(math.Log(float64(hi))-math.Log(float64(lo)))))
}

var zones = []*time.Location{
	time.FixedZone("", 0),
	time.FixedZone("", 3600),
	time.FixedZone("", 7200),
	time.FixedZone("", -5*3600),
	time.FixedZone("", -8*3600),
	time.FixedZone("", 5*3600+1800),
}

func randomDate(rng *rand.Rand, from, till int) time.Time {
	start := time.Date(from, 1, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(till+1, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Hour)
	t := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)/time.Second))) * time.Second)
	return t.In(zones[rng.IntN(len(zones))])
}

// randomFlags draws the flags a folder's messages usually carry: mostly \Seen, some
// answered and flagged, keywords ($Forwarded, $label1, Thunderbird's $Junk, custom
// ones), \Draft in Drafts, \Deleted now and then in Trash.
func randomFlags(rng *rand.Rand, f PlannedFolder, date time.Time) []string {
	var flags []string
	add := func(p float64, flag string) {
		if rng.Float64() < p {
			flags = append(flags, flag)
		}
	}
	seen := 0.97
	if f.Name == "INBOX" && date.Year() >= 2025 {
		seen = 0.6
	}
	switch f.SpecialUse {
	case `\Drafts`:
		flags = append(flags, `\Draft`)
		add(0.3, `\Seen`)
	case `\Sent`:
		flags = append(flags, `\Seen`)
		add(0.05, `\Flagged`)
	case `\Junk`:
		add(0.5, `\Seen`)
		add(0.9, "$Junk")
	case `\Trash`:
		add(0.9, `\Seen`)
		add(0.1, `\Deleted`)
	default:
		add(seen, `\Seen`)
		add(0.15, `\Answered`)
		add(0.05, `\Flagged`)
		add(0.06, "$Forwarded")
		add(0.03, "$label1")
		add(0.02, "$NotJunk")
		add(0.02, "$MDNSent")
		if strings.HasPrefix(f.Name, "Work") {
			add(0.2, "project-x")
			add(0.1, "todo")
		}
	}
	sort.Strings(flags)
	return flags
}
