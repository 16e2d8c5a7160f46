package syncstatus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// RedisOptions configures the Redis store.
type RedisOptions struct {
	// Prefix starts every key; default "imapcopy:".
	Prefix string
	// Retention is how long a finished status is kept; default DefaultRetention.
	Retention time.Duration
	// Resync is how often a Watch re-reads the status even without a notification,
	// in case one was lost (pub/sub is at-most-once); default 15s.
	Resync time.Duration
	// Now stamps updated_at; default time.Now.
	Now func() time.Time
}

// Redis is the Store on Redis 7.0 or later. Per address, with k = KeyOf(address):
//
//	{prefix}{k}:lock     the lock token (SET NX PX)
//	{prefix}{k}:status   the status, binary protobuf (PX retention once terminal)
//	{prefix}{k}:cancel   the task id whose cancel was requested (PX retention)
//	{prefix}{k}:changed  the pub/sub channel notified after each status write
//	{prefix}index        a hash, k → the JSON of what List filters on (indexEntry),
//	                     written by the same script as the status
//
// The {k} hash tag keeps an address's keys in one slot. The index is one key outside
// those slots, written atomically with the status: the store runs on one Redis (a
// primary, possibly with replicas), not on Redis Cluster.
type Redis struct {
	c         redis.UniversalClient
	prefix    string
	retention time.Duration
	resync    time.Duration
	now       func() time.Time
	notes     *notifier
}

// NewRedis returns a Store on the Redis behind c. It does not own c.
func NewRedis(c redis.UniversalClient, opts RedisOptions) *Redis {
	r := &Redis{
		c:         c,
		prefix:    opts.Prefix,
		retention: orRetention(opts.Retention),
		resync:    opts.Resync,
		now:       orNow(opts.Now),
		notes:     &notifier{c: c},
	}
	if r.prefix == "" {
		r.prefix = "imapcopy:"
	}
	if r.resync <= 0 {
		r.resync = 15 * time.Second
	}
	return r
}

var _ Store = (*Redis)(nil)

type redisKeys struct{ lock, status, cancel, changed, field string }

func (r *Redis) index() string { return r.prefix + "index" }

func (r *Redis) keys(source string) (redisKeys, error) {
	k, err := keyFor(source)
	if err != nil {
		return redisKeys{}, err
	}
	base := r.prefix + "{" + k + "}:"
	return redisKeys{lock: base + "lock", status: base + "status", cancel: base + "cancel", changed: base + "changed", field: k}, nil
}

var (
	// KEYS: lock. ARGV: task token, holder, ttl ms. 1 = taken, 2 = held by another
	// delivery of the task, 0 = held by another task.
	reclaimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] or v == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '#' then
  return 2
end
return 0`)
	// KEYS: lock. ARGV: holder, task token, ttl ms. 1 = handed back, 0 = not the holder.
	handBackScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`)
	// KEYS: lock. ARGV: token, ttl ms. 1 = extended, 0 = not the holder.
	refreshScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)
	// KEYS: lock. ARGV: token. 1 = released, 0 = not the holder.
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)
	// The fenced status write. KEYS: lock, status, index. ARGV: token, mode ("put"
	// or "cas"), the old status (cas), the new status, expiry in ms (0: none),
	// channel, index field, index entry. -1 = not the holder, 0 = the status changed
	// since it was read (cas), 1 = written.
	writeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
if ARGV[2] == 'cas' and redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return 0
end
if ARGV[5] == '0' then
  redis.call('SET', KEYS[2], ARGV[4])
else
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
end
redis.call('HSET', KEYS[3], ARGV[7], ARGV[8])
redis.call('PUBLISH', ARGV[6], '1')
return 1`)
	// Removes an index entry that has not changed since it was read. KEYS: index.
	// ARGV: field, entry.
	pruneScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0`)
)

func ms(d time.Duration) int64 {
	if d < time.Millisecond {
		return 1
	}
	return d.Milliseconds()
}

