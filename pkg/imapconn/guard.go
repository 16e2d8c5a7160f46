package imapconn

import (
	"bytes"
	"io"
	"regexp"
	"strconv"

	"imapcopy.dev/pkg/internal/imapwire"
)

// MaxBufferedLiteral and MaxResponseLine bound what go-imap's client would hold in memory
// for one response: it buffers every literal but a message body, and every line, whole.
const (
	MaxBufferedLiteral = 1 << 20 // a literal that is not a message body (a folder name, a header)
	MaxResponseLine    = 1 << 20 // one line of a response, literals excluded
)

// bodyLiteral matches the end of a line that announces a message body, which go-imap's
// client streams rather than buffers: BODY[...], BINARY[...], RFC822, RFC822.TEXT and
// RFC822.HEADER, with an optional partial origin, followed by the literal's size.
var bodyLiteral = regexp.MustCompile(`(?i)(BODY\[[^\]]*\]|BINARY\[[^\]]*\]|RFC822(\.TEXT|\.HEADER)?)(<\d+>)? ~?\{\d+\+?\}\r\n$`)

// responseGuard sits between the connection and go-imap's client and fails the read when
// a server sends a line longer than MaxResponseLine or announces a literal larger than
// MaxBufferedLiteral anywhere but for a message body: a hostile server cannot make the
// client buffer without bound. Message bodies pass at any size (the engine streams them).
type responseGuard struct {
	r       io.Reader
	lineLen int    // bytes of the current line outside literals
	tail    []byte // the current line's last bytes, to read a literal's announcement
	literal int64  // literal bytes still to pass
	err     error
}

const guardTail = 256

func newResponseGuard(r io.Reader) *responseGuard {
	return &responseGuard{r: r, tail: make([]byte, 0, guardTail)}
}

func (g *responseGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	for i := 0; i < n; {
		if g.literal > 0 {
			k := int(min(g.literal, int64(n-i)))
			g.literal -= int64(k)
			i += k
			continue
		}
		b := p[i]
		i++
		g.lineLen++
		if len(g.tail) == guardTail {
			copy(g.tail, g.tail[1:])
			g.tail = g.tail[:guardTail-1]
		}
		g.tail = append(g.tail, b)
		if b == '\n' {
			if ferr := g.endOfLine(); ferr != nil {
				g.err = ferr
				return i, ferr
			}
			continue
		}
		if g.lineLen > MaxResponseLine {
			g.err = &Error{Kind: KindProtocol, Op: "read a response", Err: imapwire.Oversized(guardLineWords+" %d bytes", MaxResponseLine)}
			return i, g.err
		}
	}
	return n, err
}

// The guard's words, which IsOversized finds in an error go-imap flattened.
const (
	guardLineWords    = "the server sent a line longer than"
	guardLiteralWords = "outside a message body"
)

// endOfLine handles a CRLF: a line ending in "{n}" announces a literal of n bytes.
func (g *responseGuard) endOfLine() error {
	defer func() { g.lineLen, g.tail = 0, g.tail[:0] }()
	t := g.tail
	if !bytes.HasSuffix(t, []byte("}\r\n")) {
		return nil
	}
	open := bytes.LastIndexByte(t, '{')
	if open < 0 {
		return nil
	}
	digits := bytes.TrimSuffix(t[open+1:len(t)-3], []byte("+"))
	size, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil || size < 0 {
		return nil // not a literal; go-imap's parser decides
	}
	if size > MaxBufferedLiteral && !bodyLiteral.Match(t) {
		return &Error{Kind: KindProtocol, Op: "read a response", Err: imapwire.Oversized("the server announced a literal of %d bytes "+guardLiteralWords+" (at most %d)", size, MaxBufferedLiteral)}
	}
	g.literal = size
	return nil
}
