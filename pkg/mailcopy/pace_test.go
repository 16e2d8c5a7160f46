package mailcopy

import (
	"testing"
	"time"
)

func TestBodyPace(t *testing.T) {
	p := bodyPace{min: 2_000, grace: 2 * time.Minute}
	for _, tt := range []struct {
		name   string
		p      bodyPace
		n      int64
		waited time.Duration
		want   bool
	}{
		{"nothing yet, within the grace", p, 0, 2 * time.Minute, true},
		{"nothing after the grace", p, 0, 2*time.Minute + time.Millisecond, false},
		{"one byte per idle period", p, 2, 10 * time.Minute, false},
		{"exactly the minimum after the grace", p, 20_000, 2*time.Minute + 10*time.Second, true},
		{"just under the minimum", p, 19_999, 2*time.Minute + 10*time.Second, false},
		{"a fast start pays for a pause", p, 1_000_000, 10 * time.Minute, true},
		{"a huge body does not overflow", bodyPace{min: 1, grace: time.Second}, 1 << 40, time.Hour, true},
		{"no minimum", bodyPace{}, 0, 1000 * time.Hour, true},
	} {
		if got := tt.p.allows(tt.n, tt.waited); got != tt.want {
			t.Errorf("%s: %+v.allows(%d, %v) = %v, want %v", tt.name, tt.p, tt.n, tt.waited, got, tt.want)
		}
	}
}

func TestSlowBodyError(t *testing.T) {
	err := &slowBodyError{uid: 7, got: 3_100, want: 30_754, waited: 2*time.Minute + 1500*time.Millisecond, min: 2_000}
	const want = "source message UID 7: 3,100 of 30,754 bytes in 2m1.5s (25 B/s), under the minimum of 2.0 kB/s"
	if got := err.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
