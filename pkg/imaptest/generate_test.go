package imaptest

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestGenerateDeterministic(t *testing.T) {
	a := Generate(42, Spec{Count: 150})
	b := Generate(42, Spec{Count: 150})
	if !reflect.DeepEqual(a, b) {
		t.Errorf("Generate(42) twice gave different mailboxes")
	}
	c := Generate(43, Spec{Count: 150})
	if reflect.DeepEqual(a, c) {
		t.Errorf("Generate(42) and Generate(43) gave the same mailbox")
	}
}

func TestGenerateRealistic(t *testing.T) {
	mb := Generate(7, Spec{Count: 400})
	if got := mb.Count(); got != 400 {
		t.Errorf("Count() = %d, want 400", got)
	}

	special := map[string]string{}
	var nested, nonASCII, inboxChild bool
	for _, f := range mb.Folders {
		if f.SpecialUse != "" {
			special[f.SpecialUse] = f.Name
		}
		nested = nested || strings.Count(f.Name, "/") >= 2
		nonASCII = nonASCII || !isASCII(f.Name)
		inboxChild = inboxChild || strings.HasPrefix(f.Name, "INBOX/")
		for _, comp := range strings.Split(f.Name, "/") {
			if strings.Contains(comp, ".") || comp == "" {
				t.Errorf("folder %q: component %q does not fit a dot server", f.Name, comp)
			}
		}
	}
	for _, use := range []string{`\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`} {
		if special[use] == "" {
			t.Errorf("no folder with %s", use)
		}
	}
	if !nested || !nonASCII || !inboxChild {
		t.Errorf("nested=%v nonASCII=%v inboxChild=%v, want all true", nested, nonASCII, inboxChild)
	}
	if f := mb.Folder(emptyFolder); f == nil || len(f.Messages) != 0 {
		t.Errorf("folder %q = %+v, want present and empty", emptyFolder, f)
	}

	flags := map[string]int{}
	var noMsgID, big, base64, rawUTF8, dups int
	for _, f := range mb.Folders {
		seen := map[string]bool{}
		for _, m := range f.Messages {
			if bytes.Contains(bytes.ReplaceAll(m.Raw, []byte("\r\n"), nil), []byte("\n")) {
				t.Fatalf("message in %q has a bare LF", f.Name)
			}
			if !bytes.HasSuffix(m.Raw, []byte("\r\n")) {
				t.Errorf("message in %q does not end with CRLF", f.Name)
			}
			if m.InternalDate.IsZero() || m.InternalDate.Nanosecond() != 0 {
				t.Errorf("message in %q: internal date %v, want whole seconds", f.Name, m.InternalDate)
			}
			head, _, _ := bytes.Cut(m.Raw, []byte("\r\n\r\n"))
			if !bytes.Contains(head, []byte("\r\nMessage-ID:")) {
				noMsgID++
			}
			if !isASCII(string(head)) && utf8.Valid(head) {
				rawUTF8++
			}
			if len(m.Raw) > 100_000 {
				big++
			}
			if bytes.Contains(m.Raw, []byte("Content-Transfer-Encoding: base64")) {
				base64++
			}
			if seen[string(m.Raw)] {
				dups++
			}
			seen[string(m.Raw)] = true
			for _, fl := range m.Flags {
				flags[fl]++
			}
		}
	}
	for _, fl := range []string{`\Seen`, `\Answered`, `\Flagged`, `\Draft`, `\Deleted`, "$Forwarded", "$Label1", "Work"} {
		if flags[fl] == 0 {
			t.Errorf("no message with %s", fl)
		}
	}
	if noMsgID == 0 || big == 0 || base64 == 0 || rawUTF8 == 0 || dups == 0 {
		t.Errorf("without Message-ID=%d big=%d base64=%d raw UTF-8 headers=%d duplicates=%d, want all > 0",
			noMsgID, big, base64, rawUTF8, dups)
	}
	t.Logf("%d messages, %d bytes, %d folders; flags %v; %d without Message-ID, %d over 100 kB, %d duplicates",
		mb.Count(), mb.Size(), len(mb.Folders), flags, noMsgID, big, dups)
}

func TestGenerateSpec(t *testing.T) {
	mb := Generate(1, Spec{Count: 30, Folders: 20, Sizes: []SizeClass{{Weight: 1, Min: 1000, Max: 2000}}})
	if got, want := len(mb.Folders), 1+5+20; got != want {
		t.Errorf("folders = %d, want %d", got, want)
	}
	if mb.Folder("Folder 20") == nil {
		t.Errorf("no folder %q among %v", "Folder 20", folderNames(mb))
	}
	for _, f := range mb.Folders {
		for _, m := range f.Messages {
			if len(m.Raw) < 900 || len(m.Raw) > 2200 {
				t.Errorf("message of %d bytes, want about 1000..2000", len(m.Raw))
			}
		}
	}
	if got := len(Generate(1, Spec{Count: 10, Folders: -1}).Folders); got != 6 {
		t.Errorf("Folders: -1 gave %d folders, want 6", got)
	}
}

func TestMailboxName(t *testing.T) {
	tests := []struct {
		f       Flavour
		logical string
		want    string
	}{
		{FlavourSlash, "INBOX", "INBOX"},
		{FlavourSlash, "INBOX/Factures", "INBOX/Factures"},
		{FlavourSlash, "Projects/2024/Q1", "Projects/2024/Q1"},
		{FlavourDot, "INBOX", "INBOX"},
		{FlavourDot, "INBOX/Factures", "INBOX.Factures"},
		{FlavourDot, "Projects/2024/Q1", "INBOX.Projects.2024.Q1"},
		{FlavourDot, "Données/Été", "INBOX.Données.Été"},
	}
	for _, tt := range tests {
		if got := tt.f.MailboxName(tt.logical); got != tt.want {
			t.Errorf("%s.MailboxName(%q) = %q, want %q", tt.f, tt.logical, got, tt.want)
		}
	}
}

func folderNames(mb Mailbox) []string {
	var names []string
	for _, f := range mb.Folders {
		names = append(names, f.Name)
	}
	return slices.Clip(names)
}
