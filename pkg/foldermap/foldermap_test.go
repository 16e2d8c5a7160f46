package foldermap

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// folders builds a listing from specs "Name" or "Name|\Attr|\Attr".
func folders(specs ...string) []Folder {
	out := make([]Folder, 0, len(specs))
	for _, s := range specs {
		parts := strings.Split(s, "|")
		out = append(out, Folder{Name: parts[0], Attrs: parts[1:]})
	}
	return out
}

// slash is a Dovecot LAYOUT=fs account: "/" delimiter, no prefix.
func slash(specs ...string) Side { return Side{Folders: folders(specs...), Delim: '/'} }

// dot is a Maildir++ account (Courier, Cyrus, Dovecot): "." delimiter, "INBOX." prefix.
func dot(specs ...string) Side { return Side{Folders: folders(specs...), Delim: '.', Prefix: "INBOX."} }

func flat(specs ...string) Side { return Side{Folders: folders(specs...)} }

func dests(p *Plan) map[string]string {
	m := map[string]string{}
	for _, f := range p.Folders {
		m[f.Source] = f.Dest
	}
	return m
}

func skips(p *Plan) map[string]Reason {
	m := map[string]Reason{}
	for _, s := range p.Skipped {
		m[s.Source] = s.Reason
	}
	return m
}

func mustMap(t *testing.T, src, dst Side, opts Options) *Plan {
	t.Helper()
	p, err := Map(src, dst, opts)
	if err != nil {
		t.Fatalf("Map(...) error %v, want nil", err)
	}
	for _, problem := range planProblems(src, dst, p) {
		t.Errorf("Map(...) plan: %s", problem)
	}
	return p
}

// planProblems checks the guarantees every plan makes (package doc).
func planProblems(src, dst Side, p *Plan) []string {
	var problems []string
	seen := map[string]int{}
	for _, m := range p.Folders {
		seen[m.Source]++
	}
	for _, s := range p.Skipped {
		seen[s.Source]++
	}
	listed := map[string]bool{}
	for _, f := range src.Folders {
		listed[f.Name] = true
		if seen[f.Name] != 1 {
			problems = append(problems, fmt.Sprintf("source %q appears %d times in Folders+Skipped, want 1", f.Name, seen[f.Name]))
		}
	}
	for name := range seen {
		if !listed[name] {
			problems = append(problems, fmt.Sprintf("%q in Folders+Skipped is not a listed source folder", name))
		}
	}
	owner := map[string]string{} // folded dest -> dest as first seen
	creates := map[string]int{}
	for i, c := range p.Create {
		creates[c] = i
	}
	for _, m := range p.Folders {
		if m.ArchiveOnly {
			continue // may share the archive folder (package doc)
		}
		if prev, ok := owner[fold(m.Dest)]; ok {
			problems = append(problems, fmt.Sprintf("%q -> %q shares its destination with %q", m.Source, m.Dest, prev))
		}
		owner[fold(m.Dest)] = m.Dest
		if isInbox := strings.EqualFold(m.Source, inbox) || Logical(m.Source, src) == inbox; fold(m.Dest) == "inbox" && !isInbox {
			problems = append(problems, fmt.Sprintf("%q maps onto INBOX", m.Source))
		}
		if _, ok := creates[m.Dest]; ok != m.Create {
			problems = append(problems, fmt.Sprintf("%q -> %q: Mapping.Create = %v, but in Plan.Create = %v", m.Source, m.Dest, m.Create, ok))
		}
	}
	for _, m := range p.Folders {
		if _, ok := creates[m.Dest]; m.ArchiveOnly && ok != m.Create {
			problems = append(problems, fmt.Sprintf("%q -> %q: Mapping.Create = %v, but in Plan.Create = %v", m.Source, m.Dest, m.Create, ok))
		}
	}
	for i, c := range p.Create {
		if prev, ok := owner[fold(c)]; ok && prev != c {
			problems = append(problems, fmt.Sprintf("Create %q differs only by case from %q", c, prev))
		}
		for _, parent := range MissingParents(c, dst) {
			if j, ok := creates[parent]; !ok || j > i {
				problems = append(problems, fmt.Sprintf("Create %q at %d, but its parent %q at %d (present %v)", c, i, parent, j, ok))
			}
		}
	}
	if len(creates) != len(p.Create) {
		problems = append(problems, fmt.Sprintf("Create has duplicates: %q", p.Create))
	}
	return problems
}

