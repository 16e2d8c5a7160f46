package imapconn

import (
	"io"
	"strconv"
	"strings"
	"testing"
)

// TestResponseGuard checks what the guard lets through to go-imap's client: message
// bodies of any size, and neither a long line nor a large literal anywhere else.
func TestResponseGuard(t *testing.T) {
	big := strings.Repeat("x", MaxBufferedLiteral+1)
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"small literal", "* LIST () \"/\" {3}\r\nabc\r\n", true},
		{"body literal", "* 1 FETCH (UID 7 BODY[] {" + itoa(len(big)) + "}\r\n" + big + ")\r\n", true},
		{"partial body", "* 1 FETCH (BODY[1.2]<0> {" + itoa(len(big)) + "}\r\n" + big + ")\r\n", true},
		{"rfc822 body", "* 1 FETCH (RFC822 {" + itoa(len(big)) + "}\r\n" + big + ")\r\n", true},
		{"large folder name", "* LIST () \"/\" {" + itoa(len(big)) + "}\r\n" + big + "\r\n", false},
		{"body name in a folder name", "* LIST () \"/\" \"BODY[] {5}\" {" + itoa(len(big)) + "}\r\n" + big + "\r\n", false},
		{"long line", "* OK " + big + "\r\n", false},
		{"long line after a body", "* 1 FETCH (BODY[] {3}\r\nabc " + big + ")\r\n", false},
	} {
		_, err := io.Copy(io.Discard, newResponseGuard(strings.NewReader(tc.in)))
		if got := err == nil; got != tc.ok {
			t.Errorf("%s: read error %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
