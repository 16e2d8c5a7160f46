package imaptest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
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
	"text/template"
	"time"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/imapconn"
)

// Flavour selects the mailbox layout and namespace of a Dovecot server.
type Flavour int

const (
	FlavourSlash Flavour = iota + 1 // "/" separator, no prefix (maildir LAYOUT=fs)
	FlavourDot                      // "." separator, "INBOX." prefix (Maildir++), like Courier/Cyrus
)

func (f Flavour) String() string {
	switch f {
	case FlavourSlash:
		return "slash"
	case FlavourDot:
		return "dot"
	}
	return "Flavour(" + strconv.Itoa(int(f)) + ")"
}

// Separator is the flavour's hierarchy separator.
func (f Flavour) Separator() string {
	if f == FlavourDot {
		return "."
	}
	return "/"
}

// Prefix is the flavour's personal namespace prefix.
func (f Flavour) Prefix() string {
	if f == FlavourDot {
		return "INBOX."
	}
	return ""
}

// specialUse lists the special-use folders a flavour's server has, as names inside
// the namespace (without its prefix). auto says whether Dovecot creates the folder by
// itself; the others carry their attribute once created.
func (f Flavour) specialUse() []specialFolder {
	if f == FlavourDot {
		return []specialFolder{
			{`\Sent`, "Sent Messages", true},
			{`\Drafts`, "Drafts", true},
			{`\Trash`, "Deleted Messages", true},
			{`\Junk`, "Spam", true},
			{`\Archive`, "Archive", false},
		}
	}
	return []specialFolder{
		{`\Sent`, "Sent", true},
		{`\Drafts`, "Drafts", true},
		{`\Trash`, "Trash", true},
		{`\Junk`, "Junk", true},
		{`\Archive`, "Archive", true},
	}
}

type specialFolder struct {
	Attr, Name string
	Auto       bool
}

// Dovecot is a running Dovecot server owned by a test (StartDovecot) or by a caller that
// stops it with Close (Start).
type Dovecot struct {
	Flavour   Flavour
	TLSAddr   string         // 127.0.0.1:port, implicit TLS
	PlainAddr string         // 127.0.0.1:port, plain text with STARTTLS
	CAFile    string         // PEM of the CA that signed the server certificate
	CAPool    *x509.CertPool // the same CA, ready for tls.Config.RootCAs
	Dir       string         // the server's private directory (config, log, mail)
	LogFile   string
	// SpecialUse maps a special-use attribute (`\Sent`, ...) to the full mailbox name
	// of the folder that carries it on this server (`Sent`, `INBOX.Sent Messages`).
	SpecialUse map[string]string

	passwdDir string // one passwd-file per user
	mailDir   string
	cmd       *exec.Cmd
	exited    chan struct{}
	stderr    *bytes.Buffer
	oauth     *introspector

	mu       sync.Mutex
	nextUser int
	closed   bool
}

// StartDovecot starts a Dovecot of the given flavour for tb, stopped by tb.Cleanup.
// When tb has failed by then, the tail of Dovecot's log is logged. A failure to start
// fails tb with the reason and the log tail.
func StartDovecot(tb testing.TB, f Flavour, opts ...Option) *Dovecot {
	tb.Helper()
	d, err := Start(f, opts...)
	if err != nil {
		tb.Fatalf("imaptest: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("imaptest: dovecot (%s) log tail:\n%s", d.Flavour, d.LogTail(40))
		}
		if err := d.Close(); err != nil {
			tb.Errorf("imaptest: %v", err)
		}
	})
	return d
}

