package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// These tests never let a packet leave the machine, even with a broken policy: names
// are answered by fakeResolver, and every dial goes to fakeDialer, which connects to
// nothing and fails the test when asked for an address it was not told to expect, or
// (in the one test that really connects) to loopbackDialer, which dials loopback
// addresses only.

// publicA and publicB stand for ordinary Internet servers. fakeDialer never connects
// anywhere, so nothing is ever sent to them.
const (
	publicA = "93.184.216.34"
	publicB = "2606:2800:220:1:248:1893:25c8:1946"
)

type fakeResolver struct {
	mu sync.Mutex
	// answers[name] is the sequence of answers for name: the n-th lookup gets the
	// n-th answer, and the last one is repeated.
	answers map[string][][]string
	calls   map[string]int
}

func newResolver(answers map[string][][]string) *fakeResolver {
	return &fakeResolver{answers: answers, calls: map[string]int{}}
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := r.calls[host]
	r.calls[host]++
	answer := seq[min(n, len(seq)-1)]
	var addrs []netip.Addr
	for _, s := range answer {
		a := netip.MustParseAddr(s)
		if network == "ip4" && !a.Unmap().Is4() || network == "ip6" && a.Unmap().Is4() {
			continue
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

func (r *fakeResolver) lookups(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

// fakeDialer records what it is asked to dial, and fails the test for any address
// that is not in expect. It connects to nothing: an expected address with a nil
// error gets one end of a net.Pipe.
type fakeDialer struct {
	t      *testing.T
	expect map[string]error

	mu     sync.Mutex
	dialed []string
}

func newDialer(t *testing.T, expect map[string]error) *fakeDialer {
	return &fakeDialer{t: t, expect: expect}
}

func (d *fakeDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, address)
	d.mu.Unlock()
	result, ok := d.expect[address]
	if !ok {
		d.t.Errorf("DialContext(%q, %q): the policy let through an address it should not have (expected only %v)", network, address, slices.Sorted(maps.Keys(d.expect)))
		return nil, errors.New("fakeDialer: unexpected address")
	}
	if result != nil {
		return nil, result
	}
	c1, c2 := net.Pipe()
	d.t.Cleanup(func() { c1.Close(); c2.Close() })
	return c1, nil
}

// loopbackDialer really connects, but only to loopback IP literals: anything else
// fails the test without a packet being sent (not even a DNS query for a name).
type loopbackDialer struct{ t *testing.T }

func (d loopbackDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		d.t.Errorf("DialContext(%q, %q): not a loopback address, refusing to dial", network, address)
		return nil, errors.New("loopbackDialer: not a loopback address")
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, address)
}

func (d *fakeDialer) calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.dialed)
}

func mustNew(t *testing.T, cfg Config) *Policy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return p
}

func isRefused(err error) bool {
	var r interface{ RefusedByPolicy() bool }
	return errors.As(err, &r) && r.RefusedByPolicy()
}

