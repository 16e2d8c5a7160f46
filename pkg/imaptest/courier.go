package imaptest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"imapcopy.dev/pkg/imapconn"
)

// CourierDirEnv names the environment variable that points at the unpacked
// Courier-IMAP packages; DefaultCourierDir is used when it is unset.
const (
	CourierDirEnv     = "IMAPTEST_COURIER_DIR"
	DefaultCourierDir = "/var/cache/imapcopy-test/courier"
)

const courierInstall = "as root: make test-deps (it runs: apt-get install -y libidn12 libcourier-unicode4 libgamin0 libgdbm6 && " +
	"cd $(mktemp -d) && apt-get download courier-imap courier-base courier-authlib && " +
	"for p in *.deb; do dpkg-deb -x $p " + DefaultCourierDir + "; done); " +
	"elsewhere set " + CourierDirEnv + " to the directory the packages were unpacked into"

// CourierCapability is what the Courier server announces after login: Debian's
// default IMAP_CAPABILITY (no LITERAL+, MULTIAPPEND, SPECIAL-USE or CONDSTORE).
const CourierCapability = "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"

// Courier is Courier-IMAP 5.0's imapd (Debian's courier-imap, unpacked, never
// installed: it conflicts with dovecot-imapd) behind a login front end of the
// harness: the front end accepts implicit TLS on loopback, answers CAPABILITY and
// checks LOGIN itself (Courier's own login needs its authdaemon, at a fixed system
// path), then hands the connection to a Courier imapd for the user's Maildir++
// ("." separator, "INBOX." prefix). Everything after LOGIN is Courier's.
type Courier struct {
	TLSAddr string         // 127.0.0.1:port, implicit TLS
	CAFile  string         // PEM of the CA that signed the server certificate
	CAPool  *x509.CertPool // the same CA
	Dir     string         // users' homes

	imapd    string
	libs     string
	ln       net.Listener
	tlsConf  *tls.Config
	cred     *syscall.Credential
	uid, gid int

	mu       sync.Mutex
	users    map[string]string // login -> password
	nextUser int
	closed   bool
	conns    map[net.Conn]bool
	wg       sync.WaitGroup
	stderr   strings.Builder
}

// StartCourier starts a Courier for tb, stopped by tb.Cleanup. When the unpacked
// packages are missing, tb fails with the command that provides them.
func StartCourier(tb testing.TB) *Courier {
	tb.Helper()
	c, err := RunCourier()
	if err != nil {
		tb.Fatalf("imaptest: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("imaptest: courier output tail:\n%s", c.LogTail(40))
		}
		if err := c.Close(); err != nil {
			tb.Errorf("imaptest: %v", err)
		}
	})
	return c
}

// RunCourier is StartCourier without a testing.TB: the caller stops it with Close.
func RunCourier() (_ *Courier, err error) {
	root := os.Getenv(CourierDirEnv)
	if root == "" {
		root = DefaultCourierDir
	}
	imapd := filepath.Join(root, "usr/bin/imapd")
	if _, err := os.Stat(imapd); err != nil {
		return nil, fmt.Errorf("courier-imap not found in %s (%w): unpack it, %s", root, err, courierInstall)
	}
	dir, err := os.MkdirTemp(tempBase(), "imaptest-courier-")
	if err != nil {
		return nil, fmt.Errorf("start courier: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start courier: %w", err)
	}
	c := &Courier{
		Dir: dir, imapd: imapd, users: map[string]string{}, conns: map[net.Conn]bool{},
		libs: strings.Join([]string{
			filepath.Join(root, "usr/lib"),
			filepath.Join(root, "usr/lib/x86_64-linux-gnu"),
			filepath.Join(root, "usr/lib/courier"),
			filepath.Join(root, "usr/lib/x86_64-linux-gnu/courier-authlib"),
		}, ":"),
		uid: os.Geteuid(), gid: os.Getegid(),
	}
	if os.Geteuid() == 0 {
		// imapd runs as nobody, like the mail it serves.
		u, err := user.Lookup("nobody")
		if err != nil {
			return nil, fmt.Errorf("start courier: system user nobody missing: %w", err)
		}
		c.uid, _ = strconv.Atoi(u.Uid)
		c.gid, _ = strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.gid)}
	}
	certs, err := writeCerts(dir)
	if err != nil {
		return nil, fmt.Errorf("start courier: %w", err)
	}
	c.CAFile, c.CAPool = certs.CAFile, certs.Pool
	cert, err := tls.LoadX509KeyPair(certs.CertFile, certs.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("start courier: %w", err)
	}
	c.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}}
	c.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start courier: %w", err)
	}
	c.TLSAddr = c.ln.Addr().String()
	c.wg.Add(1)
	go c.serve()
	return c, nil
}

