package syncapi_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/proxytest"
	"imapcopy.dev/pkg/redistest"
	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// TestStartSyncRedisDown: with Redis down, StartSync fails closed: UNAVAILABLE, and
// neither IMAP server sees a connection (counted by proxies in front of them), so no
// password is tried for a sync that could not be recorded. Once Redis is back, the
// same start goes through (no lock was left behind).
func TestStartSyncRedisDown(t *testing.T) {
	rs := redistest.Start(t)
	e := newEnv(t, "redis",
		withOptions(func(o *syncapi.Options) { o.StoreTimeout = 2 * time.Second }),
		withDeps(func(d *syncapi.Deps) {
			d.Store = syncstatus.NewRedis(rs.Client(t), syncstatus.RedisOptions{Prefix: "down:"})
		}))
	src, dst := newUser(t), newUser(t)
	sp := proxytest.New(t, dovecot.TLSAddr)
	dp := proxytest.New(t, dovecot.TLSAddr)
	sa, da := src.proto(), dst.proto()
	sa.Host, sa.Port = sp.Host(), uint32(sp.Port())
	da.Host, da.Port = dp.Host(), uint32(dp.Port())
	req := &imapcopyv1.StartSyncRequest{Source: sa, Destination: da}

	rs.Stop()
	_, err := e.client.StartSync(e.ctx(), req)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("StartSync with Redis down = %v, want Unavailable", err)
	}
	if n := sp.Stats().Accepted + dp.Stats().Accepted; n != 0 {
		t.Errorf("StartSync with Redis down opened %d IMAP connections, want 0", n)
	}
	if _, err := e.client.GetSyncStatus(e.ctx(), &imapcopyv1.GetSyncStatusRequest{SourceEmail: src.email}); status.Code(err) != codes.Unavailable {
		t.Errorf("GetSyncStatus with Redis down = %v, want Unavailable", err)
	}

	rs.Restart(t)
	waitFor(t, "a start after Redis is back", func() error {
		_, err := e.client.StartSync(e.ctx(), req)
		return err
	})
	if sp.Stats().Accepted == 0 || dp.Stats().Accepted == 0 {
		t.Errorf("the start after Redis came back tested no account (source %d, destination %d connections)", sp.Stats().Accepted, dp.Stats().Accepted)
	}
}
