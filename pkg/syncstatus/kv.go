package syncstatus

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// KVOptions configures the JetStream key-value store.
type KVOptions struct {
	// LockBucket and StatusBucket name the buckets; defaults "imapcopy-locks" and
	// "imapcopy-status".
	LockBucket, StatusBucket string
	// Replicas of each bucket; default 1.
	Replicas int
	// Storage of the buckets; default file.
	Storage jetstream.StorageType
	// Retention is how long a finished status is kept; default DefaultRetention.
	Retention time.Duration
	// Now stamps updated_at; default time.Now.
	Now func() time.Time
}

// KV is the Store on JetStream key-value buckets (NATS server 2.11 or later, for
// per-key TTLs). Per address, with k = KeyOf(address):
//
//	lock bucket:    k          the lock token, with a per-key TTL
//	status bucket:  status.k   the status, binary protobuf (TTL retention once terminal)
//	                cancel.k   the task id whose cancel was requested (TTL retention)
//
// TTLs are whole seconds (JetStream's unit), rounded up.
type KV struct {
	js        jetstream.JetStream
	locks     jetstream.KeyValue
	statuses  jetstream.KeyValue
	lockRaw   jetstream.Stream // the buckets' streams, for reads that see markers
	statusRaw jetstream.Stream
	retention time.Duration
	now       func() time.Time
}

var _ Store = (*KV)(nil)

// markerTTL is how long a bucket keeps the marker of a key removed by its TTL or by a
// release, so that watchers see the removal.
const markerTTL = time.Minute

// NewKV creates (or updates) the buckets and returns a Store on them.
func NewKV(ctx context.Context, js jetstream.JetStream, opts KVOptions) (*KV, error) {
	if opts.LockBucket == "" {
		opts.LockBucket = "imapcopy-locks"
	}
	if opts.StatusBucket == "" {
		opts.StatusBucket = "imapcopy-status"
	}
	s := &KV{js: js, retention: orRetention(opts.Retention), now: orNow(opts.Now)}
	var err error
	bucket := func(name, desc string) (jetstream.KeyValue, jetstream.Stream, error) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:         name,
			Description:    desc,
			History:        1,
			Storage:        opts.Storage,
			Replicas:       opts.Replicas,
			LimitMarkerTTL: markerTTL,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("create bucket %s: %w", name, err)
		}
		st, err := js.Stream(ctx, "KV_"+name)
		if err != nil {
			return nil, nil, fmt.Errorf("open bucket %s: %w", name, err)
		}
		return kv, st, nil
	}
	if s.locks, s.lockRaw, err = bucket(opts.LockBucket, "imapcopy: one sync per source address"); err != nil {
		return nil, err
	}
	if s.statuses, s.statusRaw, err = bucket(opts.StatusBucket, "imapcopy: sync status per source address"); err != nil {
		return nil, err
	}
	return s, nil
}

// entry is the latest message of a key, markers included.
type entry struct {
	value []byte
	rev   uint64 // 0 when the subject holds nothing
	live  bool   // false for an absent key or a delete/purge/TTL marker
}

func (s *KV) last(ctx context.Context, raw jetstream.Stream, kv jetstream.KeyValue, key string) (entry, error) {
	m, err := raw.GetLastMsgForSubject(ctx, subject(kv, key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return entry{}, nil
	}
	if err != nil {
		return entry{}, err
	}
	e := entry{value: m.Data, rev: m.Sequence, live: true}
	if m.Header.Get("KV-Operation") != "" || m.Header.Get(jetstream.MarkerReasonHeader) != "" {
		e.live = false
	}
	return e, nil
}

func subject(kv jetstream.KeyValue, key string) string { return "$KV." + kv.Bucket() + "." + key }

var errConflict = errors.New("revision conflict")

// put writes value at key if the key's latest revision is still rev (0: the subject
// holds nothing), with a TTL when ttl > 0. errConflict when the revision moved.
func (s *KV) put(ctx context.Context, kv jetstream.KeyValue, key string, value []byte, rev uint64, ttl time.Duration) error {
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(wholeSeconds(ttl)))
	}
	_, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: subject(kv, key), Data: value}, opts...)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return errConflict
	}
	return err
}

// wholeSeconds rounds d up to whole seconds, at least one: a lock is never shorter
// than asked.
func wholeSeconds(d time.Duration) time.Duration {
	return max(time.Second, (d + time.Second - 1).Truncate(time.Second))
}

