package imapappend

import (
	"slices"
	"testing"
	"time"

	"imapcopy.dev/pkg/internal/imapwire"
)

func TestQuoteMailbox(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"INBOX", `"INBOX"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"Reçus", `"Re&AOc-us"`},
		{"x\r\nA1 CREATE y", `"x&AA0ACg-A1 CREATE y"`},
	} {
		if got := quoteMailbox(tc.in); got != tc.want {
			t.Errorf("quoteMailbox(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCleanFlags(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{nil, nil},
		{[]string{`\Seen`, `\Recent`, `\*`}, []string{`\Seen`}},
		{[]string{`\SEEN`, `\answered`, `\Flagged`, `\deleted`, `\DRAFT`}, []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`}},
		{[]string{`\Unknown`, `\`}, nil},
		{[]string{"$Forwarded", "$label1", "Junk", "NonJunk"}, []string{"$Forwarded", "$label1", "Junk", "NonJunk"}},
		{[]string{"bad kw", "bad(", "bad)", "bad{", "bad%", "bad*", `bad"`, `bad\`, "bad]", "", "é", "tab\t", "nul\x00"}, nil},
		{[]string{`\Seen`, `\seen`, "kw", "KW"}, []string{`\Seen`, "kw"}},
	} {
		if got := CleanFlags(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("CleanFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDateTime(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	lmt := time.FixedZone("LMT", 561) // Paris mean time, 9m21s
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 3, 5, 7, 8, 9, 0, time.UTC), "05-Mar-2024 07:08:09 +0000"},
		{time.Date(1999, 12, 31, 23, 59, 59, 0, paris), "31-Dec-1999 23:59:59 +0100"},
		{time.Date(1900, 1, 1, 0, 9, 21, 0, lmt), "01-Jan-1900 00:00:00 +0000"},
	} {
		if got := dateTime(tc.in); got != tc.want {
			t.Errorf("dateTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []time.Time{{}, time.Date(999, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if validDate(bad) {
			t.Errorf("validDate(%v) = true, want false", bad)
		}
	}
}

func TestParseAppendUID(t *testing.T) {
	for _, tc := range []struct {
		code, args string
		n          int
		validity   uint32
		uids       []uint32
	}{
		{"APPENDUID", "38505 3955", 1, 38505, []uint32{3955}},
		{"APPENDUID", "38505 3955:3957", 3, 38505, []uint32{3955, 3956, 3957}},
		{"APPENDUID", "38505 3957:3955", 3, 38505, []uint32{3955, 3956, 3957}},
		{"APPENDUID", "38505 1,3:4,9", 4, 38505, []uint32{1, 3, 4, 9}},
		{"APPENDUID", "38505 3955:3957", 2, 38505, nil},     // more than sent
		{"APPENDUID", "38505 1:4294967295", 50, 38505, nil}, // absurd range: not expanded
		{"APPENDUID", "38505 3955", 2, 38505, nil},          // fewer than sent
		{"APPENDUID", "x 3955", 1, 0, nil},                  // malformed
		{"APPENDUID", "38505 0", 1, 38505, nil},             // UID 0 is not a UID
		{"APPENDUID", "38505", 1, 0, nil},                   // malformed
		{"CAPABILITY", "IMAP4rev1", 1, 0, nil},              // another code
		{"APPENDUID", "38505 4294967296", 1, 38505, nil},    // overflow
		{"APPENDUID", "38505 3955:3957,3958", 4, 38505, []uint32{3955, 3956, 3957, 3958}},
	} {
		resp := &imapwire.Response{Tag: "A1", Type: "OK", Code: tc.code, CodeArgs: tc.args}
		validity, uids := parseAppendUID(resp, tc.n)
		if validity != tc.validity || !slices.Equal(uids, tc.uids) {
			t.Errorf("parseAppendUID([%s %s], %d) = %d, %v, want %d, %v", tc.code, tc.args, tc.n, validity, uids, tc.validity, tc.uids)
		}
	}
}
