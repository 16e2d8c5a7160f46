package mailcopy

import (
	"errors"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"imapcopy.dev/pkg/imapconn"
)

// examineMetadata opens folder read-only and runs its metadata pass (see
// readMetadata) with the two commands pipelined: the UID FETCH 1:* is sent
// right behind the EXAMINE, so a distant server costs one round trip for
// both, not two.
//
// When the EXAMINE fails (examineErr, the server's answer: a folder that
// does not exist, or a connection failure), what the FETCH behind it got is
// read and dropped: the server answers it NO or BAD (no folder selected) or,
// one that keeps the previous folder selected, with that folder's messages,
// which are not this folder's. The metadata pass of an empty folder is
// empty whatever the server said of "1:*" on it (some refuse the range),
// unless it said to slow down.
func examineMetadata(c *imapclient.Client, folder string, keyed bool) (sel *imap.SelectData, msgs []srcMessage, examineErr, fetchErr error) {
	examine, fetch := sendMetadata(c, folder, keyed)
	return awaitMetadata(examine, fetch, keyed)
}

// sendMetadata sends examineMetadata's two commands without waiting: the
// server answers them in order, after any command sent before. keyed: the
// pass reads each message's identity (see metadataOptions).
func sendMetadata(c *imapclient.Client, folder string, keyed bool) (*imapclient.SelectCommand, *imapclient.FetchCommand) {
	opts := metadataOptions
	if !keyed {
		opts = unkeyedMetadataOptions
	}
	return c.Select(folder, &imap.SelectOptions{ReadOnly: true}), c.Fetch(allUIDs, opts)
}

// awaitMetadata reads the answers of sendMetadata's commands (see
// examineMetadata).
func awaitMetadata(examine *imapclient.SelectCommand, fetch *imapclient.FetchCommand, keyed bool) (sel *imap.SelectData, msgs []srcMessage, examineErr, fetchErr error) {
	sel, err := examine.Wait()
	if err != nil {
		_ = fetch.Close() // drains it; its error says less than the EXAMINE's
		return nil, nil, err, nil
	}
	msgs, err = readMetadata(fetch, sel.NumMessages, keyed)
	if err != nil && sel.NumMessages == 0 && refusedRange(err) {
		return sel, nil, nil, nil
	}
	return sel, msgs, nil, err
}

// refusedRange tells a server's refusal of UID FETCH 1:* on an empty folder
// from a failure: a throttling refusal (imapconn.Throttled) is not about the
// range and is waited out like any.
func refusedRange(err error) bool {
	var imapErr *imap.Error
	if _, throttled := imapconn.Throttled(err); throttled {
		return false
	}
	return errors.As(err, &imapErr)
}
