package imaptest

import (
	"bytes"
	"context"
	"crypto/x509"
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

	"imapcopy.dev/pkg/imapconn"
)

// CyrusDirEnv names the environment variable that points at the unpacked Cyrus
// packages; DefaultCyrusDir is used when it is unset.
const (
	CyrusDirEnv     = "IMAPTEST_CYRUS_DIR"
	DefaultCyrusDir = "/var/cache/imapcopy-test/cyrus"
)

// cyrusInstall is the command that prepares DefaultCyrusDir, quoted in errors.
const cyrusInstall = "as root: make test-deps (it runs: apt-get install -y libxapian30 libpcre3 libical3 libwrap0 sasl2-bin && " +
	"cd $(mktemp -d) && apt-get download cyrus-common cyrus-imapd && " +
	"for p in *.deb; do dpkg-deb -x $p " + DefaultCyrusDir + "; done); " +
	"elsewhere set " + CyrusDirEnv + " to the directory the packages were unpacked into"

// Cyrus is a running Cyrus IMAP server (Debian's cyrus-imapd 3.6, unpacked, never
// installed: it conflicts with dovecot-imapd) owned by a test (StartCyrus) or by a
// caller that stops it with Close (RunCyrus).
type Cyrus struct {
	Flavour   Flavour
	TLSAddr   string         // 127.0.0.1:port, implicit TLS
	PlainAddr string         // 127.0.0.1:port, plain text with STARTTLS
	CAFile    string         // PEM of the CA that signed the server certificate
	CAPool    *x509.CertPool // the same CA, ready for tls.Config.RootCAs
	Dir       string         // the server's private directory (config, spool, state)
	// SpecialUse maps a special-use attribute (`\Sent`, ...) to the full mailbox name
	// of the folder that carries it on this server (`Sent`, `INBOX.Sent`). Every
	// user has these folders from the first login.
	SpecialUse map[string]string

	sasldb   string
	cmd      *exec.Cmd
	exited   chan struct{}
	output   *bytes.Buffer
	outputMu *sync.Mutex

	mu       sync.Mutex
	nextUser int
	closed   bool
}

// cyrusSpecial are the folders Cyrus creates for a user at the first login, with
// their special-use attribute (names inside the namespace).
var cyrusSpecial = []specialFolder{
	{`\Sent`, "Sent", true},
	{`\Drafts`, "Drafts", true},
	{`\Trash`, "Trash", true},
	{`\Junk`, "Junk", true},
	{`\Archive`, "Archive", true},
}

// StartCyrus starts a Cyrus of the given flavour for tb, stopped by tb.Cleanup:
// FlavourSlash is `unixhierarchysep: yes` with `altnamespace: yes` ("/", no prefix),
// FlavourDot is Cyrus's default namespace ("." and the "INBOX." prefix). When the
// unpacked packages are missing, tb fails with the command that provides them.
func StartCyrus(tb testing.TB, f Flavour) *Cyrus {
	tb.Helper()
	c, err := RunCyrus(f)
	if err != nil {
		tb.Fatalf("imaptest: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("imaptest: cyrus (%s) output tail:\n%s", c.Flavour, c.LogTail(40))
		}
		if err := c.Close(); err != nil {
			tb.Errorf("imaptest: %v", err)
		}
	})
	return c
}

// RunCyrus is StartCyrus without a testing.TB: the caller stops the server with Close.
func RunCyrus(f Flavour) (*Cyrus, error) {
	if f != FlavourSlash && f != FlavourDot {
		return nil, fmt.Errorf("start cyrus: unknown flavour %d", int(f))
	}
	root, err := findCyrus()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := startCyrus(root, f)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, lastErr
}

// findCyrus returns the directory the Cyrus packages were unpacked into.
func findCyrus() (string, error) {
	root := os.Getenv(CyrusDirEnv)
	if root == "" {
		root = DefaultCyrusDir
	}
	if _, err := os.Stat(filepath.Join(root, "usr/lib/cyrus/bin/master")); err != nil {
		return "", fmt.Errorf("cyrus not found in %s (%w): unpack it, %s", root, err, cyrusInstall)
	}
	if _, err := os.Stat(saslpasswd2); err != nil {
		return "", fmt.Errorf("%s missing (Debian package sasl2-bin): %s", saslpasswd2, cyrusInstall)
	}
	return root, nil
}

const saslpasswd2 = "/usr/sbin/saslpasswd2"

