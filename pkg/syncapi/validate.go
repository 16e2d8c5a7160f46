package syncapi

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"imapcopy.dev/pkg/mailcopy"
	"imapcopy.dev/pkg/netpolicy"
	"imapcopy.dev/pkg/syncstatus"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Length bounds of the fields a caller supplies. They are generous for real accounts
// and small enough that no request can make the service hold much memory.
const (
	maxAddressLen  = 254 // RFC 5321 path limit
	maxLocalLen    = 64
	maxLoginLen    = 320
	maxHostLen     = 253
	maxProviderLen = 64
	maxPasswordLen = 1024
	maxTokenLen    = 8192
	maxPatterns    = 256
	maxPatternLen  = 1024
	maxConnections = 64
)

// invalid is a request field that cannot be used as given. Its message names the field
// and what to fix and never quotes the value: a value may be a secret typed into the
// wrong field.
type invalid struct {
	field, problem, fix string
}

func (e *invalid) Error() string {
	if e.fix == "" {
		return e.field + ": " + e.problem
	}
	return e.field + ": " + e.problem + ": " + e.fix
}

// GRPCStatus makes status.FromError answer InvalidArgument.
func (e *invalid) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.Error())
}

func invalidf(field, problem, fix string) error {
	return &invalid{field: field, problem: problem, fix: fix}
}

// checkText refuses the characters that could end an IMAP command or a log line early,
// and anything that is not UTF-8.
func checkText(field, s string, maxLen int) error {
	if len(s) > maxLen {
		return invalidf(field, fmt.Sprintf("too long (%d bytes)", len(s)), fmt.Sprintf("at most %d bytes", maxLen))
	}
	if !utf8.ValidString(s) {
		return invalidf(field, "not valid UTF-8", "send UTF-8 text")
	}
	if strings.ContainsAny(s, "\r\n\x00") {
		return invalidf(field, "contains CR, LF or NUL", "remove line breaks and NUL characters")
	}
	return nil
}

// checkPrintable is checkText that also refuses every control character and, unless
// spaces is set, white space.
func checkPrintable(field, s string, maxLen int, spaces bool) error {
	if err := checkText(field, s, maxLen); err != nil {
		return err
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return invalidf(field, "contains a control character", "remove it")
		}
		if !spaces && unicode.IsSpace(r) {
			return invalidf(field, "contains white space", "remove the spaces")
		}
	}
	return nil
}

// NormalizeAddress trims and lowercases an email address: the form under which the
// lock and the status of a source are kept (syncstatus.Normalize, the store's own).
func NormalizeAddress(addr string) string { return syncstatus.Normalize(addr) }

// checkAddress validates an email address (already trimmed).
func checkAddress(field, addr string) error {
	if addr == "" {
		return invalidf(field, "missing", "give the full email address (user@domain)")
	}
	if err := checkPrintable(field, addr, maxAddressLen, false); err != nil {
		return err
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return invalidf(field, "not an email address", "expected user@domain")
	}
	local, domain := addr[:at], addr[at+1:]
	if len(local) > maxLocalLen {
		return invalidf(field, "the part before @ is too long", fmt.Sprintf("at most %d bytes", maxLocalLen))
	}
	if strings.ContainsAny(local, `@<>()[]\,;:"`) || strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return invalidf(field, "not an email address", "expected user@domain")
	}
	if !validDomain(domain) {
		return invalidf(field, "the domain after @ is not a valid domain name", "expected user@domain")
	}
	return nil
}

// validDomain accepts DNS names, internationalized ones included (letters of any
// script), with labels of 1 to 63 bytes that neither start nor end with a hyphen.
func validDomain(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > maxHostLen {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') ||
				r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r))) {
				return false
			}
		}
	}
	return true
}

// checkHost validates a host name or an IP address (IPv6 with or without brackets).
func checkHost(field, host string) error {
	if err := checkPrintable(field, host, maxHostLen, false); err != nil {
		return err
	}
	literal := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(literal); err == nil {
		if strings.Contains(literal, "%") {
			return invalidf(field, "an IPv6 zone is not accepted", "give a host name or a plain IP address")
		}
		return nil
	}
	if netpolicy.NonStandardIP(host) {
		return invalidf(field, "an IP address in a form other than a.b.c.d (decimal, octal or hexadecimal)",
			"write it as four decimal numbers, like 192.0.2.10, or give the server name")
	}
	if strings.ContainsAny(host, ":/[]") {
		return invalidf(field, "not a host name", "give only the server name, like imap.example.com, without port or scheme")
	}
	if !validDomain(host) {
		return invalidf(field, "not a valid host name", "give the server name, like imap.example.com")
	}
	return nil
}