// The hosts of the issue: refused with no dial when not allowed.
func TestRefusedWithoutDial(t *testing.T) {
	resolver := newResolver(map[string][][]string{
		"loopback.test":  {{"127.0.0.1"}},
		"loopback6.test": {{"::1"}},
		"mapped.test":    {{"::ffff:127.0.0.1"}},
		"private.test":   {{"10.0.0.1", "192.168.1.1"}},
		"metadata.test":  {{"169.254.169.254"}},
	})
	tests := []struct {
		host string
		want string // in the message
	}{
		{"127.0.0.1", "127.0.0.1 is a loopback address"},
		{"10.0.0.1", "10.0.0.1 is a private address"},
		{"169.254.169.254", "169.254.169.254 is a cloud metadata address"},
		{"::1", "::1 is a loopback address"},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1 is a loopback address"},
		{"fd00:ec2::254", "fd00:ec2::254 is a cloud metadata address"},
		{"fe80::1%lo", "a link-local address"},
		{"0.0.0.0", "an unspecified"},
		{"::", "the unspecified address"},
		{"64:ff9b::7f00:1", "a loopback address (127.0.0.1 inside an IPv6 address)"},
		{"2002:a00:1::1", "a private address (10.0.0.1 inside an IPv6 address)"},
		{"loopback.test", "loopback.test resolves to 127.0.0.1, a loopback address"},
		{"loopback6.test", "loopback6.test resolves to ::1, a loopback address"},
		{"mapped.test", "mapped.test resolves to ::ffff:127.0.0.1, a loopback address"},
		{"private.test", "private.test resolves to 10.0.0.1 (a private address), 192.168.1.1 (a private address)"},
		{"metadata.test", "metadata.test resolves to 169.254.169.254, a cloud metadata address"},
	}
	p := mustNew(t, Config{})
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			dialer := newDialer(t, nil) // expects nothing
			d := p.Dialer(dialer, resolver)
			conn, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort(tt.host, "993"))
			if err == nil {
				conn.Close()
				t.Fatalf("DialContext(%q) succeeded, want a refusal", tt.host)
			}
			if !isRefused(err) {
				t.Errorf("DialContext(%q) error %v does not report RefusedByPolicy", tt.host, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, "ask the operator to allow it") {
				t.Errorf("DialContext(%q) error = %q, want it to contain %q and the advice", tt.host, msg, tt.want)
			}
			if got := dialer.calls(); len(got) != 0 {
				t.Errorf("DialContext(%q) dialled %v, want no dial", tt.host, got)
			}
			if _, err := d.Check(context.Background(), tt.host, 993); !isRefused(err) {
				t.Errorf("Check(%q) error = %v, want a refusal", tt.host, err)
			}
		})
	}
}

// TestNonStandardIP: an IPv4 address in a form the C library reads and netip does not
// (one number, octal or hexadecimal parts, fewer than four parts) is refused as written:
// no lookup (a resolver built on the C library would answer 127.0.0.1, as the fake one
// does here), no dial, and a message that says how to write it. Names that merely hold
// digits are names.
func TestNonStandardIP(t *testing.T) {
	forms := []string{"2130706433", "0177.0.0.1", "0x7f000001", "0X7F.1", "127.1", "127.0.1", "2130706433."}
	answers := map[string][][]string{}
	for _, h := range forms {
		answers[h] = [][]string{{"127.0.0.1"}}
	}
	resolver := newResolver(answers)
	p := mustNew(t, Config{})
	for _, host := range forms {
		dialer := newDialer(t, nil) // expects nothing
		_, err := p.Dialer(dialer, resolver).DialContext(context.Background(), "tcp", net.JoinHostPort(host, "993"))
		if err == nil || !strings.Contains(err.Error(), "four decimal numbers") {
			t.Errorf("DialContext(%q) error = %v, want one that says to write the address as four decimal numbers", host, err)
		}
		if _, err := p.Check(context.Background(), resolver, host, 993); err == nil {
			t.Errorf("Check(%q) accepted it", host)
		}
		if n := resolver.lookups(host); n != 0 {
			t.Errorf("%q was looked up %d times, want never", host, n)
		}
		if got := dialer.calls(); len(got) != 0 {
			t.Errorf("DialContext(%q) dialled %v, want no dial", host, got)
		}
	}
	for _, name := range []string{"imap.example.com", "1e100.net", "123.example", "mail2.example.com", "0x.example.org"} {
		if NonStandardIP(name) {
			t.Errorf("NonStandardIP(%q) = true, want false: it is a name", name)
		}
	}
}