// cyrusUser is the system user Cyrus runs as and owns its files: nobody when the
// tests run as root, the current user otherwise.
func cyrusUser() (name, group string, uid, gid int, err error) {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return "", "", 0, 0, fmt.Errorf("system user nobody missing: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		g, err := user.LookupGroupId(u.Gid)
		if err != nil {
			return "", "", 0, 0, fmt.Errorf("group of nobody: %w", err)
		}
		return u.Username, g.Name, uid, gid, nil
	}
	u, err := user.Current()
	if err != nil {
		return "", "", 0, 0, fmt.Errorf("current user: %w", err)
	}
	g, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
	if err != nil {
		return "", "", 0, 0, fmt.Errorf("current group: %w", err)
	}
	return u.Username, g.Name, os.Geteuid(), os.Getegid(), nil
}

func startCyrus(root string, f Flavour) (_ *Cyrus, err error) {
	userName, groupName, uid, gid, err := cyrusUser()
	if err != nil {
		return nil, fmt.Errorf("start cyrus: %w", err)
	}
	dir, err := os.MkdirTemp(tempBase(), "imaptest-cyrus-")
	if err != nil {
		return nil, fmt.Errorf("start cyrus: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start cyrus: %w", err)
	}
	c := &Cyrus{
		Flavour:    f,
		Dir:        dir,
		sasldb:     filepath.Join(dir, "sasldb2"),
		SpecialUse: map[string]string{},
		exited:     make(chan struct{}),
		output:     &bytes.Buffer{},
		outputMu:   &sync.Mutex{},
	}
	for _, sf := range cyrusSpecial {
		c.SpecialUse[sf.Attr] = f.Prefix() + sf.Name
	}
	certs, err := writeCerts(dir)
	if err != nil {
		return nil, fmt.Errorf("start cyrus: %w", err)
	}
	c.CAFile, c.CAPool = certs.CAFile, certs.Pool
	for _, sub := range []string{"conf", "spool", "run"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("start cyrus: %w", err)
		}
	}
	tlsPort, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("start cyrus: %w", err)
	}
	plainPort, err := freePortBut(tlsPort)
	if err != nil {
		return nil, fmt.Errorf("start cyrus: %w", err)
	}
	c.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	c.PlainAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(plainPort))

	data := cyrusConfig{
		Dir: dir, Bin: filepath.Join(root, "usr/lib/cyrus/bin"),
		User: userName, Group: groupName, Cert: certs, SaslDB: c.sasldb,
		TLSPort: tlsPort, PlainPort: plainPort, Slash: f == FlavourSlash,
		Special: cyrusSpecial,
	}
	for name, tmpl := range map[string]*template.Template{"imapd.conf": cyrusIMAPDConf, "cyrus.conf": cyrusConf} {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, data); err != nil {
			return nil, fmt.Errorf("start cyrus: %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("start cyrus: %w", err)
		}
	}
	// An empty sasldb owned by the server's user, so that saslpasswd2 run later by
	// root keeps it readable for the server.
	if err := c.saslpasswd("imaptest-init", randomHex(8)); err != nil {
		return nil, fmt.Errorf("start cyrus: %w", err)
	}
	if os.Geteuid() == 0 {
		err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if path == dir {
				return nil
			}
			return os.Lchown(path, uid, gid)
		})
		if err != nil {
			return nil, fmt.Errorf("start cyrus: %w", err)
		}
	}

	c.cmd = exec.Command(filepath.Join(data.Bin, "master"),
		"-C", filepath.Join(dir, "imapd.conf"), "-M", filepath.Join(dir, "cyrus.conf"),
		"-p", filepath.Join(dir, "run", "master.pid"), "-D")
	c.cmd.Dir = dir
	c.cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(root, "usr/lib/x86_64-linux-gnu"))
	w := &lockedWriter{buf: c.output, mu: c.outputMu}
	c.cmd.Stdout, c.cmd.Stderr = w, w
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start cyrus: %w", err)
	}
	go func() {
		c.cmd.Wait()
		close(c.exited)
	}()
	if err := c.waitReady(10 * time.Second); err != nil {
		_ = killGroup("cyrus", c.cmd, c.exited)
		msg := c.LogTail(20)
		if strings.Contains(msg, "Address already in use") {
			return nil, fmt.Errorf("start cyrus: %w: %s", errAddrInUse, msg)
		}
		return nil, fmt.Errorf("start cyrus (%s): %w\n%s\n(the packages come from: %s)", f, err, msg, cyrusInstall)
	}
	return c, nil
}

type lockedWriter struct {
	buf *bytes.Buffer
	mu  *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// waitReady waits until both listeners greet.
func (c *Cyrus) waitReady(timeout time.Duration) error {
	return waitGreetings("cyrus master", c.PlainAddr, c.TLSAddr, c.CAPool, c.cmd, c.exited, timeout)
}

// Close stops the server and removes its directory. It is safe to call twice.
func (c *Cyrus) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	return errors.Join(killGroup("cyrus", c.cmd, c.exited), removeDir("cyrus", c.Dir))
}

