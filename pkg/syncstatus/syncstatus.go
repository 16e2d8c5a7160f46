// Package syncstatus owns what the api and the copiers share about a sync, keyed by
// the normalized source address: the "one sync per source" lock, the status the
// customer reads (state, progress, failed messages), and the cancel request.
//
// Two implementations pass the same contract tests (package storetest): Redis (the
// production store, go-redis v9 against Redis 7.0) and JetStream key-value buckets
// (standalone mode). Both guarantee:
//
//   - Lock: at most one holder per source address at a time, for a TTL the holder
//     refreshes. Acquire returns a random token; Refresh and Release act only for the
//     token that holds the lock (ErrNotHolder otherwise); a second Acquire gets
//     ErrLocked. Reclaim takes the lock for one delivery of a task (its holder token,
//     DeliveryToken) when it is free, held with the task's token (queued), or
//     already held by that delivery; while another delivery of the same task holds
//     it, ErrHeld: two deliveries of one task never hold the lock at once. HandBack
//     returns a delivery's lock to the task's token (the task is queued again).
//     A lease can still have two holders after a long pause or a failover;
//     correctness comes from idempotent copying and from fencing, below.
//   - Fencing: every status write (Put, Update, including terminal ones) is refused
//     with ErrNotHolder unless the writer's token holds the lock. Update is a
//     read-modify-write retried on conflict, so concurrent writers lose nothing.
//     Redis checks the token and writes in one Lua script; JetStream KV reads the
//     lock, then writes the status with compare-and-set on its revision (a writer
//     whose lock expires between the two steps can land one last write).
//   - Retention: a status without an end never expires; a status in a terminal state
//     is kept for the configured retention (30 days by default) after its last write.
//   - Watch delivers the current status, then the status after changes, and ends after
//     a terminal state. Redis may coalesce changes that come faster than the reader
//     reads (each wake-up reads the latest status); it never skips the terminal one.
//   - Privacy: keys and subjects never hold a raw address (KeyOf encodes it), and the
//     status holds no secret by design. The store stamps updated_at on every write.
//   - List: every status not expired, newest first (created_at, then key), a page at
//     a time; a page token is a position, so a sync started between two pages does
//     not shift the following ones. Totals count by state.
//   - Rate limits: TakeToken keeps one token bucket per key in the store, so that
//     every api replica draws on one budget; the key expires once the bucket is full.
//   - Cancel: RequestCancel records a cancel request for one task id; the copier polls
//     CancelRequested, a single small read, at each step. A request for an old task
//     never cancels a newer one.
package syncstatus

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"iter"
	"strconv"
	"strings"
	"time"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// DefaultRetention is how long a finished status is kept.
const DefaultRetention = 30 * 24 * time.Hour

var (
	// ErrLocked: another sync task holds the lock of this source address.
	ErrLocked = errors.New("a sync task for this account already exists")
	// ErrNotHolder: the token does not hold the lock (it expired, was released, or
	// another task holds it).
	ErrNotHolder = errors.New("the sync lock is not held by this task")
	// ErrHeld: another delivery of the same task holds the lock (Reclaim).
	ErrHeld = errors.New("another delivery of this sync task holds the lock")
	// ErrNotFound: there is no status for this source address.
	ErrNotFound = errors.New("no sync for this account")
)

