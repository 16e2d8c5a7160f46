package imapconn_test

import (
	"bufio"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
)

// TestCertificateRefusals: a server whose certificate expired, is not yet valid, names
// another host or is signed by itself is refused during the handshake, before the login
// is sent, with an error that says what to do; the account's opt-in
// (InsecureSkipVerify) lets the same server be reached. The servers are TLS listeners on
// loopback that greet, refuse any login, and record whether one came.
func TestCertificateRefusals(t *testing.T) {
	t.Parallel()
	now := time.Now()
	caKey, ca := newCA(t, now)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, tc := range []struct {
		name     string
		cert     tls.Certificate
		roots    *x509.CertPool
		host     string // dialled; "" for 127.0.0.1
		contains string
	}{
		{"expired", leafCert(t, caKey, ca, "127.0.0.1", now.Add(-48*time.Hour), now.Add(-24*time.Hour)), pool, "", "expired"},
		{"not yet valid", leafCert(t, caKey, ca, "127.0.0.1", now.Add(24*time.Hour), now.Add(48*time.Hour)), pool, "", "not yet valid"},
		{"wrong name", leafCert(t, caKey, ca, "imap.other.example", now.Add(-time.Hour), now.Add(time.Hour)), pool, "localhost", "valid for imap.other.example, not localhost"},
		{"self-signed", leafCert(t, nil, nil, "127.0.0.1", now.Add(-time.Hour), now.Add(time.Hour)), pool, "", "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, logins := serveTLS(t, tc.cert)
			host := cmp.Or(tc.host, "127.0.0.1")
			acct := imapconn.Account{Host: host, Port: addr.Port, Security: imapconn.SecurityTLS,
				Login: "user@example.com", Password: canary, RootCAs: tc.roots}
			_, err := imapconn.Dial(context.Background(), acct, imapconn.Options{DialTimeout: 5 * time.Second})
			checkErr(t, err, imapconn.KindTLS, acct)
			if err != nil && (!strings.Contains(err.Error(), tc.contains) || !strings.Contains(err.Error(), "insecure_skip_verify")) {
				t.Errorf("error %q does not say %q and how to opt in", err, tc.contains)
			}
			if n := logins(); n != 0 {
				t.Errorf("%d logins reached the server, want none", n)
			}

			acct.InsecureSkipVerify = true
			_, err = imapconn.Dial(context.Background(), acct, imapconn.Options{DialTimeout: 5 * time.Second})
			checkErr(t, err, imapconn.KindAuth, acct) // through TLS, refused by the server
			if n := logins(); n != 1 {
				t.Errorf("%d logins reached the server with the opt-in, want 1", n)
			}
		})
	}
}

func newCA(t *testing.T, now time.Time) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cert test CA"},
		NotBefore: now.Add(-72 * time.Hour), NotAfter: now.Add(72 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, ca
}

// leafCert makes a server certificate for name (an IP address or a DNS name), valid
// from notBefore to notAfter, signed by ca, or by itself when ca is nil.
func leafCert(t *testing.T, caKey *ecdsa.PrivateKey, ca *x509.Certificate, name string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	parent, signer := ca, caKey
	if ca == nil {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serveTLS serves IMAP over TLS with cert on loopback: a greeting, then NO to any
// command. logins counts the LOGIN and AUTHENTICATE commands received.
func serveTLS(t *testing.T, cert tls.Certificate) (addr *net.TCPAddr, logins func() int) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	count := make(chan int, 1)
	count <- 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")); err != nil {
					return
				}
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					f := strings.Fields(line)
					if len(f) < 2 {
						return
					}
					if verb := strings.ToUpper(f[1]); verb == "LOGIN" || verb == "AUTHENTICATE" {
						count <- <-count + 1
					}
					if _, err := c.Write([]byte(f[0] + " NO [AUTHENTICATIONFAILED] no\r\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr), func() int { n := <-count; count <- n; return n }
}
