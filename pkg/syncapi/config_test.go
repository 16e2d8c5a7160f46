package syncapi

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    Rate
		wantErr bool
	}{
		{"10/10m", Rate{Every: time.Minute, Burst: 10}, false},
		{"1200/1m", Rate{Every: 50 * time.Millisecond, Burst: 1200}, false},
		{" 3 / 3s ", Rate{Every: time.Second, Burst: 3}, false},
		{"off", Rate{}, false},
		{"0", Rate{}, false},
		{"", Rate{}, false},
		{"10", Rate{}, true},
		{"x/1m", Rate{}, true},
		{"-1/1m", Rate{}, true},
		{"10/soon", Rate{}, true},
		{"10/0s", Rate{}, true},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseRate(%q) = %+v, %v, want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestConfigFromEnvironmentAndFlags(t *testing.T) {
	env := map[string]string{
		"IMAPCOPY_GRPC_ADDR":         "127.0.0.1:6000",
		"IMAPCOPY_REFLECTION":        "false",
		"IMAPCOPY_MAX_ACCOUNT_TESTS": "4",
		"IMAPCOPY_QUEUED_LOCK_TTL":   "2h",
		"IMAPCOPY_ALLOW_NETWORKS":    "10.0.0.0/8, imap.internal.example",
	}
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs, func(k string) string { return env[k] })
	if err := fs.Parse([]string{"-max-account-tests", "8"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if c.GRPCAddr != "127.0.0.1:6000" || c.Reflection || c.MaxAccountTests != 8 || c.QueuedLockTTL != 2*time.Hour {
		t.Errorf("config = %+v, want the environment's values and the flag's max-account-tests 8", c)
	}
	if c.RatePerAddress != DefaultRatePerAddress || c.IMAP.AllowPorts != "143,993" {
		t.Errorf("defaults = %q, %q, want %q, 143,993", c.RatePerAddress, c.IMAP.AllowPorts, DefaultRatePerAddress)
	}
	if _, err := c.IMAP.Policy(); err != nil {
		t.Errorf("Policy: %v", err)
	}
	opts, err := c.Options()
	if err != nil || opts.PerAddress.Burst != 10 || opts.MaxConcurrentTests != 8 {
		t.Errorf("Options = %+v, %v", opts, err)
	}
}

func TestConfigCheck(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want string // "" when valid
	}{
		{"loopback plain", Config{GRPCAddr: "127.0.0.1:50051"}, ""},
		{"localhost plain", Config{GRPCAddr: "localhost:50051"}, ""},
		{"ipv6 loopback plain", Config{GRPCAddr: "[::1]:50051"}, ""},
		{"wide with TLS and tokens", Config{GRPCAddr: ":50051", TLSCertFile: "c", TLSKeyFile: "k", TokensFile: "t"}, ""},
		{"wide with mTLS", Config{GRPCAddr: "0.0.0.0:50051", TLSCertFile: "c", TLSKeyFile: "k", TLSClientCAFile: "ca"}, ""},
		{"wide insecure by choice", Config{GRPCAddr: "10.0.0.5:50051", InsecureListen: true}, ""},
		{"wide without TLS", Config{GRPCAddr: ":50051", Tokens: "x"}, "passwords would cross the network in clear"},
		{"wide without auth", Config{GRPCAddr: ":50051", TLSCertFile: "c", TLSKeyFile: "k"}, "anyone could call"},
		{"key without cert", Config{GRPCAddr: "127.0.0.1:1", TLSKeyFile: "k"}, "go together"},
		{"client CA without TLS", Config{GRPCAddr: "127.0.0.1:1", TLSClientCAFile: "ca"}, "needs TLS"},
		{"bad address", Config{GRPCAddr: "nowhere"}, "IMAPCOPY_GRPC_ADDR"},
		{"bad rate", Config{GRPCAddr: "127.0.0.1:1", RatePerCaller: "fast"}, "IMAPCOPY_RATE_PER_CALLER"},
	}
	for _, tt := range tests {
		err := tt.c.Check()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: Check = %v, want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: Check = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}
