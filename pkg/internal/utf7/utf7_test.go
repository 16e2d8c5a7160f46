package utf7

import "testing"

func TestEncode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"INBOX", "INBOX"},
		{"Reçus", "Re&AOc-us"},
		{"日本語", "&ZeVnLIqe-"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"}, // RFC 3501 5.1.3
		{"Tom & Jerry", "Tom &- Jerry"},
		{"&", "&-"},
		{"Éléments envoyés", "&AMk-l&AOk-ments envoy&AOk-s"},
		{"😀", "&2D3eAA-"},
		{"a\tb", "a&AAk-b"},
		{"Réunions été", "R&AOk-unions &AOk-t&AOk-"},
		{"Документы", "&BBQEPgQ6BEMEPAQ1BD0EQgRL-"},
		{"", ""},
	} {
		if got := Encode(tc.in); got != tc.want {
			t.Errorf("Encode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
