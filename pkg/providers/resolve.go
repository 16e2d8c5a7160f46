package providers

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"imapcopy.dev/pkg/imapconn"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Server is where an account lives, once its preset is applied.
type Server struct {
	Provider string // the preset's id
	Host     string
	Port     int
	Security imapconn.Security
	Limits   Limits
}

// Address is host:port, for dialing.
func (s Server) Address() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// FieldError is a customer's input that does not fit the preset. Field is the name of
// the imapcopy.v1.Account field ("provider", "host", "port", "security",
// "oauth2_access_token"); Reason says what to change. It never contains a secret.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Resolve applies the account's preset and returns the server to connect to, or a
// *FieldError. role ACCOUNT_ROLE_UNSPECIFIED skips the role check.
//
//   - A preset with a fixed server fills host, port and security. A host, port or
//     security typed by the customer that differs from the preset's is refused (not
//     replaced): the customer meant another server, which is what "other" is for.
//   - A preset without a server (such as "other", hosted Exchange) requires a host,
//     within the preset's host_suffixes if it has any; port and security default to
//     the preset's, and are required when it has none or when the customer changes
//     only one of the two.
//   - A preset marked oauth2_only requires an OAuth2 access token.
//   - The limits are the preset's. For a customer-entered server that is the fixed
//     server of another preset (imap.gmail.com typed under "other"), that preset's
//     limits fill those the account's preset leaves unknown: a provider's connection
//     cap applies however its server was named.
//
// Plaintext security is returned like the others: whether it is allowed is the
// caller's (the operator's) decision.
func (c *Catalog) Resolve(role imapcopyv1.AccountRole, acct *imapcopyv1.Account) (Server, error) {
	id := strings.ToLower(strings.TrimSpace(acct.GetProvider()))
	if id == "" {
		return Server{}, &FieldError{"provider", `required: a preset id from ListProviders, or "other" to enter the server yourself`}
	}
	i, ok := c.byID[id]
	if !ok {
		return Server{}, &FieldError{"provider", fmt.Sprintf("unknown provider %q: ListProviders lists the presets offered", id)}
	}
	p := c.providers[i]
	if !p.UsableAs(role) {
		return Server{}, &FieldError{"provider", fmt.Sprintf("%s cannot be used as a %s", p.DisplayName, roleName(role))}
	}

	host := normalizeHost(acct.GetHost())
	port := acct.GetPort()
	if port > 65535 {
		return Server{}, &FieldError{"port", fmt.Sprintf("%d is out of range 1-65535", port)}
	}
	var sec imapconn.Security
	if s := acct.GetSecurity(); s != imapcopyv1.Security_SECURITY_UNSPECIFIED {
		var ok bool
		if sec, ok = SecurityFromProto(s); !ok {
			return Server{}, &FieldError{"security", fmt.Sprintf("unknown value %d: use TLS, STARTTLS or PLAINTEXT", s)}
		}
	}

	srv := Server{Provider: p.ID, Host: p.Host, Port: p.Port, Security: p.Security, Limits: p.Limits}
	if p.Host != "" {
		const other = `; leave it empty, or choose "other" to enter another server`
		if host != "" && host != p.Host {
			return Server{}, &FieldError{"host", fmt.Sprintf("%s uses the server %s, not %s%s", p.DisplayName, p.Host, host, other)}
		}
		if port != 0 && int(port) != p.Port {
			return Server{}, &FieldError{"port", fmt.Sprintf("%s uses port %d, not %d%s", p.DisplayName, p.Port, port, other)}
		}
		if sec != 0 && sec != p.Security {
			return Server{}, &FieldError{"security", fmt.Sprintf("%s uses %s, not %s%s", p.DisplayName, securityName(p.Security), securityName(sec), other)}
		}
	} else {
		switch {
		case host == "":
			return Server{}, &FieldError{"host", fmt.Sprintf("required for %s: the IMAP server's name", p.DisplayName)}
		case strings.Contains(host, ":") && !validHost(host):
			return Server{}, &FieldError{"host", fmt.Sprintf("%q: give the server name alone and the port in the port field", acct.GetHost())}
		case !validHost(host):
			return Server{}, &FieldError{"host", fmt.Sprintf("%q is not a valid host name or IP address (international names in their xn-- form)", acct.GetHost())}
		case len(p.HostSuffixes) > 0 && !hasSuffix(host, p.HostSuffixes):
			return Server{}, &FieldError{"host", fmt.Sprintf(`%s servers end in %s; choose "other" for another server`, p.DisplayName, strings.Join(p.HostSuffixes, " or "))}
		}
		srv.Host = host
		// The preset's port and security go together: changing one without the
		// other (port 143 with the default TLS) is more likely a mistake than a plan.
		changedPort := port != 0 && int(port) != p.Port
		changedSec := sec != 0 && sec != p.Security
		switch {
		case port == 0 && (p.Port == 0 || changedSec):
			return Server{}, &FieldError{"port", "required: usually 993 for TLS, 143 for STARTTLS"}
		case sec == 0 && (p.Security == 0 || changedPort):
			return Server{}, &FieldError{"security", "required: TLS (usually port 993) or STARTTLS (usually port 143)"}
		}
		if port != 0 {
			srv.Port = int(port)
		}
		if sec != 0 {
			srv.Security = sec
		}
		srv.Limits = c.fillLimits(srv.Limits, host)
	}
	if p.OAuth2Only && acct.GetOauth2AccessToken() == "" {
		return Server{}, &FieldError{"oauth2_access_token", fmt.Sprintf("%s accepts only OAuth sign-in for IMAP: give an OAuth2 access token (passwords are refused)", p.DisplayName)}
	}
	return srv, nil
}

// fillLimits completes the unknown fields of l with those of the preset whose fixed
// server is host, if any.
func (c *Catalog) fillLimits(l Limits, host string) Limits {
	for _, p := range c.providers {
		if p.Host != host {
			continue
		}
		if l.MaxConnections == 0 {
			l.MaxConnections = p.Limits.MaxConnections
		}
		if l.MaxMessageSize == 0 {
			l.MaxMessageSize = p.Limits.MaxMessageSize
		}
		if l.DailyDownloadBytes == 0 {
			l.DailyDownloadBytes = p.Limits.DailyDownloadBytes
		}
		if l.DailyUploadBytes == 0 {
			l.DailyUploadBytes = p.Limits.DailyUploadBytes
		}
		break
	}
	return l
}

func hasSuffix(host string, suffixes []string) bool {
	for _, s := range suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

func roleName(role imapcopyv1.AccountRole) string {
	if role == imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE {
		return "source"
	}
	return "destination"
}

func securityName(s imapconn.Security) string {
	switch s {
	case imapconn.SecurityTLS:
		return "TLS"
	case imapconn.SecurityStartTLS:
		return "STARTTLS"
	case imapconn.SecurityPlaintext:
		return "no encryption"
	}
	return "unknown security"
}
