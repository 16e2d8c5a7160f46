package mailcopy_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"imapcopy.dev/pkg/imaptest"
)

// TestReportDuration: the report appended at the end tells how long the copy
// took, not 0s. The clock moves a minute at every reading.
func TestReportDuration(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourSlash].AddUser(t)
	mustLoad(t, src, inbox(msg("one", "one@example.com", 500, baseDate)))
	cfg := testConfig(t, src, dst)
	var mu sync.Mutex
	clock := time.Now()
	cfg.Now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Minute)
		return clock
	}
	res := mustCopy(t, cfg)
	if !res.Report || res.Duration < time.Minute {
		t.Fatalf("report appended = %v, duration = %v; want a report and a duration of a minute or more", res.Report, res.Duration)
	}
	msgs, err := imaptest.ReadFolder(testContext(t), dst, "INBOX")
	if err != nil {
		t.Fatalf("read INBOX: %v", err)
	}
	var line string
	for _, m := range msgs {
		if !isReport("INBOX", m.Raw) {
			continue
		}
		for _, l := range strings.Split(string(m.Raw), "\r\n") {
			if strings.HasPrefix(l, "Duration:") {
				line = strings.Join(strings.Fields(l), " ")
			}
		}
	}
	if line == "" || line == "Duration: 0s" {
		t.Errorf("report duration line = %q, want a non-zero duration", line)
	}
}
