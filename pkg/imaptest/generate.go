package imaptest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"strings"
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

// Generate builds a realistic mailbox deterministically from seed: the same seed and
// spec give the same bytes. It has INBOX, the five special-use folders, nested and
// non-ASCII user folders (one of them empty), flags (\Seen \Answered \Flagged \Draft
// and \Deleted, not expunged) and keywords ($Forwarded $Label1 Work), internal dates
// spread over five years in several time zones, messages without Message-ID, identical
// duplicates (the same bytes twice in one folder), CRLF line endings, RFC 2047 and raw
// UTF-8 headers, and a few big messages with base64 attachments.
func Generate(seed int64, spec Spec) Mailbox {
	if spec.Count == 0 {
		spec.Count = 100
	}
	if spec.Sizes == nil {
		spec.Sizes = DefaultSizes()
	}
	g := &generator{rng: rand.New(rand.NewPCG(uint64(seed), 0x1a2b3c4d)), sizes: spec.Sizes}

	var mb Mailbox
	mb.Folders = append(mb.Folders, Folder{Name: "INBOX"})
	for _, s := range specialFolders {
		mb.Folders = append(mb.Folders, Folder{Name: s.Name, SpecialUse: s.Use})
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
		mb.Folders = append(mb.Folders, Folder{Name: name})
	}

	// Where messages go: INBOX gets the most, then Sent and Archive; user folders share
	// the rest; the empty folder gets none.
	weights := make([]int, len(mb.Folders))
	for i, f := range mb.Folders {
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
			weights[i] = 25 / max(nUser, 1)
			if weights[i] == 0 {
				weights[i] = 1
			}
		}
	}
	total := 0
	for _, w := range weights {
		total += w
	}

	for n := 0; n < spec.Count; {
		r := g.rng.IntN(total)
		fi := 0
		for r >= weights[fi] {
			r -= weights[fi]
			fi++
		}
		f := &mb.Folders[fi]
		msg := g.message(f.SpecialUse)
		f.Messages = append(f.Messages, msg)
		n++
		// One message in 40 is there twice, byte for byte (a client that saved it twice);
		// every other such pair also differs in its flags.
		if n < spec.Count && g.rng.IntN(40) == 0 {
			dup := msg
			dup.Flags = append([]string(nil), msg.Flags...)
			if g.rng.IntN(2) == 0 {
				dup.Flags = toggle(dup.Flags, `\Flagged`)
			}
			f.Messages = append(f.Messages, dup)
			n++
		}
	}
	return mb
}

type generator struct {
	rng   *rand.Rand
	sizes []SizeClass
	seq   int
}

func toggle(flags []string, flag string) []string {
	for i, f := range flags {
		if f == flag {
			return append(flags[:i:i], flags[i+1:]...)
		}
	}
	return append(flags, flag)
}