// The same hosts are accepted once the configuration allows them, by network or by
// host name, on any port; the dial goes to the checked address.
func TestAllowedDialsCheckedAddress(t *testing.T) {
	resolver := newResolver(map[string][][]string{
		"loopback.test":     {{"127.0.0.1"}},
		"mapped.test":       {{"::ffff:127.0.0.1"}},
		"imap.corp.example": {{"10.1.2.3"}},
	})
	tests := []struct {
		name  string
		allow []string
		host  string
		port  int
		want  string // the address the base dialer must see
	}{
		{"loopback by CIDR", []string{"127.0.0.0/8"}, "127.0.0.1", 993, "127.0.0.1:993"},
		{"loopback by CIDR any port", []string{"127.0.0.0/8"}, "127.0.0.1", 10143, "127.0.0.1:10143"},
		{"private by CIDR", []string{"10.0.0.0/8"}, "10.0.0.1", 143, "10.0.0.1:143"},
		{"private by address", []string{"10.0.0.1"}, "10.0.0.1", 993, "10.0.0.1:993"},
		{"metadata by exact address", []string{"169.254.169.254"}, "169.254.169.254", 993, "169.254.169.254:993"},
		{"IPv6 loopback by CIDR", []string{"::1/128"}, "::1", 993, "[::1]:993"},
		{"mapped loopback by IPv4 CIDR", []string{"127.0.0.0/8"}, "::ffff:127.0.0.1", 993, "127.0.0.1:993"},
		{"loopback by mapped CIDR", []string{"::ffff:127.0.0.0/104"}, "127.0.0.1", 993, "127.0.0.1:993"},
		{"name to loopback by CIDR", []string{"127.0.0.0/8"}, "loopback.test", 993, "127.0.0.1:993"},
		{"name to loopback by name", []string{"loopback.test"}, "loopback.test", 993, "127.0.0.1:993"},
		{"name by name, any case, trailing dot", []string{"LoopBack.Test."}, "loopback.test", 12345, "127.0.0.1:12345"},
		{"name to mapped loopback by name", []string{"loopback.test", "mapped.test"}, "mapped.test", 993, "127.0.0.1:993"},
		{"name by wildcard", []string{"*.corp.example"}, "imap.corp.example", 993, "10.1.2.3:993"},
		{"blank entries ignored", []string{"", " 10.0.0.0/8 ", ""}, "imap.corp.example", 993, "10.1.2.3:993"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, Config{Allow: tt.allow})
			dialer := newDialer(t, map[string]error{tt.want: nil})
			conn, err := p.Dialer(dialer, resolver).DialContext(context.Background(), "tcp", net.JoinHostPort(tt.host, strconv.Itoa(tt.port)))
			if err != nil {
				t.Fatalf("DialContext(%s:%d) with allow %q: %v", tt.host, tt.port, tt.allow, err)
			}
			conn.Close()
			if got := dialer.calls(); !slices.Equal(got, []string{tt.want}) {
				t.Errorf("dialled %v, want [%s]", got, tt.want)
			}
		})
	}
}

// Allow-list entries that do not cover the address leave the refusal in place.
func TestAllowListDoesNotOverreach(t *testing.T) {
	resolver := newResolver(map[string][][]string{
		"metadata.test":  {{"169.254.169.254"}},
		"corp.example":   {{"10.1.2.3"}},
		"other.test":     {{"127.0.0.1"}},
		"metadata6.test": {{"fd00:ec2::254"}},
	})
	tests := []struct {
		name  string
		allow []string
		host  string
		want  string
	}{
		// A metadata endpoint needs an entry of its own.
		{"metadata by link-local network", []string{"169.254.0.0/16"}, "169.254.169.254", "a cloud metadata address"},
		{"metadata by allowed name", []string{"metadata.test"}, "metadata.test", "a cloud metadata address"},
		{"IPv6 metadata by ULA network", []string{"fd00::/8"}, "metadata6.test", "a cloud metadata address"},
		{"NAT64 metadata", []string{"64:ff9b::/96"}, "64:ff9b::a9fe:a9fe", "a cloud metadata address"},
		{"wildcard excludes the bare domain", []string{"*.corp.example"}, "corp.example", "a private address"},
		{"other name", []string{"loopback.test"}, "other.test", "a loopback address"},
		{"other network", []string{"10.0.0.0/8"}, "127.0.0.1", "a loopback address"},
		{"IPv6 loopback not in IPv4 loopback", []string{"127.0.0.0/8"}, "::1", "a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, Config{Allow: tt.allow})
			dialer := newDialer(t, nil)
			_, err := p.Dialer(dialer, resolver).DialContext(context.Background(), "tcp", net.JoinHostPort(tt.host, "993"))
			if !isRefused(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DialContext(%s) with allow %q: error = %v, want a refusal for %s", tt.host, tt.allow, err, tt.want)
			}
			if got := dialer.calls(); len(got) != 0 {
				t.Errorf("dialled %v, want no dial", got)
			}
		})
	}
}

