package mailcopy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"imapcopy.dev/pkg/copybench"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/proxytest"
)

// BenchmarkTrace copies the small benchmark mailbox (IMAPCOPY_TRACE_MESSAGES,
// IMAPCOPY_TRACE_MB change it; IMAPCOPY_TRACE_FOLDERS makes it small messages
// in that many folders, as the one-folder and spread mailboxes) between two
// fresh Dovecots in plain text, through a logging proxy (and a latency proxy
// with IMAPCOPY_TRACE_LATENCY, e.g. 20ms each way; IMAPCOPY_TRACE_SPLIT=1 sets
// SplitFolders), and reports the commands
// each side received and the servers' CPU time. IMAPCOPY_TRACE_OUT writes the
// timed command log.
//
//	go test -run '^$' -bench BenchmarkTrace -benchtime 1x ./pkg/mailcopy/
func BenchmarkTrace(b *testing.B) {
	spec := copybench.SmallSpec()
	if n, err := strconv.Atoi(os.Getenv("IMAPCOPY_TRACE_MESSAGES")); err == nil {
		spec.Count = n
	}
	if n, err := strconv.Atoi(os.Getenv("IMAPCOPY_TRACE_MB")); err == nil {
		spec.Bytes = int64(n) << 20
	}
	if n, err := strconv.Atoi(os.Getenv("IMAPCOPY_TRACE_FOLDERS")); err == nil {
		spec.Folders = n
	}
	split := os.Getenv("IMAPCOPY_TRACE_SPLIT") == "1"
	var latency time.Duration
	if d, err := time.ParseDuration(os.Getenv("IMAPCOPY_TRACE_LATENCY")); err == nil {
		latency = d
	}
	ctx := context.Background()
	srcD := imaptest.StartDovecot(b, imaptest.FlavourSlash)
	dstD := imaptest.StartDovecot(b, imaptest.FlavourSlash)
	mb, err := copybench.Generate(spec)
	if err != nil {
		b.Fatal(err)
	}
	src, _, err := copybench.LoadSource(ctx, srcD, mb)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		dst := dstD.AddUser(b)
		srcLog := newLogProxy(b, srcD.PlainAddr)
		dstLog := newLogProxy(b, dstD.PlainAddr)
		s, d := srcD.Plaintext(src), dstD.Plaintext(dst)
		s.Host, s.Port = splitAddr(b, srcLog.addr)
		d.Host, d.Port = splitAddr(b, dstLog.addr)
		if latency > 0 {
			sp := proxytest.New(b, srcLog.addr, proxytest.WithLatency(latency))
			dp := proxytest.New(b, dstLog.addr, proxytest.WithLatency(latency))
			s.Host, s.Port = splitAddr(b, sp.Addr())
			d.Host, d.Port = splitAddr(b, dp.Addr())
		}
		srcCPU0, dstCPU0 := serverCPU(b, srcD), serverCPU(b, dstD)
		b.StartTimer()
		start := time.Now()
		res, err := mailcopy.Copy(ctx, mailcopy.Config{Source: s, Destination: d, SplitFolders: split})
		wall := time.Since(start)
		b.StopTimer()
		time.Sleep(300 * time.Millisecond) // the sessions' processes exit
		srcCPU, dstCPU := serverCPU(b, srcD)-srcCPU0, serverCPU(b, dstD)-dstCPU0
		if err != nil || res.Totals.Copied == 0 {
			b.Fatalf("copy: %v %+v", err, res.Totals)
		}
		b.Logf("wall %.2fs, source CPU %.2fs, destination CPU %.2fs, copied %d", wall.Seconds(), srcCPU, dstCPU, res.Totals.Copied)
		b.Logf("source:\n%s", srcLog.summary(start))
		b.Logf("destination:\n%s", dstLog.summary(start))
		if out := os.Getenv("IMAPCOPY_TRACE_OUT"); out != "" {
			os.WriteFile(out+".src", []byte(srcLog.dump(start)), 0o644)
			os.WriteFile(out+".dst", []byte(dstLog.dump(start)), 0o644)
		}
		b.StartTimer()
	}
}

// serverCPU is d's CPU seconds so far.
func serverCPU(tb testing.TB, d *imaptest.Dovecot) float64 {
	cpu, err := d.CPU()
	if err != nil {
		tb.Fatal(err)
	}
	return cpu.Seconds()
}

func splitAddr(tb testing.TB, addr string) (string, int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

// logProxy forwards plain IMAP connections and logs each command line the
// client sends and each tagged answer, with the time.
type logProxy struct {
	addr string
	mu   sync.Mutex
	n    int
	log  []logLine
}

type logLine struct {
	at   time.Time
	conn int
	dir  string // "C" client, "S" server
	text string
}

func newLogProxy(tb testing.TB, target string) *logProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	p := &logProxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.n++
			id := p.n
			p.mu.Unlock()
			go p.pipe(id, "C", c, s)
			go p.pipe(id, "S", s, c)
		}
	}()
	return p
}

func (p *logProxy) pipe(id int, dir string, from, to net.Conn) {
	defer to.Close()
	defer from.Close()
	pr, pw := io.Pipe()
	go func() {
		br := bufio.NewReaderSize(pr, 64<<10)
		cont := false
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				io.Copy(io.Discard, br)
				return
			}
			line = strings.TrimRight(line, "\r\n")
			lit := int64(-1)
			if i := strings.LastIndexByte(line, '{'); i >= 0 && strings.HasSuffix(line, "}") {
				if n, err := strconv.ParseInt(strings.TrimSuffix(line[i+1:len(line)-1], "+"), 10, 64); err == nil {
					lit = n
				}
			}
			record := !cont && (dir == "C" || !strings.HasPrefix(line, "* ") && !strings.HasPrefix(line, "+"))
			if record {
				p.mu.Lock()
				p.log = append(p.log, logLine{at: time.Now(), conn: id, dir: dir, text: line[:min(len(line), 100)]})
				p.mu.Unlock()
			}
			cont = lit >= 0
			if lit >= 0 {
				if _, err := io.CopyN(io.Discard, br, lit); err != nil {
					io.Copy(io.Discard, br)
					return
				}
			}
		}
	}()
	io.Copy(io.MultiWriter(to, pw), from)
	pw.Close()
}

// traceVerb is a command's name (UID FETCH, APPEND...) from its line.
func traceVerb(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return line
	}
	v := strings.ToUpper(f[1])
	if v == "UID" && len(f) > 2 {
		v += " " + strings.ToUpper(f[2])
	}
	return v
}

func (p *logProxy) summary(start time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	count := map[string]int{}
	for _, l := range p.log {
		if l.dir == "C" {
			count[traceVerb(l.text)]++
		}
	}
	var keys []string
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "  connections %d\n", p.n)
	for _, k := range keys {
		fmt.Fprintf(&sb, "  %-14s %d\n", k, count[k])
	}
	return sb.String()
}

func (p *logProxy) dump(start time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sb strings.Builder
	for _, l := range p.log {
		fmt.Fprintf(&sb, "%8.1fms c%-2d %s %s\n", float64(l.at.Sub(start).Microseconds())/1000, l.conn, l.dir, l.text)
	}
	return sb.String()
}
