package copybench

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Spec says what mailbox to generate. The same Spec always gives the same mailbox, byte
// for byte.
type Spec struct {
	Seed  uint64
	Count int   // messages
	Bytes int64 // approximate total size of the messages
}

// DefaultSpec is the benchmark's default mailbox: 5,000 messages, about 300 MB.
func DefaultSpec() Spec { return Spec{Seed: 1, Count: 5000, Bytes: 300 << 20} }

// SmallSpec is the mailbox of BENCH_SIZE=small: the whole benchmark in about a minute.
func SmallSpec() Spec { return Spec{Seed: 1, Count: 500, Bytes: 30 << 20} }

// Folder is a generated folder. Name uses "/" as the logical separator; a special-use
// folder's name is its usual name on a "/" server without prefix, and loaders map it to
// the server's own folder with that attribute.
type Folder struct {
	Name       string
	SpecialUse string // `\Sent`, ... or ""
}

// Message is one generated message's metadata; Mailbox.Render produces its bytes.
type Message struct {
	Folder       int       // index into Mailbox.Folders
	Flags        []string  // system flags and keywords, sorted
	InternalDate time.Time // whole seconds
	Kind         Kind
	NoMessageID  bool
	DuplicateOf  int // index of the earlier message this one is an identical copy of, or -1

	target int64  // approximate size asked of the renderer
	seed   uint64 // the renderer's seed
	date   time.Time
}

// Kind is the shape of a generated message.
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

// Mailbox is a generated mailbox: folders and message metadata. Message bytes are
// rendered on demand (Render), so that a 300 MB mailbox never sits in memory.
type Mailbox struct {
	Spec     Spec
	Folders  []Folder
	Messages []Message
}

// folderPlan is the generated folder tree: nested, non-ASCII, special-use, one empty
// parent. weight is the share of the messages; years the range of their dates.
var folderPlan = []struct {
	Folder
	weight     int
	from, till int // years
}{
	{Folder{"INBOX", ""}, 30, 2023, 2025},
	{Folder{"Sent", `\Sent`}, 12, 2016, 2025},
	{Folder{"Drafts", `\Drafts`}, 1, 2024, 2025},
	{Folder{"Trash", `\Trash`}, 4, 2025, 2025},
	{Folder{"Junk", `\Junk`}, 3, 2025, 2025},
	{Folder{"Archive", `\Archive`}, 8, 2014, 2018},
	{Folder{"Archive/2019", ""}, 7, 2019, 2019},
	{Folder{"Archive/2020", ""}, 7, 2020, 2020},
	{Folder{"Work", ""}, 6, 2021, 2025},
	{Folder{"Work/Projects", ""}, 5, 2021, 2025},
	{Folder{"Work/Projects/Réunions été", ""}, 3, 2022, 2024},
	{Folder{"Lists", ""}, 0, 0, 0},
	{Folder{"Lists/golang-nuts", ""}, 9, 2018, 2025},
	{Folder{"Документы", ""}, 3, 2017, 2025},
	{Folder{"Reisen & Urlaub", ""}, 2, 2015, 2025},
}

// Size classes. Means are those of the distributions drawn from below.
const (
	smallMin, smallMax = 2 << 10, 60 << 10
	mediumMin          = 200 << 10
	mediumMax          = 2 << 20
	hugeMin, hugeMax   = 10 << 20, 25 << 20
	hugeShare          = 0.25 // of the bytes, in messages of 10–25 MB
)