// Table of single addresses: which are public, which are refused and why.
func TestClassify(t *testing.T) {
	tests := []struct {
		addr string
		want string // "" for public
	}{
		{"93.184.216.34", ""},
		{"8.8.8.8", ""},
		{"100.63.255.255", ""},
		{"100.64.0.1", "a shared (carrier-grade NAT) address"},
		{"100.100.100.200", "a cloud metadata address"},
		{"172.15.255.255", ""},
		{"172.16.0.1", "a private address"},
		{"172.31.255.255", "a private address"},
		{"172.32.0.1", ""},
		{"192.168.0.1", "a private address"},
		{"169.254.1.1", "a link-local address"},
		{"169.254.170.2", "a cloud metadata address"},
		{"127.255.255.254", "a loopback address"},
		{"0.1.2.3", "an unspecified (this-network) address"},
		{"192.0.0.192", "a cloud metadata address"},
		{"192.0.0.8", "a reserved address (IETF protocol assignments)"},
		{"192.0.2.1", "a documentation address"},
		{"198.51.100.7", "a documentation address"},
		{"203.0.113.9", "a documentation address"},
		{"198.18.0.1", "a benchmarking address"},
		{"198.19.255.255", "a benchmarking address"},
		{"198.20.0.1", ""},
		{"224.0.0.251", "a multicast address"},
		{"239.255.255.250", "a multicast address"},
		{"240.0.0.1", "a reserved address"},
		{"255.255.255.255", "the broadcast address"},
		{"::ffff:10.0.0.1", "a private address"},
		{"::ffff:93.184.216.34", ""},
		{publicB, ""},
		{"2a00:1450:4007:80e::200e", ""},
		{"::", "the unspecified address"},
		{"::1", "a loopback address"},
		{"::7f00:1", "a reserved address"}, // IPv4-compatible, deprecated
		{"fc00::1", "a private (unique local) address"},
		{"fd12:3456::1", "a private (unique local) address"},
		{"fd00:ec2::254", "a cloud metadata address"},
		{"fe80::1", "a link-local address"},
		{"fec0::1", "a reserved address (site-local)"},
		{"ff02::1", "a multicast address"},
		{"2001:db8::1", "a documentation address"},
		{"3fff::1", "a documentation address"},
		{"2001::1", "a reserved address (IETF protocol assignments, such as Teredo)"},
		{"2001:2::1", "a benchmarking address"},
		{"100::1", "a reserved address (discard-only)"},
		{"64:ff9b::5db8:d822", ""}, // NAT64 of 93.184.216.34
		{"64:ff9b::a00:1", "a private address (10.0.0.1 inside an IPv6 address)"},
		{"64:ff9b:1::1", "a reserved address (local-use NAT64)"},
		{"2002:5db8:d822::1", ""}, // 6to4 of 93.184.216.34
		{"2002:7f00:1::1", "a loopback address (127.0.0.1 inside an IPv6 address)"},
		{"2002:a9fe:a9fe::1", "a cloud metadata address"},
		{"4000::1", "a reserved address"},
	}
	p := mustNew(t, Config{})
	for _, tt := range tests {
		got := p.refuse(netip.MustParseAddr(tt.addr), false, true)
		if got != tt.want {
			t.Errorf("refuse(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestPorts(t *testing.T) {
	resolver := newResolver(map[string][][]string{
		"imap.example.com": {{publicA}},
		"imap.corp.test":   {{publicA}},
	})
	tests := []struct {
		name    string
		cfg     Config
		host    string
		port    int
		refused string // "" when the dial must go to publicA
	}{
		{"993 by default", Config{}, "imap.example.com", 993, ""},
		{"143 by default", Config{}, "imap.example.com", 143, ""},
		{"25 refused", Config{}, "imap.example.com", 25, "port 25 of imap.example.com is not allowed (allowed: 143, 993)"},
		{"80 refused on a literal", Config{}, publicA, 80, "port 80 of " + publicA + " is not allowed"},
		{"configured ports", Config{Ports: []int{1993}}, "imap.example.com", 993, "(allowed: 1993)"},
		{"configured port allowed", Config{Ports: []int{1993, 993}}, "imap.example.com", 1993, ""},
		{"allowed name on any port", Config{Allow: []string{"imap.corp.test"}}, "imap.corp.test", 2525, ""},
		{"allowed address on any port", Config{Allow: []string{publicA + "/32"}}, "imap.example.com", 2525, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, tt.cfg)
			want := net.JoinHostPort(publicA, strconv.Itoa(tt.port))
			expect := map[string]error{want: nil}
			if tt.refused != "" {
				expect = nil
			}
			dialer := newDialer(t, expect)
			conn, err := p.Dialer(dialer, resolver).DialContext(context.Background(), "tcp", net.JoinHostPort(tt.host, strconv.Itoa(tt.port)))
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("DialContext: %v", err)
				}
				conn.Close()
				if got := dialer.calls(); !slices.Equal(got, []string{want}) {
					t.Errorf("dialled %v, want [%s]", got, want)
				}
				return
			}
			if !isRefused(err) || !strings.Contains(err.Error(), tt.refused) {
				t.Errorf("DialContext error = %v, want a refusal containing %q", err, tt.refused)
			}
		})
	}
}