func (c *Courier) serve() {
	defer c.wg.Done()
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			conn.Close()
			return
		}
		c.conns[conn] = true
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			c.session(tls.Server(conn, c.tlsConf))
			conn.Close()
			c.mu.Lock()
			delete(c.conns, conn)
			c.mu.Unlock()
		}()
	}
}

// session runs the front end until LOGIN succeeds, then Courier's imapd.
func (c *Courier) session(conn *tls.Conn) {
	if err := conn.Handshake(); err != nil {
		return
	}
	r := bufio.NewReader(conn)
	w := func(s string) bool {
		_, err := io.WriteString(conn, s+"\r\n")
		return err == nil
	}
	// The front end announces Courier's capabilities, as Courier's own login does.
	if !w("* OK [CAPABILITY " + CourierCapability + "] Courier-IMAP ready (imaptest login front end).") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		fields := strings.Fields(strings.TrimRight(line, "\r\n"))
		if len(fields) < 2 {
			if !w("* BAD Error in IMAP command received by server.") {
				return
			}
			continue
		}
		tag, cmd := fields[0], strings.ToUpper(fields[1])
		switch cmd {
		case "CAPABILITY":
			w("* CAPABILITY " + CourierCapability)
			w(tag + " OK CAPABILITY completed")
		case "NOOP":
			w(tag + " OK NOOP completed")
		case "LOGOUT":
			w("* BYE Courier-IMAP server shutting down")
			w(tag + " OK LOGOUT completed")
			return
		case "LOGIN":
			login, password, ok := parseLogin(fields[2:])
			c.mu.Lock()
			want, known := c.users[login]
			c.mu.Unlock()
			if !ok || !known || want != password {
				w(tag + " NO Login failed.")
				continue
			}
			c.runIMAPD(conn, r, tag, login)
			return
		default:
			w(tag + " NO Error in IMAP command received by server.")
		}
	}
}

// parseLogin reads LOGIN's two arguments as atoms or quoted strings (the harness's
// logins and passwords need no literal).
func parseLogin(args []string) (login, password string, ok bool) {
	if len(args) != 2 {
		return "", "", false
	}
	unq := func(s string) string {
		if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
			return s[1 : len(s)-1]
		}
		return s
	}
	return unq(args[0]), unq(args[1]), true
}