var (
	firstNames = []string{"Alice", "Bob", "Chloé", "Dmitri", "Élodie", "François", "Grace", "Hiroshi", "Inès", "José", "Karin", "Łukasz", "Mei", "Noah", "Zoë"}
	lastNames  = []string{"Martin", "Müller", "García", "Rossi", "Dubois", "Nakamura", "Øvergaard", "Smith", "Kowalski", "Ferreira", "Leroy", "O'Brien"}
	domains    = []string{"example.com", "example.org", "example.net", "mail.example", "société.example"}
	subjects   = []string{
		"Meeting notes", "Re: budget 2024", "Invoice %d", "Votre facture n°%d", "Réunion de lundi",
		"Fwd: photos from the trip", "Quarterly report Q%d", "Déjeuner ?", "会議の議事録", "Your order #%d has shipped",
		"Weekly newsletter", "Re: Re: contract draft", "Urgent: server down", "Happy birthday! 🎉", "Überweisung %d",
	}
	words = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his from at
		which but have an they you were her she there been one all we their has would when if so no will can more
		about said what out up them into just over very also new some could time these two may first then do any
		like other my than now people only its after most made how many before must through back years where much
		réunion été données reçu déjà très où naïve façon cœur garçon Grüße straße mañana niño 日本 東京 メール`)
	zones = []*time.Location{
		time.UTC,
		time.FixedZone("CET", 3600),
		time.FixedZone("CEST", 7200),
		time.FixedZone("EST", -5*3600),
		time.FixedZone("JST", 9*3600),
		time.FixedZone("IST", 5*3600+1800),
	}
)

func (g *generator) pick(list []string) string { return list[g.rng.IntN(len(list))] }

func (g *generator) address() (name, addr string) {
	first, last := g.pick(firstNames), g.pick(lastNames)
	local := strings.ToLower(strings.NewReplacer("'", "", "é", "e", "ç", "c", "ë", "e", "ø", "o", "Ø", "o", "ü", "u", "ł", "l", "Ł", "l", "É", "e", "è", "e").Replace(first + "." + last))
	return first + " " + last, local + "@" + g.pick(domains)
}

// header renders an address header, sometimes RFC 2047-encoded, sometimes raw UTF-8
// (8-bit headers as sent by many real clients).
func (g *generator) addressHeader(name, addr string) string {
	switch g.rng.IntN(3) {
	case 0:
		return mime.QEncoding.Encode("utf-8", name) + " <" + addr + ">"
	case 1:
		return name + " <" + addr + ">"
	default:
		return addr
	}
}

func (g *generator) subject() string {
	s := g.pick(subjects)
	if strings.Contains(s, "%d") {
		s = fmt.Sprintf(s, g.rng.IntN(100000))
	}
	return s
}

func (g *generator) flags(specialUse string) []string {
	var flags []string
	add := func(p int, f string) {
		if g.rng.IntN(100) < p {
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

func (g *generator) message(specialUse string) Message {
	g.seq++
	// Dates over five years back from a fixed point, to the second, in various zones.
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	date := base.Add(-time.Duration(g.rng.Int64N(5*365*24*3600)) * time.Second).In(zones[g.rng.IntN(len(zones))])

	class := g.sizeClass()
	target := class.Min
	if class.Max > class.Min {
		target += g.rng.IntN(class.Max - class.Min)
	}

	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	fromName, fromAddr := g.address()
	toName, toAddr := g.address()
	if g.rng.IntN(8) == 0 {
		hdr("Return-Path", "<"+fromAddr+">")
		hdr("Received", fmt.Sprintf("from mx%d.example.net (mx%d.example.net [192.0.2.%d])\r\n\tby mail.example.com with ESMTPS id %x;\r\n\t%s",
			g.seq%7, g.seq%7, g.seq%250+1, g.rng.Uint64(), date.Format(time.RFC1123Z)))
	}
	hdr("Date", date.Format(time.RFC1123Z))
	hdr("From", g.addressHeader(fromName, fromAddr))
	hdr("To", g.addressHeader(toName, toAddr))
	subj := g.subject()
	if g.rng.IntN(3) == 0 {
		hdr("Subject", subj) // raw 8-bit UTF-8 when not ASCII
	} else {
		hdr("Subject", mime.BEncoding.Encode("utf-8", subj))
	}
	// One message in 12 has no Message-ID, as some old clients and scripts send them.
	if g.rng.IntN(12) != 0 {
		hdr("Message-ID", fmt.Sprintf("<%d.%x@%s>", g.seq, g.rng.Uint64(), strings.SplitN(fromAddr, "@", 2)[1]))
	}
	if g.rng.IntN(4) == 0 {
		hdr("In-Reply-To", fmt.Sprintf("<%x@example.com>", g.rng.Uint64()))
	}
	hdr("MIME-Version", "1.0")

	if class.Attachment {
		boundary := fmt.Sprintf("=_imaptest_%x", g.rng.Uint64())
		hdr("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
		b.WriteString("\r\nThis is a multi-part message in MIME format.\r\n")
		b.WriteString("--" + boundary + "\r\n")
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		g.text(&b, 400+g.rng.IntN(2000))
		b.WriteString("--" + boundary + "\r\n")
		name := fmt.Sprintf("document-%d.pdf", g.seq)
		if g.rng.IntN(3) == 0 {
			name = fmt.Sprintf("relevé-%d.pdf", g.seq)
		}
		b.WriteString("Content-Type: application/octet-stream; name=\"" + mime.QEncoding.Encode("utf-8", name) + "\"\r\n")
		b.WriteString("Content-Transfer-Encoding: base64\r\n")
		b.WriteString("Content-Disposition: attachment; filename=\"" + mime.QEncoding.Encode("utf-8", name) + "\"\r\n\r\n")
		// base64 grows by 4/3 and by the line breaks.
		rawLen := max((target-b.Len()-100)*57/78, 1)
		data := make([]byte, rawLen)
		for i := range data {
			data[i] = byte(g.rng.Uint32())
		}
		enc := base64.StdEncoding.EncodeToString(data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
		b.WriteString("--" + boundary + "--\r\n")
	} else {
		hdr("Content-Type", "text/plain; charset=utf-8")
		hdr("Content-Transfer-Encoding", "8bit")
		b.WriteString("\r\n")
		g.text(&b, target-b.Len())
	}
	return Message{Raw: b.Bytes(), Flags: g.flags(specialUse), InternalDate: date}
}

func (g *generator) sizeClass() SizeClass {
	total := 0
	for _, c := range g.sizes {
		total += c.Weight
	}
	if total <= 0 {
		return SizeClass{Min: 600, Max: 6000}
	}
	r := g.rng.IntN(total)
	for _, c := range g.sizes {
		if r < c.Weight {
			return c
		}
		r -= c.Weight
	}
	return g.sizes[len(g.sizes)-1]
}

// text writes about n bytes of text in lines of under 80 bytes, CRLF-terminated, with
// a blank line between paragraphs.
func (g *generator) text(b *bytes.Buffer, n int) {
	written, line := 0, 0
	for written < n || line > 0 {
		w := g.pick(words)
		if line > 0 && line+1+len(w) > 72 || (written >= n && line > 0) {
			b.WriteString("\r\n")
			written += 2
			line = 0
			if g.rng.IntN(8) == 0 {
				b.WriteString("\r\n")
				written += 2
			}
			continue
		}
		if line > 0 {
			b.WriteByte(' ')
			written++
			line++
		}
		b.WriteString(w)
		written += len(w)
		line += len(w)
	}
}
