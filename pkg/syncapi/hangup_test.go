package syncapi_test

import (
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	"imapcopy.dev/pkg/syncapi"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// TestTestAccountServerHangsUpOnce: a server that hangs up once without a word (its
// login process crashed) does not fail the account test: the api tries once more,
// a moment later. A server that always hangs up fails it after two connections.
func TestTestAccountServerHangsUpOnce(t *testing.T) {
	for _, always := range []bool{false, true} {
		name := "once"
		if always {
			name = "always"
		}
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			var accepts atomic.Int64
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					if n := accepts.Add(1); n == 1 || always {
						c.Close()
						continue
					}
					go func() {
						defer c.Close()
						s, err := net.Dial("tcp", dovecot.PlainAddr)
						if err != nil {
							return
						}
						defer s.Close()
						go io.Copy(s, c)
						io.Copy(c, s)
					}()
				}
			}()
			e := newEnv(t, "redis", withOptions(func(o *syncapi.Options) { o.AllowPlaintext = true }))
			u := newUser(t)
			acct := u.proto()
			host, port, _ := net.SplitHostPort(ln.Addr().String())
			p, _ := strconv.Atoi(port)
			acct.Host, acct.Port, acct.Security = host, uint32(p), imapcopyv1.Security_SECURITY_PLAINTEXT
			resp, err := e.client.TestAccount(e.ctx(), &imapcopyv1.TestAccountRequest{Account: acct})
			if err != nil {
				t.Fatal(err)
			}
			if always {
				if resp.GetOk() || accepts.Load() != 2 {
					t.Errorf("a server that always hangs up: ok %v after %d connections, want a failure after 2", resp.GetOk(), accepts.Load())
				}
				return
			}
			if !resp.GetOk() || accepts.Load() != 2 {
				t.Errorf("a server that hung up once: ok %v (%s) after %d connections, want ok after 2", resp.GetOk(), resp.GetMessage(), accepts.Load())
			}
		})
	}
}