// DNS rebinding: the name answers a public address, then loopback. Each dial resolves
// once and connects to the address it checked.
func TestRebinding(t *testing.T) {
	t.Run("dial uses its own checked answer", func(t *testing.T) {
		resolver := newResolver(map[string][][]string{"rebind.test": {{publicA}, {"127.0.0.1"}}})
		dialer := newDialer(t, map[string]error{publicA + ":993": nil})
		d := mustNew(t, Config{}).Dialer(dialer, resolver)
		conn, err := d.DialContext(context.Background(), "tcp", "rebind.test:993")
		if err != nil {
			t.Fatalf("first DialContext: %v", err)
		}
		conn.Close()
		if got := resolver.lookups("rebind.test"); got != 1 {
			t.Errorf("lookups after one dial = %d, want 1", got)
		}
		// The name now points at loopback: the next dial is refused, not sent.
		if _, err := d.DialContext(context.Background(), "tcp", "rebind.test:993"); !isRefused(err) {
			t.Errorf("second DialContext error = %v, want a refusal", err)
		}
		if got := dialer.calls(); !slices.Equal(got, []string{publicA + ":993"}) {
			t.Errorf("dialled %v, want [%s:993]", got, publicA)
		}
	})
	t.Run("a passed Check does not carry over to the dial", func(t *testing.T) {
		resolver := newResolver(map[string][][]string{"rebind.test": {{publicA}, {"127.0.0.1"}}})
		dialer := newDialer(t, nil)
		d := mustNew(t, Config{}).Dialer(dialer, resolver)
		if _, err := d.Check(context.Background(), "rebind.test", 993); err != nil {
			t.Fatalf("Check: %v", err)
		}
		if _, err := d.DialContext(context.Background(), "tcp", "rebind.test:993"); !isRefused(err) {
			t.Errorf("DialContext error = %v, want a refusal", err)
		}
	})
	t.Run("mixed answer dials only the public address", func(t *testing.T) {
		resolver := newResolver(map[string][][]string{"mixed.test": {{publicA, "127.0.0.1", "::1", "169.254.169.254"}}})
		unreachable := errors.New("connect: network is unreachable")
		dialer := newDialer(t, map[string]error{publicA + ":993": unreachable})
		d := mustNew(t, Config{}).Dialer(dialer, resolver)
		_, err := d.DialContext(context.Background(), "tcp", "mixed.test:993")
		if !errors.Is(err, unreachable) {
			t.Errorf("DialContext error = %v, want the public address's dial error", err)
		}
		if isRefused(err) {
			t.Errorf("DialContext error = %v reports a refusal, want a dial failure", err)
		}
		if got := dialer.calls(); !slices.Equal(got, []string{publicA + ":993"}) {
			t.Errorf("dialled %v, want only [%s:993]", got, publicA)
		}
		addrs, err := d.Check(context.Background(), "mixed.test", 993)
		if err != nil || len(addrs) != 1 || addrs[0].String() != publicA {
			t.Errorf("Check = %v, %v, want [%s]", addrs, err, publicA)
		}
	})
}

