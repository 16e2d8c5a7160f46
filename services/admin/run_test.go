package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(file, []byte("source_login\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"IMAPCOPY_API_TOKEN": "tok-from-env"}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		args []string
		want string // in the error; "" for none
	}{
		{[]string{"start", file}, ""},
		{[]string{"start", "-api", "[::1]:50051", file}, ""},
		{[]string{"start", "-api", "10.0.0.5:50051", file}, "not a loopback address"},
		{[]string{"start", "-api", "api.example.com:443", "-tls", file}, ""},
		{[]string{"start", "-api", "api.example.com:443", file}, "not a loopback address"},
		{[]string{"start"}, "give one batch file"},
		{[]string{"stop", file}, `the command is "start"`},
		{[]string{}, `the command is "start"`},
		{[]string{"start", "-concurrency", "0", file}, "-concurrency must be at least 1"},
	}
	for _, tt := range tests {
		c, err := parseConfig(tt.args, getenv, io.Discard)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: %v, want an error containing %q", tt.args, err, tt.want)
		case err == nil && (c.File != file || c.Token != "tok-from-env"):
			t.Errorf("%q: file %q, token from the environment %v", tt.args, c.File, c.Token == "tok-from-env")
		}
	}
}

// A batch file with an error stops before any call, naming the line.
func TestRunBadFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(file, []byte("source_login,source_password,destination_login,destination_password\na@x.example,,b@y.example,q\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(t.Context(), []string{"start", file}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "line 2: source_password") {
		t.Errorf("run with a bad file: %v, want the line named", err)
	}
}