func TestMapHierarchy(t *testing.T) {
	tests := []struct {
		name        string
		src, dst    Side
		want        map[string]string
		wantCreate  []string
		wantRenames []Rename
	}{
		{
			name: "slash to dot",
			src:  slash("INBOX", "Receipts", "Work", "Work/Projects", "Work/Projects/2024", "Été", "Été/Août", "日本語"),
			dst:  dot("INBOX"),
			want: map[string]string{
				"INBOX": "INBOX", "Receipts": "INBOX.Receipts", "Work": "INBOX.Work",
				"Work/Projects": "INBOX.Work.Projects", "Work/Projects/2024": "INBOX.Work.Projects.2024",
				"Été": "INBOX.Été", "Été/Août": "INBOX.Été.Août", "日本語": "INBOX.日本語",
			},
			wantCreate: []string{"INBOX.Receipts", "INBOX.Work", "INBOX.Work.Projects", "INBOX.Work.Projects.2024", "INBOX.Été", "INBOX.Été.Août", "INBOX.日本語"},
		},
		{
			name: "dot to slash",
			src:  dot("INBOX", "INBOX.Receipts", "INBOX.Work", "INBOX.Work.Projects", "INBOX.Été.Août"),
			dst:  slash("INBOX"),
			want: map[string]string{
				"INBOX": "INBOX", "INBOX.Receipts": "Receipts", "INBOX.Work": "Work",
				"INBOX.Work.Projects": "Work/Projects", "INBOX.Été.Août": "Été/Août",
			},
			wantCreate: []string{"Receipts", "Work", "Work/Projects", "Été", "Été/Août"},
		},
		{
			name:       "slash INBOX child to dot is INBOX.x, not INBOX.INBOX.x",
			src:        slash("INBOX", "INBOX/Receipts", "INBOX/Receipts/2024"),
			dst:        dot("INBOX"),
			want:       map[string]string{"INBOX": "INBOX", "INBOX/Receipts": "INBOX.Receipts", "INBOX/Receipts/2024": "INBOX.Receipts.2024"},
			wantCreate: []string{"INBOX.Receipts", "INBOX.Receipts.2024"},
		},
		{
			name:       "slash INBOX child to slash stays a child of INBOX",
			src:        slash("INBOX", "INBOX/Receipts", "Receipts"),
			dst:        slash("INBOX"),
			want:       map[string]string{"INBOX": "INBOX", "INBOX/Receipts": "INBOX/Receipts", "Receipts": "Receipts"},
			wantCreate: []string{"INBOX/Receipts", "Receipts"},
		},
		{
			name:       "dot to dot is the identity",
			src:        dot("INBOX", "INBOX.Receipts", "INBOX.Work.Projects"),
			dst:        dot("INBOX", "INBOX.Work"),
			want:       map[string]string{"INBOX": "INBOX", "INBOX.Receipts": "INBOX.Receipts", "INBOX.Work.Projects": "INBOX.Work.Projects"},
			wantCreate: []string{"INBOX.Receipts", "INBOX.Work.Projects"},
		},
		{
			name:       "slash to slash, existing folders are not created",
			src:        slash("INBOX", "Work", "Work/Projects", "Été"),
			dst:        slash("INBOX", "Work", "Été"),
			want:       map[string]string{"INBOX": "INBOX", "Work": "Work", "Work/Projects": "Work/Projects", "Été": "Été"},
			wantCreate: []string{"Work/Projects"},
		},
		{
			name:       "INBOX in any case is INBOX",
			src:        slash("inbox", "Inbox/Receipts"),
			dst:        dot("INBOX"),
			want:       map[string]string{"inbox": "INBOX", "Inbox/Receipts": "INBOX.Receipts"},
			wantCreate: []string{"INBOX.Receipts"},
		},
		{
			name:       "prefix matches INBOX in any case",
			src:        dot("INBOX", "Inbox.Receipts"),
			dst:        slash("INBOX"),
			want:       map[string]string{"INBOX": "INBOX", "Inbox.Receipts": "Receipts"},
			wantCreate: []string{"Receipts"},
		},
		{
			name:       "INBOX/ prefix with slash delimiter (Cyrus unixhierarchysep) to dot",
			src:        Side{Folders: folders("INBOX", "INBOX/Work", "INBOX/Work/Old"), Delim: '/', Prefix: "INBOX/"},
			dst:        dot("INBOX"),
			want:       map[string]string{"INBOX": "INBOX", "INBOX/Work": "INBOX.Work", "INBOX/Work/Old": "INBOX.Work.Old"},
			wantCreate: []string{"INBOX.Work", "INBOX.Work.Old"},
		},
		{
			name:       "onto a flat server the path stays joined with /",
			src:        dot("INBOX", "INBOX.Work|\\Noselect", "INBOX.Work.Projects"),
			dst:        flat("INBOX"),
			want:       map[string]string{"INBOX": "INBOX", "INBOX.Work.Projects": "Work/Projects"},
			wantCreate: []string{"Work/Projects"},
		},
		{
			name:        "from a flat server a name is one component",
			src:         flat("INBOX", "Work/Projects", "Été"),
			dst:         slash("INBOX"),
			want:        map[string]string{"INBOX": "INBOX", "Work/Projects": "Work_Projects", "Été": "Été"},
			wantCreate:  []string{"Work_Projects", "Été"},
			wantRenames: []Rename{{Source: "Work/Projects", Dest: "Work_Projects", Reason: ReasonDelimiter}},
		},
		{
			name:       "duplicate listing entries are one folder",
			src:        Side{Folders: []Folder{{Name: "INBOX"}, {Name: "Work"}, {Name: "Work", Attrs: []string{`\HasChildren`}}, {Name: "Work/x"}}, Delim: '/'},
			dst:        dot("INBOX"),
			want:       map[string]string{"INBOX": "INBOX", "Work": "INBOX.Work", "Work/x": "INBOX.Work.x"},
			wantCreate: []string{"INBOX.Work", "INBOX.Work.x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustMap(t, tt.src, tt.dst, Options{})
			if got := dests(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Map(%q) folders = %q, want %q", tt.name, got, tt.want)
			}
			if !slices.Equal(p.Create, tt.wantCreate) {
				t.Errorf("Map(%q) Create = %q, want %q", tt.name, p.Create, tt.wantCreate)
			}
			if !reflect.DeepEqual(p.Renames, tt.wantRenames) || len(p.Collisions) > 0 {
				t.Errorf("Map(%q) Renames = %q, Collisions = %q, want %q and none", tt.name, p.Renames, p.Collisions, tt.wantRenames)
			}
		})
	}
}

