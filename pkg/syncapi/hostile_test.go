package syncapi_test

import (
	"strings"
	"testing"
	"time"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"

	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/syncapi"
)

// TestHostileServers: TestAccount and PlanSync against servers that try to make the api
// buffer without bound (issue 14, promise 7; an api once reached 10 GB on a 2 GB
// literal). Each call answers, its heap growth under 64 MiB, and says what went wrong
// without echoing the server. Not parallel: it measures the process's heap.
func TestHostileServers(t *testing.T) {
	const bound = 64 << 20
	e := newEnv(t, "redis", withOptions(func(o *syncapi.Options) { o.AllowPlaintext = true }))
	good := newUser(t)
	for _, tc := range []struct {
		name string
		list imaptest.Answer
	}{
		{"LIST with a 4 GB literal", imaptest.HugeLiteral(`* LIST () "/" `)},
		{"LIST with an endless line", imaptest.EndlessLine(`* LIST () "/" `)},
		{"LIST without end", imaptest.EndlessList},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := imaptest.StartHostile(t, map[string]imaptest.Answer{"LIST": tc.list})
			hostile := &imapcopyv1.Account{Provider: "other", Login: "victim@example.test", Password: "p",
				Host: h.Host, Port: uint32(h.Port), Security: imapcopyv1.Security_SECURITY_PLAINTEXT}
			var test *imapcopyv1.TestAccountResponse
			var testErr, planErr error
			var plan *imapcopyv1.PlanSyncResponse
			var took [2]time.Duration
			peak := imaptest.PeakHeapGrowth(func() {
				start := time.Now()
				test, testErr = e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: hostile})
				took[0] = time.Since(start)
				plan, planErr = e.client.PlanSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: hostile, Destination: good.proto()})
				took[1] = time.Since(start) - took[0]
			})
			t.Logf("peak heap growth %.1f MiB; TestAccount (%v): %v %v; PlanSync (%v): %v %v", float64(peak)/(1<<20), took[0], test, testErr, took[1], plan, planErr)
			if peak > bound {
				t.Errorf("peak heap growth %d bytes, want at most %d", peak, bound)
			}
			for what, s := range map[string]string{"TestAccount": test.String() + errString(testErr), "PlanSync": plan.String() + errString(planErr)} {
				if strings.Contains(s, "aaaaaaaa") || strings.Contains(s, "with a name of some length") {
					t.Errorf("%s echoes the server's data: %.300s", what, s)
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
