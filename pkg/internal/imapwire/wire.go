// Package imapwire reads and writes the IMAP protocol's lines where the code speaks it
// itself (imapconn's login on a raw session, imapappend's pipelined APPEND), as
// go-imap keeps its own in internal/imapwire: responses read with a bound on a line,
// capability lists, quoted strings.
package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// MaxLine is how much of one response line ReadResponse keeps; the rest of a longer line is
// read and dropped, so a hostile server cannot make us buffer without bound.
const MaxLine = 64 << 10

// MaxResponse is the most one response may take on the wire, its literals included;
// ReadResponse fails on a longer one. The responses read here (login, APPEND) are small:
// a server that sends more is hostile or broken, and reading on would never end.
const MaxResponse = 16 << 20

// ErrOversized is in the chain of every error about a response over a size bound (here
// and in imapconn's guard): the server is hostile or broken, and a retry will not mend it.
var ErrOversized = errors.New("a response over the size bound")

// Oversized returns an error that says msg and is ErrOversized.
func Oversized(format string, args ...any) error {
	return oversized(fmt.Sprintf(format, args...))
}

type oversized string

func (e oversized) Error() string        { return string(e) }
func (e oversized) Is(target error) bool { return target == ErrOversized }

// Response is one server response, as the raw protocol code reads it (the login here, and
// pkg/imapappend): status responses in full, untagged data by name only. Literals inside
// untagged data are read and dropped.
type Response struct {
	Tag      string // "*" when untagged, "+" for a continuation request, else the command's tag
	Type     string // upper-cased: OK, NO, BAD, BYE, PREAUTH, or the untagged data's name (CAPABILITY, EXISTS, ...); "" for "+"
	Code     string // upper-cased response code ("APPENDUID", "OVERQUOTA"); "" when none
	CodeArgs string // what follows the code inside the brackets ("38505 3955:3957")
	Text     string // the human-readable text; for untagged data, the rest of the line; for "+", what follows it

	// Line is the start of the line as received (80 bytes at most), for error
	// messages: untrusted, show it only cleaned (imapconn's serverText).
	Line string

	// Size is how many bytes the response took on the wire, its literals included.
	Size int64
}

// IsStatus reports whether r is a status response (OK, NO, BAD, BYE or PREAUTH).
func (r *Response) IsStatus() bool {
	switch r.Type {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		return true
	}
	return false
}

// Err returns r as an *imap.Error when it is a NO, BAD or BYE, else nil.
func (r *Response) Err() *imap.Error {
	switch r.Type {
	case "NO", "BAD", "BYE":
		return &imap.Error{Type: imap.StatusResponseType(r.Type), Code: imap.ResponseCode(r.Code), Text: r.Text}
	}
	return nil
}

// ReadResponse reads one response from r.
func ReadResponse(r *bufio.Reader) (*Response, error) {
	line, end, size, err := readLine(r, MaxResponse)
	if err != nil {
		return nil, err
	}
	if len(line) > 0 && line[0] == '+' {
		return &Response{Tag: "+", Text: strings.TrimPrefix(string(line[1:]), " "), Size: size}, nil
	}
	tag, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(tag) == 0 {
		return nil, fmt.Errorf("malformed response %q", printable(line, 60))
	}
	resp := &Response{Tag: string(tag), Line: string(line[:min(len(line), 80)]), Size: size}
	typ, rest, _ := bytes.Cut(rest, []byte(" "))
	if resp.Tag == "*" && len(typ) > 0 && typ[0] >= '0' && typ[0] <= '9' {
		// "* 23 EXISTS": a number, then the name.
		typ, rest, _ = bytes.Cut(rest, []byte(" "))
	}
	resp.Type = strings.ToUpper(string(typ))
	if resp.IsStatus() {
		resp.Code, resp.CodeArgs, resp.Text = parseRespText(string(rest))
		return resp, nil
	}
	resp.Text = string(rest)
	// Untagged data may carry literals ("* 1 FETCH (BODY[] {42}"): skip each, then read
	// on to the end of the response.
	for resp.Tag == "*" {
		n, ok := literalAtEnd(end)
		if !ok {
			break
		}
		if n > MaxResponse-resp.Size {
			return nil, Oversized("the server announced a literal of %d bytes in an untagged response: more than %d MiB in all", n, MaxResponse>>20)
		}
		if _, err := io.CopyN(io.Discard, r, n); err != nil {
			return nil, fmt.Errorf("read a literal of %d bytes: %w", n, noEOF(err))
		}
		resp.Size += n
		if _, end, size, err = readLine(r, MaxResponse-resp.Size); err != nil {
			return nil, err
		}
		resp.Size += size
	}
	return resp, nil
}

// readLine reads one line up to CRLF; it returns at most MaxLine bytes of it (without the
// CRLF), the line's last bytes (for finding a literal's announcement) and its size on the
// wire. A line longer than limit is an error.
func readLine(r *bufio.Reader, limit int64) (line, end []byte, size int64, err error) {
	for {
		frag, err := r.ReadSlice('\n')
		size += int64(len(frag))
		if size > limit {
			return nil, nil, size, Oversized("the server sent a response line longer than %d MiB", MaxResponse>>20)
		}
		if room := MaxLine - len(line); room > 0 {
			line = append(line, frag[:min(room, len(frag))]...)
		}
		end = append(end, frag...)
		if len(end) > 32 {
			end = append(end[:0], end[len(end)-32:]...)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, nil, size, noEOF(err)
		}
	}
	line = bytes.TrimRight(line, "\r\n")
	end = bytes.TrimRight(end, "\r\n")
	return line, end, size, nil
}

// literalAtEnd finds the "{123}" that announces a literal at the end of a line.
func literalAtEnd(end []byte) (int64, bool) {
	if len(end) < 3 || end[len(end)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(end, '{')
	if open < 0 {
		return 0, false
	}
	digits := strings.TrimSuffix(string(end[open+1:len(end)-1]), "+")
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func parseRespText(s string) (code, args, text string) {
	if !strings.HasPrefix(s, "[") {
		return "", "", s
	}
	inner, text, ok := strings.Cut(s[1:], "]")
	if !ok {
		return "", "", s
	}
	code, args, _ = strings.Cut(inner, " ")
	return strings.ToUpper(code), args, strings.TrimPrefix(text, " ")
}

// ParseCaps parses a capability list ("IMAP4rev1 LITERAL+ AUTH=PLAIN"), upper-casing names
// except the IMAP4revN ones, which go-imap spells in mixed case.
func ParseCaps(s string) imap.CapSet {
	caps := make(imap.CapSet)
	for _, f := range strings.Fields(s) {
		name := strings.ToUpper(f)
		switch name {
		case "IMAP4REV1":
			name = string(imap.CapIMAP4rev1)
		case "IMAP4REV2":
			name = string(imap.CapIMAP4rev2)
		}
		caps[imap.Cap(name)] = struct{}{}
	}
	return caps
}

// Quote returns s as an IMAP quoted string, or ok=false when s cannot be one (CR, LF, NUL
// or non-ASCII bytes: send it as a literal instead).
func Quote(s string) (quoted string, ok bool) {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0 || c == '\r' || c == '\n' || c >= 0x80:
			return "", false
		case c == '"' || c == '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String(), true
}

// noEOF turns a clean EOF in the middle of a response into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// printable quotes at most max bytes of b for an error message.
func printable(b []byte, max int) string {
	if len(b) > max {
		b = b[:max]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return '.'
		}
		return r
	}, string(b))
}