// Start starts a Dovecot of the given flavour; the caller stops it with Close. Use it
// where there is no testing.TB: TestMain, benchmarks run as commands.
func Start(f Flavour, opts ...Option) (*Dovecot, error) {
	if f != FlavourSlash && f != FlavourDot {
		return nil, fmt.Errorf("start dovecot: unknown flavour %d", int(f))
	}
	cfg := serverConfig{maxConnections: 50}
	for _, o := range opts {
		o(&cfg)
	}
	bin, err := findDovecot()
	if err != nil {
		return nil, err
	}
	var lastErr error
	// Ports are picked by binding and releasing them: another process may take one in
	// between, so a failed bind is retried with fresh ports.
	for attempt := 0; attempt < 3; attempt++ {
		d, err := start(bin, f, cfg)
		if err == nil {
			return d, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, lastErr
}

var errAddrInUse = errors.New("address in use")

// Option configures a server started by Start or StartDovecot.
type Option func(*serverConfig)

type serverConfig struct {
	fsync          bool
	maxConnections int
}

// WithMaxConnections sets mail_max_userip_connections, the number of connections a
// user may have from one address (default here 50; Dovecot's own default is 10).
func WithMaxConnections(n int) Option {
	return func(c *serverConfig) { c.maxConnections = n }
}

// WithFsync keeps Dovecot's default mail_fsync (optimized): a disk sync per APPEND
// transaction, as production servers do. Benchmarks want it; tests default to
// mail_fsync = never, which is quicker and loses nothing unless the machine crashes.
func WithFsync() Option {
	return func(c *serverConfig) { c.fsync = true }
}

func findDovecot() (string, error) {
	for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	return "", errors.New("dovecot not found: install the Debian package dovecot-imapd " +
		"(as root: apt-get install -y dovecot-imapd; keep its own service from starting)")
}

// runAs holds the system users Dovecot runs as.
type runAs struct {
	LoginUser, InternalUser string // default_login_user, default_internal_user
	InternalGroup           string // default_internal_group
	Unprivileged            bool   // not root: no chroot either
	MailUID, MailGID        int    // owner of the mail
}

func systemUsers() (runAs, error) {
	if os.Geteuid() != 0 {
		// Unprivileged: Dovecot cannot switch users, so every process and the mail
		// belong to the current user.
		u, err := user.Current()
		if err != nil {
			return runAs{}, fmt.Errorf("current user: %w", err)
		}
		g, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
		if err != nil {
			return runAs{}, fmt.Errorf("current group: %w", err)
		}
		return runAs{
			LoginUser: u.Username, InternalUser: u.Username, InternalGroup: g.Name, Unprivileged: true,
			MailUID: os.Geteuid(), MailGID: os.Getegid(),
		}, nil
	}
	r := runAs{LoginUser: "dovenull", InternalUser: "dovecot", InternalGroup: "dovecot"}
	for _, name := range []string{r.LoginUser, r.InternalUser} {
		if _, err := user.Lookup(name); err != nil {
			return runAs{}, fmt.Errorf("system user %s missing (it comes with the Debian package dovecot-core): %w", name, err)
		}
	}
	// The mail belongs to one unprivileged system user.
	mail, err := user.Lookup("nobody")
	if err != nil {
		return runAs{}, fmt.Errorf("system user nobody missing: %w", err)
	}
	r.MailUID, _ = strconv.Atoi(mail.Uid)
	r.MailGID, _ = strconv.Atoi(mail.Gid)
	return r, nil
}

// tempBase returns a short parent for server dirs: Dovecot's unix sockets live under
// base_dir and a socket path must stay under 108 bytes.
func tempBase() string {
	if t := os.TempDir(); len(t) <= 40 {
		return t
	}
	return "/tmp"
}

func start(bin string, f Flavour, cfg serverConfig) (_ *Dovecot, err error) {
	users, err := systemUsers()
	if err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	dir, err := os.MkdirTemp(tempBase(), "imaptest-")
	if err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	// The login, auth and mail processes run as other users and must reach their files.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	d := &Dovecot{
		Flavour:    f,
		Dir:        dir,
		LogFile:    filepath.Join(dir, "dovecot.log"),
		passwdDir:  filepath.Join(dir, "users"),
		mailDir:    filepath.Join(dir, "mail"),
		SpecialUse: map[string]string{},
		exited:     make(chan struct{}),
		stderr:     &bytes.Buffer{},
	}
	for _, sf := range f.specialUse() {
		d.SpecialUse[sf.Attr] = f.Prefix() + sf.Name
	}
	certs, err := writeCerts(dir)
	if err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	d.CAFile, d.CAPool = certs.CAFile, certs.Pool
	if err := os.Mkdir(d.mailDir, 0o755); err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(d.mailDir, users.MailUID, users.MailGID); err != nil {
			return nil, fmt.Errorf("start dovecot: %w", err)
		}
	}
	if err := os.Mkdir(d.passwdDir, 0o755); err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}

	d.oauth, err = newIntrospector()
	if err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	defer func() {
		if err != nil {
			d.oauth.Close()
		}
	}()
	oauthConf := filepath.Join(dir, "oauth2.conf")
	if err := os.WriteFile(oauthConf, []byte(d.oauth.dovecotConfig()), 0o644); err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}

	tlsPort, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	plainPort, err := freePortBut(tlsPort)
	if err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	d.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	d.PlainAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(plainPort))

	var conf bytes.Buffer
	err = configTemplate.Execute(&conf, configData{
		Instance:  "imaptest-" + filepath.Base(dir),
		Dir:       dir,
		Users:     users,
		Cert:      certs,
		Passwd:    filepath.Join(d.passwdDir, "%n"),
		MailDir:   d.mailDir,
		OAuthConf: oauthConf,
		TLSPort:   tlsPort,
		PlainPort: plainPort,
		Flavour:   f,
		Location:  map[Flavour]string{FlavourSlash: "maildir:~/Maildir:LAYOUT=fs", FlavourDot: "maildir:~/Maildir"}[f],
		Separator: f.Separator(),
		Prefix:    f.Prefix(),
		Special:   f.specialUse(),
		Fsync:     cfg.fsync,
		MaxConns:  cfg.maxConnections,
	})
	if err != nil {
		return nil, fmt.Errorf("start dovecot: config: %w", err)
	}
	confFile := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confFile, conf.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}

	d.cmd = exec.Command(bin, "-F", "-c", confFile)
	d.cmd.Dir = dir
	d.cmd.Stdout = d.stderr
	d.cmd.Stderr = d.stderr
	// Its own process group, so that a stuck server is killed with all its children;
	// and the server goes when the test process dies.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	go func() {
		d.cmd.Wait()
		close(d.exited)
	}()
	if err := d.waitReady(10 * time.Second); err != nil {
		_ = killGroup("dovecot", d.cmd, d.exited)
		msg := d.stderr.String() + d.LogTail(20)
		if strings.Contains(msg, "Address already in use") {
			return nil, fmt.Errorf("start dovecot: %w: %s", errAddrInUse, msg)
		}
		return nil, fmt.Errorf("start dovecot (%s): %w\n%s", f, err, msg)
	}
	return d, nil
}