func TestDialTriesAcceptedAddressesInOrder(t *testing.T) {
	resolver := newResolver(map[string][][]string{"two.test": {{publicA, publicB}}})
	wantA, wantB := publicA+":993", "["+publicB+"]:993"
	dialer := newDialer(t, map[string]error{wantA: errors.New("connection refused"), wantB: nil})
	conn, err := mustNew(t, Config{}).Dialer(dialer, resolver).DialContext(context.Background(), "tcp", "two.test:993")
	if err != nil {
		t.Fatalf("DialContext: %v", err)
	}
	conn.Close()
	if got := dialer.calls(); !slices.Equal(got, []string{wantA, wantB}) {
		t.Errorf("dialled %v, want [%s %s]", got, wantA, wantB)
	}
}

func TestDialErrors(t *testing.T) {
	resolver := newResolver(map[string][][]string{"v4only.test": {{publicA}}})
	p := mustNew(t, Config{Allow: []string{"::1"}})
	tests := []struct {
		network, address, want string
	}{
		{"tcp", "nosuch.test:993", "no such host"},
		{"udp", "v4only.test:993", "network not supported"},
		{"tcp", "v4only.test", "missing port"},
		{"tcp", "v4only.test:imaps", "not a number"},
		{"tcp", "v4only.test:0", "out of range"},
		{"tcp", "v4only.test:70000", "out of range"},
		{"tcp6", "v4only.test:993", "no address"},
		{"tcp4", "[::1]:993", "no address of that family"},
		{"tcp", ":993", "empty host"},
	}
	for _, tt := range tests {
		dialer := newDialer(t, nil)
		_, err := p.Dialer(dialer, resolver).DialContext(context.Background(), tt.network, tt.address)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DialContext(%q, %q) error = %v, want %q", tt.network, tt.address, err, tt.want)
		}
		if isRefused(err) {
			t.Errorf("DialContext(%q, %q) error = %v reports a refusal", tt.network, tt.address, err)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		cfg  Config
		want []string
	}{
		{Config{Allow: []string{"10.0.0.0/33"}}, []string{`"10.0.0.0/33": not a valid CIDR`}},
		{Config{Allow: []string{"imap example.com"}}, []string{`"imap example.com": neither`}},
		{Config{Allow: []string{"*.bad..example"}}, []string{`"*.bad..example": not a valid host name wildcard`}},
		{Config{Ports: []int{0, 993, 65536}}, []string{"allowed port 0: out of range", "allowed port 65536: out of range"}},
		{Config{Allow: []string{"http://x"}, Ports: []int{-1}}, []string{`"http://x"`, "allowed port -1"}},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		if err == nil {
			t.Errorf("New(%+v) succeeded, want an error", tt.cfg)
			continue
		}
		for _, want := range tt.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("New(%+v) error = %q, want it to contain %q", tt.cfg, err, want)
			}
		}
	}
	p, err := New(Config{Ports: []int{993, 143, 993}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got, want := p.Ports(), []int{143, 993}; !slices.Equal(got, want) {
		t.Errorf("Ports() = %v, want %v", got, want)
	}
}

// A real connection to a loopback listener through the policy, when the operator
// allows 127.0.0.0/8 (as the tests of the api and the copier do with Dovecot).
func TestLoopbackListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(conn, "* OK hello\r\n")
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	resolver := newResolver(map[string][][]string{"dovecot.test": {{"127.0.0.1"}}})

	// Not allowed: refused before the listener sees anything.
	_, err = mustNew(t, Config{}).Dialer(loopbackDialer{t}, resolver).DialContext(context.Background(), "tcp", net.JoinHostPort("dovecot.test", strconv.Itoa(port)))
	if !isRefused(err) {
		t.Fatalf("DialContext without allow-list: error = %v, want a refusal", err)
	}

	d := mustNew(t, Config{Allow: []string{"127.0.0.0/8"}}).Dialer(loopbackDialer{t}, resolver)
	conn, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort("dovecot.test", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("DialContext: %v", err)
	}
	defer conn.Close()
	if got, want := conn.RemoteAddr().String(), ln.Addr().String(); got != want {
		t.Errorf("RemoteAddr = %s, want %s", got, want)
	}
	greeting, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if got, want := string(greeting), "* OK hello\r\n"; got != want {
		t.Errorf("read %q, want %q", got, want)
	}
}