// takeLock writes token at the lock of key when it is free.
func (s *KV) takeLock(ctx context.Context, key, token string, ttl time.Duration) error {
	for range 5 {
		e, err := s.last(ctx, s.lockRaw, s.locks, key)
		if err != nil {
			return err
		}
		if e.live {
			return ErrLocked
		}
		err = s.put(ctx, s.locks, key, []byte(token), e.rev, ttl)
		if !errors.Is(err, errConflict) {
			return err
		}
		// Someone wrote in between (a rival, or the server's expiry marker): look again.
	}
	return ErrLocked
}

// Acquire implements Store.
func (s *KV) Acquire(ctx context.Context, source string, ttl time.Duration) (string, error) {
	key, err := keyFor(source)
	if err != nil {
		return "", fmt.Errorf("acquire lock: %w", err)
	}
	token := newToken()
	if err := s.takeLock(ctx, key, token, ttl); err != nil {
		if errors.Is(err, ErrLocked) {
			return "", err
		}
		return "", fmt.Errorf("acquire lock: %w", err)
	}
	return token, nil
}

// Reclaim implements Store.
func (s *KV) Reclaim(ctx context.Context, source, token, holder string, ttl time.Duration) error {
	key, err := keyFor(source)
	if err != nil {
		return fmt.Errorf("reclaim lock: %w", err)
	}
	if err := checkHolder(token, holder); err != nil {
		return fmt.Errorf("reclaim lock: %w", err)
	}
	for range 5 {
		e, err := s.last(ctx, s.lockRaw, s.locks, key)
		if err != nil {
			return fmt.Errorf("reclaim lock: %w", err)
		}
		v := ""
		if e.live {
			v = string(e.value)
		}
		if err := claim(v, token, holder); err != nil {
			return err
		}
		err = s.put(ctx, s.locks, key, []byte(holder), e.rev, ttl)
		if !errors.Is(err, errConflict) {
			if err != nil {
				return fmt.Errorf("reclaim lock: %w", err)
			}
			return nil
		}
		// Someone wrote in between (a rival, or the server's expiry marker): look again.
	}
	return ErrLocked
}

// HandBack implements Store.
func (s *KV) HandBack(ctx context.Context, source, holder, token string, ttl time.Duration) error {
	if err := checkHolder(token, holder); err != nil {
		return fmt.Errorf("hand back lock: %w", err)
	}
	return s.rewriteHeld(ctx, "hand back lock", source, holder, token, ttl)
}

