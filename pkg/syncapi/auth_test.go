package syncapi

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestParseTokens(t *testing.T) {
	in := `# control panels
panel-prod   0123456789abcdef0123
0123456789abcdefXXXX

ops aaaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbb
`
	tokens, err := ParseTokens(strings.NewReader(in))
	if err != nil {
		t.Fatalf("ParseTokens: %v", err)
	}
	var names []string
	for _, tok := range tokens {
		names = append(names, tok.Name)
	}
	if len(names) != 4 || names[0] != "panel-prod" || !strings.HasPrefix(names[1], "token-") || names[2] != "ops" || !strings.HasPrefix(names[3], "token-") {
		t.Errorf("token names = %q, want [panel-prod token-… ops token-…]", names)
	}
	for _, tok := range tokens {
		if s := tok.String(); strings.Contains(s, "0123456789abcdef") || strings.Contains(s, "aaaaaaaa") {
			t.Errorf("Token.String() = %q reveals the secret", s)
		}
	}

	for _, bad := range []string{"short", "a b c", "name short"} {
		_, err := ParseTokens(strings.NewReader(bad))
		if err == nil {
			t.Errorf("ParseTokens(%q) = nil error, want one", bad)
			continue
		}
		if strings.Contains(err.Error(), "short\"") && !strings.Contains(bad, "name") {
			t.Errorf("ParseTokens(%q) error %q quotes the secret", bad, err)
		}
	}
}

func TestAuthBearer(t *testing.T) {
	tok, err := NewToken("panel", "0123456789abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	auth := NewAuth([]Token{tok}, false)
	tests := []struct {
		name   string
		header []string
		method string
		want   codes.Code
		caller string
	}{
		{"valid token", []string{"Bearer 0123456789abcdef0123"}, "/imapcopy.v1.SyncService/StartSync", codes.OK, "panel"},
		{"lowercase scheme", []string{"bearer 0123456789abcdef0123"}, "/imapcopy.v1.SyncService/StartSync", codes.OK, "panel"},
		{"wrong token", []string{"Bearer 0123456789abcdef0124"}, "/imapcopy.v1.SyncService/StartSync", codes.Unauthenticated, ""},
		{"basic scheme", []string{"Basic 0123456789abcdef0123"}, "/imapcopy.v1.SyncService/StartSync", codes.Unauthenticated, ""},
		{"no header", nil, "/imapcopy.v1.SyncService/GetSyncStatus", codes.Unauthenticated, ""},
		{"health is open", nil, "/grpc.health.v1.Health/Check", codes.OK, "health"},
		{"reflection is not", nil, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", codes.Unauthenticated, ""},
	}
	for _, tt := range tests {
		ctx := context.Background()
		if tt.header != nil {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", tt.header[0]))
		}
		ctx, err := auth.authenticate(ctx, tt.method)
		if got := status.Code(err); got != tt.want {
			t.Errorf("%s: code = %v, want %v", tt.name, got, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "0123456789abcdef") {
			t.Errorf("%s: error %q contains the token", tt.name, err)
		}
		if got := Caller(ctx); err == nil && got != tt.caller {
			t.Errorf("%s: caller = %q, want %q", tt.name, got, tt.caller)
		}
	}
}

func TestAuthOpen(t *testing.T) {
	auth := NewAuth(nil, false)
	if !auth.Open() {
		t.Fatal("Open() = false with no tokens and no client certificates")
	}
	ctx, err := auth.authenticate(context.Background(), "/imapcopy.v1.SyncService/StartSync")
	if err != nil {
		t.Fatalf("open auth refused a call: %v", err)
	}
	if Caller(ctx) == "" {
		t.Error("open auth left the caller empty, want the peer or unknown")
	}
	if NewAuth(nil, true).Open() {
		t.Error("Open() = true with client certificates required")
	}
}
