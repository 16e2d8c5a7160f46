// Package providers owns the provider presets: which IMAP server, port and security
// a customer's provider uses, whether it can be a source or a destination, and its
// limits (connections per account, message size, daily transfer).
//
// Presets are data. The built-in catalogue (builtin.json, embedded) can be replaced
// by an operator's file with the same schema, which Load validates with errors that
// name the preset and the field at fault. A preset either names its server ("host"),
// or says that each customer enters their own ("host_required": true, as for "other"
// and for Exchange services whose server differs per customer).
//
// Resolve turns what a customer typed into the server to connect to. A preset with a
// fixed server fills host, port and security; a different value typed for one of them
// is refused rather than silently replaced or obeyed, so that what is tested and copied
// is what the customer sees, and a preset's limits are never applied to another server
// (choose "other" to enter any server).
package providers

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"imapcopy.dev/pkg/imapconn"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// OtherID is the id of the preset for any server the customer names.
const OtherID = "other"

//go:embed builtin.json
var builtinJSON []byte

// Provider is one preset.
type Provider struct {
	ID          string // stable, lowercase: control panels store it
	DisplayName string
	// Host is the preset's server; "" when each customer enters their own (then
	// HostSuffixes, if any, lists the domains that server must be in).
	Host         string
	HostSuffixes []string
	// Port and Security are the preset's; for a preset without a host they are the
	// defaults offered to the customer, 0 meaning that the customer must give them.
	Port     int
	Security imapconn.Security
	// Source and Destination say in which role the preset may be used.
	Source, Destination bool
	// OAuth2Only: the provider refuses passwords for IMAP (Microsoft 365).
	OAuth2Only bool
	Limits     Limits
	// Handling is what to expect from the provider's servers and how the copy
	// adapts: data next to the preset, not branches in the engine.
	Handling Handling
	Help     string
}

// Handling says which provider profile's handling applies to a preset (issue 15):
// the traits reproduced by pkg/imaptest's profile of that name and tested against the
// engine (pkg/mailcopy TestProfiles). The connection cap is Limits.MaxConnections.
type Handling struct {
	// Profile names the profile: "gmail", "m365", "yahoo", "old-server", or ""
	// (a plain server, nothing known).
	Profile string
	// ThrottleAnswer is the refusal the provider sends when it throttles a client,
	// as reported ("NO [THROTTLED] Request is throttled. Suggested Backoff Time: ...");
	// Parse checks that imapconn.Throttled recognises it, so that the copy waits
	// instead of refusing messages or stopping. "" when none is known.
	ThrottleAnswer string
	// ThrottleBackoff is the wait after a throttling refusal that suggests no time
	// of its own (mailcopy.Config.ThrottleBackoff); 0: the engine's default.
	ThrottleBackoff time.Duration
	// NoMultiappend, NoUIDPlus, NoSpecialUse: the servers do not offer (or cannot
	// be relied on for) MULTIAPPEND, UIDPLUS, SPECIAL-USE. The engine reads the
	// capabilities anyway; a destination preset with NoMultiappend makes it send
	// one APPEND per message even if MULTIAPPEND is announced.
	NoMultiappend, NoUIDPlus, NoSpecialUse bool

	// Gmail's traits (issue 15), known and handled without a setting: listed so
	// that the preset says what its profile reproduces.

	// ExtraCaps are capabilities of the provider's own (Gmail: X-GM-EXT-1); the
	// engine does not use them.
	ExtraCaps []string
	// SessionCutAnswer is the BYE the servers send when they end a long session
	// (Gmail: "* BYE [UNAVAILABLE] Temporary System Error", or no BYE at all);
	// the copy reconnects and resumes, appending the first chunk one message per
	// command after a cut that left nothing done. "" when none is known.
	SessionCutAnswer string
}

// Profiles are the known Handling.Profile names.
var Profiles = []string{"gmail", "m365", "yahoo", "old-server"}

// Limits are a provider's per-account limits; 0 means unknown.
type Limits struct {
	MaxConnections     int   // concurrent IMAP connections per account
	MaxMessageSize     int64 // bytes
	DailyDownloadBytes int64
	DailyUploadBytes   int64
}

// HostRequired reports whether the customer must enter the server.
func (p Provider) HostRequired() bool { return p.Host == "" }

// UsableAs reports whether the preset may be used in role; every preset may be
// used in ACCOUNT_ROLE_UNSPECIFIED.
func (p Provider) UsableAs(role imapcopyv1.AccountRole) bool {
	switch role {
	case imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE:
		return p.Source
	case imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION:
		return p.Destination
	}
	return true
}

func (p Provider) clone() Provider {
	p.HostSuffixes = slices.Clone(p.HostSuffixes)
	p.Handling.ExtraCaps = slices.Clone(p.Handling.ExtraCaps)
	return p
}

// Catalog is an immutable, validated list of presets, in the order of its file.
type Catalog struct {
	providers []Provider
	byID      map[string]int
}

