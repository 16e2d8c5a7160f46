package deploy_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// repoRoot is the repository, seen from this module's folder (where go test runs).
const repoRoot = ".."

// images lists the Dockerfiles: each builds the main package of its service.
var images = []struct {
	dockerfile string
	pkg        string // the package the Dockerfile builds, relative to the root
	binary     string
}{
	{"services/api/Dockerfile", "./services/api", "imapcopy-api"},
	{"services/copier/Dockerfile", "./services/copier", "imapcopy-copier"},
	{"services/standalone/Dockerfile", "./services/standalone", "imapcopy"},
}

func TestDockerfiles(t *testing.T) {
	for _, img := range images {
		t.Run(img.dockerfile, func(t *testing.T) {
			checkDockerfile(t, img.dockerfile, img.pkg, img.binary)
		})
	}
}

// checkDockerfile parses a Dockerfile with BuildKit's own parser, runs BuildKit's
// lint rules (those `docker build --check` applies while parsing), and checks what
// a build on this project must do.
func checkDockerfile(t *testing.T, name, pkg, binary string) {
	src, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	res, err := dfparser.Parse(bytes.NewReader(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("parser warning: %s", w.Short)
	}
	lint := linter.New(&linter.Config{
		ExperimentalAll: true,
		Warn: func(rule, description, url, msg string, loc []dfparser.Range) {
			line := 0
			if len(loc) > 0 {
				line = loc[0].Start.Line
			}
			t.Errorf("lint %s (line %d): %s", rule, line, msg)
		},
	})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("instructions: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build (builder + minimal runtime)", len(stages))
	}
	names := map[string]bool{}
	for _, s := range stages {
		if s.Name != "" {
			names[s.Name] = true
		}
	}

	// Every stage: no ADD (COPY is explicit; ADD fetches URLs and unpacks archives),
	// COPY --from names a stage of this file.
	for _, s := range stages {
		for _, cmd := range s.Commands {
			switch c := cmd.(type) {
			case *instructions.AddCommand:
				t.Errorf("stage %q: ADD %v: use COPY (ADD fetches URLs without a checksum and unpacks archives)", s.Name, c.SourcePaths)
			case *instructions.CopyCommand:
				if c.From != "" && !names[c.From] {
					t.Errorf("stage %q: COPY --from=%s names no stage of this file", s.Name, c.From)
				}
			}
		}
	}

	// The build stage: a static, trimmed, version-stamped build of pkg.
	build := stages[len(stages)-2]
	var buildCmd string
	var args []string
	for _, cmd := range build.Commands {
		switch c := cmd.(type) {
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				args = append(args, a.Key)
			}
		case *instructions.RunCommand:
			line := strings.Join(c.CmdLine, " ")
			if strings.Contains(line, "go build") {
				buildCmd = line
			}
		}
	}
	if buildCmd == "" {
		t.Fatalf("stage %q: no RUN with go build", build.Name)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "-o /out/" + binary, " " + pkg} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("go build %q lacks %q", buildCmd, want)
		}
	}
	if !slices.Contains(args, "VERSION") {
		t.Errorf("stage %q: no ARG VERSION (the build stamps main.version with it)", build.Name)
	}
	checkMainVersion(t, filepath.Join(repoRoot, pkg))

	// The final stage: a minimal base, the binary, a numeric non-root user, exec-form
	// entrypoint, the version in a label.
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") && final.BaseName != "scratch" {
		t.Errorf("final stage FROM %s: want distroless static (or scratch with CA certificates)", final.BaseName)
	}
	if strings.HasSuffix(final.BaseName, ":latest") {
		t.Errorf("final stage FROM %s: name a tag other than latest", final.BaseName)
	}
	var user, entrypoint string
	var copied, versionLabel bool
	for _, cmd := range final.Commands {
		switch c := cmd.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("ENTRYPOINT in shell form: the image has no shell; use the JSON form")
			}
			entrypoint = strings.Join(c.CmdLine, " ")
		case *instructions.CopyCommand:
			if c.From == build.Name && slices.Contains(c.SourcePaths, "/out/"+binary) {
				copied = true
			}
		case *instructions.LabelCommand:
			for _, l := range c.Labels {
				if l.Key == "org.opencontainers.image.version" && strings.Trim(l.Value, `"`) == "${VERSION}" {
					versionLabel = true
				}
			}
		}
	}
	uid, gid, ok := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("final stage USER %q: want a numeric non-root user (Kubernetes' runAsNonRoot cannot check a name)", user)
	}
	if n, err := strconv.Atoi(gid); ok && (err != nil || n == 0) {
		t.Errorf("final stage USER %q: want a numeric non-root group", user)
	}
	if !copied {
		t.Errorf("final stage does not COPY /out/%s from stage %q", binary, build.Name)
	}
	if entrypoint != "/"+binary {
		t.Errorf("ENTRYPOINT %q, want %q", entrypoint, "/"+binary)
	}
	if !versionLabel {
		t.Errorf("final stage: no LABEL org.opencontainers.image.version=\"${VERSION}\"")
	}
}

