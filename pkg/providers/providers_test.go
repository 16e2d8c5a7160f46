package providers

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"imapcopy.dev/pkg/imapconn"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

const (
	roleAny  = imapcopyv1.AccountRole_ACCOUNT_ROLE_UNSPECIFIED
	roleSrc  = imapcopyv1.AccountRole_ACCOUNT_ROLE_SOURCE
	roleDest = imapcopyv1.AccountRole_ACCOUNT_ROLE_DESTINATION
)

func ids(list []Provider) []string {
	out := make([]string, len(list))
	for i, p := range list {
		out[i] = p.ID
	}
	return out
}

func TestBuiltin(t *testing.T) {
	c := Builtin()
	wantAll := []string{"aol", "yahoo", "free", "gmail", "sfr", "laposte", "orange", "ovh-hosting",
		"ovh-exchange-hosted", "exchange-private", "exchange-25gb", "exchange-corporate", "exchange-reseller",
		"microsoft365", "other"}
	if got := ids(c.List(roleAny)); !slices.Equal(got, wantAll) {
		t.Errorf("List(any) = %v, want %v", got, wantAll)
	}
	destOnly := []string{"exchange-25gb", "exchange-corporate", "exchange-reseller"}
	if got := ids(c.List(roleSrc)); slices.ContainsFunc(got, func(id string) bool { return slices.Contains(destOnly, id) }) || len(got) != len(wantAll)-len(destOnly) {
		t.Errorf("List(source) = %v, want every preset but %v", got, destOnly)
	}
	if got := ids(c.List(roleDest)); !slices.Equal(got, wantAll) {
		t.Errorf("List(destination) = %v, want %v", got, wantAll)
	}

	servers := []struct {
		id, host string
	}{
		{"aol", "imap.aol.com"},
		{"yahoo", "imap.mail.yahoo.com"},
		{"free", "imap.free.fr"},
		{"gmail", "imap.gmail.com"},
		{"sfr", "imap.sfr.fr"},
		{"laposte", "imap.laposte.net"},
		{"orange", "imap.orange.fr"},
		{"ovh-hosting", "ssl0.ovh.net"},
		{"microsoft365", "outlook.office365.com"},
	}
	for _, s := range servers {
		p, ok := c.Get(s.id)
		if !ok {
			t.Errorf("Get(%q) found nothing", s.id)
			continue
		}
		if p.Host != s.host || p.Port != 993 || p.Security != imapconn.SecurityTLS {
			t.Errorf("Get(%q) = %s:%d security %d, want %s:993 TLS", s.id, p.Host, p.Port, p.Security, s.host)
		}
	}
	for _, id := range []string{"ovh-exchange-hosted", "exchange-private", "exchange-25gb", "exchange-corporate", "exchange-reseller", "other"} {
		if p, _ := c.Get(id); !p.HostRequired() {
			t.Errorf("Get(%q).HostRequired() = false, want true", id)
		}
	}

	gmail, _ := c.Get("gmail")
	wantLimits := Limits{MaxConnections: 15, MaxMessageSize: 25 << 20, DailyDownloadBytes: 2500 << 20, DailyUploadBytes: 500 << 20}
	if gmail.Limits != wantLimits {
		t.Errorf("gmail limits = %+v, want %+v", gmail.Limits, wantLimits)
	}
	if !strings.Contains(gmail.Help, "app password") || !strings.Contains(gmail.Help, "OAuth") {
		t.Errorf("gmail help = %q, want it to mention app passwords and OAuth", gmail.Help)
	}
	m365, _ := c.Get("microsoft365")
	if !m365.OAuth2Only || !strings.Contains(m365.Help, "OAuth") {
		t.Errorf("microsoft365 = OAuth2Only %v help %q, want OAuth only, said in the help", m365.OAuth2Only, m365.Help)
	}
	other, _ := c.Get(OtherID)
	if other.Port != 0 || other.Security != 0 {
		t.Errorf("other = port %d security %d, want both left to the customer", other.Port, other.Security)
	}
	for _, p := range c.List(roleAny) {
		if p.Help == "" {
			t.Errorf("preset %q has no help", p.ID)
		}
	}
}

