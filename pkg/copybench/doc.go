// Package copybench owns imapcopy's benchmark: a seeded, realistic mailbox (the same
// bytes for the same seed, every run: imaptest.PlanSized, the generator the tests'
// mailboxes come from too), loaded into a real Dovecot account by writing its Maildir
// directly, then copied alternately by `imapcopy-copier copy` (first copy and rerun)
// and by mbsync (Debian isync) into fresh destination accounts, on loopback and
// through latency proxies that emulate a WAN. Each run reports wall time, messages/s,
// MB/s, the child's peak RSS and CPU time, and the checker's verdict on the result
// (imaptest.Check): a fast wrong copy does not score.
//
// The benchmark's main is cmd/copybench; `make bench` runs it. Loading the source is
// setup and is not measured; it is verified message by message (bytes, flags,
// keywords, internal date) before any run.
package copybench
