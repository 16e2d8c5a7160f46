package mailcopy

import (
	"fmt"
	"testing"
)

func TestCreateWaves(t *testing.T) {
	tests := []struct {
		names []string
		delim rune
		want  string
	}{
		{nil, '/', "[]"},
		{[]string{"a", "b", "c"}, '/', "[[a b c]]"},
		{[]string{"a", "a/b", "a/b/c", "d", "d/e"}, '/', "[[a d] [a/b d/e] [a/b/c]]"},
		// A parent that exists already (not in the list) costs no wave.
		{[]string{"x/y", "x/y/z", "w/v"}, '/', "[[x/y w/v] [x/y/z]]"},
		// Only the delimiter makes a parent.
		{[]string{"a", "a.b", "ab"}, '/', "[[a a.b ab]]"},
		{[]string{"INBOX.a", "INBOX.a.b", "INBOX.c"}, '.', "[[INBOX.a INBOX.c] [INBOX.a.b]]"},
		// A flat server: everything at once.
		{[]string{"a", "a/b"}, 0, "[[a a/b]]"},
		// A grandparent in the list and a parent that exists: after the grandparent.
		{[]string{"a", "a/b/c"}, '/', "[[a] [a/b/c]]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(createWaves(tt.names, tt.delim)); got != tt.want {
			t.Errorf("createWaves(%q, %q) = %s, want %s", tt.names, tt.delim, got, tt.want)
		}
	}
}
