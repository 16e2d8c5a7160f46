// Package mailcopy is the copy engine: it copies every message of a source IMAP
// account into a destination account, folder by folder, and owns the message half
// of the invariants in docs/design.md (the folder half is pkg/foldermap's).
//
// # What a copy does
//
//  1. Plan: LIST both accounts (with SPECIAL-USE attributes and, with LIST-STATUS,
//     message counts) and NAMESPACE (prefix and delimiter), map the folders with
//     foldermap.Map, then create the destination folders the plan needs, parents
//     first, and subscribe them. Renames, collisions and skipped folders go into the
//     Result. The folders are created on the planning's destination connection
//     while the workers start: the planning's source connection is a worker's as
//     soon as the folders are mapped, and each worker sends its folder's EXAMINE
//     and metadata pass to the source at once. A worker waits for the creation
//     only before its first command on a folder being created (then it knows
//     whether the folder was created, existed, or was refused: a failed folder,
//     to which nothing is appended) and before it dials a destination connection
//     of its own (see engine.create). The workers' first connections are dialed
//     as soon as the planning's connection to their side logged in (a refused
//     password meets one connection), and wait at the server's greeting, TLS done,
//     until the plan says which of them are needed: those log in, the others close
//     without a login (see dialPool).
//  2. Copy folders in parallel: at most Config.Connections workers, each holding at
//     most one source and one destination connection at a time, so neither account
//     sees more than Config.Connections connections from a copy (while the folders
//     are created, the workers use only the destination connections dialed for them
//     within Connections-1, the planning's holding the last one; the report is
//     appended after they end). Folders are
//     scheduled biggest first; with SplitFolders, a worker with no folder left
//     helps append a large folder (see "Splitting a large folder").
//  3. Per folder, a metadata pass on both sides (UID FETCH 1:* of UID, FLAGS,
//     INTERNALDATE, RFC822.SIZE and BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO
//     SUBJECT)] only: other items risk answers go-imap cannot parse), a count-aware
//     diff, then a body pass for the missing messages only. A folder whose
//     destination is new or empty at its first attempt (not All Mail) has nothing
//     to diff against: its source pass leaves out the header fields, so the source
//     opens no message file before the bodies (worker.keyed; on a Dovecot source
//     whose cache lacks these fields, reading them took 0.86 s for 50,000
//     messages); if the folder to create turns out to exist with messages,
//     the folder is tried again with them (errKeysNeeded). When the body FETCH
//     of a folder's last chunk is sent, the worker takes its next folder and sends
//     that folder's metadata pass first, as the FETCH's prefix, the folder opened
//     again behind it (fetchBodies; an EXAMINE keeps two FETCHes' answers apart,
//     and its UIDVALIDITY is checked before the first body): the answer comes
//     before the bodies, and is read as the first body is. When the next
//     folder's destination is empty (just created, or LIST-STATUS said 0), its
//     diff needs the source alone, so the body FETCH of its first chunk is sent
//     at once (adoptPrefix; for a folder still being created, as soon as its
//     creation ended), and if that chunk is the folder's only one, with the
//     metadata pass of the folder after it as prefix: on a distant source each
//     folder's bodies follow the previous folder's without a round trip. (A
//     folder whose last FETCH went before a next folder was known gets the old
//     way: the metadata pass sent behind the last bodies once 8 MiB or less are
//     left, prefetchSoon, and read once the source sent them, prefetchNext.) A
//     worker's first folder, when its destination is new or empty, gets its
//     first chunk's body FETCH as soon as its metadata pass is read, while the
//     write connection may still be on its way. A folder is taken early only while no worker waits for one,
//     and while more folders are left than workers unless it is small (8 MiB
//     or less: the tail's small folders then go behind the previous ones
//     without round trips). The workers' first folders are taken before any
//     runs, and each worker takes the biggest left once its first source
//     connection is there: the planning's (logged in a round trip before the
//     pool's) gets the biggest folder. Likewise each chunk's body
//     FETCH is sent once the source sent the chunk before (fetchAhead), that
//     chunk's FETCH read to its end first (go-imap routes FETCH answers by UID,
//     and two pipelined FETCHes of the same UIDs deadlocked it on Dovecot, which
//     can run pipelined FETCHes together). A FETCH sent ahead that no append uses
//     is read and dropped (its prefix first) before anything else is read on
//     the connection. A refused batch's messages, fetched again by UID, reopen
//     their own folder first (openSource). On the destination, a chunk's answers are not awaited before the next
//     chunk goes: once a chunk is sent (imapappend.Send), the next one of the
//     folder, or the next folder's first one, is sent behind it, and only then
//     are the first one's answers read and settled (see sentChunk). A failure
//     leaves both unconfirmed, as one Append call's commands were: the next
//     metadata pass of each folder decides. A chunk sent ahead that its folder's
//     attempt does not take (its metadata pass found other messages, or an
//     attempt failed) is settled alone, and the folder's next pass reads the
//     destination.
//  4. The body pass fetches BODY.PEEK[] of the missing messages in chunks (2,000
//     messages, 128 MiB) and streams each chunk into one Append call of
//     pkg/imapappend, which sends MULTIAPPEND batches of small messages (2,000 messages,
//     8 MiB: a destination pays per transaction, see defaultBatchMessages) and every
//     message over 1 MiB alone, pipelined, with LITERAL+ (single
//     APPENDs where the destination lacks MULTIAPPEND). A message is never held in
//     memory: the appender reads each body from the source's FETCH response while it
//     writes it, and keeps nothing for a refused batch (imapappend.Config.NoResend: the
//     batch's messages are fetched again and appended one by one). A chunk and a
//     batch hold the messages' metadata only, never their bodies, so no memory grows
//     with the message sizes nor with the Batching and chunk limits; see "Memory".
//  5. At the end, a report (text/plain, UTF-8, quoted-printable, marked with the
//     ReportHeader field) is appended to the destination INBOX without \Seen.
//
// # Guarantees
//
// The source is never modified: folders are opened with EXAMINE, bodies fetched
// with BODY.PEEK; no STORE, EXPUNGE, APPEND, CREATE or any write is ever sent to it.
//
// A message is identified by its Message-ID and RFC822.SIZE; a message without a
// Message-ID by its Date, From, To and Subject fields, RFC822.SIZE and INTERNALDATE
// (see key). The identity is a multiset: a key present n times on the destination
// accounts for n of its occurrences in the source, so two identical source
// messages make two destination copies and a rerun of an unchanged mailbox appends
// nothing. Which n: those whose INTERNALDATE and flags are the destination copies'
// (then the date alone, then the flags alone), else the first ones (twinsPresent):
// after a failure that stored a later twin and not an earlier one (two ranges of a
// split folder), the one stored is found present and the other is appended with its
// own date and flags. The identity tolerates what destinations change on APPEND: raw 8-bit
// header bytes are read as 'X' on both sides (Cyrus stores them so), and a source
// message with no exact match matches a destination message 2 bytes longer (a CRLF
// added at the end, as Courier does); the exact matches of a folder are made first.
// Such messages found on the destination are listed in Result.Altered (and in the
// report) when the folder is diffed again: by the next run, or by a retry of the
// same run; the first run does not read back what it appended. Messages are appended byte for byte as the source sends them (no header
// is ever added), with their INTERNALDATE and their flags cleaned for APPEND
// (\Recent, \* and keywords that are not valid atoms dropped).
//
// # Delivery semantics
//
// At least once per attempt, exactly once per copy: every attempt on a folder
// begins with the metadata pass of both sides and appends only what the
// destination lacks. When a connection drops, the worker reconnects with
// exponential backoff (Config.RetryBackoff, doubled up to a minute; at most
// Config.MaxRetries attempts in a row without progress) and starts the folder's
// attempt again. Logins are bounded per copy too: after 3 x (MaxRetries+2) x
// Connections logins to one side with nothing copied, found present or done in
// between, the copy stops with a temporary error (loginGuard): a server that
// drops every session would otherwise get a login per folder and retry, which
// its provider takes for password guessing. So a batch whose answer was lost with the connection is seen on
// the destination if it was stored (a MULTIAPPEND is all or nothing, RFC 3502) and
// appended again if it was not. A server may commit an APPEND whose answer was
// lost: a command it received whole before the connection ended is still carried
// out, a few milliseconds later (Dovecot's session process outlives the client).
// So after losing a destination connection with appends unanswered
// (imapappend.ErrUnconfirmed, or a panic mid-append), the worker leaves that
// folder unread for Config.CommitSettle (2 s by default, counted from the loss,
// ended early by ctx) before its next metadata pass; read sooner, the folder
// could lack the batch and it would be appended twice. A caller that runs a new
// Copy right after one was cancelled must wait as long itself (pkg/syncworker
// hands a task back with that delay). A body is counted against the size announced to
// the destination; when the source fails mid-message, the destination connection
// is closed before anything else, so no truncated message can be stored. The same
// holds across runs: a Copy that stopped (crash, redelivery, cancellation) is
// resumed by running it again.
//
// # Splitting a large folder
//
// With Config.SplitFolders, a folder is diffed by one worker and its body pass
// is shared: when the missing messages make two chunks or more, the chunks (contiguous runs of the missing
// messages in UID order, 2,000 messages or 128 MiB at most) are offered as ranges to
// the workers with nothing else to do, which take them before any new folder. Each
// range is appended by one worker on its own connections: an EXAMINE of the source
// folder (its UIDVALIDITY must be the metadata pass's) and its own appender into the
// same destination folder. The folder's worker appends ranges too and waits for
// the others' before its attempt ends. When no worker is idle, the folder's worker
// appends every range itself, as for a small folder.
//
// Why only the body pass: the identity is a multiset over the whole folder (two
// identical messages may fall in different ranges), so the diff must see all of
// it, once; the metadata pass is one FETCH per side, a small part of the time of a
// folder of small messages, while the appends are round trips and server work per
// message that more connections share.
//
// Order: each range is appended in UID order by one connection, and ranges are
// handed out in UID order, but ranges on different connections interleave, so
// across ranges the destination UIDs do not follow the source's order (within a
// range they do). Every message keeps its INTERNALDATE and its flags; a client
// sorting by date, as clients do by default, shows the folder as on the source;
// a view "by order received" (UID order) shows runs of up to a chunk in source
// order. A folder with fewer missing messages than two chunks is appended by one
// connection in UID order, as mbsync and imapsync do.
//
// Failures: a range that fails (a connection lost, a throttling refusal, a full
// destination) makes the folder's attempt fail: no range starts after it, the
// ranges under way end, and the folder's worker retries as for any attempt — after
// CommitSettle when appends were left unanswered, a metadata pass of both sides
// and a count-aware diff of the whole folder, which sees whatever every range
// appended, so only what the destination still lacks (the failed range's rest and
// the ranges not started) is appended. Delivery stays exactly once per copy. Two
// identical messages may fall in different ranges, and a later one be stored while
// an earlier one is not: the diff finds the stored one by its INTERNALDATE and flags
// (see Guarantees), so the ranges need no identities to be cut, and a fresh
// folder's first metadata pass goes without them, split or not
// (TestSplitTwinRetry).
//
// What it buys depends on the destination. Where a connection is the limit (a
// per-connection bandwidth or command rate, as providers impose), the folder
// goes about as many times faster as connections help: 4,000 small messages
// through a 1 MB/s per-connection proxy, 29.6 s on one connection, 18.4 s split
// over four. A Dovecot Maildir destination serialises the appends into one
// folder on its locks (dovecot-uidlist.lock and the index): on loopback, 10,000
// small messages in one folder took 16.4–16.8 s on one connection and 19.3–21.6 s
// split over four (2 runs each, same process, shared machine). So the split is
// asked for (Config.SplitFolders); by default each folder is appended on one
// connection.
//
// # Gmail's archived mail
//
// Gmail keeps every message in "[Gmail]/All Mail" and shows each label as a
// folder; a message archived with no label left is only in All Mail. Unless
// IncludeGmailViews, foldermap maps All Mail (under the Gmail rules) as an
// ArchiveOnly folder onto the destination's archive folder, and the engine copies
// there exactly the All Mail messages whose identity occurs in no folder of
// foldermap's Plan.Elsewhere (every other selectable source folder but the views,
// whether the copy includes it or not: a message the user's patterns leave out is
// not archived). The identity is the count-aware key above, so two identical
// messages of which one has a label make one archived message, and the archive is
// diffed against what the destination folder holds like any folder: a rerun
// appends nothing. All Mail is scheduled last and first runs a metadata pass over
// the Elsewhere folders on its own source connection (keeping only their keys,
// about 50 bytes per message; after a dropped connection the next attempt goes on
// with the folders not scanned yet, each scanned one counting as progress, as
// Gmail cuts sessions and an account may have hundreds of labels); a folder the source refuses to open counts as
// empty, so its messages are archived rather than lost. Its FolderResult has
// ArchiveOnly set and counts the archived messages only; the report gives them a
// line of their own.
//
// # Failures
//
// A message the destination refuses for its keywords (Cyrus: "Too many user flags
// in mailbox", at 100 keywords per folder) is appended again without the keywords
// the folder does not have yet and listed in Result.Altered. When the destination
// drops the connection during an append batch, or the source during a chunk's
// FETCH, and the retry makes no progress, the next attempt appends its first chunk
// one message per command (Cyrus 3.6 drops a MULTIAPPEND that crosses its keyword
// limit; Gmail cuts long sessions, which then may not carry a whole chunk). A folder the destination
// refuses to create (Cyrus: "Invalid mailbox name" for "100% done") is a failed
// folder (FolderResult.Error) and the others are copied; a refused CREATE of a
// folder that LIST then shows counts as "already exists" (Courier: "Cannot create
// this folder.").
//
// A message the destination refuses (too big, APPENDLIMIT, over the space left,
// rejected) is recorded in Result.Failures with folder, source UID, size and
// reason, and the copy goes on; a refused MULTIAPPEND batch is narrowed down to the
// message at fault: its messages (none of which the server stored) are fetched again
// and appended one per APPEND. Messages over Config.MaxMessageSize are
// skipped and listed in Result.Skipped. A folder the server refuses to open is
// recorded in its FolderResult.Error. A panic during an append (in pkg/imapappend or
// the body stream) drops both connections like a dropped connection and the folder
// is tried again; a panic elsewhere in a worker ends the copy with an error. The copy stops with a permanent *Error
// (IsPermanent) when a login is refused, when a server cannot be used as
// configured (TLS, STARTTLS, not IMAP), or when the destination is full: three
// quota refusals in a row, or a quota refusal of a message of 64 KiB or less. The
// message refused then is not listed as failed (the account is full, not the
// message at fault): once there is space, a new Copy resumes and appends it.
//
// A source that stops in the middle of a body is cut by the idle deadline of
// pkg/imapconn (Dial.IdleTimeout: no byte for that long), which slides with every
// byte; one that trickles is cut by the minimum body rate: once a body literal
// has begun, the copy may wait for its n bytes received so far at most
// Config.BodyRateGrace + n/Config.MinBodyRate (2 minutes + n / 2,000 B/s by
// default), counting only the time spent waiting for the source's bytes inside the
// literal (not the source's time before it, nor the destination's: see bodyPace).
// The check runs as each read returns, so a body of S bytes holds a connection at
// most BodyRateGrace + S/MinBodyRate plus one idle period. Either way the
// connections are dropped (the destination first: nothing of the message is
// stored), the folder is tried again within its retry budget, and the copy ends
// with a temporary failure that names the source, the message's UID and, for a
// slow body, the bytes received, the time and the rates ("source message UID 7:
// 3,100 of 30,754 bytes in 2m1.5s (25 B/s), under the minimum of 2.0 kB/s"). A
// slow link may recover: the caller retries later.
//
// # Throttling
//
// A refusal that says the client goes too fast (imapconn.Throttled: Exchange's
// `NO [THROTTLED] ... Suggested Backoff Time: 2000 milliseconds`, Gmail's `NO
// [OVERQUOTA] Account exceeded command or bandwidth limits`, which is not a full
// account) refuses no message and stops nothing: the folder waits — the server's
// suggested time, else Config.ThrottleBackoff (30 s, the preset's when the caller
// passes it), doubled for each refusal in a row without progress — and resumes from
// its metadata pass. Progress.ThrottledUntil says until when. After
// Config.MaxThrottles refusals in a row without progress the copy stops with a
// temporary failure, for the caller to retry later.
//
// # Options
//
// Config.Since keeps the messages whose INTERNALDATE (from the metadata pass, not a
// server-side SEARCH: the comparison is exact, to the second) is not before it.
// Config.MaxMessageSize compares RFC822.SIZE. Config.DryRun lists, plans and runs
// both metadata passes, and reports what a copy would do (FolderResult.Created: would
// be created; Counts.Copied: would be copied); it creates and appends nothing.
//
// # Report
//
// Unless NoReport or DryRun, the report is appended when the copy ended, or when it
// stopped because the destination is full (saying so, if it still fits); not when a
// login was refused (nothing was done) nor when it stopped for a temporary reason (a
// later Copy resumes and reports). When the connection appending it is lost
// before the server answered, the report is looked for in the INBOX (by its
// Message-ID, after Config.CommitSettle) before it is sent again, so a copy
// appends it once.
//
// # Progress
//
// Config.Progress receives snapshots with per-folder counts about every
// Config.ProgressInterval while messages move, and whenever a folder ends.
//
// # Memory
//
// A copy's memory is bounded per connection, whatever the message sizes and the
// batch limits: each of the Config.Connections workers holds its connections'
// buffers (TLS records, go-imap's reader, the appender's 64 KiB write buffer and
// 32 KiB copy buffer: about 300 KiB) and the metadata of the one folder it compares,
// about 250 bytes a message for both sides (the source's and the destination's
// messages, the destination's identity counts), and, while a folder ends, the
// source metadata of the next one (and of the one after it when the next one is a
// single chunk, 2,000 messages at most). A chunk (2,000 messages, 128 MiB) and
// a MULTIAPPEND batch (2,000 messages, 8 MiB) hold metadata only. The budget is
// ConnectionMemory (8 MiB: the buffers and a folder of some 30,000 messages) per
// connection, plus ProcessMemory (16 MiB) per process: MemoryBudget(tasks,
// connections), 48 MiB for one copy at 4 connections. imapcopy-copier sets it as the
// Go memory limit (runtime/debug.SetMemoryLimit; --memory-limit,
// IMAPCOPY_COPIER_MEMORY_LIMIT), so the garbage collector keeps the heap under it
// instead of letting it grow to twice the live data. The limit is soft: a folder
// bigger than the budget allows keeps its metadata live while it is compared and
// the GC works harder. Measured (BenchmarkCopy, 5,000 messages, 308 MB, 4
// connections): a peak of 4 MiB of heap in use, 94 KB allocated per MB copied; the
// copier's peak RSS (make bench) is about 26 MB, the binary's code included.
// TestMemoryBigMessages and TestMemoryBigBatch check the bound of a connection.
//
// # Limits
//
// The metadata pass keeps about 250 bytes per message of the folder being copied
// (both sides together, see "Memory"). A server whose RFC822.SIZE differs from the length of BODY[] (seen on
// some Exchange versions) is handled: the size announced to the destination is
// corrected and the batch sent again, and within the copy such a message counts as
// copied once. Its identity on the other side then differs from the one its
// metadata gives; a rerun settles it with the bodies (see matchSizes): a missing
// message whose identity without the size is that of a destination message left
// unmatched is present when the two bodies are the same bytes. The cost of
// a rerun against such a server is reading those messages on both sides.
package mailcopy
