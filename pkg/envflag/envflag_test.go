package envflag

import (
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type values struct {
	s string
	b bool
	n int
	d time.Duration
	l slog.Level
}

func parse(env map[string]string, args ...string) (values, error) {
	var v values
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	e := New(fs, func(k string) string { return env[k] })
	e.String(&v.s, "s", "T_S", "def", "a string")
	e.Bool(&v.b, "b", "T_B", false, "a bool")
	e.Int(&v.n, "n", "T_N", 4, "an int")
	e.Duration(&v.d, "d", "T_D", time.Minute, "a duration")
	v.l = slog.LevelInfo
	e.Text(&v.l, "l", "T_L", "a level", "a level")
	if err := fs.Parse(args); err != nil {
		return v, err
	}
	return v, e.Err()
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want values
	}{
		{"defaults", nil, nil, values{"def", false, 4, time.Minute, slog.LevelInfo}},
		{"environment", map[string]string{"T_S": "e", "T_B": "true", "T_N": "8", "T_D": "2s", "T_L": "debug"}, nil,
			values{"e", true, 8, 2 * time.Second, slog.LevelDebug}},
		{"flags over environment", map[string]string{"T_S": "e", "T_N": "8", "T_L": "debug"},
			[]string{"-s", "f", "-n", "2", "-b", "-d", "3s", "-l", "error"},
			values{"f", true, 2, 3 * time.Second, slog.LevelError}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(tt.env, tt.args...)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got != tt.want {
				t.Errorf("parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBadEnvironment(t *testing.T) {
	_, err := parse(map[string]string{"T_B": "maybe", "T_N": "four", "T_D": "soon", "T_L": "loud"})
	if err == nil {
		t.Fatal("parse with bad variables: no error")
	}
	for _, name := range []string{"T_B", "T_N", "T_D", "T_L"} {
		if !strings.Contains(err.Error(), name+"=") {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestUsageNamesVariable(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var s string
	New(fs, func(string) string { return "" }).String(&s, "data-dir", "T_DATA_DIR", "data", "where data lives")
	if got := fs.Lookup("data-dir").Usage; got != "where data lives (env T_DATA_DIR)" {
		t.Errorf("usage = %q, want the variable named", got)
	}
}