// runIMAPD hands the logged-in connection to Courier's imapd, which answers the
// LOGIN itself (IMAPLOGINTAG) and serves the user's Maildir until LOGOUT.
func (c *Courier) runIMAPD(conn net.Conn, r *bufio.Reader, tag, login string) {
	home := filepath.Join(c.Dir, login)
	cmd := exec.Command(c.imapd, "Maildir")
	cmd.Dir = home
	cmd.Env = []string{
		"PATH=/usr/bin:/bin",
		"LD_LIBRARY_PATH=" + c.libs,
		"IMAPLOGINTAG=" + tag,
		"AUTHENTICATED=" + login,
		"AUTHADDR=" + login,
		"HOME=" + home,
		"MAILDIR=" + filepath.Join(home, "Maildir"),
		"IMAP_CAPABILITY=" + CourierCapability,
		"IMAP_KEYWORDS=1",
		"IMAP_ACL=1",
		"IMAP_USELOCKS=1",
		"IMAP_TRASHFOLDERNAME=Trash",
		"IMAP_IDLE_TIMEOUT=60",
		"IMAP_MAILBOX_SANITY_CHECK=0",
		"TCPREMOTEIP=127.0.0.1",
		"TCPREMOTEPORT=0",
	}
	cmd.Stdout = conn
	var errBuf syncBuffer
	cmd.Stderr = &errBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: c.cred}
	// The copy of the client's bytes into imapd blocks on the connection until the
	// client closes it, so it is the harness's own goroutine, not one Wait waits for:
	// once imapd is gone (LOGOUT, or it could not start), the connection is closed,
	// which ends the copy.
	stdin, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err == nil {
		go func() {
			io.Copy(stdin, r)
			stdin.Close()
		}()
		err = cmd.Wait()
	}
	conn.Close()
	if err != nil {
		c.mu.Lock()
		fmt.Fprintf(&c.stderr, "imapd for %s: %v: %s\n", login, err, errBuf.String())
		c.mu.Unlock()
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 64<<10 {
		s.b.Write(p)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// AddUser adds a user with a unique name, a random password and an empty Maildir
// with INBOX.Sent, INBOX.Drafts and INBOX.Trash, and returns its account for
// implicit TLS. It fails tb on error; Courier users take no options.
func (c *Courier) AddUser(tb testing.TB, opts ...UserOption) imapconn.Account {
	tb.Helper()
	return must(tb)(c.NewUser(opts...))
}

// NewUser is AddUser without a testing.TB.
func (c *Courier) NewUser(opts ...UserOption) (imapconn.Account, error) {
	if err := noOptions("courier", opts); err != nil {
		return imapconn.Account{}, err
	}
	c.mu.Lock()
	c.nextUser++
	login := fmt.Sprintf("user%d", c.nextUser)
	c.mu.Unlock()
	home := filepath.Join(c.Dir, login)
	root := filepath.Join(home, "Maildir")
	for _, d := range []string{root, filepath.Join(root, ".Sent"), filepath.Join(root, ".Drafts"), filepath.Join(root, ".Trash")} {
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(d, sub), 0o700); err != nil {
				return imapconn.Account{}, fmt.Errorf("add user: %w", err)
			}
		}
		// Courier writes a folder's UID database only once it holds a message: an
		// empty folder gets a new UIDVALIDITY in every session. Give each one its
		// database from the start, as a folder that has been used has.
		uiddb := fmt.Sprintf("1 %d 1\n", time.Now().Unix())
		if err := os.WriteFile(filepath.Join(d, "courierimapuiddb"), []byte(uiddb), 0o600); err != nil {
			return imapconn.Account{}, fmt.Errorf("add user: %w", err)
		}
		if d != root {
			if err := os.WriteFile(filepath.Join(d, "maildirfolder"), nil, 0o600); err != nil {
				return imapconn.Account{}, fmt.Errorf("add user: %w", err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(root, "courierimapsubscribed"), []byte("INBOX.Sent\nINBOX.Drafts\nINBOX.Trash\n"), 0o600); err != nil {
		return imapconn.Account{}, fmt.Errorf("add user: %w", err)
	}
	if os.Geteuid() == 0 {
		err := filepath.Walk(home, func(path string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, c.uid, c.gid)
		})
		if err != nil {
			return imapconn.Account{}, fmt.Errorf("add user: %w", err)
		}
	}
	password := randomHex(12)
	c.mu.Lock()
	c.users[login] = password
	c.mu.Unlock()
	host, port := splitAddr(c.TLSAddr)
	return imapconn.Account{
		Host: host, Port: port, Security: imapconn.SecurityTLS,
		Login: login, Password: password, RootCAs: c.CAPool,
	}, nil
}

// LogTail returns the last n lines of what the imapd processes reported on failure.
func (c *Courier) LogTail(n int) string {
	c.mu.Lock()
	out := c.stderr.String()
	c.mu.Unlock()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Close stops accepting, cuts every connection (their imapd exit with them) and
// removes the users' homes. It is safe to call twice.
func (c *Courier) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	c.ln.Close()
	c.wg.Wait()
	if err := os.RemoveAll(c.Dir); err != nil {
		return fmt.Errorf("remove courier dir: %w", err)
	}
	return nil
}
