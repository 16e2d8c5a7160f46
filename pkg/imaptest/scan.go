package imaptest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// MessageDigest is what Scan reads of one message.
type MessageDigest struct {
	UID          imap.UID
	Flags        []string // sorted, \Recent dropped, system flags in their canonical case
	InternalDate time.Time
	Size         int64    // RFC822.SIZE as the server reports it
	Bytes        int64    // the length of the body read (BODY.PEEK[])
	SHA256       [32]byte // of the bytes read
	// Filtered is the SHA-256 of the bytes passed through ScanOptions.Filter; zero
	// without a Filter.
	Filtered [32]byte
	// Head is the first ScanOptions.Head bytes of the message (all of it when Head < 0).
	Head []byte
}

// ScanOptions adjusts Scan. The zero value EXAMINEs the folder and keeps no bytes.
type ScanOptions struct {
	// Select opens the folder with SELECT, which clears \Recent, instead of EXAMINE.
	Select bool
	// Head is how many of each message's first bytes MessageDigest.Head keeps: 0 none,
	// < 0 all of them.
	Head int
	// Filter, if set, makes a writer for each message that passes a changed form of
	// the bytes written to it on to w; MessageDigest.Filtered is the hash of what it
	// passes on. If the writer is an io.Closer, Scan closes it after the last byte.
	Filter func(w io.Writer) io.Writer
}

// ErrSelect is wrapped by Scan's error when the folder cannot be selected (it does not
// exist, for one).
var ErrSelect = errors.New("cannot select")

// Scan reads every message of the folder (the server's name for it) in sequence order
// with UID, FLAGS, INTERNALDATE, RFC822.SIZE and BODY.PEEK[], streaming each body into
// its SHA-256. It is the one FETCH-and-hash loop of the test support: the checker, the
// benchmark's loader and explainer and ReadFolder all read mailboxes with it.
func Scan(c *imapclient.Client, folder string, opts ScanOptions) ([]MessageDigest, error) {
	var out []MessageDigest
	err := ScanFunc(c, folder, opts, func(d MessageDigest) error {
		out = append(out, d)
		return nil
	})
	return out, err
}

// ScanFunc is Scan calling fn with each message as it is read, instead of returning
// them all; an error of fn stops the scan and is returned.
func ScanFunc(c *imapclient.Client, folder string, opts ScanOptions, fn func(MessageDigest) error) error {
	verb := "examine"
	if opts.Select {
		verb = "select"
	}
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: !opts.Select}).Wait()
	if err != nil {
		return fmt.Errorf("%s %q: %w: %w", verb, folder, ErrSelect, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	cmd := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	defer cmd.Close()
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		d, err := readDigest(msg, opts)
		if err != nil {
			return fmt.Errorf("fetch %q: %w", folder, err)
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("fetch %q: %w", folder, err)
	}
	return nil
}

func readDigest(msg *imapclient.FetchMessageData, opts ScanOptions) (MessageDigest, error) {
	var d MessageDigest
	haveBody := false
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			d.UID = it.UID
		case imapclient.FetchItemDataFlags:
			d.Flags = cleanFlags(it.Flags)
		case imapclient.FetchItemDataInternalDate:
			d.InternalDate = it.Time
		case imapclient.FetchItemDataRFC822Size:
			d.Size = it.Size
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				return d, errors.New("no body")
			}
			if err := digestBody(&d, it.Literal, opts); err != nil {
				return d, err
			}
			haveBody = true
		}
	}
	if !haveBody {
		return d, errors.New("message without body")
	}
	return d, nil
}

func digestBody(d *MessageDigest, lit imap.LiteralReader, opts ScanOptions) error {
	h := sha256.New()
	ws := []io.Writer{h}
	var head *cappedBuffer
	if opts.Head != 0 {
		head = &cappedBuffer{max: opts.Head}
		ws = append(ws, head)
	}
	var filtered io.Writer
	fh := sha256.New()
	if opts.Filter != nil {
		filtered = opts.Filter(fh)
		ws = append(ws, filtered)
	}
	n, err := io.Copy(io.MultiWriter(ws...), lit)
	if err != nil {
		return err
	}
	// go-imap returns a short body with a nil error when the connection drops.
	if n != lit.Size() {
		return fmt.Errorf("short body: %d of %d bytes", n, lit.Size())
	}
	if c, ok := filtered.(io.Closer); ok {
		if err := c.Close(); err != nil {
			return err
		}
	}
	d.Bytes = n
	h.Sum(d.SHA256[:0])
	if filtered != nil {
		fh.Sum(d.Filtered[:0])
	}
	if head != nil {
		d.Head = head.Bytes()
	}
	return nil
}

// cappedBuffer keeps the first max bytes written to it (all of them when max < 0) and
// discards the rest.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.max < 0 {
		return b.Buffer.Write(p)
	}
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
