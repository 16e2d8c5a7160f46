// Package imaptest is the IMAP test harness: it owns real Dovecot servers started for
// tests and benchmarks, realistic generated mailboxes, and the checker that compares a
// source account with a destination account against the copy invariants of docs/design.md.
//
// # Servers
//
// StartDovecot starts a private Dovecot (Debian package dovecot-imapd) in its own temp
// dir, listening on random loopback ports only: implicit TLS (TLSAddr) and plain text
// with STARTTLS (PlainAddr), with a certificate signed by a CA generated for this
// server (CAFile, CAPool). It is stopped by tb.Cleanup; when the test failed, the tail
// of Dovecot's log is logged. Two flavours exist:
//
//   - FlavourSlash: maildir LAYOUT=fs, separator "/", no namespace prefix; special-use
//     folders Sent, Drafts, Trash, Junk, Archive.
//   - FlavourDot: Maildir++, separator ".", prefix "INBOX." (like Courier or Cyrus);
//     special-use folders with names of their own: "INBOX.Sent Messages",
//     "INBOX.Drafts", "INBOX.Deleted Messages", "INBOX.Spam" (created automatically)
//     and "INBOX.Archive" (\Archive once created).
//
// Users are added on demand (AddUser) with unique names and random passwords, with an
// optional quota (WithQuota), which Dovecot.SetQuota changes later with the mail kept
// (space freed on a full account); each is usable at once. Their automatic special-use
// folders exist on disk from the start (Dovecot 2.3.19 panics when two sessions of a
// user create one lazily at the same moment). Tests run with mail_fsync = never;
// WithFsync restores the production default for benchmarks. XOAUTH2 and OAUTHBEARER work too: OAuth2Token issues a
// bearer token that the server accepts for a user (Dovecot asks a token introspection
// endpoint served by the test process on loopback).
//
// StartCyrus starts a private Cyrus IMAP 3.6 the same way (TLSAddr, PlainAddr, CAPool,
// AddUser, StartTLS), in the same two flavours: FlavourSlash is `unixhierarchysep: yes`
// with `altnamespace: yes`, FlavourDot is Cyrus's default namespace. Every user has
// Sent, Drafts, Trash, Junk and Archive (special-use) from its first login. Debian's
// cyrus-imapd conflicts with dovecot-imapd, so its packages are unpacked, not
// installed: `make test-deps` (as root) puts them into DefaultCyrusDir
// (IMAPTEST_CYRUS_DIR points elsewhere); without them StartCyrus fails and says how to
// get them. Cyrus logs through syslog only: a failed test shows the master's output.
//
// StartCourier starts Courier-IMAP 5.0's imapd (Debian's courier-imap, unpacked
// into DefaultCourierDir by `make test-deps`, IMAPTEST_COURIER_DIR elsewhere) behind a
// small login front end of the harness (implicit TLS on loopback, LOGIN checked
// against AddUser's passwords; Courier's own login needs authdaemond at a fixed
// system path). After LOGIN every command is Courier's own imapd, one process per
// session, on the user's Maildir++ ("." separator, "INBOX." prefix, Sent, Drafts and
// Trash without SPECIAL-USE). Its capabilities are CourierCapability: no LITERAL+,
// MULTIAPPEND, SPECIAL-USE or CONDSTORE.
//
// To share one server between the tests of a package, start it in TestMain:
//
//	var dc *imaptest.Dovecot
//
//	func TestMain(m *testing.M) {
//		var err error
//		dc, err = imaptest.Start(imaptest.FlavourSlash)
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		dc.Close()
//		os.Exit(code)
//	}
//
// and give each test its own user with dc.AddUser(t).
//
// # Provider profiles
//
// Dovecot.ProfileProxy puts an IMAP-aware proxy on 127.0.0.1 in front of a Dovecot
// (TLS to the client with the Dovecot's certificate, TLS to Dovecot), behaving as a
// Profile says: a connection cap answered with `* BYE [UNAVAILABLE] Too many
// simultaneous connections`, capabilities removed from the greeting and CAPABILITY
// answers (and the special-use attributes from LIST when SPECIAL-USE goes), each
// response written in 2 or 3 pieces (a literal's `{n}` cut in its middle), every
// K-th APPEND or FETCH answered with a throttling refusal instead of being forwarded
// (its literals swallowed), a session cut with `* BYE [UNAVAILABLE] Server
// Unavailable. 15` after K commands, RFC822.SIZE reported bigger than the message
// (Exchange), password logins refused with `NO LOGIN failed.` while XOAUTH2 goes
// through (Exchange Online without basic authentication). For Gmail: capabilities
// added (X-GM-EXT-1, announced only), LIST answers given the special-use attributes of
// the folders a Profile names (Gmail's, in English, German or French: GmailFoldersEN,
// ...) and no others, folders hidden from LIST, and every session cut, without limit,
// once it carried N bytes or N commands, at the next boundary between responses or
// commands even mid-command, with a BYE or a plain close. Literals pass through
// untouched. ProfileGmail, ProfileM365, ProfileYahoo and ProfileOldServer are the
// providers' reported traits; Stats counts the peak of connections, refusals,
// throttles, BYEs, cuts, misreported sizes and refused password logins. A connection
// over the cap waits up to a second for another to end before it is refused: a
// client that closes one and dials the next at once is not over the cap. A test
// hook, BeforeBody, holds the stream before the n-th whole message (BODY[]) while the
// test changes the mailbox through another connection: a change at a known point
// of a copy's body pass.
//
// # Content and checks
//
// The one mailbox generator is here: a Plan says which folders and messages a mailbox
// has (folder, flags, internal date, size class, duplicates) and renders each
// message's bytes on demand. Generate plans the tests' mailbox (GeneratePlan) and
// renders it in memory; PlanSized plans the benchmark's (copybench), of a given count
// and total size, written to disk one message at a time. Load fills an account with a
// Mailbox; AppendRaw appends one message. Scan (and ScanFunc) is the one
// FETCH-and-hash loop: it reads a folder's messages with their UID, flags, internal date, size
// and SHA-256, and Check, ReadFolder and copybench's loader and explainer all read
// with it. Check compares a source and a destination account (every source message
// exactly once in its mapped folder, byte-identical, with its flags and INTERNALDATE;
// folders created), independently of the code under test. TakeSnapshot and
// Snapshot.Unchanged prove that a source was not modified. All IMAP access here uses
// go-imap's imapclient directly (see Dial), never the packages being tested.
package imaptest