// TestHandling: the built-in presets say which profile's handling applies, as data.
func TestHandling(t *testing.T) {
	c := Builtin()
	for _, tc := range []struct {
		id       string
		want     Handling
		maxConns int
	}{
		{"gmail", Handling{Profile: "gmail", ThrottleAnswer: "NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)", ThrottleBackoff: 5 * time.Minute,
			ExtraCaps: []string{"X-GM-EXT-1"}, SessionCutAnswer: "* BYE [UNAVAILABLE] Temporary System Error"}, 15},
		{"microsoft365", Handling{Profile: "m365", ThrottleAnswer: "NO [THROTTLED] Request is throttled. Suggested Backoff Time: 2000 milliseconds", ThrottleBackoff: time.Minute, NoMultiappend: true}, 16},
		{"exchange-private", Handling{Profile: "m365", ThrottleAnswer: "NO [THROTTLED] Request is throttled. Suggested Backoff Time: 2000 milliseconds", ThrottleBackoff: time.Minute, NoMultiappend: true}, 16},
		{"yahoo", Handling{Profile: "yahoo", NoUIDPlus: true}, 5},
		{"aol", Handling{Profile: "yahoo", NoUIDPlus: true}, 5},
		{"other", Handling{}, 0},
	} {
		p, ok := c.Get(tc.id)
		if !ok {
			t.Fatalf("no preset %q", tc.id)
		}
		if !reflect.DeepEqual(p.Handling, tc.want) || p.Limits.MaxConnections != tc.maxConns {
			t.Errorf("%s: handling %+v, %d connections; want %+v, %d", tc.id, p.Handling, p.Limits.MaxConnections, tc.want, tc.maxConns)
		}
	}
	for _, p := range c.List(roleAny) {
		if p.Handling.ThrottleAnswer != "" && !recognisedThrottle(p.Handling.ThrottleAnswer) {
			t.Errorf("%s: throttle answer %q not recognised", p.ID, p.Handling.ThrottleAnswer)
		}
	}
}

func TestGetReturnsCopies(t *testing.T) {
	c := Builtin()
	p, _ := c.Get("ovh-exchange-hosted")
	p.HostSuffixes[0] = ".evil.example"
	again, _ := c.Get("ovh-exchange-hosted")
	if again.HostSuffixes[0] != ".mail.ovh.net" {
		t.Errorf("after changing a returned preset, Get returns suffixes %v, want the catalogue unchanged", again.HostSuffixes)
	}
	if _, ok := c.Get("nope"); ok {
		t.Errorf("Get(%q) found a preset", "nope")
	}
}