// freePortBut is a free port other than taken: two ports picked one after the other
// can be the same, the first listener being closed before the second is opened
// (Dovecot then refuses its configuration: "duplicate listener").
func freePortBut(taken int) (int, error) {
	for {
		p, err := freePort()
		if err != nil || p != taken {
			return p, err
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady waits until both listeners greet: the plain one in clear, the TLS one after
// a handshake that verifies the certificate against CAPool.
func (d *Dovecot) waitReady(timeout time.Duration) error {
	return waitGreetings("dovecot", d.PlainAddr, d.TLSAddr, d.CAPool, d.cmd, d.exited, timeout)
}

// waitGreetings waits until a test server greets ("* OK") on its plain address in clear
// and on its TLS address after a handshake verified against pool, or fails when the
// server's master exits or timeout passes.
func waitGreetings(name, plainAddr, tlsAddr string, pool *x509.CertPool, cmd *exec.Cmd, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	ready := func(addr string, secure bool) error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		if secure {
			tc := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
			if err := tc.Handshake(); err != nil {
				return err
			}
			conn = tc
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "* OK") {
			return fmt.Errorf("unexpected greeting %q", line)
		}
		return nil
	}
	for _, addr := range []string{plainAddr, tlsAddr} {
		for {
			err := ready(addr, addr == tlsAddr)
			if err == nil {
				break
			}
			select {
			case <-exited:
				return fmt.Errorf("%s exited: %v", name, cmd.ProcessState)
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %v: %w", addr, timeout, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// Close stops the server and removes its directory. It is safe to call twice.
func (d *Dovecot) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	err := killGroup("dovecot", d.cmd, d.exited)
	d.oauth.Close()
	return errors.Join(err, removeDir("dovecot", d.Dir))
}

// killGroup kills a test server's master and all its children at once (they share its
// process group; a test server has nothing to save, and a graceful stop takes a second
// or more), and waits until exited is closed.
func killGroup(name string, cmd *exec.Cmd, exited <-chan struct{}) error {
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	<-exited
	return nil
}

// removeDir removes a stopped test server's directory. A child killed in the middle of
// a write may still finish it: the removal is retried for a little while.
func removeDir(name, dir string) error {
	var err error
	for range 20 {
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("remove %s dir: %w", name, err)
}

// LogTail returns the last n lines of Dovecot's log.
func (d *Dovecot) LogTail(n int) string {
	data, err := os.ReadFile(d.LogFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// UserOption configures a user made by AddUser or NewUser.
type UserOption func(*userConfig)

type userConfig struct {
	quota    int64
	password string
}

// WithQuota limits the user's storage to about bytes (Dovecot counts in KiB, rounding
// down).
func WithQuota(bytes int64) UserOption {
	return func(c *userConfig) { c.quota = bytes }
}

// SetQuota changes the storage limit of a user made with WithQuota to about bytes
// (more than 0), the mail left as it is, and waits until a new session of the user
// reports the new limit (GETQUOTAROOT). Sessions opened before keep the old one.
func (d *Dovecot) SetQuota(ctx context.Context, acct imapconn.Account, bytes int64) error {
	if bytes < 1024 {
		return fmt.Errorf("set quota: %d bytes: want at least 1 KiB", bytes)
	}
	file := filepath.Join(d.passwdDir, acct.Login)
	d.mu.Lock()
	old, err := os.ReadFile(file)
	if err != nil {
		d.mu.Unlock()
		return fmt.Errorf("set quota: %w", err)
	}
	line, _, _ := strings.Cut(strings.TrimSuffix(string(old), "\n"), "userdb_quota_rule=")
	line += "userdb_quota_rule=*:bytes=" + strconv.FormatInt(bytes, 10)
	err = os.WriteFile(file+".tmp", []byte(line+"\n"), 0o644)
	if err == nil {
		// Dovecot reads the file again when its modification time changes,
		// to the second: a rewrite within the second must not go unseen.
		var fi os.FileInfo
		if fi, err = os.Stat(file); err == nil {
			later := time.Now()
			if fi.ModTime().After(later) {
				later = fi.ModTime()
			}
			later = later.Add(2 * time.Second)
			err = os.Chtimes(file+".tmp", later, later)
		}
	}
	if err == nil {
		err = os.Rename(file+".tmp", file)
	}
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("set quota: %w", err)
	}
	want := (bytes + 1023) / 1024 // GETQUOTAROOT counts KiB, rounded up
	got, last := "no answer", ""
	for {
		n, err := storageLimit(ctx, acct)
		if err == nil && n == want {
			return nil
		}
		if err == nil {
			got = fmt.Sprintf("%d KiB", n)
		} else if ctx.Err() == nil {
			last = "; last try: " + err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("set quota: want a limit of %d KiB, the server reported %s%s: %w", want, got, last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// storageLimit returns the STORAGE limit of acct's INBOX quota root in KiB, 0
// when there is none.
func storageLimit(ctx context.Context, acct imapconn.Account) (int64, error) {
	c, err := Dial(ctx, acct)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	roots, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil {
		return 0, err
	}
	for _, r := range roots {
		if res, ok := r.Resources[imap.QuotaResourceStorage]; ok {
			return res.Limit, nil
		}
	}
	return 0, nil
}

// WithPassword gives the user this password instead of a random one (a canary that
// tests look for in every output). It may hold any character but ':' and line ends.
func WithPassword(password string) UserOption {
	return func(c *userConfig) { c.password = password }
}

// AddUser adds a fresh user with a unique name and a random password and returns its
// account for implicit TLS (RootCAs = CAPool), once the server lets it log in. It fails
// tb on error.
func (d *Dovecot) AddUser(tb testing.TB, opts ...UserOption) imapconn.Account {
	tb.Helper()
	return must(tb)(d.NewUser(opts...))
}

// NewUser is AddUser without a testing.TB.
func (d *Dovecot) NewUser(opts ...UserOption) (imapconn.Account, error) {
	var cfg userConfig
	for _, o := range opts {
		o(&cfg)
	}
	password := randomHex(12)
	if cfg.password != "" {
		if strings.ContainsAny(cfg.password, ":\r\n") {
			return imapconn.Account{}, errors.New("add user: a passwd-file password cannot hold ':', CR or LF")
		}
		password = cfg.password
	}

	acct, err := d.writeUser(password, cfg)
	if err != nil {
		return imapconn.Account{}, err
	}
	// Wait until the server lets the user in: the tests that use it never have to.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		c, err := Dial(ctx, acct)
		if err == nil {
			c.Close()
			return acct, nil
		}
		select {
		case <-ctx.Done():
			return imapconn.Account{}, fmt.Errorf("add user: %s cannot log in: %w", acct.Login, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// writeUser creates the user's maildir and passwd-file.
func (d *Dovecot) writeUser(password string, cfg userConfig) (imapconn.Account, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextUser++
	login := fmt.Sprintf("user%d", d.nextUser)
	if err := d.makeMaildir(login); err != nil {
		return imapconn.Account{}, fmt.Errorf("add user: %w", err)
	}
	line := login + ":{PLAIN}" + password + "::::::"
	if cfg.quota > 0 {
		line += "userdb_quota_rule=*:bytes=" + strconv.FormatInt(cfg.quota, 10)
	}
	// One passwd-file per user: Dovecot re-reads a changed passwd-file at most once a
	// second, so a user appended to a shared file could be unknown for a moment. A new
	// file is read at the first login. It appears whole, by rename.
	file := filepath.Join(d.passwdDir, login)
	if err := os.WriteFile(file+".tmp", []byte(line+"\n"), 0o644); err != nil {
		return imapconn.Account{}, fmt.Errorf("add user: %w", err)
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		return imapconn.Account{}, fmt.Errorf("add user: %w", err)
	}
	return d.Account(login, password), nil
}

// makeMaildir creates the user's maildir with the automatic special-use folders in it.
// Dovecot 2.3.19 creates such folders lazily, when first opened, and two sessions of
// one user that open the same one at once make it panic (EDEADLK on the mailbox list
// index): parallel tests would fail at random.
func (d *Dovecot) makeMaildir(login string) error {
	home := filepath.Join(d.mailDir, login)
	root := filepath.Join(home, "Maildir")
	dirs := []string{root}
	for _, sf := range d.Flavour.specialUse() {
		if !sf.Auto {
			continue
		}
		if d.Flavour == FlavourDot {
			dirs = append(dirs, filepath.Join(root, "."+sf.Name)) // Maildir++
		} else {
			dirs = append(dirs, filepath.Join(root, sf.Name)) // LAYOUT=fs
		}
	}
	for _, dir := range dirs {
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				return err
			}
		}
		if dir != root {
			if err := os.WriteFile(filepath.Join(dir, "maildirfolder"), nil, 0o600); err != nil {
				return err
			}
		}
	}
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid := d.mailOwner()
	return filepath.Walk(home, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// mailOwner is the owner of the mail directory (the mail user when run as root).
func (d *Dovecot) mailOwner() (uid, gid int) {
	fi, err := os.Stat(d.mailDir)
	if err != nil {
		return os.Geteuid(), os.Getegid()
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// Account returns the account for login and password over implicit TLS.
func (d *Dovecot) Account(login, password string) imapconn.Account {
	host, port := splitAddr(d.TLSAddr)
	return imapconn.Account{
		Host: host, Port: port, Security: imapconn.SecurityTLS,
		Login: login, Password: password, RootCAs: d.CAPool,
	}
}

// StartTLS returns acct changed to reach this server's plain port with STARTTLS.
func (d *Dovecot) StartTLS(acct imapconn.Account) imapconn.Account {
	acct.Host, acct.Port = splitAddr(d.PlainAddr)
	acct.Security = imapconn.SecurityStartTLS
	return acct
}

// Plaintext returns acct changed to reach this server's plain port without TLS.
func (d *Dovecot) Plaintext(acct imapconn.Account) imapconn.Account {
	acct.Host, acct.Port = splitAddr(d.PlainAddr)
	acct.Security = imapconn.SecurityPlaintext
	return acct
}

// OAuth2Token issues a bearer token that the server accepts for login with XOAUTH2 or
// OAUTHBEARER until the server stops. Set it as the account's OAuth2Token.
func (d *Dovecot) OAuth2Token(login string) string {
	return d.oauth.issue(login)
}

func splitAddr(addr string) (string, int) {
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	return host, port
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type configData struct {
	Instance, Dir       string
	Users               runAs
	Cert                certFiles
	Passwd, MailDir     string
	OAuthConf           string
	TLSPort, PlainPort  int
	Flavour             Flavour
	Location, Separator string
	Prefix              string
	Special             []specialFolder
	Fsync               bool
	MaxConns            int
}

var configTemplate = template.Must(template.New("dovecot.conf").Parse(`# generated by imaptest
instance_name = {{.Instance}}
base_dir = {{.Dir}}/run
state_dir = {{.Dir}}/state
log_path = {{.Dir}}/dovecot.log
listen = 127.0.0.1
protocols = imap
shutdown_clients = yes

ssl = yes
ssl_cert = <{{.Cert.CertFile}}
ssl_key = <{{.Cert.KeyFile}}
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_username_format = %n
auth_failure_delay = 0

default_login_user = {{.Users.LoginUser}}
default_internal_user = {{.Users.InternalUser}}
default_internal_group = {{.Users.InternalGroup}}
first_valid_uid = {{.Users.MailUID}}
last_valid_uid = {{.Users.MailUID}}
first_valid_gid = {{.Users.MailGID}}
last_valid_gid = {{.Users.MailGID}}

mail_location = {{.Location}}
mail_plugins = quota
{{- if not .Fsync}}
mail_fsync = never
{{- end}}

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {{.Passwd}}
}
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {{.OAuthConf}}
}
userdb {
  driver = passwd-file
  args = username_format=%n {{.Passwd}}
  default_fields = uid={{.Users.MailUID}} gid={{.Users.MailGID}} home={{.MailDir}}/%n
}

namespace inbox {
  inbox = yes
  separator = {{.Separator}}
  prefix = {{.Prefix}}
{{- range .Special}}
  mailbox "{{.Name}}" {
    special_use = {{.Attr}}
    auto = {{if .Auto}}subscribe{{else}}no{{end}}
  }
{{- end}}
}

plugin {
  quota = maildir:User quota
}

protocol imap {
  mail_plugins = $mail_plugins imap_quota
  mail_max_userip_connections = {{.MaxConns}}
}

service imap-login {
{{- if .Users.Unprivileged}}
  chroot =
{{- end}}
  service_count = 0
  process_min_avail = 1
  inet_listener imap {
    address = 127.0.0.1
    port = {{.PlainPort}}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = {{.TLSPort}}
    ssl = yes
  }
}
# No growing delay after failed logins from the same address (tests fail logins on purpose).
service anvil {
{{- if .Users.Unprivileged}}
  chroot =
{{- end}}
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
`))

// must is the body of every harness's AddUser: the account NewUser made, or tb fails.
func must(tb testing.TB) func(imapconn.Account, error) imapconn.Account {
	return func(acct imapconn.Account, err error) imapconn.Account {
		tb.Helper()
		if err != nil {
			tb.Fatalf("imaptest: %v", err)
		}
		return acct
	}
}

// noOptions refuses user options on a server harness that has none (quotas are
// Dovecot's only).
func noOptions(server string, opts []UserOption) error {
	var cfg userConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.quota != 0 {
		return errors.New("add user: the " + server + " harness has no quotas")
	}
	if cfg.password != "" {
		return errors.New("add user: the " + server + " harness chooses its passwords")
	}
	return nil
}
