package mailcopy_test

import (
	"bufio"
	"strings"
	"testing"

	"imapcopy.dev/pkg/imapconn"
	"imapcopy.dev/pkg/imaptest"
	"imapcopy.dev/pkg/mailcopy"
)

// hostileBound is how much a copy's heap may grow against a hostile server (issue 14,
// promise 7).
const hostileBound = 64 << 20

// TestHostileSource points the copier at sources that try to make it buffer without
// bound: a 4 GB literal for a folder name, a response line that never ends, and a LIST
// that never ends. Each copy must fail with a reason, its heap growing by less than
// hostileBound. Not parallel: it measures the process's heap.
func TestHostileSource(t *testing.T) {
	for _, tc := range []struct {
		name string
		list imaptest.Answer
		want string // in the error
	}{
		{"4 GB literal", imaptest.HugeLiteral(`* LIST () "/" `), "literal"},
		{"endless line", imaptest.EndlessLine(`* LIST () "/" `), "line longer"},
		{"endless LIST", imaptest.EndlessList, "folders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := imaptest.StartHostile(t, map[string]imaptest.Answer{"LIST": tc.list})
			dst := servers[imaptest.FlavourSlash].AddUser(t)
			copyHostile(t, src, dst, tc.want)
		})
	}
}

// TestHostileDestination: the same against the destination, in its LIST and in the
// answer to an APPEND (the copier's own append pipeline reads those).
func TestHostileDestination(t *testing.T) {
	inbox := func(w *bufio.Writer) error {
		_, err := w.WriteString(`* LIST () "/" INBOX` + "\r\n")
		return err
	}
	for _, tc := range []struct {
		name    string
		answers map[string]imaptest.Answer
		want    string // in the error
	}{
		{"LIST with a 4 GB literal", map[string]imaptest.Answer{"LIST": imaptest.HugeLiteral(`* LIST () "/" `)}, "literal"},
		{"endless LIST", map[string]imaptest.Answer{"LIST": imaptest.EndlessList}, "folders"},
		{"APPEND answered by an endless line", map[string]imaptest.Answer{
			"LIST": inbox, "APPEND": imaptest.EndlessLine("* OK ")}, "line longer"},
		{"APPEND answered by a 4 GB literal", map[string]imaptest.Answer{
			"LIST": inbox, "APPEND": imaptest.HugeLiteral("* 1 FETCH (BODY[] ")}, "literal"},
		{"APPEND answered by untagged data without end", map[string]imaptest.Answer{
			"LIST": inbox, "APPEND": imaptest.Endless("* OK " + strings.Repeat("still busy ", 100) + "\r\n")}, "untagged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := servers[imaptest.FlavourSlash].AddUser(t)
			mustLoad(t, src, imaptest.Generate(792, imaptest.Spec{Count: 5, Folders: -1}))
			dst := imaptest.StartHostile(t, tc.answers)
			copyHostile(t, src, dst, tc.want)
		})
	}
}

// copyHostile copies from src to dst, one of them hostile: the copy must fail at once
// (no retry: the server will not mend) with an error that mentions want, its heap
// growing by less than hostileBound.
func copyHostile(t *testing.T, src, dst imapconn.Account, want string) {
	t.Helper()
	var err error
	peak := imaptest.PeakHeapGrowth(func() {
		_, err = mailcopy.Copy(testContext(t), testConfig(t, src, dst))
	})
	t.Logf("peak heap growth %.1f MiB; error: %v", float64(peak)/(1<<20), err)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Copy error = %v, want one that mentions %q", err, want)
	}
	if k := mailcopy.KindOf(err); k != mailcopy.KindConnect {
		t.Errorf("Copy error kind %v, want %v: a retry would not mend the server", k, mailcopy.KindConnect)
	}
	if peak > hostileBound {
		t.Errorf("peak heap growth %d bytes, want at most %d", peak, hostileBound)
	}
}
