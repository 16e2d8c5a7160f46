package procmain

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"
)

type coded struct {
	code  int
	quiet bool
}

func (c coded) Error() string { return fmt.Sprintf("coded %d", c.code) }
func (c coded) ExitCode() int { return c.code }
func (c coded) Quiet() bool   { return c.quiet }

func TestExit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		code    int
		printed string
	}{
		{"success", nil, 0, ""},
		{"help", fmt.Errorf("parse: %w", flag.ErrHelp), 0, ""},
		{"error", errors.New("listen: address in use"), 1, "imapcopy: listen: address in use\n"},
		{"coded", fmt.Errorf("copy: %w", coded{code: 3}), 3, "imapcopy: copy: coded 3\n"},
		{"quiet", coded{code: 2, quiet: true}, 2, ""},
	} {
		var out bytes.Buffer
		if got := Exit(&out, "imapcopy", tc.err); got != tc.code || out.String() != tc.printed {
			t.Errorf("%s: Exit = %d printing %q, want %d printing %q", tc.name, got, out.String(), tc.code, tc.printed)
		}
	}
}
