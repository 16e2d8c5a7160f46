package mailcopy_test

import (
	"sync"
	"testing"
	"time"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// TestSlowLinks: a source behind a 10 KB/s trickle, and a source 2 s away, are
// copied to the end with no false timeout; on the trickle the progress keeps
// moving (the copied counter grows in many steps, not in one at the end), and the
// checker passes on both.
func TestSlowLinks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opt   proxytest.Option
		count int
		steps int // distinct copied counts the progress must show before the end
	}{
		{"10 KB/s trickle", proxytest.WithDirBandwidth(proxytest.Downstream, 10_000), 24, 4},
		{"2 s latency", proxytest.WithDirLatency(proxytest.Downstream, 2*time.Second), 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := servers[imaptest.FlavourSlash].AddUser(t)
			dst := servers[imaptest.FlavourDot].AddUser(t)
			mb := imaptest.Generate(77, imaptest.Spec{Count: tc.count, Folders: -1, Sizes: []imaptest.SizeClass{{Weight: 1, Min: 2_000, Max: 5_000}}})
			mustLoad(t, src, mb)
			sp := proxytest.New(t, servers[imaptest.FlavourSlash].TLSAddr, tc.opt)

			cfg := testConfig(t, via(src, sp), dst)
			cfg.Connections = 1
			cfg.ProgressInterval = 100 * time.Millisecond
			var mu sync.Mutex
			seen := map[int]bool{}
			cfg.Progress = func(p mailcopy.Progress) {
				mu.Lock()
				defer mu.Unlock()
				if c := p.Totals.Copied; c > 0 && c < tc.count {
					seen[c] = true
				}
			}
			start := time.Now()
			res, err := mailcopy.Copy(testContext(t), cfg)
			if err != nil {
				t.Fatalf("Copy behind a %s: %v", tc.name, err)
			}
			t.Logf("%s: %d messages, %d bytes in %v; %d intermediate progress counts", tc.name, res.Totals.Copied, res.Totals.Bytes, time.Since(start).Round(time.Millisecond), len(seen))
			if res.Totals.Copied != tc.count || res.Totals.Failed != 0 {
				t.Errorf("copied %d, failed %d, want %d, 0", res.Totals.Copied, res.Totals.Failed, tc.count)
			}
			mu.Lock()
			steps := len(seen)
			mu.Unlock()
			if steps < tc.steps {
				t.Errorf("the progress showed %d intermediate copied counts, want at least %d: it did not move while the copy went on", steps, tc.steps)
			}
			mustCheck(t, src, dst, imaptest.CheckOptions{})
		})
	}
}