func TestMapSpecialUse(t *testing.T) {
	tests := []struct {
		name     string
		src, dst Side
		opts     Options
		want     map[string]string // subset of the plan's folders
		wantUse  map[string]string // source -> SpecialUse, for every folder that has one
	}{
		{
			name: "attributes on both sides, different names",
			src:  slash("INBOX", `Sent|\Sent`, `Trash|\Trash`, `Drafts|\Drafts`, `Junk|\Junk`, `Archive|\Archive`),
			dst:  dot("INBOX", `INBOX.Sent Items|\Sent`, `INBOX.Deleted Items|\Trash`, `INBOX.Brouillons|\Drafts`, `INBOX.Spam|\Junk`, `INBOX.Archives|\Archive`),
			want: map[string]string{
				"Sent": "INBOX.Sent Items", "Trash": "INBOX.Deleted Items", "Drafts": "INBOX.Brouillons",
				"Junk": "INBOX.Spam", "Archive": "INBOX.Archives",
			},
			wantUse: map[string]string{"Sent": `\Sent`, "Trash": `\Trash`, "Drafts": `\Drafts`, "Junk": `\Junk`, "Archive": `\Archive`},
		},
		{
			name: "source without SPECIAL-USE: French names",
			src:  dot("INBOX", "INBOX.Éléments envoyés", "INBOX.Corbeille", "INBOX.Brouillons", "INBOX.Courrier indésirable", "INBOX.Archives", "INBOX.Factures"),
			dst:  slash("INBOX", `Sent|\Sent`, `Trash|\Trash`, `Drafts|\Drafts`, `Junk|\Junk`, `Archive|\Archive`),
			want: map[string]string{
				"INBOX.Éléments envoyés": "Sent", "INBOX.Corbeille": "Trash", "INBOX.Brouillons": "Drafts",
				"INBOX.Courrier indésirable": "Junk", "INBOX.Archives": "Archive", "INBOX.Factures": "Factures",
			},
			wantUse: map[string]string{
				"INBOX.Éléments envoyés": `\Sent`, "INBOX.Corbeille": `\Trash`, "INBOX.Brouillons": `\Drafts`,
				"INBOX.Courrier indésirable": `\Junk`, "INBOX.Archives": `\Archive`,
			},
		},
		{
			name: "destination without SPECIAL-USE: German and Polish names",
			src:  slash("INBOX", `Sent|\Sent`, `Trash|\Trash`, `Drafts|\Drafts`, `Junk|\Junk`),
			dst:  dot("INBOX", "INBOX.Gesendete Objekte", "INBOX.Papierkorb", "INBOX.Kopie robocze", "INBOX.Wiadomości-śmieci"),
			want: map[string]string{
				"Sent": "INBOX.Gesendete Objekte", "Trash": "INBOX.Papierkorb", "Drafts": "INBOX.Kopie robocze", "Junk": "INBOX.Wiadomości-śmieci",
			},
			wantUse: map[string]string{"Sent": `\Sent`, "Trash": `\Trash`, "Drafts": `\Drafts`, "Junk": `\Junk`},
		},
		{
			name: "neither side marks: names on both, any case",
			src:  slash("INBOX", "SENT", "Deleted Messages", "Papelera"),
			dst:  dot("INBOX", "INBOX.Sent Items", "INBOX.Deleted Items"),
			want: map[string]string{"SENT": "INBOX.Sent Items", "Deleted Messages": "INBOX.Deleted Items", "Papelera": "INBOX.Papelera"},
			// One source folder per destination folder: Papelera keeps its name.
			wantUse: map[string]string{"SENT": `\Sent`, "Deleted Messages": `\Trash`, "Papelera": `\Trash`},
		},
		{
			name:    "destination lacks the use: the source name is kept and created",
			src:     slash("INBOX", `Sent Messages|\Sent`, `Archive|\Archive`),
			dst:     dot("INBOX", `INBOX.Sent|\Sent`),
			want:    map[string]string{"Sent Messages": "INBOX.Sent", "Archive": "INBOX.Archive"},
			wantUse: map[string]string{"Sent Messages": `\Sent`, "Archive": `\Archive`},
		},
		{
			name:    "children follow their special-use parent",
			src:     slash("INBOX", `Sent|\Sent`, "Sent/2019", "Sent/2019/Q1"),
			dst:     dot("INBOX", `INBOX.Sent Items|\Sent`),
			want:    map[string]string{"Sent": "INBOX.Sent Items", "Sent/2019": "INBOX.Sent Items.2019", "Sent/2019/Q1": "INBOX.Sent Items.2019.Q1"},
			wantUse: map[string]string{"Sent": `\Sent`},
		},
		{
			name:    "names are recognised at the top level and under INBOX only",
			src:     slash("INBOX", "Projects", "Projects/Trash", "INBOX/Sent"),
			dst:     dot("INBOX", `INBOX.Deleted Items|\Trash`, `INBOX.Sent Items|\Sent`),
			want:    map[string]string{"Projects/Trash": "INBOX.Projects.Trash", "INBOX/Sent": "INBOX.Sent Items"},
			wantUse: map[string]string{"INBOX/Sent": `\Sent`},
		},
		{
			name:    "a side that marks a use is not read by name for it",
			src:     slash("INBOX", `Sent|\Sent`, "Sent Items", "Trash"),
			dst:     dot("INBOX", `INBOX.Envoyés|\Sent`, `INBOX.Corbeille|\Trash`),
			want:    map[string]string{"Sent": "INBOX.Envoyés", "Sent Items": "INBOX.Sent Items", "Trash": "INBOX.Corbeille"},
			wantUse: map[string]string{"Sent": `\Sent`, "Trash": `\Trash`},
		},
		{
			name:    "two candidates: the pair with the same name wins",
			src:     slash("INBOX", `Sent|\Sent`, `Sent Messages|\Sent`),
			dst:     dot("INBOX", `INBOX.Sent Messages|\Sent`),
			want:    map[string]string{"Sent": "INBOX.Sent", "Sent Messages": "INBOX.Sent Messages"},
			wantUse: map[string]string{"Sent": `\Sent`, "Sent Messages": `\Sent`},
		},
		{
			name:    "two candidates, one destination folder: the first in rank takes it",
			src:     slash("INBOX", `Sent|\Sent`, `Sent Messages|\Sent`),
			dst:     slash("INBOX", "Sent Items"),
			want:    map[string]string{"Sent": "Sent Items", "Sent Messages": "Sent Messages"},
			wantUse: map[string]string{"Sent": `\Sent`, "Sent Messages": `\Sent`},
		},
		{
			name:    "two candidates each way: each goes to its own",
			src:     slash("INBOX", `Sent|\Sent`, `Sent Messages|\Sent`),
			dst:     dot("INBOX", `INBOX.Sent Items|\Sent`, `INBOX.Sent Messages|\Sent`),
			want:    map[string]string{"Sent": "INBOX.Sent Items", "Sent Messages": "INBOX.Sent Messages"},
			wantUse: map[string]string{"Sent": `\Sent`, "Sent Messages": `\Sent`},
		},
		{
			name:    "a destination folder named like a parent of source folders stays with it",
			src:     slash("INBOX", `Sent|\Sent`, "Sent Items/x"),
			dst:     slash("INBOX", `Sent Items|\Sent`),
			want:    map[string]string{"Sent": "Sent", "Sent Items/x": "Sent Items/x"},
			wantUse: map[string]string{"Sent": `\Sent`},
		},
		{
			name:    "a destination folder named like a plain source folder stays with it",
			src:     slash("INBOX", `Sent Messages|\Sent`, "Sent Items"),
			dst:     slash("INBOX", `Sent Items|\Sent`),
			want:    map[string]string{"Sent Messages": "Sent Messages", "Sent Items": "Sent Items"},
			wantUse: map[string]string{"Sent Messages": `\Sent`},
		},
		{
			name:    "two destination candidates: the one with the source's name wins",
			src:     dot("INBOX", "INBOX.Sent Messages"),
			dst:     slash("INBOX", `Sent|\Sent`, `Sent Messages|\Sent`),
			want:    map[string]string{"INBOX.Sent Messages": "Sent Messages"},
			wantUse: map[string]string{"INBOX.Sent Messages": `\Sent`},
		},
		{
			name: "Gmail source onto Dovecot",
			src: slash("INBOX", `[Gmail]|\Noselect|\HasChildren`, `[Gmail]/Sent Mail|\Sent`, `[Gmail]/Drafts|\Drafts`,
				`[Gmail]/Bin|\Trash`, `[Gmail]/Spam|\Junk`, `[Gmail]/All Mail|\All`, `[Gmail]/Starred|\Flagged`, `[Gmail]/Important|\Important`, "Receipts"),
			dst: dot("INBOX", `INBOX.Sent|\Sent`, `INBOX.Drafts|\Drafts`, `INBOX.Trash|\Trash`, `INBOX.Junk|\Junk`),
			want: map[string]string{
				"INBOX": "INBOX", "[Gmail]/Sent Mail": "INBOX.Sent", "[Gmail]/Drafts": "INBOX.Drafts",
				"[Gmail]/Bin": "INBOX.Trash", "[Gmail]/Spam": "INBOX.Junk", "Receipts": "INBOX.Receipts",
			},
			wantUse: map[string]string{"[Gmail]/Sent Mail": `\Sent`, "[Gmail]/Drafts": `\Drafts`, "[Gmail]/Bin": `\Trash`, "[Gmail]/Spam": `\Junk`, "[Gmail]/All Mail": `\All`},
		},
		{
			name:    "Dovecot onto Gmail",
			src:     dot("INBOX", `INBOX.Sent|\Sent`, `INBOX.Trash|\Trash`, "INBOX.Work"),
			dst:     slash("INBOX", `[Gmail]|\Noselect`, `[Gmail]/Sent Mail|\Sent`, `[Gmail]/Trash|\Trash`, `[Gmail]/All Mail|\All`),
			want:    map[string]string{"INBOX.Sent": "[Gmail]/Sent Mail", "INBOX.Trash": "[Gmail]/Trash", "INBOX.Work": "Work"},
			wantUse: map[string]string{"INBOX.Sent": `\Sent`, "INBOX.Trash": `\Trash`},
		},
		{
			name:    "Google Mail source without attributes, recognised by names",
			src:     slash("INBOX", `[Google Mail]|\Noselect`, "[Google Mail]/Gesendet", "[Google Mail]/Papierkorb"),
			dst:     dot("INBOX", `INBOX.Sent|\Sent`, `INBOX.Trash|\Trash`),
			want:    map[string]string{"[Google Mail]/Gesendet": "INBOX.Sent", "[Google Mail]/Papierkorb": "INBOX.Trash"},
			wantUse: map[string]string{"[Google Mail]/Gesendet": `\Sent`, "[Google Mail]/Papierkorb": `\Trash`},
		},
		{
			name:    "a folder excluded by pattern is not the special-use one",
			src:     slash("INBOX", `Sent|\Sent`, `Sent Messages|\Sent`),
			dst:     dot("INBOX", `INBOX.Sent Messages|\Sent`),
			opts:    Options{Exclude: []string{"Sent Messages"}},
			want:    map[string]string{"Sent": "INBOX.Sent Messages"},
			wantUse: map[string]string{"Sent": `\Sent`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustMap(t, tt.src, tt.dst, tt.opts)
			got := dests(p)
			for src, want := range tt.want {
				if got[src] != want {
					t.Errorf("Map(%q) %q = %q, want %q", tt.name, src, got[src], want)
				}
			}
			gotUse := map[string]string{}
			for _, m := range p.Folders {
				if m.SpecialUse != "" {
					gotUse[m.Source] = m.SpecialUse
				}
			}
			if !reflect.DeepEqual(gotUse, tt.wantUse) {
				t.Errorf("Map(%q) special uses = %q, want %q", tt.name, gotUse, tt.wantUse)
			}
		})
	}
}

func TestMapViews(t *testing.T) {
	gmail := slash("INBOX", `[Gmail]|\Noselect`, `[Gmail]/All Mail|\All`, `[Gmail]/Starred|\Flagged`,
		`[Gmail]/Important|\Important`, `[Gmail]/Sent Mail|\Sent`, "Work")
	tests := []struct {
		name        string
		src, dst    Side
		opts        Options
		want        map[string]string
		wantSkipped map[string]Reason
		wantCreate  []string
	}{
		{
			name: "Gmail views are skipped but All Mail's archived mail goes to a created Archive",
			src:  gmail,
			dst:  dot("INBOX", `INBOX.Sent|\Sent`),
			want: map[string]string{"INBOX": "INBOX", "[Gmail]/Sent Mail": "INBOX.Sent", "Work": "INBOX.Work", "[Gmail]/All Mail": "INBOX.Archive"},
			wantSkipped: map[string]Reason{
				"[Gmail]": ReasonNotSelectable, "[Gmail]/Starred": ReasonView, "[Gmail]/Important": ReasonView,
			},
			wantCreate: []string{"INBOX.Archive", "INBOX.Work"},
		},
		{
			name: "included views keep their names under a created [Gmail] on a non-Gmail server",
			src:  gmail,
			dst:  dot("INBOX", `INBOX.Sent|\Sent`),
			opts: Options{IncludeGmailViews: true},
			want: map[string]string{
				"INBOX": "INBOX", "[Gmail]/Sent Mail": "INBOX.Sent", "Work": "INBOX.Work",
				"[Gmail]/All Mail": "INBOX.[Gmail].All Mail", "[Gmail]/Starred": "INBOX.[Gmail].Starred", "[Gmail]/Important": "INBOX.[Gmail].Important",
			},
			wantSkipped: map[string]Reason{"[Gmail]": ReasonNotSelectable},
			wantCreate:  []string{"INBOX.[Gmail]", "INBOX.[Gmail].All Mail", "INBOX.[Gmail].Important", "INBOX.[Gmail].Starred", "INBOX.Work"},
		},
		{
			name: "included views go onto Gmail's own views",
			src:  gmail,
			dst:  slash("INBOX", `[Google Mail]|\Noselect`, `[Google Mail]/Alle Nachrichten|\All`, `[Google Mail]/Markiert|\Flagged`, `[Google Mail]/Gesendet|\Sent`),
			opts: Options{IncludeGmailViews: true},
			want: map[string]string{
				"INBOX": "INBOX", "[Gmail]/Sent Mail": "[Google Mail]/Gesendet", "Work": "Work",
				"[Gmail]/All Mail": "[Google Mail]/Alle Nachrichten", "[Gmail]/Starred": "[Google Mail]/Markiert", "[Gmail]/Important": "[Gmail]/Important",
			},
			wantSkipped: map[string]Reason{"[Gmail]": ReasonNotSelectable},
			wantCreate:  []string{"[Gmail]", "[Gmail]/Important", "Work"},
		},
		{
			name:        "Gmail provider without attributes: views recognised by name",
			src:         slash("INBOX", `[Gmail]|\Noselect`, "[Gmail]/All Mail", "[Gmail]/Starred", "[Gmail]/Drafts"),
			dst:         slash("INBOX", `Drafts|\Drafts`),
			opts:        Options{Provider: "gmail"},
			want:        map[string]string{"INBOX": "INBOX", "[Gmail]/Drafts": "Drafts", "[Gmail]/All Mail": "Archive"},
			wantSkipped: map[string]Reason{"[Gmail]": ReasonNotSelectable, "[Gmail]/Starred": ReasonView},
			wantCreate:  []string{"Archive"},
		},
		{
			name:        "a top-level All Mail without Gmail rules is an ordinary folder",
			src:         slash("INBOX", "All Mail", "Starred"),
			dst:         slash("INBOX"),
			want:        map[string]string{"INBOX": "INBOX", "All Mail": "All Mail", "Starred": "Starred"},
			wantSkipped: map[string]Reason{},
			wantCreate:  []string{"All Mail", "Starred"},
		},
		{
			name:        "a marked view on any server is skipped (Dovecot virtual)",
			src:         dot("INBOX", `INBOX.Virtual|\Noselect`, `INBOX.Virtual.All|\All`, `INBOX.Virtual.Flagged|\Flagged`),
			dst:         slash("INBOX"),
			want:        map[string]string{"INBOX": "INBOX"},
			wantSkipped: map[string]Reason{"INBOX.Virtual": ReasonNotSelectable, "INBOX.Virtual.All": ReasonView, "INBOX.Virtual.Flagged": ReasonView},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustMap(t, tt.src, tt.dst, tt.opts)
			if got := dests(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Map(%q) folders = %q, want %q", tt.name, got, tt.want)
			}
			if got := skips(p); !reflect.DeepEqual(got, tt.wantSkipped) {
				t.Errorf("Map(%q) skipped = %q, want %q", tt.name, got, tt.wantSkipped)
			}
			if !slices.Equal(p.Create, tt.wantCreate) {
				t.Errorf("Map(%q) Create = %q, want %q", tt.name, p.Create, tt.wantCreate)
			}
		})
	}
}

func TestMapParents(t *testing.T) {
	tests := []struct {
		name        string
		src, dst    Side
		opts        Options
		want        map[string]string
		wantCreate  []string
		wantSkipped map[string]Reason
	}{
		{
			name:        "Noselect parents are created, not copied",
			src:         slash("INBOX", `a|\Noselect|\HasChildren`, "a/b", `a/b/c|\NonExistent`, "a/b/c/d"),
			dst:         dot("INBOX"),
			want:        map[string]string{"INBOX": "INBOX", "a/b": "INBOX.a.b", "a/b/c/d": "INBOX.a.b.c.d"},
			wantCreate:  []string{"INBOX.a", "INBOX.a.b", "INBOX.a.b.c", "INBOX.a.b.c.d"},
			wantSkipped: map[string]Reason{"a": ReasonNotSelectable, "a/b/c": ReasonNotSelectable},
		},
		{
			name:        "a Noselect folder without children is not created",
			src:         slash("INBOX", `empty|\Noselect`),
			dst:         dot("INBOX"),
			want:        map[string]string{"INBOX": "INBOX"},
			wantSkipped: map[string]Reason{"empty": ReasonNotSelectable},
		},
		{
			name:        "unlisted parents are created",
			src:         dot("INBOX", "INBOX.p.q.r"),
			dst:         slash("INBOX", "p"),
			want:        map[string]string{"INBOX": "INBOX", "INBOX.p.q.r": "p/q/r"},
			wantCreate:  []string{"p/q", "p/q/r"},
			wantSkipped: map[string]Reason{},
		},
		{
			name:        "a destination Noselect parent exists; a copied folder onto one is created",
			src:         slash("INBOX", "a", "a/b", "x"),
			dst:         slash("INBOX", `a|\Noselect`, "a/b", `x|\Noselect`),
			want:        map[string]string{"INBOX": "INBOX", "a": "a", "a/b": "a/b", "x": "x"},
			wantCreate:  []string{"a", "x"},
			wantSkipped: map[string]Reason{},
		},
		{
			name:        "a NonExistent destination level above an existing folder stays a level",
			src:         slash("INBOX", "a/b"),
			dst:         slash("INBOX", `a|\NonExistent`, "a/c"),
			want:        map[string]string{"INBOX": "INBOX", "a/b": "a/b"},
			wantCreate:  []string{"a/b"},
			wantSkipped: map[string]Reason{},
		},
		{
			name:        "a NonExistent destination folder with nothing below it is created as a parent",
			src:         slash("INBOX", "a/b"),
			dst:         slash("INBOX", `a|\NonExistent`),
			want:        map[string]string{"INBOX": "INBOX", "a/b": "a/b"},
			wantCreate:  []string{"a", "a/b"},
			wantSkipped: map[string]Reason{},
		},
		{
			name:        "a NonExistent destination folder that a source folder goes to is created",
			src:         slash("INBOX", "a", "a/b"),
			dst:         slash("INBOX", `a|\NonExistent`, "a/c"),
			want:        map[string]string{"INBOX": "INBOX", "a": "a", "a/b": "a/b"},
			wantCreate:  []string{"a", "a/b"},
			wantSkipped: map[string]Reason{},
		},
		{
			// Created, the level "sent" would be a plain folder that the rerun takes
			// for \Sent by its name, and the Sent folder would move (FuzzMap).
			name:        "a NonExistent level with a special-use name is not created above a child",
			src:         slash("INBOX", `INBOX/Corbeille|\Trash`, `INBOX/Corbeille/INBOX|\Sent`),
			dst:         Side{Delim: '.', Folders: folders("INBOX", `sent|\NonExistent`, `sent.INBOX|\Trash`)},
			want:        map[string]string{"INBOX": "INBOX", "INBOX/Corbeille": "sent.INBOX", "INBOX/Corbeille/INBOX": "sent.INBOX.INBOX"},
			wantCreate:  []string{"sent.INBOX.INBOX"},
			wantSkipped: map[string]Reason{},
		},
		{
			name:        "unlisted parents of an existing destination folder exist",
			src:         slash("INBOX", "a/b/c"),
			dst:         dot("INBOX", "INBOX.a.b.x"),
			want:        map[string]string{"INBOX": "INBOX", "a/b/c": "INBOX.a.b.c"},
			wantCreate:  []string{"INBOX.a.b.c"},
			wantSkipped: map[string]Reason{},
		},
		{
			name:        "an excluded parent of an included folder is created empty",
			src:         slash("INBOX", "Work", "Work/x", "Work/y"),
			dst:         dot("INBOX"),
			opts:        Options{Include: []string{"INBOX", "Work/x"}},
			want:        map[string]string{"INBOX": "INBOX", "Work/x": "INBOX.Work.x"},
			wantCreate:  []string{"INBOX.Work", "INBOX.Work.x"},
			wantSkipped: map[string]Reason{"Work": ReasonNotIncluded, "Work/y": ReasonNotIncluded},
		},
		{
			name:        "a Gmail root whose children all go to special-use folders is not created",
			src:         slash("INBOX", `[Gmail]|\Noselect`, `[Gmail]/Sent Mail|\Sent`, `[Gmail]/Trash|\Trash`),
			dst:         dot("INBOX", `INBOX.Sent|\Sent`, `INBOX.Trash|\Trash`),
			want:        map[string]string{"INBOX": "INBOX", "[Gmail]/Sent Mail": "INBOX.Sent", "[Gmail]/Trash": "INBOX.Trash"},
			wantSkipped: map[string]Reason{"[Gmail]": ReasonNotSelectable},
		},
		{
			name:        "onto a flat server a parent is not needed",
			src:         slash("INBOX", `a|\Noselect`, "a/b"),
			dst:         flat("INBOX"),
			want:        map[string]string{"INBOX": "INBOX", "a/b": "a/b"},
			wantCreate:  []string{"a/b"},
			wantSkipped: map[string]Reason{"a": ReasonNotSelectable},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustMap(t, tt.src, tt.dst, tt.opts)
			if got := dests(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Map(%q) folders = %q, want %q", tt.name, got, tt.want)
			}
			if !slices.Equal(p.Create, tt.wantCreate) {
				t.Errorf("Map(%q) Create = %q, want %q", tt.name, p.Create, tt.wantCreate)
			}
			if got := skips(p); !reflect.DeepEqual(got, tt.wantSkipped) {
				t.Errorf("Map(%q) skipped = %q, want %q", tt.name, got, tt.wantSkipped)
			}
		})
	}
}

func TestMapDelimiterInName(t *testing.T) {
	tests := []struct {
		name        string
		src, dst    Side
		want        map[string]string
		wantRenames []Rename
	}{
		{
			name:        "dot in a component onto a dot server",
			src:         slash("INBOX", "Releases", "Releases/v1.2", "Releases/v1.2/notes"),
			dst:         dot("INBOX"),
			want:        map[string]string{"INBOX": "INBOX", "Releases": "INBOX.Releases", "Releases/v1.2": "INBOX.Releases.v1_2", "Releases/v1.2/notes": "INBOX.Releases.v1_2.notes"},
			wantRenames: []Rename{{Source: "Releases/v1.2", Dest: "INBOX.Releases.v1_2", Reason: ReasonDelimiter}},
		},
		{
			name:        "slash in a component onto a slash server",
			src:         dot("INBOX", "INBOX.TCP/IP", "INBOX.a/b/c"),
			dst:         slash("INBOX"),
			want:        map[string]string{"INBOX": "INBOX", "INBOX.TCP/IP": "TCP_IP", "INBOX.a/b/c": "a_b_c"},
			wantRenames: []Rename{{Source: "INBOX.a/b/c", Dest: "a_b_c", Reason: ReasonDelimiter}, {Source: "INBOX.TCP/IP", Dest: "TCP_IP", Reason: ReasonDelimiter}},
		},
		{
			name:        "an underscore delimiter gets a hyphen",
			src:         slash("INBOX", "a_b"),
			dst:         Side{Folders: folders("INBOX"), Delim: '_'},
			want:        map[string]string{"INBOX": "INBOX", "a_b": "a-b"},
			wantRenames: []Rename{{Source: "a_b", Dest: "a-b", Reason: ReasonDelimiter}},
		},
		{
			name:        "the renamed name is taken by a source folder: suffix",
			src:         slash("INBOX", "v1.2", "v1_2"),
			dst:         dot("INBOX"),
			want:        map[string]string{"INBOX": "INBOX", "v1_2": "INBOX.v1_2", "v1.2": "INBOX.v1_2 (2)"},
			wantRenames: []Rename{{Source: "v1.2", Dest: "INBOX.v1_2 (2)", Reason: ReasonDelimiter}},
		},
		{
			name:        "an empty component becomes _",
			src:         slash("INBOX", "a//b"),
			dst:         dot("INBOX"),
			want:        map[string]string{"INBOX": "INBOX", "a//b": "INBOX.a._.b"},
			wantRenames: []Rename{{Source: "a/", Dest: "INBOX.a._", Reason: ReasonDelimiter}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustMap(t, tt.src, tt.dst, Options{})
			if got := dests(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Map(%q) folders = %q, want %q", tt.name, got, tt.want)
			}
			if !reflect.DeepEqual(p.Renames, tt.wantRenames) {
				t.Errorf("Map(%q) Renames = %q, want %q", tt.name, p.Renames, tt.wantRenames)
			}
		})
	}
}