// rewriteHeld writes value at the lock of source, for ttl, if holder holds it
// (ErrNotHolder otherwise); op names the operation in errors.
func (s *KV) rewriteHeld(ctx context.Context, op, source, holder, value string, ttl time.Duration) error {
	key, err := keyFor(source)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	rev, err := s.holder(ctx, key, holder)
	if errors.Is(err, ErrNotHolder) {
		return err
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	// A conflict means the lock changed hands (or expired) since the read.
	if err := s.put(ctx, s.locks, key, []byte(value), rev, ttl); err != nil {
		if errors.Is(err, errConflict) {
			return ErrNotHolder
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// holder returns the lock's latest revision if token holds it, else ErrNotHolder.
func (s *KV) holder(ctx context.Context, key, token string) (uint64, error) {
	e, err := s.last(ctx, s.lockRaw, s.locks, key)
	if err != nil {
		return 0, err
	}
	if !e.live || token == "" || string(e.value) != token {
		return 0, ErrNotHolder
	}
	return e.rev, nil
}

// Refresh implements Store.
func (s *KV) Refresh(ctx context.Context, source, token string, ttl time.Duration) error {
	return s.rewriteHeld(ctx, "refresh lock", source, token, token, ttl)
}

// Release implements Store.
func (s *KV) Release(ctx context.Context, source, token string) error {
	key, err := keyFor(source)
	if err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	rev, err := s.holder(ctx, key, token)
	if errors.Is(err, ErrNotHolder) {
		return err
	}
	if err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	// Purge leaves one marker, itself removed after markerTTL.
	err = s.locks.Purge(ctx, key, jetstream.LastRevision(rev), jetstream.PurgeTTL(markerTTL))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return ErrNotHolder
	}
	if err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	return nil
}

// write is the fenced status write: check the lock, then compare-and-set the status
// at revision rev. A writer whose lock expires between the two steps can land this
// one write (see the package documentation).
func (s *KV) write(ctx context.Context, key, token string, rev uint64, st *imapcopyv1.SyncStatus) error {
	if _, err := s.holder(ctx, key, token); err != nil {
		return err
	}
	st.UpdatedAt = timestamppb.New(s.now())
	b, err := proto.Marshal(st)
	if err != nil {
		return err
	}
	var ttl time.Duration
	if Terminal(st.GetState()) {
		ttl = s.retention
	}
	return s.put(ctx, s.statuses, "status."+key, b, rev, ttl)
}

// Put implements Store.
func (s *KV) Put(ctx context.Context, source, token string, st *imapcopyv1.SyncStatus) error {
	key, err := keyFor(source)
	if err != nil {
		return fmt.Errorf("put status: %w", err)
	}
	if st == nil {
		return errors.New("put status: nil status")
	}
	for range maxUpdateAttempts {
		e, err := s.last(ctx, s.statusRaw, s.statuses, "status."+key)
		if err != nil {
			return fmt.Errorf("put status: %w", err)
		}
		err = s.write(ctx, key, token, e.rev, proto.Clone(st).(*imapcopyv1.SyncStatus))
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrNotHolder):
			return err
		case !errors.Is(err, errConflict):
			return fmt.Errorf("put status: %w", err)
		}
	}
	return fmt.Errorf("put status: still conflicting after %d attempts", maxUpdateAttempts)
}

// Update implements Store.
func (s *KV) Update(ctx context.Context, source, token string, fn func(*imapcopyv1.SyncStatus) error) (*imapcopyv1.SyncStatus, error) {
	key, err := keyFor(source)
	if err != nil {
		return nil, fmt.Errorf("update status: %w", err)
	}
	for range maxUpdateAttempts {
		e, err := s.last(ctx, s.statusRaw, s.statuses, "status."+key)
		if err != nil {
			return nil, fmt.Errorf("update status: %w", err)
		}
		if !e.live {
			if _, err := s.holder(ctx, key, token); err != nil {
				if errors.Is(err, ErrNotHolder) {
					return nil, err
				}
				return nil, fmt.Errorf("update status: %w", err)
			}
			return nil, ErrNotFound
		}
		st := new(imapcopyv1.SyncStatus)
		if err := proto.Unmarshal(e.value, st); err != nil {
			return nil, fmt.Errorf("update status: decode: %w", err)
		}
		if err := fn(st); err != nil {
			return nil, err
		}
		err = s.write(ctx, key, token, e.rev, st)
		switch {
		case err == nil:
			return st, nil
		case errors.Is(err, ErrNotHolder):
			return nil, err
		case !errors.Is(err, errConflict):
			return nil, fmt.Errorf("update status: %w", err)
		}
	}
	return nil, fmt.Errorf("update status: still conflicting after %d attempts", maxUpdateAttempts)
}

// Get implements Store.
func (s *KV) Get(ctx context.Context, source string) (*imapcopyv1.SyncStatus, error) {
	key, err := keyFor(source)
	if err != nil {
		return nil, fmt.Errorf("get status: %w", err)
	}
	e, err := s.statuses.Get(ctx, "status."+key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get status: %w", err)
	}
	st := new(imapcopyv1.SyncStatus)
	if err := proto.Unmarshal(e.Value(), st); err != nil {
		return nil, fmt.Errorf("get status: decode: %w", err)
	}
	return st, nil
}

// Watch implements Store with a KeyValue watcher on the status key.
func (s *KV) Watch(ctx context.Context, source string) iter.Seq2[*imapcopyv1.SyncStatus, error] {
	return func(yield func(*imapcopyv1.SyncStatus, error) bool) {
		key, err := keyFor(source)
		if err != nil {
			yield(nil, fmt.Errorf("watch status: %w", err))
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w, err := s.statuses.Watch(ctx, "status."+key)
		if err != nil {
			yield(nil, fmt.Errorf("watch status: %w", err))
			return
		}
		defer w.Stop()
		seen := false
		for {
			var e jetstream.KeyValueEntry
			select {
			case <-ctx.Done():
				yield(nil, ctx.Err())
				return
			case ent, ok := <-w.Updates():
				if !ok {
					if ctx.Err() != nil {
						yield(nil, ctx.Err())
					} else {
						yield(nil, errors.New("watch status: watcher closed"))
					}
					return
				}
				e = ent
			}
			if e == nil { // the end of the initial values
				if !seen {
					yield(nil, ErrNotFound)
					return
				}
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				yield(nil, ErrNotFound)
				return
			}
			seen = true
			st := new(imapcopyv1.SyncStatus)
			if err := proto.Unmarshal(e.Value(), st); err != nil {
				yield(nil, fmt.Errorf("watch status: decode: %w", err))
				return
			}
			if !yield(st, nil) || Terminal(st.GetState()) {
				return
			}
		}
	}
}

// RequestCancel implements Store.
func (s *KV) RequestCancel(ctx context.Context, source, taskID string) error {
	key, err := keyFor(source)
	if err != nil {
		return fmt.Errorf("request cancel: %w", err)
	}
	_, err = s.js.PublishMsg(ctx, &nats.Msg{Subject: subject(s.statuses, "cancel."+key), Data: []byte(taskID)},
		jetstream.WithMsgTTL(wholeSeconds(s.retention)))
	if err != nil {
		return fmt.Errorf("request cancel: %w", err)
	}
	return nil
}

// CancelRequested implements Store.
func (s *KV) CancelRequested(ctx context.Context, source, taskID string) (bool, error) {
	key, err := keyFor(source)
	if err != nil {
		return false, fmt.Errorf("check cancel: %w", err)
	}
	e, err := s.statuses.Get(ctx, "cancel."+key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check cancel: %w", err)
	}
	return string(e.Value()) == taskID, nil
}

// List implements Store: it reads every status of the bucket (the standalone mode's
// scale: one machine's syncs) and selects the page from them.
func (s *KV) List(ctx context.Context, q ListQuery) (*ListPage, error) {
	w, err := s.statuses.WatchFiltered(ctx, []string{"status.>"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list syncs: %w", err)
	}
	defer w.Stop()
	byKey := make(map[string]*imapcopyv1.SyncStatus)
	var entries []indexEntry
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list syncs: %w", ctx.Err())
		case e = <-w.Updates():
		}
		if e == nil {
			break // every current value was delivered
		}
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		st := new(imapcopyv1.SyncStatus)
		if err := proto.Unmarshal(e.Value(), st); err != nil {
			return nil, fmt.Errorf("list syncs: decode: %w", err)
		}
		key := strings.TrimPrefix(e.Key(), "status.")
		var expires time.Time
		if Terminal(st.GetState()) {
			expires = st.GetUpdatedAt().AsTime().Add(wholeSeconds(s.retention))
		}
		byKey[key] = st
		entries = append(entries, entryOf(key, st, expires))
	}
	page, next, totals, err := selectPage(entries, q, s.now())
	if err != nil {
		return nil, err
	}
	out := &ListPage{NextPageToken: next, Totals: totals, Statuses: make([]*imapcopyv1.SyncStatus, 0, len(page))}
	for _, e := range page {
		out.Statuses = append(out.Statuses, byKey[e.Key])
	}
	return out, nil
}

// TakeToken implements Store with a compare-and-set of the bucket's TAT, kept under
// rate.<key> in the status bucket with a TTL until the bucket is full again.
func (s *KV) TakeToken(ctx context.Context, key string, now time.Time, every time.Duration, burst int) (time.Duration, error) {
	k := "rate." + rateKey(key)
	for range maxUpdateAttempts {
		e, err := s.last(ctx, s.statusRaw, s.statuses, k)
		if err != nil {
			return 0, fmt.Errorf("rate limit: %w", err)
		}
		var tat int64
		if e.live {
			tat, _ = strconv.ParseInt(string(e.value), 10, 64)
		}
		next, wait := gcra(tat, now.UnixMilli(), every, burst)
		if wait > 0 {
			return wait, nil
		}
		ttl := time.Duration(next-now.UnixMilli()) * time.Millisecond
		err = s.put(ctx, s.statuses, k, []byte(strconv.FormatInt(next, 10)), e.rev, ttl)
		switch {
		case err == nil:
			return 0, nil
		case !errors.Is(err, errConflict):
			return 0, fmt.Errorf("rate limit: %w", err)
		}
	}
	return 0, fmt.Errorf("rate limit: still conflicting after %d attempts", maxUpdateAttempts)
}

// HeldBy implements Store.
func (s *KV) HeldBy(ctx context.Context, source, token string) (bool, error) {
	e, err := s.lock(ctx, source)
	if err != nil {
		return false, err
	}
	return e.live && ofTask(string(e.value), token), nil
}

// lock reads the latest entry of source's lock.
func (s *KV) lock(ctx context.Context, source string) (entry, error) {
	key, err := keyFor(source)
	if err != nil {
		return entry{}, fmt.Errorf("check lock: %w", err)
	}
	e, err := s.last(ctx, s.lockRaw, s.locks, key)
	if err != nil {
		return entry{}, fmt.Errorf("check lock: %w", err)
	}
	return e, nil
}

// Locked implements Store.
func (s *KV) Locked(ctx context.Context, source string) (bool, error) {
	e, err := s.lock(ctx, source)
	if err != nil {
		return false, err
	}
	return e.live, nil
}