// checkAccount validates what can be checked of an account without the provider
// catalogue: syntax and lengths. field is "source", "destination" or "account".
func checkAccount(field string, a *imapcopyv1.Account, role imapcopyv1.AccountRole) error {
	if a == nil {
		return invalidf(field, "missing", "give the account's provider, login and password")
	}
	if err := checkPrintable(field+".provider", a.GetProvider(), maxProviderLen, false); err != nil {
		return err
	}
	login := strings.TrimSpace(a.GetLogin())
	if role == imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE {
		// The source address is the key of the lock and the status.
		if err := checkAddress(field+".login", login); err != nil {
			return err
		}
	} else {
		if login == "" {
			return invalidf(field+".login", "missing", "give the login, usually the full email address")
		}
		// Logins of shared Exchange mailboxes look like user@domain\shared@domain:
		// only refuse what no login can contain.
		if err := checkPrintable(field+".login", login, maxLoginLen, false); err != nil {
			return err
		}
	}
	password, token := a.GetPassword(), a.GetOauth2AccessToken()
	if password == "" && token == "" {
		return invalidf(field+".password", "missing", "give the password (or app password), or an OAuth2 access token")
	}
	if err := checkText(field+".password", password, maxPasswordLen); err != nil {
		return err
	}
	if err := checkPrintable(field+".oauth2_access_token", token, maxTokenLen, false); err != nil {
		return err
	}
	if a.GetHost() != "" {
		if err := checkHost(field+".host", strings.TrimSpace(a.GetHost())); err != nil {
			return err
		}
	}
	if a.GetPort() > 65535 {
		return invalidf(field+".port", "out of range", "use a port between 1 and 65535, usually 993 (TLS) or 143 (STARTTLS)")
	}
	switch a.GetSecurity() {
	case imapcopyv1.Security_SECURITY_UNSPECIFIED, imapcopyv1.Security_SECURITY_TLS,
		imapcopyv1.Security_SECURITY_STARTTLS, imapcopyv1.Security_SECURITY_PLAINTEXT:
	default:
		return invalidf(field+".security", "unknown value", "use SECURITY_TLS or SECURITY_STARTTLS")
	}
	return nil
}

func checkRole(field string, role imapcopyv1.AccountRole) error {
	switch role {
	case imapcopyv1.AccountRole_ACCOUNT_ROLE_UNSPECIFIED, imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE,
		imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION:
		return nil
	}
	return invalidf(field, "unknown value", "use ACCOUNT_ROLE_SOURCE or ACCOUNT_ROLE_DESTINATION")
}

func checkOptions(o *imapcopyv1.SyncOptions) error {
	if o == nil {
		return nil
	}
	for _, list := range []struct {
		field    string
		patterns []string
	}{{"options.include_folders", o.GetIncludeFolders()}, {"options.exclude_folders", o.GetExcludeFolders()}} {
		if len(list.patterns) > maxPatterns {
			return invalidf(list.field, fmt.Sprintf("too many patterns (%d)", len(list.patterns)), fmt.Sprintf("at most %d", maxPatterns))
		}
		for i, p := range list.patterns {
			field := fmt.Sprintf("%s[%d]", list.field, i)
			if p == "" {
				return invalidf(field, "empty", "remove it or give a folder name or pattern")
			}
			if err := checkPrintable(field, p, maxPatternLen, true); err != nil {
				return err
			}
		}
	}
	if o.GetMaxConnections() > maxConnections {
		return invalidf("options.max_connections", "too many", fmt.Sprintf("at most %d, or 0 for the default", maxConnections))
	}
	if o.Since != nil {
		if err := o.GetSince().CheckValid(); err != nil {
			return invalidf("options.since", "not a valid timestamp", "give an RFC 3339 date and time")
		}
	}
	if _, ok := mailcopy.ReportLanguage(o.GetLanguage()); !ok {
		if err := checkText("options.language", o.GetLanguage(), 35); err != nil {
			return err
		}
		return invalidf("options.language", fmt.Sprintf("the report has no language %q", o.GetLanguage()),
			"use one of "+strings.Join(mailcopy.ReportLanguages, ", ")+", or leave it empty for English")
	}
	return nil
}

// checkSourceEmail validates and normalizes the source address of a status call.
func checkSourceEmail(addr string) (string, error) {
	if err := checkText("source_email", addr, maxAddressLen+64); err != nil {
		return "", err
	}
	norm := NormalizeAddress(addr)
	if err := checkAddress("source_email", norm); err != nil {
		return "", err
	}
	return norm, nil
}