// Acquire implements Store.
func (r *Redis) Acquire(ctx context.Context, source string, ttl time.Duration) (string, error) {
	k, err := r.keys(source)
	if err != nil {
		return "", fmt.Errorf("acquire lock: %w", err)
	}
	token := newToken()
	ok, err := r.c.SetNX(ctx, k.lock, token, time.Duration(ms(ttl))*time.Millisecond).Result()
	if err != nil {
		return "", fmt.Errorf("acquire lock: %w", err)
	}
	if !ok {
		return "", ErrLocked
	}
	return token, nil
}

// Reclaim implements Store.
func (r *Redis) Reclaim(ctx context.Context, source, token, holder string, ttl time.Duration) error {
	k, err := r.keys(source)
	if err != nil {
		return fmt.Errorf("reclaim lock: %w", err)
	}
	if err := checkHolder(token, holder); err != nil {
		return fmt.Errorf("reclaim lock: %w", err)
	}
	n, err := reclaimScript.Run(ctx, r.c, []string{k.lock}, token, holder, ms(ttl)).Int()
	if err != nil {
		return fmt.Errorf("reclaim lock: %w", err)
	}
	switch n {
	case 1:
		return nil
	case 2:
		return ErrHeld
	}
	return ErrLocked
}

// HandBack implements Store.
func (r *Redis) HandBack(ctx context.Context, source, holder, token string, ttl time.Duration) error {
	k, err := r.keys(source)
	if err != nil {
		return fmt.Errorf("hand back lock: %w", err)
	}
	if err := checkHolder(token, holder); err != nil {
		return fmt.Errorf("hand back lock: %w", err)
	}
	n, err := handBackScript.Run(ctx, r.c, []string{k.lock}, holder, token, ms(ttl)).Int()
	if err != nil {
		return fmt.Errorf("hand back lock: %w", err)
	}
	if n == 0 {
		return ErrNotHolder
	}
	return nil
}

// Refresh implements Store.
func (r *Redis) Refresh(ctx context.Context, source, token string, ttl time.Duration) error {
	k, err := r.keys(source)
	if err != nil {
		return fmt.Errorf("refresh lock: %w", err)
	}
	n, err := refreshScript.Run(ctx, r.c, []string{k.lock}, token, ms(ttl)).Int()
	if err != nil {
		return fmt.Errorf("refresh lock: %w", err)
	}
	if n == 0 {
		return ErrNotHolder
	}
	return nil
}

// Release implements Store.
func (r *Redis) Release(ctx context.Context, source, token string) error {
	k, err := r.keys(source)
	if err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	n, err := releaseScript.Run(ctx, r.c, []string{k.lock}, token).Int()
	if err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	if n == 0 {
		return ErrNotHolder
	}
	return nil
}

// write runs the fenced write; old is nil for a put.
func (r *Redis) write(ctx context.Context, k redisKeys, token string, old []byte, st *imapcopyv1.SyncStatus) (written bool, err error) {
	st.UpdatedAt = timestamppb.New(r.now())
	b, err := proto.Marshal(st)
	if err != nil {
		return false, err
	}
	var expire int64
	var expires time.Time
	if Terminal(st.GetState()) {
		expire = ms(r.retention)
		expires = st.GetUpdatedAt().AsTime().Add(time.Duration(expire) * time.Millisecond)
	}
	entry, err := json.Marshal(entryOf(k.field, st, expires))
	if err != nil {
		return false, err
	}
	mode := "put"
	if old != nil {
		mode = "cas"
	}
	n, err := writeScript.Run(ctx, r.c, []string{k.lock, k.status, r.index()},
		token, mode, old, b, strconv.FormatInt(expire, 10), k.changed, k.field, entry).Int()
	if err != nil {
		return false, err
	}
	switch n {
	case -1:
		return false, ErrNotHolder
	case 0:
		return false, nil
	}
	return true, nil
}

// Put implements Store.
func (r *Redis) Put(ctx context.Context, source, token string, st *imapcopyv1.SyncStatus) error {
	k, err := r.keys(source)
	if err != nil {
		return fmt.Errorf("put status: %w", err)
	}
	if st == nil {
		return errors.New("put status: nil status")
	}
	if _, err := r.write(ctx, k, token, nil, proto.Clone(st).(*imapcopyv1.SyncStatus)); err != nil {
		return fmt.Errorf("put status: %w", err)
	}
	return nil
}

