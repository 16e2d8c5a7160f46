// Package netpolicy owns the network policy for IMAP hosts that users supply: which
// addresses and ports imapcopy may connect to on a customer's behalf.
//
// Without a policy, "test my account at 169.254.169.254:80" turns the service into a
// probe of the operator's own network. The policy refuses loopback, private, shared
// (CGNAT), link-local, multicast, unspecified, reserved, documentation and benchmarking
// addresses, cloud-metadata endpoints, and every port outside the allowed set (143 and
// 993 by default), unless the operator allow-lists the network or the host name.
//
// Guarantees:
//   - The decision is made on the resolved addresses, on every dial, and the dial goes
//     to the checked address itself, never to the name again: a DNS answer that changes
//     between the check and the connection (DNS rebinding) cannot reach a refused address.
//   - A refused dial sends no packet: the error is a *RefusedError (RefusedByPolicy
//     reports true) whose message tells a person what to do.
//   - IPv4 addresses in IPv6 clothing (::ffff:127.0.0.1, NAT64 64:ff9b::/96, 6to4) are
//     judged by the IPv4 address they carry.
//   - Cloud-metadata addresses (169.254.169.254, fd00:ec2::254, ...) are opened only by
//     an allow-list entry naming that exact address: neither a wider network nor an
//     allow-listed host name that happens to resolve to one lets a dial through.
package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Config is the operator's side of the policy.
type Config struct {
	// Allow exempts networks and servers from the policy, entries being CIDR prefixes
	// ("10.0.0.0/8", "fd00::/8"), single addresses ("192.0.2.10"), host names
	// ("imap.internal.example") or subdomain wildcards ("*.mail.example"). An
	// allow-listed host or address may use any port. Blank entries are ignored, so
	// strings.Split(os.Getenv("IMAPCOPY_ALLOW_NETWORKS"), ",") can be passed as is.
	Allow []string
	// Ports are the ports allowed to hosts that are not allow-listed; empty means the
	// IMAP ports 143 (STARTTLS) and 993 (implicit TLS).
	Ports []int
}

// Policy decides whether an address may be dialled. It is immutable and safe for
// concurrent use.
type Policy struct {
	prefixes  []netip.Prefix // allow-listed networks (IPv4 ones unmapped)
	names     map[string]bool
	wildcards []string // ".mail.example" for "*.mail.example"
	ports     []int
	blocked   []blockedRange
}

// New builds a policy from cfg, refusing malformed entries.
func New(cfg Config) (*Policy, error) {
	p := &Policy{names: map[string]bool{}, blocked: blockedRanges()}
	var errs []error
	for _, raw := range cfg.Allow {
		entry := strings.TrimSpace(raw)
		if entry == "" {
			continue
		}
		if err := p.addAllow(entry); err != nil {
			errs = append(errs, err)
		}
	}
	ports := cfg.Ports
	if len(ports) == 0 {
		ports = []int{143, 993}
	}
	for _, port := range ports {
		if port < 1 || port > 65535 {
			errs = append(errs, fmt.Errorf("allowed port %d: out of range 1-65535", port))
			continue
		}
		if !slices.Contains(p.ports, port) {
			p.ports = append(p.ports, port)
		}
	}
	slices.Sort(p.ports)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("network policy: %w", err)
	}
	return p, nil
}

func (p *Policy) addAllow(entry string) error {
	if strings.Contains(entry, "/") {
		prefix, err := netip.ParsePrefix(entry)
		if err != nil {
			return fmt.Errorf("allow-list entry %q: not a valid CIDR prefix (like 10.0.0.0/8)", entry)
		}
		p.prefixes = append(p.prefixes, unmapPrefix(prefix).Masked())
		return nil
	}
	if addr, err := netip.ParseAddr(entry); err == nil {
		addr = addr.Unmap().WithZone("")
		p.prefixes = append(p.prefixes, netip.PrefixFrom(addr, addr.BitLen()))
		return nil
	}
	name := normalizeName(entry)
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		if !validName(rest) {
			return fmt.Errorf("allow-list entry %q: not a valid host name wildcard (like *.mail.example)", entry)
		}
		p.wildcards = append(p.wildcards, "."+rest)
		return nil
	}
	if !validName(name) {
		return fmt.Errorf("allow-list entry %q: neither a CIDR prefix, an IP address nor a host name", entry)
	}
	p.names[name] = true
	return nil
}

