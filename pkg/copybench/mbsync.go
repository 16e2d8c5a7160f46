package copybench

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"imapcopy.dev/pkg/imapconn"
)

// MbsyncConfig is an mbsync (isync 1.4) configuration that copies every folder of one
// IMAP account into another, one way: the source is the Far store, the destination the
// Near store, `Sync Pull`, `Create Near`, arrival dates kept, nothing removed or
// expunged anywhere.
type MbsyncConfig struct {
	Source, Destination imapconn.Account
	// SourceCAFile and DestinationCAFile are the PEM files mbsync trusts for each side
	// (mbsync 1.4 takes certificates from a file, not a pool).
	SourceCAFile, DestinationCAFile string
	StateDir                        string // SyncState: mbsync's own bookkeeping, a fresh dir per run
}

// Text renders the configuration file. It contains the passwords: write it with mode
// 0600 and remove it after the run.
func (c MbsyncConfig) Text() (string, error) {
	var b strings.Builder
	for _, side := range []struct {
		name   string
		acct   imapconn.Account
		caFile string
	}{{"source", c.Source, c.SourceCAFile}, {"destination", c.Destination, c.DestinationCAFile}} {
		a := side.acct
		if a.Security != imapconn.SecurityTLS {
			return "", fmt.Errorf("mbsync config: %s: only implicit TLS is supported here", side.name)
		}
		for _, v := range []string{a.Host, a.Login, a.Password, side.caFile} {
			if strings.ContainsAny(v, "\"\\\n") {
				return "", fmt.Errorf("mbsync config: %s: a value holds a quote, backslash or newline", side.name)
			}
		}
		fmt.Fprintf(&b, "IMAPAccount %s\n", side.name)
		fmt.Fprintf(&b, "Host %s\nPort %s\n", a.Host, strconv.Itoa(a.Port))
		fmt.Fprintf(&b, "User \"%s\"\nPass \"%s\"\n", a.Login, a.Password)
		fmt.Fprintf(&b, "AuthMechs LOGIN\n")
		fmt.Fprintf(&b, "SSLType IMAPS\n")
		if side.caFile != "" {
			fmt.Fprintf(&b, "SystemCertificates no\nCertificateFile \"%s\"\n", side.caFile)
		}
		fmt.Fprintf(&b, "\nIMAPStore %s\nAccount %s\n\n", side.name, side.name)
	}
	if c.StateDir == "" {
		return "", fmt.Errorf("mbsync config: no state dir")
	}
	b.WriteString("Channel copy\n")
	b.WriteString("Far :source:\nNear :destination:\n")
	b.WriteString("Patterns *\n")
	b.WriteString("Create Near\nRemove None\nExpunge None\n")
	b.WriteString("Sync Pull\n")
	b.WriteString("CopyArrivalDate yes\n")
	fmt.Fprintf(&b, "SyncState \"%s/\"\n", strings.TrimSuffix(c.StateDir, "/"))
	return b.String(), nil
}

// findMbsync returns the mbsync binary, or an error that says how to install it.
func findMbsync() (string, error) {
	if p, err := exec.LookPath("mbsync"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("mbsync not found: install the Debian package isync (as root: apt-get install -y isync)")
}