// Update implements Store.
func (r *Redis) Update(ctx context.Context, source, token string, fn func(*imapcopyv1.SyncStatus) error) (*imapcopyv1.SyncStatus, error) {
	k, err := r.keys(source)
	if err != nil {
		return nil, fmt.Errorf("update status: %w", err)
	}
	for range maxUpdateAttempts {
		old, err := r.c.Get(ctx, k.status).Bytes()
		if errors.Is(err, redis.Nil) {
			// Say first whether the writer still holds the lock.
			holder, err := r.c.Get(ctx, k.lock).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("update status: %w", err)
			}
			if holder != token {
				return nil, ErrNotHolder
			}
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("update status: %w", err)
		}
		st := new(imapcopyv1.SyncStatus)
		if err := proto.Unmarshal(old, st); err != nil {
			return nil, fmt.Errorf("update status: decode: %w", err)
		}
		if err := fn(st); err != nil {
			return nil, err
		}
		written, err := r.write(ctx, k, token, old, st)
		if err != nil {
			if errors.Is(err, ErrNotHolder) {
				return nil, err
			}
			return nil, fmt.Errorf("update status: %w", err)
		}
		if written {
			return st, nil
		}
	}
	return nil, fmt.Errorf("update status: still conflicting after %d attempts", maxUpdateAttempts)
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, source string) (*imapcopyv1.SyncStatus, error) {
	k, err := r.keys(source)
	if err != nil {
		return nil, fmt.Errorf("get status: %w", err)
	}
	b, err := r.c.Get(ctx, k.status).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get status: %w", err)
	}
	st := new(imapcopyv1.SyncStatus)
	if err := proto.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("get status: decode: %w", err)
	}
	return st, nil
}

// Watch implements Store: it subscribes to the address's channel, then reads the
// status, and reads it again at each notification and every Resync. Every Watch of
// the store shares one pub/sub connection.
func (r *Redis) Watch(ctx context.Context, source string) iter.Seq2[*imapcopyv1.SyncStatus, error] {
	return func(yield func(*imapcopyv1.SyncStatus, error) bool) {
		k, err := r.keys(source)
		if err != nil {
			yield(nil, fmt.Errorf("watch status: %w", err))
			return
		}
		// listen returns once the subscription is in place, before the first read,
		// so that no change falls between the two.
		notes, stop, err := r.notes.listen(ctx, k.changed)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			yield(nil, fmt.Errorf("watch status: %w", err))
			return
		}
		defer stop()
		var last []byte
		// next reads the status and yields it when it changed; false ends the watch.
		next := func() bool {
			b, err := r.c.Get(ctx, k.status).Bytes()
			switch {
			case errors.Is(err, redis.Nil):
				yield(nil, ErrNotFound)
				return false
			case err != nil:
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				yield(nil, fmt.Errorf("watch status: %w", err))
				return false
			case bytes.Equal(b, last):
				return true
			}
			last = b
			st := new(imapcopyv1.SyncStatus)
			if err := proto.Unmarshal(b, st); err != nil {
				yield(nil, fmt.Errorf("watch status: decode: %w", err))
				return false
			}
			return yield(st, nil) && !Terminal(st.GetState())
		}
		if !next() {
			return
		}
		tick := time.NewTicker(r.resync)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				yield(nil, ctx.Err())
				return
			case <-notes:
			case <-tick.C:
			}
			if !next() {
				return
			}
		}
	}
}

// RequestCancel implements Store.
func (r *Redis) RequestCancel(ctx context.Context, source, taskID string) error {
	k, err := r.keys(source)
	if err != nil {
		return fmt.Errorf("request cancel: %w", err)
	}
	if err := r.c.Set(ctx, k.cancel, taskID, r.retention).Err(); err != nil {
		return fmt.Errorf("request cancel: %w", err)
	}
	return nil
}

