package netpolicy

import "net/netip"

// blockedRange is a range of addresses that no customer's IMAP server should live in.
type blockedRange struct {
	prefix netip.Prefix
	reason string // completes "imap.example.com resolves to 10.0.0.1, ..."
	// embedded: the range carries an IPv4 address in bits 96-128 (NAT64) or 16-48
	// (6to4), which is judged instead of the range itself.
	embedded bool
}

// blockedRanges lists the special-purpose ranges of the IANA IPv4 and IPv6 registries
// (RFC 6890 and successors) that a public IMAP server cannot be in, most specific
// first. Addresses are unmapped before they are compared.
func blockedRanges() []blockedRange {
	const (
		private   = "a private address"
		reserved  = "a reserved address"
		docs      = "a documentation address"
		bench     = "a benchmarking address"
		multicast = "a multicast address"
		linkLocal = "a link-local address"
	)
	table := []struct{ cidr, reason string }{
		// IPv4
		{"0.0.0.0/8", "an unspecified (this-network) address"},
		{"10.0.0.0/8", private},
		{"100.64.0.0/10", "a shared (carrier-grade NAT) address"},
		{"127.0.0.0/8", "a loopback address"},
		{"169.254.0.0/16", linkLocal},
		{"172.16.0.0/12", private},
		{"192.0.0.0/24", reserved + " (IETF protocol assignments)"},
		{"192.0.2.0/24", docs},
		{"192.88.99.0/24", reserved + " (6to4 relay anycast)"},
		{"192.168.0.0/16", private},
		{"198.18.0.0/15", bench},
		{"198.51.100.0/24", docs},
		{"203.0.113.0/24", docs},
		{"224.0.0.0/4", multicast},
		{"255.255.255.255/32", "the broadcast address"},
		{"240.0.0.0/4", reserved},
		// IPv6
		{"::/128", "the unspecified address"},
		{"::1/128", "a loopback address"},
		{"64:ff9b:1::/48", reserved + " (local-use NAT64)"},
		{"100::/64", reserved + " (discard-only)"},
		{"2001:2::/48", bench},
		{"2001::/23", reserved + " (IETF protocol assignments, such as Teredo)"},
		{"2001:db8::/32", docs},
		{"3fff::/20", docs},
		{"fc00::/7", "a private (unique local) address"},
		{"fe80::/10", linkLocal},
		{"fec0::/10", reserved + " (site-local)"},
		{"ff00::/8", multicast},
	}
	ranges := make([]blockedRange, 0, len(table)+2)
	for _, e := range table {
		ranges = append(ranges, blockedRange{prefix: netip.MustParsePrefix(e.cidr), reason: e.reason})
	}
	for _, cidr := range []string{"64:ff9b::/96", "2002::/16"} {
		ranges = append(ranges, blockedRange{prefix: netip.MustParsePrefix(cidr), embedded: true})
	}
	return ranges
}

// classify returns why a (unmapped, without zone) is not a public address, or "".
func (p *Policy) classify(a netip.Addr) string {
	for _, r := range p.blocked {
		if !r.prefix.Contains(a) {
			continue
		}
		if r.embedded {
			if reason := p.classify(embeddedIPv4(a)); reason != "" {
				return reason + " (" + embeddedIPv4(a).String() + " inside an IPv6 address)"
			}
			return ""
		}
		return r.reason
	}
	// 2000::/3 is the only IPv6 space allocated for public addresses.
	if a.Is6() && a.As16()[0]&0xe0 != 0x20 {
		return "a reserved address"
	}
	return ""
}

// embeddedIPv4 returns the IPv4 address carried by a NAT64 (64:ff9b::/96) or 6to4
// (2002::/16) address, or the zero Addr.
func embeddedIPv4(a netip.Addr) netip.Addr {
	if !a.Is6() || a.Is4In6() {
		return netip.Addr{}
	}
	b := a.As16()
	switch {
	case [12]byte(b[:12]) == [12]byte{0x00, 0x64, 0xff, 0x9b}: // 64:ff9b::/96
		return netip.AddrFrom4([4]byte(b[12:16]))
	case b[0] == 0x20 && b[1] == 0x02: // 2002::/16
		return netip.AddrFrom4([4]byte(b[2:6]))
	}
	return netip.Addr{}
}

// isMetadata reports whether a is a cloud provider's instance-metadata or
// credentials endpoint. Those hand out credentials to anything that asks from inside
// the instance, so they need an allow-list entry of their own.
func isMetadata(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	switch a.String() {
	case "169.254.169.254", // AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
		"169.254.170.2",   // AWS ECS task credentials
		"169.254.170.23",  // AWS EKS Pod Identity
		"100.100.100.200", // Alibaba Cloud
		"192.0.0.192",     // Oracle Cloud (legacy)
		"fd00:ec2::254",   // AWS IMDS over IPv6
		"fd00:ec2::23":    // AWS EKS Pod Identity over IPv6
		return true
	}
	return false
}
