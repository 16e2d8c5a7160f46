package syncstatus

import (
	"encoding/base64"
	"time"
)

// The shared rate limit (Store.TakeToken) is GCRA, the token bucket kept as one
// number per key: the theoretical arrival time (TAT) of the next request. A request
// at now is allowed when now >= TAT - (burst-1)·every, and then moves TAT to
// max(TAT, now) + every. Keeping one number makes it one compare-and-set in both
// stores, shared by every api replica.

// gcra applies one request at now to tat (0: a fresh key). It returns the new TAT and
// 0 when allowed, or the old TAT and how long to wait.
func gcra(tat, now int64, every time.Duration, burst int) (newTAT int64, wait time.Duration) {
	t := every.Milliseconds()
	tau := t * int64(max(burst, 1)-1)
	if tat < now {
		tat = now
	}
	if allowAt := tat - tau; now < allowAt {
		return tat, time.Duration(allowAt-now) * time.Millisecond
	}
	return tat + t, 0
}

// rateKey encodes a rate-limit key for the stores (it may hold an address).
func rateKey(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }
