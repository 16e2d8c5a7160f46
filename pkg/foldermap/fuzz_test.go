package foldermap

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fuzzComponents are the name parts the fuzzer combines: INBOX in several cases, names
// differing by case, delimiters inside names, special-use and Gmail names, suffixes,
// non-ASCII and empty components.
var fuzzComponents = []string{
	"INBOX", "Inbox", "a", "A", "b.c", "b_c", "b/c", "Sent", "sent", "Sent Items", "Trash",
	"Corbeille", "[Gmail]", "All Mail", "Starred", "é", "É", "x (2)", "x", "",
	"Sent Messages", "Archive", "Drafts", "Spam",
}

var fuzzAttrs = []string{`\Noselect`, `\NonExistent`, `\Sent`, `\Trash`, `\All`, `\Flagged`, `\Drafts`, `\HasChildren`, `\Archive`, `\Junk`}

var fuzzSides = []Side{
	{Delim: '/'},
	{Delim: '.', Prefix: "INBOX."},
	{Delim: '.'},
	{Delim: '/', Prefix: "INBOX/"},
	{},
	{Delim: '_'},
}

// fuzzListing turns bytes into a listing on side: per folder, one byte for the number of
// components and the attributes, then one byte per component.
func fuzzListing(data []byte, side Side) Side {
	side.Folders = []Folder{{Name: "INBOX"}}
	delim := string(side.Delim)
	if side.Delim == 0 {
		delim = "/"
	}
	for len(data) > 0 {
		head := data[0]
		data = data[1:]
		n := min(int(head%4)+1, len(data))
		var comps []string
		for _, b := range data[:n] {
			comps = append(comps, fuzzComponents[int(b)%len(fuzzComponents)])
		}
		data = data[n:]
		name := side.Prefix + strings.Join(comps, delim)
		if head&0x80 != 0 {
			name = strings.Join(comps, delim) // outside the namespace, or INBOX itself
		}
		if name == "" {
			continue
		}
		var attrs []string
		if head&0x70 != 0 {
			attrs = append(attrs, fuzzAttrs[int(head>>4)%len(fuzzAttrs)])
		}
		side.Folders = append(side.Folders, Folder{Name: name, Attrs: attrs})
	}
	return side
}

// FuzzMap checks the plan's guarantees for arbitrary listings: every source folder is
// accounted for once, no two share a destination name, parents come first, and the
// plan does not depend on the listing's order.
func FuzzMap(f *testing.F) {
	f.Add([]byte{1, 2, 3, 0x12, 4, 5}, []byte{0x30, 7}, uint8(0), uint8(1), false)
	f.Add([]byte{1, 0, 2, 1, 1, 3, 0, 5, 1, 6}, []byte{}, uint8(1), uint8(0), true)
	f.Add([]byte{0x81, 1, 4, 2, 0, 3, 2, 12, 13, 0x60, 12, 13}, []byte{0x20, 9}, uint8(3), uint8(5), false)
	f.Add([]byte{2, 4, 5, 6, 2, 4, 5, 7, 0, 17, 0, 18, 0, 19}, []byte{0, 17}, uint8(4), uint8(2), true)
	f.Fuzz(func(t *testing.T, srcData, dstData []byte, srcKind, dstKind uint8, views bool) {
		src := fuzzListing(srcData, fuzzSides[int(srcKind)%len(fuzzSides)])
		dst := fuzzListing(dstData, fuzzSides[int(dstKind)%len(fuzzSides)])
		opts := Options{IncludeGmailViews: views, Exclude: []string{"x"}}
		p, err := Map(src, dst, opts)
		if err != nil {
			t.Fatalf("Map(%q, %q) error %v", src.Folders, dst.Folders, err)
		}
		for _, problem := range planProblems(src, dst, p) {
			t.Errorf("Map(%q, %q): %s", src.Folders, dst.Folders, problem)
		}
		reversed := src
		reversed.Folders = slices.Clone(src.Folders)
		slices.Reverse(reversed.Folders)
		if again, _ := Map(reversed, dst, opts); !reflect.DeepEqual(again, p) {
			t.Errorf("Map(%q) depends on the listing's order:\n%+v\n%+v", src.Folders, p, again)
		}
		after := applyPlan(dst, p)
		rerun, _ := Map(src, after, opts)
		if got, want := dests(rerun), dests(p); !reflect.DeepEqual(got, want) {
			t.Errorf("Map(%q, %q) rerun folders = %q, want %q", src.Folders, after.Folders, got, want)
		}
		if len(rerun.Create) > 0 {
			t.Errorf("Map(%q, %q) rerun Create = %q, want none", src.Folders, after.Folders, rerun.Create)
		}
	})
}

// applyPlan returns the destination listing after the plan's folders are created.
func applyPlan(dst Side, p *Plan) Side {
	created := map[string]bool{}
	for _, name := range p.Create {
		created[name] = true
	}
	after := dst
	after.Folders = nil
	for _, f := range dst.Folders {
		if !created[f.Name] {
			after.Folders = append(after.Folders, f)
		}
	}
	for _, name := range p.Create {
		after.Folders = append(after.Folders, Folder{Name: name})
	}
	return after
}