// Builtin returns the built-in catalogue. It panics if the embedded file is invalid,
// which the package's tests rule out.
func Builtin() *Catalog {
	c, err := Parse(builtinJSON)
	if err != nil {
		panic(fmt.Sprintf("providers: built-in catalogue: %v", err))
	}
	return c
}

// Load reads and validates an operator's catalogue file (the schema of builtin.json).
func Load(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load providers: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load providers %s: %w", path, err)
	}
	return c, nil
}

// The file's schema. Unknown fields are refused, so that a misspelt field is an
// error rather than a silently missing setting.
type fileCatalog struct {
	Providers []fileProvider `json:"providers"`
}

type fileProvider struct {
	ID           string       `json:"id"`
	DisplayName  string       `json:"display_name"`
	Host         string       `json:"host"`
	HostRequired bool         `json:"host_required"`
	HostSuffixes []string     `json:"host_suffixes"`
	Port         int          `json:"port"`
	Security     string       `json:"security"`
	Source       bool         `json:"source"`
	Destination  bool         `json:"destination"`
	OAuth2Only   bool         `json:"oauth2_only"`
	Limits       fileLimits   `json:"limits"`
	Handling     fileHandling `json:"handling"`
	Help         string       `json:"help"`
}

type fileHandling struct {
	Profile                string `json:"profile"`
	ThrottleAnswer         string `json:"throttle_answer"`
	ThrottleBackoffSeconds int    `json:"throttle_backoff_seconds"`
	NoMultiappend          bool   `json:"no_multiappend"`
	NoUIDPlus              bool   `json:"no_uidplus"`
	NoSpecialUse           bool   `json:"no_special_use"`

	ExtraCapabilities []string `json:"extra_capabilities"`
	SessionCutAnswer  string   `json:"session_cut_answer"`
}

type fileLimits struct {
	MaxConnections     int   `json:"max_connections"`
	MaxMessageSize     int64 `json:"max_message_size"`
	DailyDownloadBytes int64 `json:"daily_download_bytes"`
	DailyUploadBytes   int64 `json:"daily_upload_bytes"`
}

func parseSecurity(name string) (imapconn.Security, bool) {
	switch strings.ToLower(name) {
	case "tls":
		return imapconn.SecurityTLS, true
	case "starttls":
		return imapconn.SecurityStartTLS, true
	case "plaintext":
		return imapconn.SecurityPlaintext, true
	}
	return 0, false
}

