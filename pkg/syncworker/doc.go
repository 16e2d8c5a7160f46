// Package syncworker is the copier's queue worker: it pulls sync tasks from the
// JetStream work queue, one per free slot, runs the copy engine (pkg/mailcopy) on
// each, keeps the customer's status current, and turns every way a task can end into
// exactly one action on the status, the lock and the queue message.
//
// # One task, step by step
//
//  1. Decode the task (a proto imapcopy.v1.SyncTask) and check it.
//  2. Take the per-source lock for this delivery (Store.Reclaim), waiting while an
//     earlier delivery of the task holds it (see below).
//  3. Read the status: a status of another task means this one was superseded; a
//     terminal status of this task means it already ended (only its ack was lost).
//  4. Honour a cancel requested while the task was queued.
//  5. Open the sealed credentials (taskseal, the whole task as associated data).
//  6. Record RUNNING with the attempt number, run the engine, and meanwhile, from one
//     heartbeat goroutine per task: write progress at most once per
//     Config.ProgressInterval, poll the cancel flag every Config.CancelPoll, refresh
//     the lock every Config.LockRefresh; and from another: InProgress on the queue
//     message every Config.KeepAlive, well inside the consumer's AckWait.
//  7. Classify the outcome (decide, in outcome.go: the only place that does) and
//     apply its action: write the final status (fenced by the lock token), release
//     or keep the lock, then Ack, Nak with a delay, Term, or leave the message alone.
//
// # Outcomes and actions
//
//	success                      COMPLETED or COMPLETED_WITH_ERRORS, release, Ack
//	permanent (login refused,    FAILED with the reason, release, TermWithReason
//	  over quota, unusable
//	  server, invalid task,
//	  undecryptable secrets)
//	temporary (network, server,  QUEUED with retry_reason and attempt, lock kept
//	  store, unknown key id,       for the wait, NakWithDelay(backoff)
//	  anything unclassified)
//	temporary, last delivery     FAILED ("gave up after N attempts: ..."), release, Term
//	cancel requested             CANCELLED, release, Ack
//	shutdown (SIGTERM)           QUEUED "resumes shortly", lock kept, Nak with a
//	                             few seconds' delay (handBackDelay, 5 s)
//	                             (on the last delivery: FAILED, release, Term)
//	superseded (another task     no status write, Term
//	  owns the source's lock)
//	stale delivery (a later      no status write, no ack: the later delivery owns
//	  delivery of this task runs)  the message
//	already ended                release if held, Ack
//
// A status write refused because the lock token no longer holds the lock
// (syncstatus.ErrNotHolder), or because the status names another task or a later
// attempt, stops the work on that task at once: another copier owns it.
//
// # The lock across redeliveries
//
// The api takes the per-source lock with a random token, puts the token in the task,
// and keeps the lock for as long as a task may wait in the queue (its QueuedLockTTL,
// 24 h). The lock's only job is to refuse a second StartSync for a source while one
// is queued or running; it is not what makes copying safe (see below).
//
// A copier that takes the task does not acquire a lock of its own: it reclaims the
// api's lock for its delivery (Store.Reclaim with syncstatus.DeliveryToken: the
// task's token, the delivery count and a random part, so the lock names the
// delivery that holds it) and shortens it to Config.LockTTL (the ack wait by
// default), which it refreshes every Config.LockRefresh (a sixth of it). So:
//
//   - two deliveries of one task never hold the lock at once. A delivery that finds
//     an earlier one holding it (a copier slow to send its keep-alives, whose
//     message was redelivered while it still copies) waits, sending keep-alives,
//     until that lock is released or expires, then holds it for handBackDelay before
//     it reads anything (the earlier copier may have sent an APPEND whole that the
//     server still commits). The earlier delivery's status writes are refused from
//     the moment the later one holds the lock, and its fence stops it when its own
//     lease runs out; a delivery that ends as stale hands the lock back to the task
//     if it still holds it, for the later delivery to take;
//   - a copier that dies stops refreshing; its lock expires within LockTTL, and the
//     message comes back after the consumer's AckWait. The next delivery reclaims the
//     lock once it has expired and resumes: the engine's delta sync copies only what
//     is missing, so nothing is lost or duplicated;
//   - if, in the gap between the lock's expiry and the redelivery, the customer
//     started a new sync, the new task holds the lock with its own token: the
//     redelivered task cannot reclaim it (or finds the status naming the newer task)
//     and is terminated as superseded — the newer task does the same work;
//   - a task handed back to the queue (retry, shutdown) gives its lock back to the
//     task's token (Store.HandBack) for Config.QueuedLockTTL, like a freshly queued
//     one, and its next delivery reclaims it;
//   - a lock whose key vanished under a running delivery (an operator's DEL, a
//     failover, a store restarted empty) is taken back at the delivery's next write
//     or refresh while its lease holds, and a vanished status is written afresh
//     from the task, with the caller that started the sync (SyncTask.caller, bound
//     into the sealed secrets like every other field), so that other callers still
//     get NOT_FOUND for it: the copy goes on. The status is written at least every
//     Config.LockRefresh, so that the api, which refuses a start while a RUNNING
//     status is fresh, does not start a second copy in the meantime;
//   - a store that stays out of reach past the lease and comes back empty: the
//     fence has stopped the copy, and the next delivery finds no status naming the
//     task. Like any task no status names, it is dropped without running (Term,
//     lock released): the customer is told there is no sync (GetSyncStatus:
//     NOT_FOUND, "start one") and a new start copies only what is missing. A task
//     is never run without its status, which is what says who may see it.
//
// Every status write also checks that the status still names this task and no later
// attempt (attempt = the message's delivery count).
//
// # Fencing
//
// Status writes are not enough: a copier paused past the ack wait (SIGSTOP, a long
// GC pause, a partition) and then resumed went on appending for about a second,
// while the redelivered task appended the same messages elsewhere (duplicates). So
// the engine appends only with a fresh proof of ownership (mailcopy.Config.Fence,
// checked before and during every message's body): the task's lease, the delivery's
// AckWait from the last keep-alive sent and the lock's LockTTL from the last refresh
// sent, each taken as over at three quarters of its length. Past it, the copy stops
// at once, the APPEND in flight cut mid-literal (nothing of it is stored), and the
// delivery is left to expire (no status write, no ack). What remains is the time
// between a check and the bytes it lets through (one read of a body, and what the
// write buffer holds): correctness there rests on the engine's idempotent delta sync
// (docs/design.md).
//
// # Delivery semantics
//
// At least once per task, exactly once per message copied: a task is acked only
// after its final status is written and its lock released, so a crash at any point
// redelivers it, and the redelivered run appends only what the destination lacks.
// Deliveries are bounded by the consumer's MaxDeliver (Config.MaxDeliver); the last
// one never hands the task back, it ends it (FAILED), so no task is left stranded.
//
// # Shutdown
//
// When Run's context ends the worker stops pulling, cancels the running copies (the
// engine stops at once and a rerun resumes where it stopped), hands each task back
// for redelivery in a few seconds (a Nak with handBackDelay: the destination server
// may still commit an APPEND the cut connection sent whole, and the next copier must
// not read the destination before that; see mailcopy's "Delivery semantics"), and
// returns within Config.ShutdownTimeout, abandoning the tasks that have not finished
// handing back (their messages come back after AckWait).
package syncworker
