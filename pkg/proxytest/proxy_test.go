package proxytest

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server is a loopback TCP server running handle for each connection.
func server(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func echo(c net.Conn) { io.Copy(c, c) }

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestEcho(t *testing.T) {
	p := New(t, server(t, echo))
	c := dial(t, p.Addr())
	want := randomBytes(1 << 20)
	go func() {
		c.Write(want)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo returned %d bytes, want the %d sent", len(got), len(want))
	}
	c.Close()
	st := p.Stats()
	if st.Accepted != 1 || st.Upstream != int64(len(want)) || st.Downstream != int64(len(want)) {
		t.Errorf("Stats() = %+v, want 1 accepted and %d bytes each way", st, len(want))
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, target := range []string{"192.0.2.1:143", "example.com:993", "10.0.0.1:143", "[2001:db8::1]:143", "no-port"} {
		if p, err := Listen(target); err == nil {
			p.Close()
			t.Errorf("Listen(%q) succeeded, want an error", target)
		}
	}
	for _, target := range []string{"127.0.0.1:1", "[::1]:1", "localhost:1"} {
		p, err := Listen(target)
		if err != nil {
			t.Errorf("Listen(%q) = %v, want a proxy", target, err)
			continue
		}
		p.Close()
	}
}

func TestLatencyKeepsThroughput(t *testing.T) {
	const latency = 150 * time.Millisecond
	const writes = 20
	p := New(t, server(t, echo), WithLatency(latency))
	c := dial(t, p.Addr())

	start := time.Now()
	go func() {
		for i := 0; i < writes; i++ {
			c.Write([]byte("0123456789"))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	buf := make([]byte, 10*writes)
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	if _, err := io.ReadFull(c, buf[1:]); err != nil {
		t.Fatal(err)
	}
	all := time.Since(start)
	t.Logf("latency %v each way: first byte back after %v, all %d writes back after %v", latency, first, writes, all)
	// A round trip crosses the delay line twice: it cannot be quicker.
	if first < 2*latency {
		t.Errorf("first echo after %v, want at least %v", first, 2*latency)
	}
	// A delay line that served chunks one latency after another would need
	// writes*latency; a real one needs about 2*latency plus the writing time.
	if serial := writes * latency; all >= serial {
		t.Errorf("all echoes after %v, want well under %v: the delay line serialises", all, serial)
	}
}

// TestSetLatency: a latency set on a running proxy delays what is sent from then on,
// on a connection already open, and setting it back lets traffic through again.
func TestSetLatency(t *testing.T) {
	p := New(t, server(t, echo))
	c := dial(t, p.Addr())
	buf := make([]byte, 1)
	roundTrip := func() time.Duration {
		start := time.Now()
		c.Write([]byte("x"))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	roundTrip()
	const stall = 300 * time.Millisecond
	p.SetLatency(Upstream, stall)
	if took := roundTrip(); took < stall {
		t.Errorf("round trip after SetLatency(%v) took %v, want at least that", stall, took)
	}
	p.SetLatency(Upstream, 0)
	roundTrip() // no bound: it must only come back
}

func TestBandwidth(t *testing.T) {
	const bw = 64 << 10
	p := New(t, server(t, echo), WithDirBandwidth(Downstream, bw))
	c := dial(t, p.Addr())
	data := randomBytes(2 * bw)
	start := time.Now()
	go c.Write(data)
	if _, err := io.ReadFull(c, make([]byte, len(data))); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("%d bytes at %d B/s took %v", len(data), bw, took)
	// The limiter allows one chunk of burst; the rest cannot arrive quicker than this.
	if min := time.Duration(float64(len(data)-chunkSize) / bw * float64(time.Second)); took < min {
		t.Errorf("took %v, want at least %v", took, min)
	}
}

// TestMaxWrite: with WithDirMaxWrite, every piece forwarded in that direction is at
// most that long, under a bandwidth limit too, and the bytes arrive whole and in order.
func TestMaxWrite(t *testing.T) {
	const limit = 100
	data := randomBytes(5_000)
	var mu sync.Mutex
	var pieces, longest int
	p := New(t, server(t, func(c net.Conn) { c.Write(data) }),
		WithDirBandwidth(Downstream, 50_000), WithDirMaxWrite(Downstream, limit),
		WithObserver(Downstream, func(_ int64, b []byte) {
			mu.Lock()
			defer mu.Unlock()
			pieces++
			longest = max(longest, len(b))
		}))
	c := dial(t, p.Addr())
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the bytes arrived altered")
	}
	c.Close()
	p.Close() // waits for the observer
	t.Logf("%d bytes in %d pieces", len(data), pieces)
	if longest > limit || pieces < len(data)/limit {
		t.Errorf("%d pieces, the longest %d bytes; want at least %d, none over %d", pieces, longest, len(data)/limit, limit)
	}
}

// TestLinkBandwidth: two connections share the link's bandwidth, so that together
// they are no quicker than one alone.
func TestLinkBandwidth(t *testing.T) {
	const bw = 64 << 10
	p := New(t, server(t, echo), WithLinkBandwidth(bw))
	data := randomBytes(bw)
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		c := dial(t, p.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			go c.Write(data)
			if _, err := io.ReadFull(c, make([]byte, len(data))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	t.Logf("2 x %d bytes over a %d B/s link took %v", len(data), bw, took)
	// One chunk of burst in each direction; the rest of both connections' bytes share
	// the link.
	if min := time.Duration(float64(2*len(data)-chunkSize) / bw * float64(time.Second)); took < min {
		t.Errorf("took %v, want at least %v: the connections do not share the link", took, min)
	}
}

func TestCutAfter(t *testing.T) {
	const n = 12345
	t.Run("downstream", func(t *testing.T) {
		// The server waits for a byte before it sends: a reset that came before the
		// client's connect returned would fail the dial instead.
		p := New(t, server(t, func(c net.Conn) {
			io.ReadFull(c, make([]byte, 1))
			c.Write(randomBytes(100_000))
		}))
		p.CutAfter(Downstream, n)
		c := dial(t, p.Addr())
		c.Write([]byte("x"))
		got, err := io.ReadAll(c)
		if len(got) != n {
			t.Errorf("client read %d bytes before the cut (err %v), want %d", len(got), err, n)
		}
		if err == nil {
			t.Errorf("read ended cleanly, want a reset")
		}
		if st := p.Stats(); st.Cuts != 1 || st.Downstream != n {
			t.Errorf("Stats() = %+v, want 1 cut and %d bytes downstream", st, n)
		}
		// The cut fired once: a new connection works.
		c2 := dial(t, p.Addr())
		c2.Write([]byte("x"))
		if got, _ := io.ReadAll(c2); len(got) != 100_000 {
			t.Errorf("after the cut, a new connection read %d bytes, want 100000", len(got))
		}
	})
	t.Run("upstream", func(t *testing.T) {
		var received atomic.Int64
		done := make(chan struct{})
		p := New(t, server(t, func(c net.Conn) {
			defer close(done)
			n, _ := io.Copy(io.Discard, c)
			received.Store(n)
		}))
		p.CutAfter(Upstream, n)
		c := dial(t, p.Addr())
		c.Write(randomBytes(100_000))
		<-done
		if got := received.Load(); got != n {
			t.Errorf("server received %d bytes, want %d", got, n)
		}
	})
	t.Run("zero", func(t *testing.T) {
		p := New(t, server(t, echo))
		p.CutAfter(Downstream, 0)
		c := dial(t, p.Addr())
		c.Write([]byte("hello"))
		if got, _ := io.ReadAll(c); len(got) != 0 {
			t.Errorf("read %q, want nothing", got)
		}
	})
}

func TestCutAllAndConn(t *testing.T) {
	p := New(t, server(t, echo))
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	for _, c := range []net.Conn{a, b} {
		c.Write([]byte("x"))
		io.ReadFull(c, make([]byte, 1))
	}
	// Only the connection carrying the byte past the limit is cut.
	p.CutConnAfter(Downstream, 3)
	a.Write([]byte("12345"))
	if got, err := io.ReadAll(a); string(got) != "123" || err == nil {
		t.Errorf("cut connection read (%q, %v), want (\"123\", a reset)", got, err)
	}
	b.Write([]byte("y"))
	if _, err := io.ReadFull(b, make([]byte, 1)); err != nil {
		t.Errorf("other connection after CutConnAfter: %v", err)
	}

	p.CutAll()
	if _, err := io.ReadAll(b); err == nil {
		t.Errorf("read after CutAll ended cleanly, want a reset")
	}
	if st := p.Stats(); st.Cuts != 2 || st.Accepted != 2 {
		t.Errorf("Stats() = %+v, want 2 accepted, 2 cuts", st)
	}
}

func TestCloseEndsConnections(t *testing.T) {
	p, err := Listen(server(t, echo))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Logf("read after Close: %v", err)
	}
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Errorf("dial after Close succeeded")
	}
}
