package mailcopy_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// TestExamineMetadataPipelined: the metadata pass is sent right behind its
// EXAMINE, without waiting for it. On each server family, an EXAMINE of a
// folder that does not exist fails with the server's answer (and not with
// the FETCH's, nor with the folder selected before's messages), the
// connection goes on working, and an empty folder gives no message and no
// error whatever the server says of UID FETCH 1:* on it.
func TestExamineMetadataPipelined(t *testing.T) {
	for _, s := range []testServer{dovecotSlash, cyrusDot, courier} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			acct := s.addUser(t)
			full := "INBOX"
			mustLoad(t, acct, imaptest.Mailbox{Folders: []imaptest.Folder{
				{Name: full, Messages: []imaptest.Message{msg("one", "1@x", 500, baseDate), msg("two", "2@x", 600, baseDate)}},
				{Name: "Empty"},
			}})
			c, err := imapconn.Dial(testContext(t), acct, imapconn.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Logout()
			boxes, err := c.IMAP().List("", "*", nil).Collect()
			if err != nil {
				t.Fatal(err)
			}
			var empty string // the server's name for it
			for _, b := range boxes {
				if strings.HasSuffix(b.Mailbox, "Empty") {
					empty = b.Mailbox
				}
			}
			if empty == "" {
				t.Fatalf("no empty folder in %v", boxes)
			}

			want, examineErr, fetchErr := mailcopy.ExamineMetadata(c.IMAP(), full)
			if examineErr != nil || fetchErr != nil || len(want) != 2 {
				t.Fatalf("%s: UIDs %v, errors %v, %v; want 2 messages", full, want, examineErr, fetchErr)
			}
			for _, folder := range []string{"No such folder", "INBOX.No such folder", "No such folder/child"} {
				uids, examineErr, fetchErr := mailcopy.ExamineMetadata(c.IMAP(), folder)
				var imapErr *imap.Error
				if !errors.As(examineErr, &imapErr) || fetchErr != nil || uids != nil {
					t.Errorf("%q: UIDs %v, errors %v, %v; want the server's refusal of the EXAMINE only", folder, uids, examineErr, fetchErr)
				}
				// The connection is in order: the next folder's pass is its own.
				uids, examineErr, fetchErr = mailcopy.ExamineMetadata(c.IMAP(), full)
				if examineErr != nil || fetchErr != nil || !slices.Equal(uids, want) {
					t.Errorf("%s after %q: UIDs %v, errors %v, %v; want %v", full, folder, uids, examineErr, fetchErr, want)
				}
			}
			uids, examineErr, fetchErr := mailcopy.ExamineMetadata(c.IMAP(), empty)
			if examineErr != nil || fetchErr != nil || len(uids) != 0 {
				t.Errorf("%s: UIDs %v, errors %v, %v; want none", empty, uids, examineErr, fetchErr)
			}
		})
	}
}
