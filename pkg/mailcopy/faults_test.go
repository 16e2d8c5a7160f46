package mailcopy_test

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// via returns acct reached through the proxy.
func via(acct imapconn.Account, p *proxytest.Proxy) imapconn.Account {
	acct.Host, acct.Port = p.Host(), p.Port()
	return acct
}

// copyWithCuts runs Copy while cutting the connections cuts times, alternately the
// source's (in the bodies it sends) and the destination's (in the APPENDs it gets),
// each after a random number of bytes up to maxBytes, the next armed once the
// previous one fired.
func copyWithCuts(t *testing.T, cfg mailcopy.Config, sp, dp *proxytest.Proxy, rng *rand.Rand, cuts int, maxBytes int64) (*mailcopy.Result, error) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := range cuts {
			p, dir := sp, proxytest.Downstream // source to us: bodies
			if n%2 == 1 {
				p, dir = dp, proxytest.Upstream // us to destination: APPENDs
			}
			before := p.Stats().Cuts
			p.CutAfter(dir, 1+rng.Int64N(maxBytes))
			for p.Stats().Cuts == before {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
	})
	res, err := mailcopy.Copy(testContext(t), cfg)
	close(stop)
	wg.Wait()
	return res, err
}

// TestFaults cuts the source and the destination connections at random byte
// offsets (in the middle of messages, most of the time) several times during
// one copy. The copy reconnects and completes, and the checker finds nothing
// lost, nothing duplicated, nothing corrupt; the source is unchanged.
//
// "chunks ahead" copies in chunks of 7 messages on 2 connections: each chunk's
// body FETCH is sent while the destination still answers the chunk before
// (fetchAhead), so most cuts fall with two chunks under way — one whose appends
// are unanswered, one whose bodies wait on the source connection.
func TestFaults(t *testing.T) {
	for _, pair := range []struct {
		name     string
		src, dst imaptest.Flavour
		seed     uint64
		chunk    int // messages per chunk, and 2 connections; 0: the defaults
	}{
		{"slash to dot", imaptest.FlavourSlash, imaptest.FlavourDot, 40, 0},
		{"dot to slash", imaptest.FlavourDot, imaptest.FlavourSlash, 41, 0},
		{"chunks ahead", imaptest.FlavourSlash, imaptest.FlavourDot, 47, 7},
	} {
		t.Run(pair.name, func(t *testing.T) {
			t.Parallel()
			src := servers[pair.src].AddUser(t)
			dst := servers[pair.dst].AddUser(t)
			mb := imaptest.Generate(int64(pair.seed), imaptest.Spec{Count: 200})
			mustLoad(t, src, mb)
			srcSnap := mustSnapshot(t, src)
			sp := proxytest.New(t, servers[pair.src].TLSAddr)
			dp := proxytest.New(t, servers[pair.dst].TLSAddr)

			cfg := testConfig(t, via(src, sp), via(dst, dp))
			cfg.MaxRetries = 10
			if pair.chunk > 0 {
				cfg.ChunkMessages, cfg.Connections = pair.chunk, 2
			}
			rng := rand.New(rand.NewPCG(pair.seed, 7))
			res, err := copyWithCuts(t, cfg, sp, dp, rng, 8, 300_000)
			cuts := sp.Stats().Cuts + dp.Stats().Cuts
			t.Logf("connections cut: %d (source %d, destination %d)", cuts, sp.Stats().Cuts, dp.Stats().Cuts)
			if err != nil {
				t.Fatalf("Copy: %v", err)
			}
			if cuts < 3 {
				t.Errorf("only %d cuts happened during the copy, want at least 3", cuts)
			}
			if !res.Complete() || res.Totals.Copied != mb.Count() {
				t.Errorf("totals = %+v, want %d copied", res.Totals, mb.Count())
			}
			mustCheck(t, src, dst, imaptest.CheckOptions{})
			if err := srcSnap.Unchanged(testContext(t), src); err != nil {
				t.Errorf("source changed: %v", err)
			}
		})
	}
}

// countingDialer records how many connections are open at once per address.
type countingDialer struct {
	d    net.Dialer
	mu   sync.Mutex
	open map[string]int
	max  map[string]int
	// busy counts, by address, the closed connections that wrote busyBytes or
	// more: those that appended messages, not only commands.
	busy map[string]int
}

const busyBytes = 64 << 10

func (c *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.open[addr]++
	c.max[addr] = max(c.max[addr], c.open[addr])
	c.mu.Unlock()
	cc := &countedConn{Conn: conn}
	cc.done = func() {
		c.mu.Lock()
		c.open[addr]--
		if cc.written.Load() >= busyBytes {
			if c.busy == nil {
				c.busy = map[string]int{}
			}
			c.busy[addr]++
		}
		c.mu.Unlock()
	}
	return cc, nil
}

type countedConn struct {
	net.Conn
	once    sync.Once
	done    func()
	written atomic.Int64
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

func (c *countedConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}

// TestConnectionCap: never more than Config.Connections connections per
// account, planning and report included.
func TestConnectionCap(t *testing.T) {
	t.Parallel()
	src := servers[imaptest.FlavourSlash].AddUser(t)
	dst := servers[imaptest.FlavourSlash].AddUser(t)
	dst = servers[imaptest.FlavourSlash].StartTLS(dst) // another port: the sides are told apart
	mb := imaptest.Generate(9, imaptest.Spec{Count: 120})
	mustLoad(t, src, mb)
	for _, n := range []int{1, 3} {
		dialer := &countingDialer{open: map[string]int{}, max: map[string]int{}}
		cfg := testConfig(t, src, dst)
		cfg.Connections = n
		cfg.Dial.Dialer = dialer
		mustCopy(t, cfg)
		for addr, m := range dialer.max {
			if m > n {
				t.Errorf("Connections %d: %d connections at once to %s", n, m, addr)
			}
		}
		t.Logf("Connections %d: at most %v at once", n, dialer.max)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}
