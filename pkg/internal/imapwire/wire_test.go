package imapwire

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Response
	}{
		{"* OK [CAPABILITY IMAP4rev1 LITERAL+] Dovecot ready.\r\n", Response{Tag: "*", Type: "OK", Code: "CAPABILITY", CodeArgs: "IMAP4rev1 LITERAL+", Text: "Dovecot ready."}},
		{"A1 OK [APPENDUID 1700000000 3955:3957] Append completed.\r\n", Response{Tag: "A1", Type: "OK", Code: "APPENDUID", CodeArgs: "1700000000 3955:3957", Text: "Append completed."}},
		{"a2 no [overquota] Quota exceeded\r\n", Response{Tag: "a2", Type: "NO", Code: "OVERQUOTA", Text: "Quota exceeded"}},
		{"A3 BAD\r\n", Response{Tag: "A3", Type: "BAD"}},
		{"* 23 EXISTS\r\n", Response{Tag: "*", Type: "EXISTS"}},
		{"* CAPABILITY IMAP4rev1 IDLE\r\n", Response{Tag: "*", Type: "CAPABILITY", Text: "IMAP4rev1 IDLE"}},
		{"+ go ahead\r\n", Response{Tag: "+", Text: "go ahead"}},
		{"+\r\n", Response{Tag: "+"}},
		{"* BYE shutting down\r\n", Response{Tag: "*", Type: "BYE", Text: "shutting down"}},
		{"* 1 FETCH (BODY[] {12}\r\nA1 OK hello\r\n FLAGS (\\Seen))\r\n", Response{Tag: "*", Type: "FETCH", Text: "(BODY[] {12}"}},
		{"* 1 FETCH (A {3}\r\nabc B {0}\r\n)\r\n", Response{Tag: "*", Type: "FETCH", Text: "(A {3}"}},
	} {
		in := tc.in + "T9 OK next\r\n"
		r := bufio.NewReader(strings.NewReader(in))
		got, err := ReadResponse(r)
		if err != nil {
			t.Errorf("ReadResponse(%q) error = %v", tc.in, err)
			continue
		}
		got.Line = ""
		rest, _ := io.ReadAll(r)
		if read := int64(len(in) - len(rest)); got.Size != read {
			t.Errorf("ReadResponse(%q) size = %d, want the %d bytes it read", tc.in, got.Size, read)
		}
		got.Size = 0
		if *got != tc.want {
			t.Errorf("ReadResponse(%q) = %+v, want %+v", tc.in, *got, tc.want)
		}
	}
}

func TestReadResponseSkipsLiteralsAndBoundsLines(t *testing.T) {
	long := strings.Repeat("x", 3*MaxLine)
	in := "* 1 FETCH (BODY[] {7}\r\nA1 OK\r\n" + long + ")\r\nA1 OK done\r\n"
	r := bufio.NewReader(strings.NewReader(in))
	first, err := ReadResponse(r)
	if err != nil {
		t.Fatal(err)
	}
	if first.Type != "FETCH" {
		t.Errorf("first response = %+v, want the FETCH", first)
	}
	second, err := ReadResponse(r)
	if err != nil {
		t.Fatal(err)
	}
	if second.Tag != "A1" || second.Type != "OK" || second.Text != "done" {
		t.Errorf("second response = %+v, want A1 OK done", second)
	}

	resp, err := ReadResponse(bufio.NewReader(strings.NewReader("* OK " + long + "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Text) > MaxLine {
		t.Errorf("len(Text) = %d, want at most %d", len(resp.Text), MaxLine)
	}
}

func TestReadResponseErrors(t *testing.T) {
	for _, in := range []string{"", "* OK trunc", "* 1 FETCH (BODY[] {50}\r\nshort", "garbage\r\n"} {
		_, err := ReadResponse(bufio.NewReader(strings.NewReader(in)))
		if err == nil {
			t.Errorf("ReadResponse(%q) error = nil, want one", in)
		}
		if in != "garbage\r\n" && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("ReadResponse(%q) error = %v, want io.ErrUnexpectedEOF", in, err)
		}
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"bob", `"bob"`, true},
		{`a"b\c`, `"a\"b\\c"`, true},
		{"", `""`, true},
		{"a\r\nb", "", false},
		{"pässword", "", false},
		{"nul\x00", "", false},
	} {
		got, ok := Quote(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Quote(%q) = %q, %v, want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseCaps(t *testing.T) {
	caps := ParseCaps("imap4rev1 literal+ AUTH=plain  MULTIAPPEND")
	for _, want := range []imap.Cap{imap.CapIMAP4rev1, imap.CapLiteralPlus, "AUTH=PLAIN", imap.CapMultiAppend} {
		if !caps.Has(want) {
			t.Errorf("ParseCaps(...) = %v, lacks %s", caps, want)
		}
	}
}

// TestReadResponseBoundsResponses: a response takes at most MaxResponse on the wire, its
// literals included (TestReadResponse checks the sizes); a longer one is an error, read
// no further than the bound.
func TestReadResponseBoundsResponses(t *testing.T) {
	for name, in := range map[string]string{
		"a line":                        "* OK " + strings.Repeat("x", MaxResponse) + "\r\n",
		"a literal":                     "* 1 FETCH (BODY[] {" + strconv.Itoa(MaxResponse) + "}\r\n",
		"a line after a literal":        "* 1 FETCH (BODY[] {10}\r\n0123456789" + strings.Repeat("x", MaxResponse) + ")\r\n",
		"literals that add up too much": "* 1 FETCH (A {" + strconv.Itoa(MaxResponse/2) + "}\r\n" + strings.Repeat("x", MaxResponse/2) + " B {" + strconv.Itoa(MaxResponse/2) + "}\r\n",
	} {
		r := strings.NewReader(in)
		if _, err := ReadResponse(bufio.NewReader(r)); err == nil {
			t.Errorf("%s of more than MaxResponse: no error", name)
		}
		if read := int64(len(in)) - int64(r.Len()); read > MaxResponse+64<<10 {
			t.Errorf("%s: read %d bytes, want the reading to stop near MaxResponse (%d)", name, read, MaxResponse)
		}
	}
}
