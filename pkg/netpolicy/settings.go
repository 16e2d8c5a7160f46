package netpolicy

import (
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"imapcopy.dev/pkg/envflag"
)

// Settings is a binary's piece of configuration for reaching customers' IMAP servers,
// read from flags and the environment: the policy (IMAPCOPY_ALLOW_NETWORKS,
// IMAPCOPY_ALLOW_PORTS), the CAs trusted besides the system's
// (IMAPCOPY_IMAP_CA_FILE) and IMAP without TLS (IMAPCOPY_ALLOW_PLAINTEXT_IMAP). The api
// tests the servers the copiers then copy from and to: both must read the same.
type Settings struct {
	AllowNetworks  string // IMAPCOPY_ALLOW_NETWORKS: Config.Allow, comma-separated
	AllowPorts     string // IMAPCOPY_ALLOW_PORTS: Config.Ports, comma-separated
	IMAPCAFile     string // IMAPCOPY_IMAP_CA_FILE
	AllowPlaintext bool   // IMAPCOPY_ALLOW_PLAINTEXT_IMAP

	errs error // environment values that did not parse
}

// RegisterFlags registers the flags on fs, their defaults taken from the environment
// through getenv (os.Getenv in main).
func (s *Settings) RegisterFlags(fs *flag.FlagSet, getenv func(string) string) {
	e := envflag.New(fs, getenv)
	e.String(&s.AllowNetworks, "allow-networks", "IMAPCOPY_ALLOW_NETWORKS", "", "comma-separated CIDRs, addresses and host names (*.example for subdomains) exempt from the network policy; the api and the copiers use the same")
	e.String(&s.AllowPorts, "allow-ports", "IMAPCOPY_ALLOW_PORTS", "143,993", "comma-separated IMAP ports allowed to hosts that are not allow-listed; the api and the copiers use the same")
	e.String(&s.IMAPCAFile, "imap-ca-file", "IMAPCOPY_IMAP_CA_FILE", "", "PEM CAs trusted for IMAP servers, besides the system roots; the api and the copiers use the same")
	e.Bool(&s.AllowPlaintext, "allow-plaintext-imap", "IMAPCOPY_ALLOW_PLAINTEXT_IMAP", false, "allow IMAP without TLS: customers may choose it, copiers run such tasks; the api and the copiers use the same")
	s.errs = e.Err()
}

// Check validates the settings, reporting every problem. The CA file is read only
// by RootCAs.
func (s *Settings) Check() error {
	if s.errs != nil {
		return s.errs
	}
	_, err := s.Policy()
	return err
}

// Policy returns the network policy the settings describe.
func (s *Settings) Policy() (*Policy, error) {
	cfg := Config{Allow: strings.Split(s.AllowNetworks, ",")}
	for p := range strings.SplitSeq(s.AllowPorts, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("IMAPCOPY_ALLOW_PORTS: %q is not a port number", p)
		}
		cfg.Ports = append(cfg.Ports, port)
	}
	policy, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("IMAPCOPY_ALLOW_NETWORKS: %w", err)
	}
	return policy, nil
}

// RootCAs returns the pool that verifies IMAP servers: nil (the system roots) unless
// IMAPCOPY_IMAP_CA_FILE adds CAs to them.
func (s *Settings) RootCAs() (*x509.CertPool, error) {
	if s.IMAPCAFile == "" {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(s.IMAPCAFile)
	if err != nil {
		return nil, fmt.Errorf("IMAPCOPY_IMAP_CA_FILE: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("IMAPCOPY_IMAP_CA_FILE: %s holds no PEM certificate", s.IMAPCAFile)
	}
	return pool, nil
}