// Store is the status and lock store. Every source argument is an address as the
// customer typed it; the store normalizes it (Normalize).
type Store interface {
	// Acquire takes the lock of source for ttl and returns the holder's token.
	Acquire(ctx context.Context, source string, ttl time.Duration) (token string, err error)
	// Reclaim takes the lock of source with holder, DeliveryToken(token, n), when it
	// is free, held with the task's token, or already held with holder (then it is
	// refreshed); ErrHeld when another delivery of the task holds it, ErrLocked when
	// another task does.
	Reclaim(ctx context.Context, source, token, holder string, ttl time.Duration) error
	// HandBack gives the lock held with holder back to the task's token, for ttl
	// from now: the task is queued again and its next delivery reclaims it.
	HandBack(ctx context.Context, source, holder, token string, ttl time.Duration) error
	// Refresh extends the lock held with token to ttl from now.
	Refresh(ctx context.Context, source, token string, ttl time.Duration) error
	// Release frees the lock held with token.
	Release(ctx context.Context, source, token string) error
	// HeldBy reports whether the lock of source is held by the task whose token is
	// token: with the token itself (queued) or by one of its deliveries.
	HeldBy(ctx context.Context, source, token string) (bool, error)
	// Locked reports whether the lock of source is held.
	Locked(ctx context.Context, source string) (bool, error)

	// Put writes st as the status of source, replacing any earlier one (the first
	// status of a new task).
	Put(ctx context.Context, source, token string, st *imapcopyv1.SyncStatus) error
	// Update applies fn to the current status and writes the result; an error from fn
	// aborts the update and is returned as is. fn may run more than once.
	Update(ctx context.Context, source, token string, fn func(*imapcopyv1.SyncStatus) error) (*imapcopyv1.SyncStatus, error)
	// Get returns the status of source or ErrNotFound.
	Get(ctx context.Context, source string) (*imapcopyv1.SyncStatus, error)
	// Watch yields the current status, then the status after changes, and stops after
	// a terminal state. It yields ErrNotFound when there is no status (or it goes
	// away), ctx.Err() when ctx ends, or a store error; each error ends it.
	Watch(ctx context.Context, source string) iter.Seq2[*imapcopyv1.SyncStatus, error]

	// List returns a page of the syncs q selects, newest first, with the totals by
	// state of those matching every filter but the states. Redis reads an index
	// written with each status; JetStream KV reads the statuses. ErrBadPageToken
	// when q.PageToken was not made by List.
	List(ctx context.Context, q ListQuery) (*ListPage, error)

	// TakeToken takes one request of key's rate limit at now: every store user (every
	// api replica) shares the budget of a key. It answers 0 when allowed, else how
	// long until the next request is (nothing is taken then). Every is the time one
	// request earns, burst the requests allowed at once.
	TakeToken(ctx context.Context, key string, now time.Time, every time.Duration, burst int) (time.Duration, error)

	// RequestCancel records that the task taskID of source should stop.
	RequestCancel(ctx context.Context, source, taskID string) error
	// CancelRequested reports whether RequestCancel was called for taskID.
	CancelRequested(ctx context.Context, source, taskID string) (bool, error)
}

// Normalize is the form of an address that keys the lock and the status: trimmed and
// lowercased.
func Normalize(addr string) string { return strings.ToLower(strings.TrimSpace(addr)) }

// KeyOf encodes a normalized address for keys and subjects: unpadded base64url, which
// holds only [-_A-Za-z0-9] (valid in NATS subjects and KV keys, free of '.' and
// wildcards), and is one-to-one, so distinct addresses never share a key.
func KeyOf(addr string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(Normalize(addr)))
}

// Terminal reports whether a sync in state s has ended.
func Terminal(s imapcopyv1.SyncState) bool {
	switch s {
	case imapcopyv1.SyncState_SYNC_STATE_COMPLETED,
		imapcopyv1.SyncState_SYNC_STATE_COMPLETED_WITH_ERRORS,
		imapcopyv1.SyncState_SYNC_STATE_FAILED,
		imapcopyv1.SyncState_SYNC_STATE_CANCELLED:
		return true
	}
	return false
}

// maxUpdateAttempts bounds the compare-and-set retries of one Update.
const maxUpdateAttempts = 100

var errEmptySource = errors.New("empty source address")

func keyFor(source string) (string, error) {
	if Normalize(source) == "" {
		return "", errEmptySource
	}
	return KeyOf(source), nil
}

// DeliveryToken is a fresh holder token for delivery n of the task whose token is
// token (Reclaim): the task's token, the delivery count and a random part (delivery
// counts start again with a new consumer). The lock's value then names the
// delivery, so that two deliveries of one task exclude each other and a status write
// from an older delivery is refused.
func DeliveryToken(token string, n uint64) string {
	return token + deliverySep + strconv.FormatUint(n, 10) + "." + newToken()[:8]
}

const deliverySep = "#"

// claim says how a lock whose value is v stands for a Reclaim by holder of the task
// whose token is token: nil (take it), ErrHeld or ErrLocked.
func claim(v, token, holder string) error {
	switch {
	case v == "" || v == token || v == holder:
		return nil
	case strings.HasPrefix(v, token+deliverySep):
		return ErrHeld
	}
	return ErrLocked
}

// ofTask says whether a lock whose value is v is held by the task whose token is
// token, or one of its deliveries.
func ofTask(v, token string) bool {
	return token != "" && (v == token || strings.HasPrefix(v, token+deliverySep))
}

// checkHolder refuses a holder token that is not one of token's deliveries.
func checkHolder(token, holder string) error {
	if token == "" || !strings.HasPrefix(holder, token+deliverySep) || strings.Contains(token, deliverySep) {
		return ErrNotHolder
	}
	return nil
}

func newToken() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}

func orNow(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

func orRetention(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultRetention
	}
	return d
}