// Generate plans the mailbox of spec: folders, and for every message its folder, size
// class, flags and keywords, internal date, whether it lacks a Message-ID and whether it
// is an identical duplicate of another message of its folder.
func Generate(spec Spec) (*Mailbox, error) {
	if spec.Count <= 0 {
		return nil, fmt.Errorf("generate: count %d, want > 0", spec.Count)
	}
	if spec.Bytes < int64(spec.Count)*smallMin {
		return nil, fmt.Errorf("generate: %d bytes for %d messages: want at least %d KB each", spec.Bytes, spec.Count, smallMin>>10)
	}
	rng := rand.New(rand.NewPCG(spec.Seed, 0x5eed))
	mb := &Mailbox{Spec: spec}
	var weights []int
	for _, f := range folderPlan {
		mb.Folders = append(mb.Folders, f.Folder)
		weights = append(weights, f.weight)
	}

	// Size classes: a few huge messages carry about a quarter of the bytes (none when
	// the mailbox is too small for one), small text messages are the bulk, and enough
	// attachment messages fill the rest of the byte budget.
	nHuge := int(math.Round(float64(spec.Bytes) * hugeShare / ((hugeMin + hugeMax) / 2)))
	if nHuge == 0 && spec.Bytes >= 3*hugeMin && spec.Count >= 100 {
		nHuge = 1
	}
	nHuge = min(nHuge, spec.Count/20)
	sizes := make([]int64, spec.Count)
	kinds := make([]Kind, spec.Count)
	var hugeBytes int64
	for i := range nHuge {
		sizes[i] = hugeMin + rng.Int64N(hugeMax-hugeMin)
		kinds[i] = KindHuge
		hugeBytes += sizes[i]
	}
	rest := spec.Count - nHuge
	meanSmall := logUniformMean(smallMin, smallMax) * 1.05 // headers and signature on top
	meanMedium := logUniformMean(mediumMin, mediumMax)
	nMedium := int((float64(spec.Bytes-hugeBytes) - float64(rest)*meanSmall) / (meanMedium - meanSmall))
	nMedium = max(0, min(nMedium, rest/4))
	for i := nHuge; i < nHuge+nMedium; i++ {
		sizes[i] = logUniform(rng, mediumMin, mediumMax)
		kinds[i] = KindAttachment
	}
	for i := nHuge + nMedium; i < spec.Count; i++ {
		sizes[i] = smallSize(rng)
		kinds[i] = KindText
		if rng.IntN(3) == 0 {
			kinds[i] = KindAlternative
		}
	}
	// Spread the classes over the mailbox.
	rng.Shuffle(spec.Count, func(i, j int) {
		sizes[i], sizes[j] = sizes[j], sizes[i]
		kinds[i], kinds[j] = kinds[j], kinds[i]
	})

	total := 0
	for _, w := range weights {
		total += w
	}
	for i := range spec.Count {
		f := pickWeighted(rng, weights, total)
		if kinds[i] == KindHuge {
			f = []int{0, 1, 5}[rng.IntN(3)] // INBOX, Sent, Archive
		}
		plan := folderPlan[f]
		m := Message{
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
		m.Flags = randomFlags(rng, plan.Folder, m.date)
		mb.Messages = append(mb.Messages, m)
	}

	// Identical duplicates: about one in 250 (at least one), each a copy of an earlier
	// non-huge message of a folder, with the same bytes, flags and date.
	nDup := max(1, spec.Count/250)
	if spec.Count < 10 {
		nDup = 0
	}
	for range nDup {
		i := 1 + rng.IntN(spec.Count-1)
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
	if spec.Count >= 10 {
		hasNoID := false
		for _, m := range mb.Messages {
			hasNoID = hasNoID || m.NoMessageID
		}
		if !hasNoID {
			mb.Messages[spec.Count/2].NoMessageID = true
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
func randomFlags(rng *rand.Rand, f Folder, date time.Time) []string {
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

// Render appends the bytes of message i to dst and returns the result. Lines end with
// CRLF; the bytes depend only on the Spec and i.
func (mb *Mailbox) Render(dst []byte, i int) []byte {
	m := mb.Messages[i]
	if m.DuplicateOf >= 0 {
		return mb.Render(dst, m.DuplicateOf)
	}
	r := renderer{
		rng: rand.New(rand.NewPCG(m.seed, uint64(i))),
		buf: dst,
	}
	r.message(mb.Folders[m.Folder], m, i)
	return r.buf
}

type renderer struct {
	rng *rand.Rand
	buf []byte
}

func (r *renderer) line(s ...string) {
	for _, p := range s {
		r.buf = append(r.buf, p...)
	}
	r.buf = append(r.buf, '\r', '\n')
}

func (r *renderer) pick(list []string) string { return list[r.rng.IntN(len(list))] }

func (r *renderer) person() (name, addr string) {
	first, last := r.pick(firstNames), r.pick(lastNames)
	return first + " " + last, asciiLocal(first) + "." + asciiLocal(last) + "@" + r.pick(domains)
}

func (r *renderer) message(f Folder, m Message, i int) {
	start := len(r.buf)
	fromName, from := r.person()
	toName, to := r.person()
	if f.SpecialUse == `\Sent` || f.SpecialUse == `\Drafts` {
		fromName, from = "Camille Durand", "camille.durand@example.org"
	} else {
		toName, to = "Camille Durand", "camille.durand@example.org"
	}
	relay := r.rng.IntN(250) + 1
	r.line("Return-Path: <", from, ">")
	r.line("Received: from mx", itoa(r.rng.IntN(9)+1), ".example.net (mx.example.net [192.0.2.", itoa(relay), "])")
	r.line("\tby mail.example.org (Postfix) with ESMTPS id ", r.hex(10))
	r.line("\tfor <", to, ">; ", m.date.Add(time.Second).Format(time.RFC1123Z))
	r.line("Date: ", m.date.Format(time.RFC1123Z))
	r.line("From: ", r.displayName(fromName), " <", from, ">")
	r.line("To: ", r.displayName(toName), " <", to, ">")
	if r.rng.IntN(5) == 0 {
		ccName, cc := r.person()
		r.line("Cc: ", r.displayName(ccName), " <", cc, ">")
	}
	r.line("Subject: ", r.subject(f))
	if !m.NoMessageID {
		r.line("Message-ID: <", itoa(int(m.date.Unix())), ".", r.hex(8), "@", r.pick(domains), ">")
	}
	if r.rng.IntN(4) == 0 {
		ref := "<" + r.hex(12) + "@" + r.pick(domains) + ">"
		r.line("In-Reply-To: ", ref)
		r.line("References: ", ref)
	}
	if f.Name == "Lists/golang-nuts" {
		r.line("List-Id: <golang-nuts.googlegroups.com>")
		r.line("Precedence: list")
	}
	r.line("MIME-Version: 1.0")
	target := int(m.target)
	switch m.Kind {
	case KindText:
		r.line("Content-Type: text/plain; charset=utf-8; format=flowed")
		r.line("Content-Transfer-Encoding: 8bit")
		r.line()
		r.text(start + target)
	case KindAlternative:
		b := "=_alt_" + r.hex(16)
		r.line("Content-Type: multipart/alternative; boundary=\"", b, "\"")
		r.line()
		r.line("This is a multi-part message in MIME format.")
		r.line()
		r.line("--", b)
		r.line("Content-Type: text/plain; charset=utf-8")
		r.line("Content-Transfer-Encoding: 8bit")
		r.line()
		textEnd := len(r.buf) + (start+target-len(r.buf))*2/5
		r.text(textEnd)
		r.line("--", b)
		r.line("Content-Type: text/html; charset=utf-8")
		r.line("Content-Transfer-Encoding: 8bit")
		r.line()
		r.line("<html><body>")
		r.html(start + target - 40)
		r.line("</body></html>")
		r.line("--", b, "--")
	case KindAttachment, KindHuge:
		b := "=_mixed_" + r.hex(16)
		r.line("Content-Type: multipart/mixed; boundary=\"", b, "\"")
		r.line()
		r.line("--", b)
		r.line("Content-Type: text/plain; charset=utf-8")
		r.line("Content-Transfer-Encoding: 8bit")
		r.line()
		r.text(len(r.buf) + 600 + r.rng.IntN(3000))
		name, ctype := r.pick(attachmentNames), "application/octet-stream"
		switch {
		case strings.HasSuffix(name, ".pdf"):
			ctype = "application/pdf"
		case strings.HasSuffix(name, ".jpg"):
			ctype = "image/jpeg"
		case strings.HasSuffix(name, ".zip"):
			ctype = "application/zip"
		}
		r.line("--", b)
		r.line("Content-Type: ", ctype, "; name=\"", name, "\"")
		r.line("Content-Disposition: attachment; filename=\"", name, "\"")
		r.line("Content-Transfer-Encoding: base64")
		r.line()
		r.base64(start + target - 60)
		r.line("--", b, "--")
	}
}

func (r *renderer) displayName(name string) string {
	if isASCII(name) {
		return "\"" + name + "\""
	}
	return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(name)) + "?="
}

func (r *renderer) subject(f Folder) string {
	var words []string
	if r.rng.IntN(4) == 0 {
		words = append(words, r.pick([]string{"Re:", "RE:", "Fwd:", "AW:", "TR:"}))
	}
	if f.Name == "Lists/golang-nuts" {
		words = append(words, "[go-nuts]")
	}
	for range 3 + r.rng.IntN(6) {
		words = append(words, r.pick(wordList))
	}
	s := strings.Join(words, " ")
	if isASCII(s) {
		return s
	}
	// Mostly RFC 2047, sometimes raw UTF-8 as some clients send it.
	if r.rng.IntN(5) == 0 {
		return s
	}
	return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
}

// text writes wrapped paragraphs until the buffer reaches end.
func (r *renderer) text(end int) {
	r.line(r.pick(greetings))
	r.line()
	for len(r.buf) < end {
		quoted := r.rng.IntN(6) == 0
		n := 20 + r.rng.IntN(60)
		col := 0
		lineStart := true
		for w := 0; w < n && len(r.buf) < end; w++ {
			if lineStart && quoted {
				r.buf = append(r.buf, "> "...)
				col = 2
			}
			word := r.pick(wordList)
			if !lineStart {
				r.buf = append(r.buf, ' ')
				col++
			}
			r.buf = append(r.buf, word...)
			col += len(word)
			lineStart = false
			if col > 66 {
				r.buf = append(r.buf, '\r', '\n')
				col, lineStart = 0, true
			}
		}
		if !lineStart {
			r.buf = append(r.buf, '\r', '\n')
		}
		r.line()
	}
	r.line("-- ")
	r.line(r.pick(firstNames))
}

func (r *renderer) html(end int) {
	for len(r.buf) < end {
		r.buf = append(r.buf, "<p>"...)
		for w := 0; w < 12 && len(r.buf) < end; w++ {
			if w > 0 {
				r.buf = append(r.buf, ' ')
			}
			if r.rng.IntN(15) == 0 {
				r.buf = append(r.buf, "<b>"...)
				r.buf = append(r.buf, r.pick(wordList)...)
				r.buf = append(r.buf, "</b>"...)
				continue
			}
			r.buf = append(r.buf, r.pick(wordList)...)
		}
		r.line("</p>")
	}
}

// base64 writes a base64 body of pseudo-random bytes, 76 columns, until end.
func (r *renderer) base64(end int) {
	const perLine = 57 // bytes per 76-column line
	var raw [perLine]byte
	var enc [76]byte
	for len(r.buf) < end {
		for k := 0; k < perLine; k += 8 {
			v := r.rng.Uint64()
			for b := 0; b < 8 && k+b < perLine; b++ {
				raw[k+b] = byte(v >> (8 * b))
			}
		}
		base64.StdEncoding.Encode(enc[:], raw[:])
		r.buf = append(r.buf, enc[:]...)
		r.buf = append(r.buf, '\r', '\n')
	}
}

func (r *renderer) hex(n int) string {
	const digits = "0123456789ABCDEF"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[r.rng.IntN(16)]
	}
	return string(b)
}

func itoa(n int) string { return strconv.Itoa(n) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// asciiLocal makes an address local part of a name: lower case, ASCII letters only.
func asciiLocal(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteRune(c)
		case strings.ContainsRune("éèêë", c):
			b.WriteByte('e')
		case strings.ContainsRune("àâä", c):
			b.WriteByte('a')
		case strings.ContainsRune("öô", c):
			b.WriteByte('o')
		case strings.ContainsRune("üû", c):
			b.WriteByte('u')
		case c == 'ç':
			b.WriteByte('c')
		case c == 'ł':
			b.WriteByte('l')
		}
	}
	if b.Len() == 0 {
		return "user"
	}
	return b.String()
}