// fixed is a valid preset with a fixed server, as JSON, for building test catalogues.
const fixed = `{"id":"acme","display_name":"Acme","host":"imap.acme.example","port":993,"security":"tls","source":true,"destination":true}`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string
	}{
		{"not JSON", `{`, []string{"invalid JSON"}},
		{"trailing data", `{"providers":[` + fixed + `]} {}`, []string{"data after the catalogue"}},
		{"empty", `{"providers":[]}`, []string{"no presets"}},
		{"unknown field", `{"providers":[{"id":"x","hots":"a"}]}`, []string{`unknown field "hots"`}},
		{"duplicate id", `{"providers":[` + fixed + `,` + fixed + `]}`, []string{`preset 2 ("acme"): duplicate id (also preset 1)`}},
		{"missing host", `{"providers":[{"id":"acme","display_name":"Acme","port":993,"security":"tls","source":true}]}`,
			[]string{`preset 1 ("acme"): host missing`, "host_required"}},
		{"other with a host", `{"providers":[{"id":"other","display_name":"Other","host":"imap.x.example","port":993,"security":"tls","source":true}]}`,
			[]string{`the "other" preset cannot have a host`}},
		{"host and host_required", `{"providers":[{"id":"a","display_name":"A","host":"imap.a.example","host_required":true,"port":993,"security":"tls","source":true}]}`,
			[]string{"host and host_required both set"}},
		{"bad host", `{"providers":[{"id":"a","display_name":"A","host":"imap a","port":993,"security":"tls","source":true}]}`,
			[]string{`host "imap a" is not a valid`}},
		{"port too big", `{"providers":[{"id":"a","display_name":"A","host":"imap.a.example","port":99999,"security":"tls","source":true}]}`,
			[]string{"port 99999 out of range 1-65535"}},
		{"negative port", `{"providers":[{"id":"a","display_name":"A","host_required":true,"port":-1,"source":true}]}`,
			[]string{"port -1 out of range"}},
		{"port missing", `{"providers":[{"id":"a","display_name":"A","host":"imap.a.example","security":"tls","source":true}]}`,
			[]string{"port missing"}},
		{"security unknown", `{"providers":[{"id":"a","display_name":"A","host":"imap.a.example","port":993,"security":"ssl","source":true}]}`,
			[]string{`security "ssl" unknown`}},
		{"security missing", `{"providers":[{"id":"a","display_name":"A","host":"imap.a.example","port":993,"source":true}]}`,
			[]string{"security missing"}},
		{"no role", `{"providers":[{"id":"a","display_name":"A","host":"imap.a.example","port":993,"security":"tls"}]}`,
			[]string{"usable neither as source nor as destination"}},
		{"bad id", `{"providers":[{"id":"Acme Mail","display_name":"A","host":"imap.a.example","port":993,"security":"tls","source":true}]}`,
			[]string{`preset 1 ("Acme Mail"): id must be`}},
		{"no display name", `{"providers":[{"id":"a","host":"imap.a.example","port":993,"security":"tls","source":true}]}`,
			[]string{"display_name missing"}},
		{"bad suffix", `{"providers":[{"id":"a","display_name":"A","host_required":true,"host_suffixes":["mail.a.example"],"source":true}]}`,
			[]string{`host_suffixes entry "mail.a.example" must be a domain starting with a dot`}},
		{"suffix on a fixed host", `{"providers":[{"id":"a","display_name":"A","host":"imap.a.example","host_suffixes":[".a.example"],"port":993,"security":"tls","source":true}]}`,
			[]string{"host_suffixes only apply"}},
		{"negative limit", `{"providers":[{"id":"a","display_name":"A","host":"imap.a.example","port":993,"security":"tls","source":true,"limits":{"max_connections":-1}}]}`,
			[]string{"limits cannot be negative"}},
		{"unknown profile", `{"providers":[{"id":"a","display_name":"A","host":"imap.a.example","port":993,"security":"tls","source":true,"handling":{"profile":"hotmail"}}]}`,
			[]string{`handling.profile "hotmail" unknown`}},
		{"unrecognised throttle answer", `{"providers":[{"id":"a","display_name":"A","host":"imap.a.example","port":993,"security":"tls","source":true,"handling":{"throttle_answer":"NO [OVERQUOTA] Mailbox full"}}]}`,
			[]string{"is not recognised as throttling"}},
		{"negative back-off", `{"providers":[{"id":"a","display_name":"A","host":"imap.a.example","port":993,"security":"tls","source":true,"handling":{"throttle_backoff_seconds":-5}}]}`,
			[]string{"throttle_backoff_seconds cannot be negative"}},
		{"session cut answer not a BYE", `{"providers":[{"id":"a","display_name":"A","host":"imap.a.example","port":993,"security":"tls","source":true,"handling":{"session_cut_answer":"NO [UNAVAILABLE] later"}}]}`,
			[]string{"session_cut_answer", "is not a BYE"}},
		{"every problem reported", `{"providers":[{"id":"a","display_name":"A","port":70000,"source":true},{"id":"b","display_name":"B","host":"imap.b.example","port":993,"security":"tls"}]}`,
			[]string{`preset 1 ("a"): host missing`, "port 70000 out of range", `preset 2 ("b"): usable neither`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.json))
			if err == nil {
				t.Fatalf("Parse succeeded with %d presets, want an error", len(c.List(roleAny)))
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Parse error = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "providers.json")
	custom := `{"providers":[` + fixed + `,
		{"id":"other","display_name":"Other","host_required":true,"source":true,"destination":true}]}`
	if err := os.WriteFile(good, []byte(custom), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil {
		t.Fatalf("Load(%s): %v", good, err)
	}
	if got, want := ids(c.List(roleAny)), []string{"acme", "other"}; !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v (the file replaces the built-in catalogue)", got, want)
	}
	if _, ok := c.Get("gmail"); ok {
		t.Errorf("Get(gmail) found a built-in preset in a replacement catalogue")
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"providers":[`+fixed+`,`+fixed+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "duplicate id") {
		t.Errorf("Load(%s) error = %v, want the path and the duplicate id", bad, err)
	}
	missing := filepath.Join(dir, "missing.json")
	if _, err := Load(missing); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(%s) error = %v, want a not-exist error", missing, err)
	}
}

func TestResolve(t *testing.T) {
	c := Builtin()
	gmailLimits := Limits{MaxConnections: 15, MaxMessageSize: 25 << 20, DailyDownloadBytes: 2500 << 20, DailyUploadBytes: 500 << 20}
	tls, starttls := imapcopyv1.Security_SECURITY_TLS, imapcopyv1.Security_SECURITY_STARTTLS
	tests := []struct {
		name    string
		role    imapcopyv1.AccountRole
		acct    *imapcopyv1.Account
		want    Server
		wantErr string // "field: substring"
	}{
		{"preset fills everything", roleSrc, &imapcopyv1.Account{Provider: "gmail"},
			Server{Provider: "gmail", Host: "imap.gmail.com", Port: 993, Security: imapconn.SecurityTLS, Limits: gmailLimits}, ""},
		{"preset with its own values repeated", roleDest, &imapcopyv1.Account{Provider: "Gmail", Host: "IMAP.Gmail.com.", Port: 993, Security: tls},
			Server{Provider: "gmail", Host: "imap.gmail.com", Port: 993, Security: imapconn.SecurityTLS, Limits: gmailLimits}, ""},
		{"preset refuses another host", roleSrc, &imapcopyv1.Account{Provider: "gmail", Host: "imap.evil.example"},
			Server{}, `host: Gmail uses the server imap.gmail.com, not imap.evil.example; leave it empty, or choose "other"`},
		{"preset refuses another port", roleSrc, &imapcopyv1.Account{Provider: "orange", Port: 143},
			Server{}, "port: Orange uses port 993, not 143"},
		{"preset refuses another security", roleSrc, &imapcopyv1.Account{Provider: "free", Security: starttls},
			Server{}, "security: Free uses TLS, not STARTTLS"},
		{"empty provider", roleSrc, &imapcopyv1.Account{Host: "imap.example.com"},
			Server{}, `provider: required: a preset id from ListProviders, or "other"`},
		{"unknown provider", roleSrc, &imapcopyv1.Account{Provider: "hotmail"},
			Server{}, `provider: unknown provider "hotmail"`},
		{"destination-only preset as source", roleSrc, &imapcopyv1.Account{Provider: "exchange-25gb", Host: "ex5.mail.ovh.net"},
			Server{}, "provider: Exchange 25 GB cannot be used as a source"},
		{"destination-only preset as destination", roleDest, &imapcopyv1.Account{Provider: "exchange-25gb", Host: "ex5.mail.ovh.net"},
			Server{Provider: "exchange-25gb", Host: "ex5.mail.ovh.net", Port: 993, Security: imapconn.SecurityTLS, Limits: Limits{MaxConnections: 16}}, ""},
		{"role unspecified skips the role check", roleAny, &imapcopyv1.Account{Provider: "exchange-reseller", Host: "ex5.mail.ovh.net"},
			Server{Provider: "exchange-reseller", Host: "ex5.mail.ovh.net", Port: 993, Security: imapconn.SecurityTLS, Limits: Limits{MaxConnections: 16}}, ""},
		{"other", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "imap.example.com", Port: 143, Security: starttls},
			Server{Provider: "other", Host: "imap.example.com", Port: 143, Security: imapconn.SecurityStartTLS}, ""},
		{"other, IPv6 literal in brackets", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "[2001:DB8::1]", Port: 993, Security: tls},
			Server{Provider: "other", Host: "2001:db8::1", Port: 993, Security: imapconn.SecurityTLS}, ""},
		{"other, plaintext returned for the caller to judge", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "10.0.0.1", Port: 143, Security: imapcopyv1.Security_SECURITY_PLAINTEXT},
			Server{Provider: "other", Host: "10.0.0.1", Port: 143, Security: imapconn.SecurityPlaintext}, ""},
		{"other needs a host", roleSrc, &imapcopyv1.Account{Provider: "other", Port: 993, Security: tls},
			Server{}, "host: required for Other IMAP server"},
		{"other needs a port", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "imap.example.com", Security: tls},
			Server{}, "port: required"},
		{"other needs a security", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "imap.example.com", Port: 993},
			Server{}, "security: required"},
		{"other with a port in the host", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "imap.example.com:993", Port: 993, Security: tls},
			Server{}, "host: \"imap.example.com:993\": give the server name alone and the port in the port field"},
		{"other with a bad host", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "imap example.com", Port: 993, Security: tls},
			Server{}, `host: "imap example.com" is not a valid host name`},
		{"other with a non-ASCII host", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "imap.exämple.com", Port: 993, Security: tls},
			Server{}, "host: \"imap.exämple.com\" is not a valid host name or IP address (international names in their xn-- form)"},
		{"other with a numeric name", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "127.1", Port: 993, Security: tls},
			Server{}, `host: "127.1" is not a valid host name`},
		{"other with a URL", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "imaps://imap.example.com", Port: 993, Security: tls},
			Server{}, "host:"},
		{"port out of range", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "imap.example.com", Port: 70000, Security: tls},
			Server{}, "port: 70000 is out of range 1-65535"},
		{"unknown security value", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "imap.example.com", Port: 993, Security: 42},
			Server{}, "security: unknown value 42"},
		{"other typed with a preset's server gets its limits", roleSrc, &imapcopyv1.Account{Provider: "other", Host: "imap.gmail.com", Port: 993, Security: tls},
			Server{Provider: "other", Host: "imap.gmail.com", Port: 993, Security: imapconn.SecurityTLS, Limits: gmailLimits}, ""},
		{"host-required preset defaults port and security", roleDest, &imapcopyv1.Account{Provider: "exchange-private", Host: "mail.corp.example"},
			Server{Provider: "exchange-private", Host: "mail.corp.example", Port: 993, Security: imapconn.SecurityTLS, Limits: Limits{MaxConnections: 16}}, ""},
		{"host-required preset with both changed", roleDest, &imapcopyv1.Account{Provider: "exchange-private", Host: "mail.corp.example", Port: 143, Security: starttls},
			Server{Provider: "exchange-private", Host: "mail.corp.example", Port: 143, Security: imapconn.SecurityStartTLS, Limits: Limits{MaxConnections: 16}}, ""},
		{"host-required preset with only the port changed", roleDest, &imapcopyv1.Account{Provider: "exchange-private", Host: "mail.corp.example", Port: 143},
			Server{}, "security: required"},
		{"host-required preset with only the security changed", roleDest, &imapcopyv1.Account{Provider: "exchange-private", Host: "mail.corp.example", Security: starttls},
			Server{}, "port: required"},
		{"hosted Exchange in Europe", roleSrc, &imapcopyv1.Account{Provider: "ovh-exchange-hosted", Host: "ex4.mail.ovh.net"},
			Server{Provider: "ovh-exchange-hosted", Host: "ex4.mail.ovh.net", Port: 993, Security: imapconn.SecurityTLS, Limits: Limits{MaxConnections: 16}}, ""},
		{"hosted Exchange in Canada", roleSrc, &imapcopyv1.Account{Provider: "ovh-exchange-hosted", Host: "ex.mail.ovh.ca"},
			Server{Provider: "ovh-exchange-hosted", Host: "ex.mail.ovh.ca", Port: 993, Security: imapconn.SecurityTLS, Limits: Limits{MaxConnections: 16}}, ""},
		{"hosted Exchange elsewhere", roleSrc, &imapcopyv1.Account{Provider: "ovh-exchange-hosted", Host: "mail.ovh.net.evil.example"},
			Server{}, `host: OVHcloud Hosted Exchange servers end in .mail.ovh.net or .mail.ovh.ca; choose "other"`},
		{"hosted Exchange needs a host", roleSrc, &imapcopyv1.Account{Provider: "ovh-exchange-hosted"},
			Server{}, "host: required for OVHcloud Hosted Exchange"},
		{"Microsoft 365 without a token", roleSrc, &imapcopyv1.Account{Provider: "microsoft365", Password: "pw"},
			Server{}, "oauth2_access_token: Microsoft 365 (Exchange Online, Outlook.com) accepts only OAuth"},
		{"Microsoft 365 with a token", roleSrc, &imapcopyv1.Account{Provider: "microsoft365", Oauth2AccessToken: "tok"},
			Server{Provider: "microsoft365", Host: "outlook.office365.com", Port: 993, Security: imapconn.SecurityTLS, Limits: Limits{MaxConnections: 16}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Resolve(tt.role, tt.acct)
			if tt.wantErr != "" {
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("Resolve(%v) = %+v, %v; want a *FieldError containing %q", tt.acct, got, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Resolve(%v) error = %q, want it to contain %q", tt.acct, err, tt.wantErr)
				}
				if field, _, _ := strings.Cut(tt.wantErr, ":"); fe.Field != field {
					t.Errorf("Resolve(%v) error field = %q, want %q", tt.acct, fe.Field, field)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%v): %v", tt.acct, err)
			}
			if got != tt.want {
				t.Errorf("Resolve(%v) = %+v, want %+v", tt.acct, got, tt.want)
			}
		})
	}
}

func TestResolveErrorsHoldNoSecret(t *testing.T) {
	const canary = "canary-pa55word"
	c := Builtin()
	accounts := []*imapcopyv1.Account{
		{Provider: "nope", Password: canary, Oauth2AccessToken: canary},
		{Provider: "gmail", Host: "x.example", Password: canary},
		{Provider: "microsoft365", Password: canary},
		{Provider: "other", Password: canary},
	}
	for _, acct := range accounts {
		_, err := c.Resolve(roleSrc, acct)
		if err == nil {
			t.Errorf("Resolve(provider %q) succeeded, want an error", acct.Provider)
			continue
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("Resolve(provider %q) error %q contains the password", acct.Provider, err)
		}
	}
}

func TestServerAddress(t *testing.T) {
	for _, tt := range []struct {
		s    Server
		want string
	}{
		{Server{Host: "imap.gmail.com", Port: 993}, "imap.gmail.com:993"},
		{Server{Host: "2001:db8::1", Port: 143}, "[2001:db8::1]:143"},
	} {
		if got := tt.s.Address(); got != tt.want {
			t.Errorf("Server{%s, %d}.Address() = %q, want %q", tt.s.Host, tt.s.Port, got, tt.want)
		}
	}
}

func TestProto(t *testing.T) {
	c := Builtin()
	gmail, _ := c.Get("gmail")
	want := &imapcopyv1.Provider{
		Id:          "gmail",
		DisplayName: "Gmail",
		Host:        "imap.gmail.com",
		Port:        993,
		Security:    imapcopyv1.Security_SECURITY_TLS,
		Source:      true,
		Destination: true,
		Limits: &imapcopyv1.ProviderLimits{
			MaxConnections:     15,
			MaxMessageSize:     25 << 20,
			DailyDownloadBytes: 2500 << 20,
			DailyUploadBytes:   500 << 20,
		},
		Help: gmail.Help,
	}
	if got := gmail.Proto(); !proto.Equal(got, want) {
		t.Errorf("gmail.Proto() = %v, want %v", got, want)
	}
	other, _ := c.Get(OtherID)
	if got := other.Proto(); got.Host != "" || got.Port != 0 || got.Security != imapcopyv1.Security_SECURITY_UNSPECIFIED {
		t.Errorf("other.Proto() = %v, want empty host, port 0 and SECURITY_UNSPECIFIED", got)
	}
	list := c.ListProto(roleSrc)
	if got, want := len(list), len(c.List(roleSrc)); got != want {
		t.Errorf("len(ListProto(source)) = %d, want %d", got, want)
	}
	for _, p := range list {
		if !p.Source {
			t.Errorf("ListProto(source) holds %q, which is not a source", p.Id)
		}
	}
}

func TestSecurityConversion(t *testing.T) {
	pairs := []struct {
		conn  imapconn.Security
		proto imapcopyv1.Security
	}{
		{imapconn.SecurityTLS, imapcopyv1.Security_SECURITY_TLS},
		{imapconn.SecurityStartTLS, imapcopyv1.Security_SECURITY_STARTTLS},
		{imapconn.SecurityPlaintext, imapcopyv1.Security_SECURITY_PLAINTEXT},
	}
	for _, p := range pairs {
		if got := SecurityToProto(p.conn); got != p.proto {
			t.Errorf("SecurityToProto(%d) = %v, want %v", p.conn, got, p.proto)
		}
		if got, ok := SecurityFromProto(p.proto); !ok || got != p.conn {
			t.Errorf("SecurityFromProto(%v) = %d, %v, want %d, true", p.proto, got, ok, p.conn)
		}
	}
	if got := SecurityToProto(0); got != imapcopyv1.Security_SECURITY_UNSPECIFIED {
		t.Errorf("SecurityToProto(0) = %v, want SECURITY_UNSPECIFIED", got)
	}
	for _, s := range []imapcopyv1.Security{imapcopyv1.Security_SECURITY_UNSPECIFIED, 42} {
		if got, ok := SecurityFromProto(s); ok {
			t.Errorf("SecurityFromProto(%v) = %d, true; want false", s, got)
		}
	}
}