// unmapPrefix turns ::ffff:a.b.c.d/n (n >= 96) into a.b.c.d/(n-96), so that an
// IPv4-mapped allow-list entry matches the unmapped addresses it is compared with.
func unmapPrefix(prefix netip.Prefix) netip.Prefix {
	if prefix.Addr().Is4In6() && prefix.Bits() >= 96 {
		return netip.PrefixFrom(prefix.Addr().Unmap(), prefix.Bits()-96)
	}
	return prefix
}

// Ports returns the ports allowed to hosts that are not allow-listed.
func (p *Policy) Ports() []int { return slices.Clone(p.ports) }

// Resolver resolves host names; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// RefusedError is a connection the policy refused before any packet was sent.
type RefusedError struct {
	Host string // as the user gave it
	Port int
	// Refused lists the addresses that were refused and why; empty when the port alone
	// was refused for a host the policy never had to resolve.
	Refused []Refusal
	// PortRefused is set when the port is outside the allowed set.
	PortRefused  bool
	AllowedPorts []int
}

// Refusal is one address and why the policy refused it.
type Refusal struct {
	Addr   netip.Addr
	Reason string // "a private address", "a cloud metadata address", ...
}

// RefusedByPolicy marks the error for imapconn.KindOf and other classifiers.
func (e *RefusedError) RefusedByPolicy() bool { return true }

func (e *RefusedError) Error() string {
	const prefix, ask = "connection refused by the network policy: ", "ask the operator to allow it"
	if len(e.Refused) == 0 {
		return fmt.Sprintf("%sport %d of %s is not allowed (allowed: %s); use the provider's IMAP port or %s",
			prefix, e.Port, e.Host, joinPorts(e.AllowedPorts), ask)
	}
	var b strings.Builder
	b.WriteString(prefix)
	switch first := e.Refused[0]; {
	case len(e.Refused) == 1 && first.Addr.String() == e.Host:
		fmt.Fprintf(&b, "%s is %s", e.Host, first.Reason)
	case len(e.Refused) == 1:
		fmt.Fprintf(&b, "%s resolves to %s, %s", e.Host, first.Addr, first.Reason)
	default:
		fmt.Fprintf(&b, "%s resolves to ", e.Host)
		for i, r := range e.Refused {
			if i == 3 {
				fmt.Fprintf(&b, " and %d more", len(e.Refused)-i)
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (%s)", r.Addr, r.Reason)
		}
	}
	if e.PortRefused {
		fmt.Fprintf(&b, "; port %d is not allowed either (allowed: %s)", e.Port, joinPorts(e.AllowedPorts))
	}
	b.WriteString("; " + ask)
	return b.String()
}

func joinPorts(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}

// Check resolves host with r and returns, in the resolver's order, the addresses that
// may be dialled on port. It returns a *RefusedError when none may, and a plain error
// when host does not resolve. The api calls it to answer "refused by policy" before
// trying to connect.
func (p *Policy) Check(ctx context.Context, r Resolver, host string, port int) ([]netip.Addr, error) {
	return p.check(ctx, r, "ip", host, port)
}

func (p *Policy) check(ctx context.Context, r Resolver, ipNetwork, host string, port int) ([]netip.Addr, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("port %d: out of range 1-65535", port)
	}
	nameAllowed := p.nameAllowed(host)
	portOK := slices.Contains(p.ports, port)

	addrs, err := p.resolve(ctx, r, ipNetwork, host)
	if err != nil {
		return nil, err
	}
	refused := &RefusedError{Host: host, Port: port, PortRefused: !portOK, AllowedPorts: p.Ports()}
	var allowed []netip.Addr
	for _, addr := range addrs {
		if reason := p.refuse(addr, nameAllowed, portOK); reason != "" {
			refused.Refused = append(refused.Refused, Refusal{Addr: addr, Reason: reason})
			continue
		}
		allowed = append(allowed, addr)
	}
	if len(allowed) == 0 {
		// Keep the port-only message when the addresses themselves were fine.
		if !slices.ContainsFunc(refused.Refused, func(r Refusal) bool { return r.Reason != reasonPort }) {
			refused.Refused = nil
		} else {
			refused.Refused = slices.DeleteFunc(refused.Refused, func(r Refusal) bool { return r.Reason == reasonPort })
		}
		return nil, refused
	}
	return allowed, nil
}