// CancelRequested implements Store.
func (r *Redis) CancelRequested(ctx context.Context, source, taskID string) (bool, error) {
	k, err := r.keys(source)
	if err != nil {
		return false, fmt.Errorf("check cancel: %w", err)
	}
	v, err := r.c.Get(ctx, k.cancel).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check cancel: %w", err)
	}
	return v == taskID, nil
}

// List implements Store: it reads the index, selects the page, and reads the page's
// statuses. It removes the index entries of statuses that expired.
func (r *Redis) List(ctx context.Context, q ListQuery) (*ListPage, error) {
	raw, err := r.c.HGetAll(ctx, r.index()).Result()
	if err != nil {
		return nil, fmt.Errorf("list syncs: %w", err)
	}
	now := r.now()
	entries := make([]indexEntry, 0, len(raw))
	for field, v := range raw {
		var e indexEntry
		if err := json.Unmarshal([]byte(v), &e); err != nil {
			return nil, fmt.Errorf("list syncs: decode index entry: %w", err)
		}
		e.Key = field
		if e.Expires != 0 && e.Expires <= now.UnixMilli() {
			r.prune(ctx, field, v)
			continue
		}
		entries = append(entries, e)
	}
	page, next, totals, err := selectPage(entries, q, now)
	if err != nil {
		return nil, err
	}
	cmds, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range page {
			p.Get(ctx, r.prefix+"{"+e.Key+"}:status")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list syncs: %w", err)
	}
	out := &ListPage{NextPageToken: next, Totals: totals, Statuses: make([]*imapcopyv1.SyncStatus, 0, len(page))}
	for i, c := range cmds {
		b, err := c.(*redis.StringCmd).Bytes()
		if errors.Is(err, redis.Nil) {
			// Expired between the index read and now (its retention ended).
			r.prune(ctx, page[i].Key, raw[page[i].Key])
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list syncs: %w", err)
		}
		st := new(imapcopyv1.SyncStatus)
		if err := proto.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("list syncs: decode: %w", err)
		}
		out.Statuses = append(out.Statuses, st)
	}
	return out, nil
}

// prune removes the index entry field if it still is v; a failure only leaves the
// entry for the next List to remove.
func (r *Redis) prune(ctx context.Context, field, v string) {
	_ = pruneScript.Run(ctx, r.c, []string{r.index()}, field, v).Err()
}

// KEYS: the bucket. ARGV: now ms, every ms, burst. Returns the wait in ms (0: taken).
// The same arithmetic as gcra.
var takeTokenScript = redis.NewScript(`
local now, t, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow = tat - t * (burst - 1)
if now < allow then return allow - now end
tat = tat + t
redis.call('SET', KEYS[1], tat, 'PX', tat - now + 1)
return 0`)

// TakeToken implements Store.
func (r *Redis) TakeToken(ctx context.Context, key string, now time.Time, every time.Duration, burst int) (time.Duration, error) {
	wait, err := takeTokenScript.Run(ctx, r.c, []string{r.prefix + "rate:" + rateKey(key)},
		now.UnixMilli(), every.Milliseconds(), max(burst, 1)).Int64()
	if err != nil {
		return 0, fmt.Errorf("rate limit: %w", err)
	}
	return time.Duration(wait) * time.Millisecond, nil
}

// HeldBy implements Store.
func (r *Redis) HeldBy(ctx context.Context, source, token string) (bool, error) {
	k, err := r.keys(source)
	if err != nil {
		return false, fmt.Errorf("check lock: %w", err)
	}
	v, err := r.c.Get(ctx, k.lock).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check lock: %w", err)
	}
	return ofTask(v, token), nil
}

// Locked implements Store.
func (r *Redis) Locked(ctx context.Context, source string) (bool, error) {
	k, err := r.keys(source)
	if err != nil {
		return false, fmt.Errorf("check lock: %w", err)
	}
	n, err := r.c.Exists(ctx, k.lock).Result()
	if err != nil {
		return false, fmt.Errorf("check lock: %w", err)
	}
	return n > 0, nil
}
