package mailcopy

import (
	"io"

	"github.com/emersion/go-imap/v2/imapclient"
)

// WithBodyWrapper returns c with wrap around every body reader that the
// engine hands to the appender (fault injection in the body stream).
func WithBodyWrapper(c Config, wrap func(uid uint32, body io.Reader) io.Reader) Config {
	c.wrapBody = wrap
	return c
}

// ExamineMetadata runs the pipelined EXAMINE and metadata pass of folder and
// returns the UIDs it found.
func ExamineMetadata(c *imapclient.Client, folder string) (uids []uint32, examineErr, fetchErr error) {
	_, msgs, examineErr, fetchErr := examineMetadata(c, folder, true)
	for _, m := range msgs {
		uids = append(uids, m.uid)
	}
	return uids, examineErr, fetchErr
}