func TestMapCollisions(t *testing.T) {
	tests := []struct {
		name           string
		src, dst       Side
		want           map[string]string
		wantCollisions []Collision
	}{
		{
			name:           "names differing by case: the second gets a suffix, its children follow",
			src:            slash("INBOX", "Foo", "foo", "foo/bar"),
			dst:            dot("INBOX"),
			want:           map[string]string{"INBOX": "INBOX", "Foo": "INBOX.Foo", "foo": "INBOX.foo (2)", "foo/bar": "INBOX.foo (2).bar"},
			wantCollisions: []Collision{{Source: "foo", Dest: "INBOX.foo (2)", Wanted: "INBOX.foo", Holder: "Foo"}},
		},
		{
			name:           "a top-level Inbox from a dot server is not INBOX",
			src:            dot("INBOX", "INBOX.Inbox", "INBOX.Inbox.x"),
			dst:            slash("INBOX"),
			want:           map[string]string{"INBOX": "INBOX", "INBOX.Inbox": "Inbox (2)", "INBOX.Inbox.x": "Inbox (2)/x"},
			wantCollisions: []Collision{{Source: "INBOX.Inbox", Dest: "Inbox (2)", Wanted: "Inbox", Holder: "INBOX"}},
		},
		{
			name:           "a slash server's INBOX child and top-level folder of the same name onto a dot server",
			src:            slash("INBOX", "Receipts", "INBOX/Receipts"),
			dst:            dot("INBOX"),
			want:           map[string]string{"INBOX": "INBOX", "Receipts": "INBOX.Receipts", "INBOX/Receipts": "INBOX.Receipts (2)"},
			wantCollisions: []Collision{{Source: "INBOX/Receipts", Dest: "INBOX.Receipts (2)", Wanted: "INBOX.Receipts", Holder: "Receipts"}},
		},
		{
			name:           "the folder whose name exists exactly on the destination keeps it",
			src:            slash("INBOX", "Foo", "foo"),
			dst:            slash("INBOX", "foo"),
			want:           map[string]string{"INBOX": "INBOX", "foo": "foo", "Foo": "Foo (2)"},
			wantCollisions: []Collision{{Source: "Foo", Dest: "Foo (2)", Wanted: "Foo", Holder: "foo"}},
		},
		{
			name: "a destination folder differing only by case is reused with its spelling",
			src:  slash("INBOX", "archive 2020", "archive 2020/x"),
			dst:  slash("INBOX", "Archive 2020"),
			want: map[string]string{"INBOX": "INBOX", "archive 2020": "Archive 2020", "archive 2020/x": "Archive 2020/x"},
		},
		{
			name: "a NonExistent level above an existing folder lends its spelling too (FuzzMap)",
			src:  slash("INBOX", "Work", "Work/Old"),
			dst:  dot("INBOX", `INBOX.work|\NonExistent`, "INBOX.work.Old.x"),
			want: map[string]string{"INBOX": "INBOX", "Work": "INBOX.work", "Work/Old": "INBOX.work.Old"},
		},
		{
			name: "a child keeps its parent's spelling, not a cousin's that differs by case",
			src:  slash("INBOX", "Work", "Work/Old"),
			dst:  slash("INBOX", "Work", "work", "work/Old"),
			want: map[string]string{"INBOX": "INBOX", "Work": "Work", "Work/Old": "Work/Old"},
		},
		{
			name:           "a level listed NonExistent goes to the folder spelled like it, as an existing folder would (FuzzMap)",
			src:            slash("INBOX", "Work", "work"),
			dst:            slash("INBOX", `work|\NonExistent`, "work/x"),
			want:           map[string]string{"INBOX": "INBOX", "work": "work", "Work": "Work (2)"},
			wantCollisions: []Collision{{Source: "Work", Dest: "Work (2)", Wanted: "Work", Holder: "work"}},
		},
		{
			name: "onto a flat server a name differing only by case is adopted whole",
			src:  slash("INBOX", "Work", "Work/Old"),
			dst:  flat("INBOX", "work/Old"),
			want: map[string]string{"INBOX": "INBOX", "Work": "Work", "Work/Old": "work/Old"},
		},
		{
			name:           "a suffix never takes another source folder's name",
			src:            slash("INBOX", "foo", "Foo", "foo (2)"),
			dst:            slash("INBOX"),
			want:           map[string]string{"INBOX": "INBOX", "Foo": "Foo", "foo": "foo (3)", "foo (2)": "foo (2)"},
			wantCollisions: []Collision{{Source: "foo", Dest: "foo (3)", Wanted: "foo", Holder: "Foo"}},
		},
		{
			name:           "a child of a special-use folder meets a destination special-use folder",
			src:            slash("INBOX", `Archive|\Archive`, "Archive/Sent", `Sent|\Sent`),
			dst:            slash("INBOX", `Old|\Archive`, `Old/Sent|\Sent`),
			want:           map[string]string{"INBOX": "INBOX", "Archive": "Old", "Sent": "Old/Sent", "Archive/Sent": "Old/Sent (2)"},
			wantCollisions: []Collision{{Source: "Archive/Sent", Dest: "Old/Sent (2)", Wanted: "Old/Sent", Holder: "Sent"}},
		},
		{
			name:           "INBOX and inbox listed both",
			src:            slash("INBOX", "inbox"),
			dst:            slash("INBOX"),
			want:           map[string]string{"INBOX": "INBOX", "inbox": "INBOX (2)"},
			wantCollisions: []Collision{{Source: "inbox", Dest: "INBOX (2)", Wanted: "INBOX", Holder: "INBOX"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustMap(t, tt.src, tt.dst, Options{})
			if got := dests(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Map(%q) folders = %q, want %q", tt.name, got, tt.want)
			}
			if !reflect.DeepEqual(p.Collisions, tt.wantCollisions) {
				t.Errorf("Map(%q) Collisions = %+v, want %+v", tt.name, p.Collisions, tt.wantCollisions)
			}
		})
	}
}

func TestMapPatterns(t *testing.T) {
	src := slash("INBOX", "INBOX/Receipts", "Work", "Work/Old", "Work/New", "Work/New/Deep", "Spam", "Été")
	tests := []struct {
		name        string
		src         Side
		opts        Options
		wantSkipped map[string]Reason
	}{
		{
			name:        "no patterns copy everything",
			wantSkipped: map[string]Reason{},
		},
		{
			name:        "exclude one folder, not its subtree",
			opts:        Options{Exclude: []string{"Work"}},
			wantSkipped: map[string]Reason{"Work": ReasonExcluded},
		},
		{
			name:        "exclude a subtree",
			opts:        Options{Exclude: []string{"Work/*"}},
			wantSkipped: map[string]Reason{"Work/Old": ReasonExcluded, "Work/New": ReasonExcluded, "Work/New/Deep": ReasonExcluded},
		},
		{
			name:        "% does not cross the hierarchy",
			opts:        Options{Include: []string{"%"}},
			wantSkipped: map[string]Reason{"INBOX/Receipts": ReasonNotIncluded, "Work/Old": ReasonNotIncluded, "Work/New": ReasonNotIncluded, "Work/New/Deep": ReasonNotIncluded},
		},
		{
			name: "include with exclude: exclude wins",
			opts: Options{Include: []string{"Work*"}, Exclude: []string{"Work/Old", "Spam"}},
			wantSkipped: map[string]Reason{
				"INBOX": ReasonNotIncluded, "INBOX/Receipts": ReasonNotIncluded, "Work/Old": ReasonExcluded,
				"Spam": ReasonExcluded, "Été": ReasonNotIncluded,
			},
		},
		{
			name: "INBOX matches in any case, the rest does not",
			opts: Options{Include: []string{"inbox/*", "spam", "été"}},
			wantSkipped: map[string]Reason{
				"INBOX": ReasonNotIncluded, "Work": ReasonNotIncluded, "Work/Old": ReasonNotIncluded, "Work/New": ReasonNotIncluded,
				"Work/New/Deep": ReasonNotIncluded, "Spam": ReasonNotIncluded, "Été": ReasonNotIncluded,
			},
		},
		{
			name:        "patterns are on the logical path of a dot server",
			src:         dot("INBOX", "INBOX.Receipts", "INBOX.Work", "INBOX.Work.Old"),
			opts:        Options{Exclude: []string{"Receipts", "Work/Old"}},
			wantSkipped: map[string]Reason{"INBOX.Receipts": ReasonExcluded, "INBOX.Work.Old": ReasonExcluded},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := src
			if tt.src.Folders != nil {
				s = tt.src
			}
			p := mustMap(t, s, dot("INBOX"), tt.opts)
			if got := skips(p); !reflect.DeepEqual(got, tt.wantSkipped) {
				t.Errorf("Map(%q) skipped = %q, want %q", tt.name, got, tt.wantSkipped)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "a/b/c", true},
		{"%", "a", true},
		{"%", "a/b", false},
		{"a/%", "a/b", true},
		{"a/%", "a/b/c", false},
		{"a/*", "a", false},
		{"a*", "a", true},
		{"a*", "abc/d", true},
		{"a%c", "abc", true},
		{"a%c", "a/c", false},
		{"INBOX", "INBOX", true},
		{"inbox", "INBOX", true},
		{"Inbox/*", "INBOX/x", true},
		{"inbox*", "INBOX/x", true},
		{"inboxes", "INBOX", false},
		{"Work", "work", false},
		{"Été/*", "Été/Août", true},
		{"É%", "Été", true},
		{"", "", true},
		{"", "a", false},
	}
	for _, tt := range tests {
		if got := match(tt.pattern, tt.name); got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestLogical(t *testing.T) {
	tests := []struct {
		name string
		side Side
		want string
	}{
		{"INBOX", dot(), "INBOX"},
		{"inbox", slash(), "INBOX"},
		{"INBOX.Receipts", dot(), "Receipts"},
		{"INBOX.Work.Old", dot(), "Work/Old"},
		{"INBOX/Receipts", slash(), "INBOX/Receipts"},
		{"Inbox/Receipts", slash(), "INBOX/Receipts"},
		{"Work/Old", slash(), "Work/Old"},
		{"Été.Août", dot(), "Été/Août"}, // outside the personal namespace: not stripped, still split
		{"INBOX.", dot(), ""},
		{"a/b", flat(), "a/b"},
	}
	for _, tt := range tests {
		if got := Logical(tt.name, tt.side); got != tt.want {
			t.Errorf("Logical(%q, %c %q) = %q, want %q", tt.name, tt.side.Delim, tt.side.Prefix, got, tt.want)
		}
	}
}

func TestMissingParents(t *testing.T) {
	tests := []struct {
		name string
		side Side
		want []string
	}{
		{"INBOX.a.b.c", dot("INBOX"), []string{"INBOX.a", "INBOX.a.b"}},
		{"INBOX.a.b.c", dot("INBOX", "INBOX.a"), []string{"INBOX.a.b"}},
		{"INBOX.a.b.c", dot("INBOX", `INBOX.a|\Noselect`, `INBOX.a.b|\NonExistent`), []string{"INBOX.a.b"}},
		{"INBOX.a", dot("INBOX"), nil},
		{"INBOX.a.b.c", dot("INBOX", "INBOX.a.b.x"), nil},                           // parents of an existing folder exist
		{"INBOX.a.b.c", dot("INBOX", `INBOX.a.b|\NonExistent`, "INBOX.a.b.x"), nil}, // a level above an existing folder
		{"a/b/c", slash("INBOX"), []string{"a", "a/b"}},
		{"INBOX/a/b", slash("INBOX"), []string{"INBOX/a"}},
		{"Été/Août", slash("INBOX"), []string{"Été"}},
		{"a/b", flat("INBOX"), nil},
	}
	for _, tt := range tests {
		if got := MissingParents(tt.name, tt.side); !slices.Equal(got, tt.want) {
			t.Errorf("MissingParents(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestMapErrors(t *testing.T) {
	tests := []struct {
		name     string
		src, dst Side
	}{
		{"empty source name", slash("INBOX", ""), dot("INBOX")},
		{"invalid UTF-8 destination name", slash("INBOX"), dot("INBOX", "INBOX.\xff")},
		{"non-ASCII delimiter", Side{Delim: '·'}, dot("INBOX")},
		{"control delimiter", slash("INBOX"), Side{Delim: '\t'}},
	}
	for _, tt := range tests {
		if p, err := Map(tt.src, tt.dst, Options{}); err == nil {
			t.Errorf("Map(%s) = %+v, nil error, want an error", tt.name, p)
		}
	}
}

// TestMapOrder: INBOX first, parents before children, independent of the input order.
func TestMapOrder(t *testing.T) {
	specs := []string{"Zeta", "INBOX/b", `Sent|\Sent`, "INBOX", "alpha", "Alpha/x", "alpha/y", "Été", "INBOX/a", `[Gmail]|\Noselect`, `[Gmail]/All Mail|\All`}
	dst := dot("INBOX", `INBOX.Sent|\Sent`)
	first := mustMap(t, slash(specs...), dst, Options{})
	wantOrder := []string{"INBOX", "INBOX/a", "INBOX/b", "[Gmail]/All Mail", "Alpha/x", "alpha", "alpha/y", "Sent", "Zeta", "Été"}
	var gotOrder []string
	for _, m := range first.Folders {
		gotOrder = append(gotOrder, m.Source)
	}
	if !slices.Equal(gotOrder, wantOrder) {
		t.Errorf("Map(...) folder order = %q, want %q", gotOrder, wantOrder)
	}
	for i := range specs {
		rotated := append(slices.Clone(specs[i:]), specs[:i]...)
		slices.Reverse(rotated[len(rotated)/2:])
		if got := mustMap(t, slash(rotated...), dst, Options{}); !reflect.DeepEqual(got, first) {
			t.Errorf("Map(%q) = %+v, want %+v (as for %q)", rotated, got, first, specs)
		}
	}
}

// TestMapRerun: after the first plan is carried out, a second plan against the resulting
// destination sends every folder to the same place and creates nothing.
func TestMapRerun(t *testing.T) {
	tests := []struct {
		name     string
		src, dst Side
		opts     Options
	}{
		{"collisions and renames onto dot", slash("INBOX", "Foo", "foo", "foo/bar", "v1.2", "v1_2", "Receipts", "INBOX/Receipts", `Sent|\Sent`, "Sent Items"), dot("INBOX", `INBOX.Sent Items|\Sent`), Options{}},
		{"dot onto slash", dot("INBOX", "INBOX.Inbox", "INBOX.a/b", "INBOX.a_b", "INBOX.Corbeille", `INBOX.x|\Noselect`, "INBOX.x.y"), slash("INBOX", "Trash"), Options{}},
		{"special use created on the first run", slash("INBOX", `Archive|\Archive`, "Archive/2020"), dot("INBOX"), Options{}},
		{"two special-use folders, one destination folder", slash("INBOX", `Sent|\Sent`, `Sent Messages|\Sent`, "Brouillons"), slash("INBOX", "Sent Items", "Drafts"), Options{}},
		{"a plain folder named like a special-use one", dot("INBOX", `INBOX.Sent Messages|\Sent`, "INBOX.Sent", "INBOX.Sent Items"), slash("INBOX", "Sent Items"), Options{}},
		{
			"Gmail with views onto an empty Dovecot",
			slash("INBOX", `[Gmail]|\Noselect`, `[Gmail]/Sent Mail|\Sent`, `[Gmail]/All Mail|\All`, `[Gmail]/Starred|\Flagged`, "Corbeille"),
			dot("INBOX"), Options{IncludeGmailViews: true},
		},
		{
			"Gmail archived mail onto an empty Dovecot",
			slash("INBOX", `[Gmail]|\Noselect`, `[Gmail]/Sent Mail|\Sent`, `[Gmail]/All Mail|\All`, `[Gmail]/Starred|\Flagged`, "Work"),
			dot("INBOX"), Options{},
		},
		{
			// The first run creates [Gmail] and its views as plain folders: the rerun must
			// not take the destination for Gmail and move them onto Dovecot's \All.
			"Gmail views onto a Dovecot with a virtual All folder",
			slash("INBOX", `[Gmail]|\Noselect`, `[Gmail]/All Mail|\All`, `[Gmail]/Trash|\Trash`, "Work"),
			slash("INBOX", `Virtual/All|\All`), Options{IncludeGmailViews: true},
		},
		{
			"several views and an \\All folder that is a parent",
			dot("INBOX", `INBOX.Everything|\All`, `INBOX.Everything.Kept|\Trash`, `INBOX.All|\All`, "INBOX.[Gmail].x"),
			slash("INBOX", `a|\All`), Options{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := mustMap(t, tt.src, tt.dst, tt.opts)
			second := mustMap(t, tt.src, applyPlan(tt.dst, first), tt.opts)
			if got, want := dests(second), dests(first); !reflect.DeepEqual(got, want) {
				t.Errorf("Map(%q) rerun folders = %q, want %q", tt.name, got, want)
			}
			if len(second.Create) != 0 {
				t.Errorf("Map(%q) rerun Create = %q, want none", tt.name, second.Create)
			}
		})
	}
}

func TestPlanLookup(t *testing.T) {
	p := mustMap(t, slash("INBOX", "Work"), dot("INBOX"), Options{})
	if m, ok := p.Lookup("Work"); !ok || m.Dest != "INBOX.Work" || !m.Create {
		t.Errorf("Lookup(%q) = %+v, %v, want INBOX.Work to create", "Work", m, ok)
	}
	if m, ok := p.Lookup("Nope"); ok {
		t.Errorf("Lookup(%q) = %+v, true, want false", "Nope", m)
	}
}

func BenchmarkMap(b *testing.B) {
	var specs []string
	for i := range 40 {
		for j := range 50 {
			specs = append(specs, fmt.Sprintf("Projects %d/Sub %d", i, j), fmt.Sprintf("projects %d/v%d.%d", i, i, j))
		}
	}
	src, dst := slash(append(specs, "INBOX", `Sent|\Sent`)...), dot("INBOX", `INBOX.Sent Items|\Sent`)
	for b.Loop() {
		if _, err := Map(src, dst, Options{Exclude: []string{"Projects 1*"}}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMapGmailArchive: without IncludeGmailViews, Gmail's All Mail becomes an
// ArchiveOnly mapping onto the destination's archive folder, and Elsewhere lists the
// folders whose messages are not archived mail.
func TestMapGmailArchive(t *testing.T) {
	gmail := func(extra ...string) Side {
		return slash(append([]string{"INBOX", `[Gmail]|\Noselect`, `[Gmail]/All Mail|\All`, `[Gmail]/Starred|\Flagged`,
			`[Gmail]/Important|\Important`, `[Gmail]/Sent Mail|\Sent`, `[Gmail]/Bin|\Trash`, "Work"}, extra...)...)
	}
	tests := []struct {
		name          string
		src, dst      Side
		opts          Options
		wantDest      string // "" : All Mail is not an ArchiveOnly mapping
		wantCreate    bool
		wantElsewhere []string
		wantSkip      Reason
	}{
		{
			name: "onto the destination's \\Archive folder, whatever its name",
			src:  gmail(), dst: dot("INBOX", `INBOX.Archiv|\Archive`, `INBOX.Archive`),
			wantDest:      "INBOX.Archiv",
			wantElsewhere: []string{"INBOX", "[Gmail]/Bin", "[Gmail]/Sent Mail", "Work"},
		},
		{
			name: "onto an Archive recognised by name",
			src:  gmail(), dst: slash("INBOX", "Archives"),
			wantDest:      "Archives",
			wantElsewhere: []string{"INBOX", "[Gmail]/Bin", "[Gmail]/Sent Mail", "Work"},
		},
		{
			name: "shares the Archive a source label goes to, created once",
			src:  gmail("Archive", "Archive/2020"), dst: dot("INBOX"),
			wantDest: "INBOX.Archive", wantCreate: true,
			wantElsewhere: []string{"INBOX", "[Gmail]/Bin", "[Gmail]/Sent Mail", "Archive", "Archive/2020", "Work"},
		},
		{
			name: "excluded labels still count as elsewhere",
			src:  gmail("Old"), dst: slash("INBOX"), opts: Options{Exclude: []string{"Work", "Old"}},
			wantDest: "Archive", wantCreate: true,
			wantElsewhere: []string{"INBOX", "[Gmail]/Bin", "[Gmail]/Sent Mail", "Old", "Work"},
		},
		{
			name: "recognised by name with the gmail provider",
			src:  slash("INBOX", "[Gmail]/Alle Nachrichten", "[Gmail]/Markiert", "Work"), dst: dot("INBOX"),
			opts:     Options{Provider: "gmail"},
			wantDest: "INBOX.Archive", wantCreate: true,
			wantElsewhere: []string{"INBOX", "Work"},
		},
		{
			name: "All Mail excluded by a pattern is skipped",
			src:  gmail(), dst: slash("INBOX"), opts: Options{Exclude: []string{"[Gmail]/All Mail"}},
			wantSkip: ReasonExcluded,
		},
		{
			name: "All Mail not included is skipped",
			src:  gmail(), dst: slash("INBOX"), opts: Options{Include: []string{"INBOX"}},
			wantSkip: ReasonNotIncluded,
		},
		{
			name: "included views are copied as folders",
			src:  gmail(), dst: slash("INBOX"), opts: Options{IncludeGmailViews: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustMap(t, tt.src, tt.dst, tt.opts)
			all := "[Gmail]/All Mail"
			if tt.opts.Provider != "" {
				all = "[Gmail]/Alle Nachrichten"
			}
			m, ok := p.Lookup(all)
			if tt.wantDest == "" {
				if m.ArchiveOnly {
					t.Errorf("Map(%q) %q = %+v, want no ArchiveOnly mapping", tt.name, all, m)
				}
				if got := skips(p)[all]; tt.wantSkip != "" && got != tt.wantSkip {
					t.Errorf("Map(%q) %q skipped for %q, want %q", tt.name, all, got, tt.wantSkip)
				}
				if len(p.Elsewhere) != 0 {
					t.Errorf("Map(%q) Elsewhere = %q, want none", tt.name, p.Elsewhere)
				}
				return
			}
			if !ok || !m.ArchiveOnly || m.Dest != tt.wantDest {
				t.Fatalf("Map(%q) %q = %+v (found %v), want ArchiveOnly onto %q", tt.name, all, m, ok, tt.wantDest)
			}
			if m.Create != tt.wantCreate {
				t.Errorf("Map(%q) %q Create = %v, want %v", tt.name, all, m.Create, tt.wantCreate)
			}
			if n := strings.Count(strings.Join(p.Create, "\n")+"\n", tt.wantDest+"\n"); n > 1 {
				t.Errorf("Map(%q) Create = %q, creates %q %d times", tt.name, p.Create, tt.wantDest, n)
			}
			if !slices.Equal(p.Elsewhere, tt.wantElsewhere) {
				t.Errorf("Map(%q) Elsewhere = %q, want %q", tt.name, p.Elsewhere, tt.wantElsewhere)
			}
		})
	}
}
