package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
)

// mailServer is one of the demo's two IMAP accounts, on a server of its own.
type mailServer struct {
	kind  string           // what serves it, for a person
	acct  imapconn.Account // how the demo itself loads and reads it
	login string           // the address imapcopy is given (the source's keys its status)
	close func() error
}

// servers is the demo's pair of accounts and the CA file that makes their
// certificates trusted (IMAPCOPY_IMAP_CA_FILE).
type servers struct {
	src, dst *mailServer
	caFile   string
}

func (s *servers) Close() error {
	var errs []error
	for _, m := range []*mailServer{s.src, s.dst} {
		if m != nil {
			errs = append(errs, m.close())
		}
	}
	return errors.Join(errs...)
}

// startServers starts two Dovecots of different layouts ("/" separator; "INBOX."
// prefix with "." separator) when Dovecot is installed, else two go-imap in-memory
// servers. Either way they listen on loopback only, with TLS.
func startServers(dir string, memory bool) (_ *servers, err error) {
	s := &servers{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if !memory && dovecotInstalled() {
		var pems []byte
		for _, side := range []struct {
			flavour imaptest.Flavour
			domain  string
			kind    string
			dst     **mailServer
		}{
			{imaptest.FlavourSlash, "source.demo", `Dovecot, folders like "Projects/2024"`, &s.src},
			{imaptest.FlavourDot, "destination.demo", `Dovecot, folders like "INBOX.Projects.2024" (as Courier and Cyrus name them)`, &s.dst},
		} {
			d, err := imaptest.Start(side.flavour)
			if err != nil {
				return nil, err
			}
			*side.dst = &mailServer{kind: side.kind, close: d.Close}
			acct, err := d.NewUser()
			if err != nil {
				return nil, err
			}
			// Dovecot logs users in by the local part: the address works as a login.
			(*side.dst).acct, (*side.dst).login = acct, acct.Login+"@"+side.domain
			pem, err := os.ReadFile(d.CAFile)
			if err != nil {
				return nil, err
			}
			pems = append(pems, pem...)
		}
		s.caFile = filepath.Join(dir, "ca.pem")
		return s, os.WriteFile(s.caFile, pems, 0o644)
	}

	kind := "go-imap's in-memory server (Dovecot is not installed)"
	if memory {
		kind = "go-imap's in-memory server"
	}
	cert, pool, pemCert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	s.caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(s.caFile, pemCert, 0o644); err != nil {
		return nil, err
	}
	if s.src, err = memServer("alice@source.demo", kind, cert, pool); err != nil {
		return nil, err
	}
	if s.dst, err = memServer("alice@destination.demo", kind, cert, pool); err != nil {
		return nil, err
	}
	return s, nil
}

func dovecotInstalled() bool {
	for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// memServer serves one account from go-imap's in-memory server over implicit TLS.
func memServer(login, kind string, cert tls.Certificate, pool *x509.CertPool) (*mailServer, error) {
	password := randomHex(12)
	user := imapmemserver.NewUser(login, password)
	if err := user.Create("INBOX", nil); err != nil {
		return nil, err
	}
	mem := imapmemserver.New()
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:   imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		Logger: log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	return &mailServer{
		kind:  kind,
		login: login,
		acct: imapconn.Account{Host: host, Port: p, Security: imapconn.SecurityTLS,
			Login: login, Password: password, RootCAs: pool},
		close: srv.Close,
	}, nil
}

// selfSigned makes a certificate for 127.0.0.1 that is its own CA.
func selfSigned() (tls.Certificate, *x509.CertPool, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "imapcopy demo"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	var pemCert bytes.Buffer
	pem.Encode(&pemCert, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, pemCert.Bytes(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// describe says how big a generated mailbox is.
func describe(mb imaptest.Mailbox) string {
	return fmt.Sprintf("%d messages, %s, in %d folders", mb.Count(), size(uint64(mb.Size())), len(mb.Folders))
}

func size(n uint64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
