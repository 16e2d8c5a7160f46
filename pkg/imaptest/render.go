package imaptest

import (
	"encoding/base64"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Render appends the bytes of message i to dst and returns the result. Lines end with
// CRLF; the bytes depend only on the Spec and i.
func (mb *Plan) Render(dst []byte, i int) []byte {
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

func (r *renderer) message(f PlannedFolder, m PlannedMessage, i int) {
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

func (r *renderer) subject(f PlannedFolder) string {
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
