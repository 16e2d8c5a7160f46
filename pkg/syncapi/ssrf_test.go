package syncapi_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/netpolicy"
	"imapcopy.dev/pkg/syncapi"
)

// countingListener accepts connections on a loopback address, greets each one as an
// IMAP server would and counts them: the proof that a refused host never reached it.
type countingListener struct {
	ln      net.Listener
	accepts atomic.Int64
}

func listenCounting(t *testing.T, addr string) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	l := &countingListener{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepts.Add(1)
			conn.Write([]byte("* BYE counting listener\r\n"))
			conn.Close()
		}
	}()
	return l
}

func (l *countingListener) port() int { return l.ln.Addr().(*net.TCPAddr).Port }

// waitAccepts waits until the listener has counted want connections (the accept
// loop runs behind the client's dial) and fails the test if it counts more.
func (l *countingListener) waitAccepts(t *testing.T, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.accepts.Load() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := l.accepts.Load(); got != want {
		t.Errorf("the loopback listener accepted %d connections, want %d", got, want)
	}
}

// loopbackOnlyDialer really connects, to loopback IP literals only: a broken policy
// could not make this test send a packet anywhere else.
type loopbackOnlyDialer struct{ t *testing.T }

func (d loopbackOnlyDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		d.t.Errorf("dial %s %s: not a loopback address, refusing to dial", network, address)
		return nil, errors.New("loopbackOnlyDialer: not a loopback address")
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, address)
}

// loopbackNames answers names that resolve to the loopback listener, as a hostile
// user's DNS would.
type loopbackNames struct{}

func (loopbackNames) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	switch host {
	case "loopback.example", "localhost":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	case "mapped.example":
		return []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestSSRFListenerCountsAccepts: every form of a loopback host a user could type, as
// the source or the destination of TestAccount and StartSync, is refused before any
// connection, proved by a real listener on that address and port that counts the
// connections it accepts (0). The port is allowed by the policy, so only the address
// decides. The same api with the operator's allow-list reaches the listener (the
// control: the count is not 0 because nothing could connect).
func TestSSRFListenerCountsAccepts(t *testing.T) {
	v4 := listenCounting(t, "127.0.0.1:0")
	port := v4.port()
	hosts := []string{
		"127.0.0.1", "127.0.0.2", "::ffff:127.0.0.1", "0.0.0.0",
		"2130706433", "0177.0.0.1", "0x7f000001", "127.1", "0x7f.1",
		"loopback.example", "localhost", "mapped.example", "LOOPBACK.example.",
	}
	v6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port)))
	var v6l *countingListener
	if err == nil {
		v6.Close()
		v6l = listenCounting(t, net.JoinHostPort("::1", strconv.Itoa(port)))
		hosts = append(hosts, "::1", "[::1]", "0:0:0:0:0:0:0:1")
	} else {
		t.Logf("no IPv6 loopback here (%v): the ::1 forms are left to pkg/netpolicy TestRefusedWithoutDial", err)
	}
	accepts := func() int64 {
		n := v4.accepts.Load()
		if v6l != nil {
			n += v6l.accepts.Load()
		}
		return n
	}

	policy, err := netpolicy.New(netpolicy.Config{Ports: []int{port}})
	if err != nil {
		t.Fatal(err)
	}
	pd := policy.Dialer(loopbackOnlyDialer{t}, loopbackNames{})
	e := newEnv(t, "redis", withDeps(func(d *syncapi.Deps) {
		d.Policy = pd
		d.Prober = syncapi.NewProber(imapconn.Options{Dialer: pd, DialTimeout: 5 * time.Second}, nil)
	}))
	src, dst := newUser(t), newUser(t)
	refused := func(what string, err error, failure imapcopyv1.TestFailure) {
		t.Helper()
		switch {
		case err != nil && status.Code(err) == codes.InvalidArgument:
			// A host written in a form the api refuses to interpret (2130706433, 127.1).
		case err != nil && errorInfo(err).GetReason() == "TEST_FAILURE_REFUSED_BY_POLICY":
		case err == nil && failure == imapcopyv1.TestFailure_TEST_FAILURE_REFUSED_BY_POLICY:
		default:
			t.Errorf("%s = %v %v, want REFUSED_BY_POLICY or INVALID_ARGUMENT", what, failure, err)
		}
	}
	for _, host := range hosts {
		acct := &imapcopyv1.Account{Provider: "other", Login: "bob@example.test", Password: "pw", Host: host, Port: uint32(port), Security: imapcopyv1.Security_SECURITY_TLS}
		resp, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: acct})
		refused("TestAccount("+host+")", err, resp.GetFailure())

		sa := src.proto()
		sa.Host, sa.Port = host, uint32(port)
		_, err = e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: sa, Destination: dst.proto()})
		refused("StartSync(source "+host+")", err, 0)

		da := dst.proto()
		da.Host, da.Port = host, uint32(port)
		_, err = e.client.StartSync(e.ctx(), &imapcopyv1.StartSyncRequest{Source: src.proto(), Destination: da})
		refused("StartSync(destination "+host+")", err, 0)
		if n := accepts(); n != 0 {
			t.Fatalf("after %s: the loopback listeners accepted %d connections, want 0", host, n)
		}
	}

	// The control: allow-listed, the same listener is reached.
	allowed, err := netpolicy.New(netpolicy.Config{Allow: []string{"127.0.0.0/8"}, Ports: []int{port}})
	if err != nil {
		t.Fatal(err)
	}
	ad := allowed.Dialer(loopbackOnlyDialer{t}, loopbackNames{})
	ae := newEnv(t, "redis", withDeps(func(d *syncapi.Deps) {
		d.Policy = ad
		d.Prober = syncapi.NewProber(imapconn.Options{Dialer: ad, DialTimeout: 5 * time.Second}, nil)
	}))
	acct := &imapcopyv1.Account{Provider: "other", Login: "bob@example.test", Password: "pw", Host: "127.0.0.1", Port: uint32(port), Security: imapcopyv1.Security_SECURITY_TLS}
	resp, err := ae.client.TestAccount(ae.ctx(), &imapcopyv1.TestAccountRequest{Account: acct})
	if err != nil {
		t.Fatalf("TestAccount(allowed 127.0.0.1): %v", err)
	}
	if resp.GetFailure() == imapcopyv1.TestFailure_TEST_FAILURE_REFUSED_BY_POLICY {
		t.Fatalf("TestAccount(allowed 127.0.0.1) = REFUSED_BY_POLICY, want the listener reached")
	}
	v4.waitAccepts(t, 1)
}
