package mailcopy_test

import (
	"bufio"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"imapcopy.dev/pkg/imaptest"
)

// sizeLiar is a proxy in front of a server's plain-text port that understates every
// RFC822.SIZE in the server's answers by under bytes: a source whose bodies are
// longer than the sizes it reports, as some servers are.
func sizeLiar(t *testing.T, target string, under int) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	re := regexp.MustCompile(`RFC822\.SIZE (\d+)`)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer s.Close()
				go func() { io.Copy(s, c); s.Close() }()
				r := bufio.NewReader(s)
				for {
					line, err := r.ReadBytes('\n')
					if len(line) > 0 {
						line = re.ReplaceAllFunc(line, func(m []byte) []byte {
							n, _ := strconv.Atoi(string(re.FindSubmatch(m)[1]))
							return []byte("RFC822.SIZE " + strconv.Itoa(max(n-under, 1)))
						})
						if _, werr := c.Write(line); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	a := ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

// TestSourceSizeWrong: a source that sends more bytes than its RFC822.SIZE says
// (issue 14, item 9). Every message is copied whole, as sent, and each is listed in
// the result's Altered with both sizes, so the report says so. A rerun appends
// nothing: the identity key holds RFC822.SIZE, and the destination's copy has the
// true size, but matchSizes compares the bodies of such near misses.
func TestSourceSizeWrong(t *testing.T) {
	t.Parallel()
	srcServer, dstServer := servers[imaptest.FlavourSlash], servers[imaptest.FlavourDot]
	src, dst := srcServer.AddUser(t), dstServer.AddUser(t)
	mustLoad(t, src, inbox(msg("one", "1@x", 900, baseDate), msg("two", "2@x", 2000, baseDate, `\Seen`), msg("three", "3@x", 5000, baseDate)))
	lying := srcServer.Plaintext(src)
	lying.Host, lying.Port = sizeLiar(t, srcServer.PlainAddr, 17)

	res := mustCopy(t, testConfig(t, lying, dst))
	if res.Totals.Copied != 3 || res.Totals.Failed != 0 || !res.Complete() {
		t.Errorf("totals %+v complete=%v, want 3 copied", res.Totals, res.Complete())
	}
	if len(res.Altered) != 3 {
		t.Errorf("altered: %+v, want the 3 messages with the wrong size", res.Altered)
	}
	for _, a := range res.Altered {
		if !strings.Contains(a.Reason, "RFC822.SIZE says") || !strings.Contains(a.Reason, "copied as the source sent it") {
			t.Errorf("altered %+v: want a reason with both sizes", a)
		}
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})

	// The rerun knows them by their bodies (matchSizes), whatever the size says.
	cfg := testConfig(t, lying, dst)
	cfg.NoReport = true
	again := mustCopy(t, cfg)
	if again.Totals.Copied != 0 || again.Totals.Present != 3 {
		t.Errorf("rerun totals %+v, want 0 copied, 3 present", again.Totals)
	}
	mustCheck(t, src, dst, imaptest.CheckOptions{})
}