// LogTail returns the last n lines of the master's output. Cyrus logs through
// syslog only; what reaches this output are start-up errors.
func (c *Cyrus) LogTail(n int) string {
	c.outputMu.Lock()
	out := c.output.String()
	c.outputMu.Unlock()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// AddUser adds a fresh user with a unique name and a random password and returns its
// account for implicit TLS, once it has logged in (the first login creates its
// INBOX and special-use folders). It fails tb on error. Cyrus users take no
// options: WithQuota fails.
func (c *Cyrus) AddUser(tb testing.TB, opts ...UserOption) imapconn.Account {
	tb.Helper()
	return must(tb)(c.NewUser(opts...))
}

// NewUser is AddUser without a testing.TB.
func (c *Cyrus) NewUser(opts ...UserOption) (imapconn.Account, error) {
	if err := noOptions("cyrus", opts); err != nil {
		return imapconn.Account{}, err
	}
	c.mu.Lock()
	c.nextUser++
	login := fmt.Sprintf("user%d", c.nextUser)
	password := randomHex(12)
	err := c.saslpasswd(login, password)
	c.mu.Unlock()
	if err != nil {
		return imapconn.Account{}, fmt.Errorf("add user: %w", err)
	}
	acct := c.Account(login, password)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		cl, err := Dial(ctx, acct)
		if err == nil {
			cl.Close()
			return acct, nil
		}
		select {
		case <-ctx.Done():
			return imapconn.Account{}, fmt.Errorf("add user: %s cannot log in: %w", login, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// saslpasswd sets a user's password in the server's sasldb. Callers serialize.
func (c *Cyrus) saslpasswd(login, password string) error {
	cmd := exec.Command(saslpasswd2, "-p", "-c", "-u", "", "-f", c.sasldb, login)
	cmd.Stdin = strings.NewReader(password)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("saslpasswd2 %s: %w: %s", login, err, out)
	}
	return nil
}

// Account returns the account for login and password over implicit TLS.
func (c *Cyrus) Account(login, password string) imapconn.Account {
	host, port := splitAddr(c.TLSAddr)
	return imapconn.Account{
		Host: host, Port: port, Security: imapconn.SecurityTLS,
		Login: login, Password: password, RootCAs: c.CAPool,
	}
}

// StartTLS returns acct changed to reach this server's plain port with STARTTLS.
func (c *Cyrus) StartTLS(acct imapconn.Account) imapconn.Account {
	acct.Host, acct.Port = splitAddr(c.PlainAddr)
	acct.Security = imapconn.SecurityStartTLS
	return acct
}

type cyrusConfig struct {
	Dir, Bin           string
	User, Group        string
	Cert               certFiles
	SaslDB             string
	TLSPort, PlainPort int
	Slash              bool
	Special            []specialFolder
}

var cyrusIMAPDConf = template.Must(template.New("imapd.conf").Funcs(template.FuncMap{"lower": strings.ToLower}).Parse(`# generated by imaptest
configdirectory: {{.Dir}}/conf
defaultpartition: default
partition-default: {{.Dir}}/spool
proc_path: {{.Dir}}/run/proc
mboxname_lockpath: {{.Dir}}/run/lock
lmtpsocket: {{.Dir}}/run/lmtp
idlesocket: {{.Dir}}/run/idle
notifysocket: {{.Dir}}/run/notify
syslog_prefix: imaptest
cyrus_user: {{.User}}
cyrus_group: {{.Group}}
{{- if .Slash}}
unixhierarchysep: yes
altnamespace: yes
{{- else}}
unixhierarchysep: no
altnamespace: no
{{- end}}
autocreate_quota: 0
autocreate_inbox_folders: {{range $i, $f := .Special}}{{if $i}} | {{end}}{{$f.Name}}{{end}}
{{- range .Special}}
xlist-{{lower (slice .Attr 1)}}: {{.Name}}
{{- end}}
allowplaintext: yes
# No 3 s pause before answering a failed login (tests fail logins on purpose).
failedloginpause: 0
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {{.SaslDB}}
sasl_mech_list: PLAIN LOGIN
tls_server_cert: {{.Cert.CertFile}}
tls_server_key: {{.Cert.KeyFile}}
`))

var cyrusConf = template.Must(template.New("cyrus.conf").Parse(`# generated by imaptest
START {
  recover cmd="{{.Bin}}/ctl_cyrusdb -r -C {{.Dir}}/imapd.conf"
}
SERVICES {
  imap cmd="{{.Bin}}/imapd -C {{.Dir}}/imapd.conf" listen="127.0.0.1:{{.PlainPort}}" prefork=1
  imaps cmd="{{.Bin}}/imapd -s -C {{.Dir}}/imapd.conf" listen="127.0.0.1:{{.TLSPort}}" prefork=1
}
EVENTS {
}
`))