// checkMainVersion: the package is a main package with a package-level string
// variable "version", which the build's -X main.version sets (-X ignores a missing
// variable silently: the check is here).
func checkMainVersion(t *testing.T, dir string) {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("the built package: %v", err)
	}
	isMain, hasVersion := false, false
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", e.Name(), err)
		}
		if f.Name.Name == "main" {
			isMain = true
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if n.Name == "version" {
						hasVersion = true
					}
				}
			}
		}
	}
	if !isMain {
		t.Errorf("%s: not a main package", dir)
	}
	if !hasVersion {
		t.Errorf(`%s: no package-level "var version = \"dev\"" for -X main.version to set`, dir)
	}
}

// TestDockerignore: the build context holds the whole Go workspace (go.work and
// every module it uses, sources without tests) and nothing else of the repository.
func TestDockerignore(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(p string) bool {
		ex, err := pm.MatchesOrParentMatches(filepath.ToSlash(p))
		if err != nil {
			t.Fatalf("match %s: %v", p, err)
		}
		return ex
	}
	modules := workspaceModules(t)
	need := []string{"go.work", "go.work.sum"}
	for _, m := range modules {
		need = append(need, filepath.Join(m, "go.mod"))
		if _, err := os.Stat(filepath.Join(repoRoot, m, "go.sum")); err == nil {
			need = append(need, filepath.Join(m, "go.sum"))
		}
	}
	for _, p := range need {
		if excluded(p) {
			t.Errorf("%s is excluded from the build context: the workspace build needs it", p)
		}
	}
	for _, m := range modules {
		if m == "deploy" {
			continue // only its go.mod: go.work names it
		}
		err := filepath.WalkDir(filepath.Join(repoRoot, m), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
				return err
			}
			rel, _ := filepath.Rel(repoRoot, p)
			isTest := strings.HasSuffix(p, "_test.go") || strings.Contains(rel, "/testdata/")
			if got := excluded(rel); got != isTest {
				t.Errorf("%s: excluded from the build context = %v, want %v", rel, got, isTest)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{".git/HEAD", "bin/imapcopy", "deploy/README.md", "deploy/base/kustomization.yaml", "README.md", "Makefile"} {
		if !excluded(p) {
			t.Errorf("%s is in the build context: the images need only the Go workspace", p)
		}
	}
}

// workspaceModules returns the module folders go.work uses.
func workspaceModules(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	var mods []string
	block := regexp.MustCompile(`(?s)use\s*\((.*?)\)`).FindSubmatch(b)
	lines := regexp.MustCompile(`(?m)^use\s+(\S+)\s*$`).FindAllSubmatch(b, -1)
	if block != nil {
		for _, f := range strings.Fields(string(block[1])) {
			mods = append(mods, filepath.Clean(f))
		}
	}
	for _, l := range lines {
		if string(l[1]) != "(" {
			mods = append(mods, filepath.Clean(string(l[1])))
		}
	}
	if len(mods) == 0 {
		t.Fatal("go.work uses no module")
	}
	return mods
}