// Parse validates a catalogue in the JSON schema of builtin.json, reporting every
// problem found.
func Parse(data []byte) (*Catalog, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f fileCatalog
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: data after the catalogue object")
	}
	if len(f.Providers) == 0 {
		return nil, errors.New(`no presets: "providers" is missing or empty`)
	}
	c := &Catalog{byID: map[string]int{}}
	var errs []error
	for i, fp := range f.Providers {
		p, problems := convert(fp)
		if first, dup := c.byID[p.ID]; dup && p.ID != "" {
			problems = append(problems, fmt.Sprintf("duplicate id (also preset %d)", first+1))
		}
		if len(problems) > 0 {
			errs = append(errs, fmt.Errorf("preset %d (%q): %s", i+1, fp.ID, strings.Join(problems, "; ")))
			continue
		}
		c.byID[p.ID] = len(c.providers)
		c.providers = append(c.providers, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// convert checks one preset and returns it with the list of its problems.
func convert(fp fileProvider) (Provider, []string) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	p := Provider{
		ID:          fp.ID,
		DisplayName: strings.TrimSpace(fp.DisplayName),
		Host:        normalizeHost(fp.Host),
		Port:        fp.Port,
		Source:      fp.Source,
		Destination: fp.Destination,
		OAuth2Only:  fp.OAuth2Only,
		Limits:      Limits(fp.Limits),
		Handling: Handling{
			Profile:         fp.Handling.Profile,
			ThrottleAnswer:  strings.TrimSpace(fp.Handling.ThrottleAnswer),
			ThrottleBackoff: time.Duration(fp.Handling.ThrottleBackoffSeconds) * time.Second,
			NoMultiappend:   fp.Handling.NoMultiappend,
			NoUIDPlus:       fp.Handling.NoUIDPlus,
			NoSpecialUse:    fp.Handling.NoSpecialUse,

			ExtraCaps:        slices.Clone(fp.Handling.ExtraCapabilities),
			SessionCutAnswer: strings.TrimSpace(fp.Handling.SessionCutAnswer),
		},
		Help: strings.TrimSpace(fp.Help),
	}
	if !validID(fp.ID) {
		bad("id must be 1 to 64 lowercase letters, digits and hyphens")
	}
	if p.DisplayName == "" {
		bad("display_name missing")
	}
	switch {
	case p.Host == "" && !fp.HostRequired:
		bad(`host missing: give the preset's IMAP server, or set "host_required": true if each customer enters their own`)
	case p.Host != "" && fp.HostRequired:
		bad(`host and host_required both set: a preset either names its server or lets the customer enter one`)
	case p.Host != "" && !validHost(p.Host):
		bad("host %q is not a valid host name or IP address", fp.Host)
	case p.ID == OtherID && p.Host != "":
		bad(`the "other" preset cannot have a host: it is for any server the customer names`)
	}
	for _, s := range fp.HostSuffixes {
		suffix := normalizeHost(s)
		if p.Host != "" {
			bad("host_suffixes only apply to presets with host_required")
			break
		}
		if !strings.HasPrefix(suffix, ".") || !validHost(suffix[1:]) {
			bad("host_suffixes entry %q must be a domain starting with a dot, such as \".mail.example.net\"", s)
			continue
		}
		p.HostSuffixes = append(p.HostSuffixes, suffix)
	}
	switch {
	case fp.Port < 0 || fp.Port > 65535:
		bad("port %d out of range 1-65535", fp.Port)
	case fp.Port == 0 && p.Host != "":
		bad("port missing (usually 993 for tls, 143 for starttls)")
	}
	if fp.Security != "" {
		sec, ok := parseSecurity(fp.Security)
		if !ok {
			bad("security %q unknown: use \"tls\", \"starttls\" or \"plaintext\"", fp.Security)
		}
		p.Security = sec
	} else if p.Host != "" {
		bad(`security missing: "tls", "starttls" or "plaintext"`)
	}
	if !p.Source && !p.Destination {
		bad("usable neither as source nor as destination: set source, destination or both")
	}
	l := fp.Limits
	if l.MaxConnections < 0 || l.MaxMessageSize < 0 || l.DailyDownloadBytes < 0 || l.DailyUploadBytes < 0 {
		bad("limits cannot be negative (0 means unknown)")
	}
	h := fp.Handling
	if h.Profile != "" && !slices.Contains(Profiles, h.Profile) {
		bad("handling.profile %q unknown: use one of %s, or leave it out", h.Profile, strings.Join(Profiles, ", "))
	}
	if a := strings.TrimSpace(h.SessionCutAnswer); a != "" && !strings.HasPrefix(strings.ToUpper(a), "* BYE") {
		bad("handling.session_cut_answer %q is not a BYE (\"* BYE ...\")", a)
	}
	if h.ThrottleBackoffSeconds < 0 {
		bad("handling.throttle_backoff_seconds cannot be negative")
	}
	if h.ThrottleAnswer != "" && !recognisedThrottle(h.ThrottleAnswer) {
		bad("handling.throttle_answer %q is not recognised as throttling by the engine (imapconn.Throttled): it would refuse messages or stop the copy instead of waiting", h.ThrottleAnswer)
	}
	return p, problems
}

// throttleRE splits a status response as written in a preset: "NO [CODE] text".
var throttleRE = regexp.MustCompile(`^(?i)(NO|BAD)\s+(?:\[([A-Za-z0-9-]+)[^\]]*\]\s*)?(.*)$`)

// recognisedThrottle reports whether the engine takes answer for a throttling refusal.
func recognisedThrottle(answer string) bool {
	m := throttleRE.FindStringSubmatch(strings.TrimSpace(answer))
	if m == nil {
		return false
	}
	_, ok := imapconn.Throttled(&imap.Error{
		Type: imap.StatusResponseType(strings.ToUpper(m[1])), Code: imap.ResponseCode(strings.ToUpper(m[2])), Text: m[3],
	})
	return ok
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// normalizeHost lowercases host and drops surrounding spaces, brackets around an IPv6
// literal and a trailing dot, so that equal servers compare equal.
func normalizeHost(host string) string {
	host = strings.ToLower(strings.TrimSpace(host))
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return strings.TrimSuffix(host, ".")
}

// validHost reports whether host is an IP address or an ASCII DNS name.
func validHost(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return !strings.Contains(host, "%") // no zones: they are local to a machine
	}
	if host == "" || len(host) > 253 {
		return false
	}
	labels := strings.Split(host, ".")
	for _, label := range labels {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	// A name whose last label is all digits would be read as an IPv4 address by some
	// resolvers ("127.1"): not a host name.
	return strings.ContainsFunc(labels[len(labels)-1], func(c rune) bool { return c < '0' || c > '9' })
}

// Get returns the preset with id.
func (c *Catalog) Get(id string) (Provider, bool) {
	i, ok := c.byID[id]
	if !ok {
		return Provider{}, false
	}
	return c.providers[i].clone(), true
}

// List returns the presets usable in role (all for ACCOUNT_ROLE_UNSPECIFIED), in the
// catalogue's order.
func (c *Catalog) List(role imapcopyv1.AccountRole) []Provider {
	var out []Provider
	for _, p := range c.providers {
		if p.UsableAs(role) {
			out = append(out, p.clone())
		}
	}
	return out
}