func (p *Policy) resolve(ctx context.Context, r Resolver, ipNetwork, host string) ([]netip.Addr, error) {
	if host == "" {
		return nil, errors.New("empty host")
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{addr}, nil
	}
	if NonStandardIP(host) {
		return nil, fmt.Errorf("%s is an IP address in a form other than a.b.c.d (decimal, octal or hexadecimal): write it as four decimal numbers, or give the server's name", host)
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, ipNetwork, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no address", host)
	}
	return addrs, nil
}

// NonStandardIP reports whether host is no DNS name but an IPv4 address in one of the
// forms inet_aton reads and netip does not: one number (2130706433), fewer than four
// parts (127.1), octal (0177.0.0.1) or hexadecimal (0x7f000001) parts. A resolver
// built on the C library turns them into an address, another looks them up as names:
// neither is what the person typing meant to be checked, so they are refused as
// written. A DNS name's last label is never all digits, nor a 0x number.
func NonStandardIP(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		last = rest
		return strings.Trim(last, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

const reasonPort = "port" // internal marker: the address is fine, the port is not

// refuse returns why addr may not be dialled, or "" when it may.
func (p *Policy) refuse(addr netip.Addr, nameAllowed, portOK bool) string {
	a := addr.Unmap().WithZone("")
	if isMetadata(a) || isMetadata(embeddedIPv4(a)) {
		// Only an entry naming this exact address opens a metadata endpoint.
		if slices.Contains(p.prefixes, netip.PrefixFrom(a, a.BitLen())) {
			return ""
		}
		return "a cloud metadata address"
	}
	if nameAllowed || p.addrAllowed(a) {
		return ""
	}
	if reason := p.classify(a); reason != "" {
		return reason
	}
	if !portOK {
		return reasonPort
	}
	return ""
}

func (p *Policy) addrAllowed(a netip.Addr) bool {
	for _, prefix := range p.prefixes {
		if prefix.Contains(a) {
			return true
		}
	}
	return false
}

func (p *Policy) nameAllowed(host string) bool {
	name := normalizeName(host)
	if p.names[name] {
		return true
	}
	for _, suffix := range p.wildcards {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

func normalizeName(host string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
}

// validName reports whether name is a syntactically valid DNS name (letters, digits,
// hyphens and underscores in dot-separated labels of 1 to 63 characters).
func validName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// ContextDialer is the dialer the policy wraps; *net.Dialer implements it.
type ContextDialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Dialer dials through the policy. It implements imapconn.Dialer.
type Dialer struct {
	policy   *Policy
	base     ContextDialer
	resolver Resolver
}

// Dialer returns a dialer that resolves with resolver (nil: net.DefaultResolver),
// checks every address against the policy and dials the accepted addresses, in the
// resolver's order, through base (nil: a net.Dialer).
func (p *Policy) Dialer(base ContextDialer, resolver Resolver) *Dialer {
	if base == nil {
		base = &net.Dialer{}
	}
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	return &Dialer{policy: p, base: base, resolver: resolver}
}

// Check is Policy.Check with the dialer's resolver.
func (d *Dialer) Check(ctx context.Context, host string, port int) ([]netip.Addr, error) {
	return d.policy.Check(ctx, d.resolver, host, port)
}

// DialContext dials address ("host:port", network "tcp", "tcp4" or "tcp6") if the
// policy allows it. The host is resolved once; the connection goes to a checked
// address, trying the next accepted one when a dial fails.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var ipNetwork string
	switch network {
	case "tcp":
		ipNetwork = "ip"
	case "tcp4":
		ipNetwork = "ip4"
	case "tcp6":
		ipNetwork = "ip6"
	default:
		return nil, fmt.Errorf("dial %s %s: network not supported by the network policy", network, address)
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: port %q is not a number", address, portStr)
	}
	addrs, err := d.policy.check(ctx, d.resolver, ipNetwork, host, port)
	if err != nil {
		return nil, err
	}
	if ipNetwork != "ip" {
		// An IP literal skips the resolver: keep to the family asked for.
		want4 := ipNetwork == "ip4"
		addrs = slices.DeleteFunc(addrs, func(a netip.Addr) bool { return a.Unmap().Is4() != want4 })
		if len(addrs) == 0 {
			return nil, fmt.Errorf("dial %s %s: no address of that family", network, address)
		}
	}
	var errs []error
	for _, addr := range addrs {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		conn, err := d.base.DialContext(ctx, network, netip.AddrPortFrom(addr.Unmap(), uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("dial %s: %w", address, errors.Join(errs...))
}
