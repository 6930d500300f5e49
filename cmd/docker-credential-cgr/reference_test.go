package main

// docs/reference.md is the contract. These tests fail when the code grows a
// name (a variable it reads, a config key, a flag, a command, an error
// class) that the reference does not list, or when a link into the
// reference or from it points at a section that does not exist.

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/pkg/dockerconfig"
	"github.com/cgr-helper/docker-credential-cgr/pkg/kubelet"
)

const (
	repoRoot      = "../.."
	referencePath = repoRoot + "/docs/reference.md"
)

func readReference(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(referencePath)
	require.NoError(t, err)
	return string(b)
}

// section is the text of the "## title" section of a markdown document.
func section(t *testing.T, doc, title string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n## "+title+"\n")
	require.True(t, ok, "the reference has a section %q", title)
	body, _, _ := strings.Cut(rest, "\n## ")
	return body
}

// parseDir parses the non-test Go files of dir.
func parseDir(t *testing.T, dir string) []*ast.File {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		files = append(files, f)
	}
	require.NotEmpty(t, files, "Go files in %s", dir)
	return files
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

var envName = regexp.MustCompile(`^(CHAINGUARD|ACTIONS)_[A-Z0-9_]+$`)

// envNames finds the environment variables the code reads: the argument of
// every getenv("...") call, and every string constant that is a whole
// CHAINGUARD_ or ACTIONS_ variable name (settings tables pass those to
// getenv through a variable).
func envNames(t *testing.T, dirs ...string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, dir := range dirs {
		for _, f := range parseDir(t, dir) {
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					var fn string
					switch fun := n.Fun.(type) {
					case *ast.Ident:
						fn = fun.Name
					case *ast.SelectorExpr:
						fn = fun.Sel.Name
					}
					if strings.EqualFold(fn, "getenv") && len(n.Args) == 1 {
						if s, ok := stringLit(n.Args[0]); ok {
							names[s] = true
						}
					}
				case *ast.BasicLit:
					if s, ok := stringLit(n); ok && envName.MatchString(s) {
						names[s] = true
					}
				}
				return true
			})
		}
	}
	return names
}

func TestReferenceListsEveryEnvironmentVariable(t *testing.T) {
	t.Parallel()
	ref := readReference(t)
	names := envNames(t, repoRoot+"/pkg/creds", repoRoot+"/pkg/kubelet", repoRoot+"/pkg/dockerconfig", ".")
	// The scan must see what the code is known to read, or it proves nothing.
	for _, known := range []string{"CHAINGUARD_IDENTITY", "CHAINGUARD_NO_CACHE", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "XDG_CONFIG_HOME", "DOCKER_CONFIG"} {
		require.True(t, names[known], "the scan finds %s", known)
	}
	for name := range names {
		assert.Contains(t, ref, "`"+name+"`", "docs/reference.md lists the environment variable %s", name)
	}
}

// TestReferenceListsEveryConfigKey: the config file's keys are the json
// tags of pkg/creds' fileConfig.
func TestReferenceListsEveryConfigKey(t *testing.T) {
	t.Parallel()
	ref := section(t, readReference(t), "Configuration")
	for _, key := range configKeys(t) {
		assert.Contains(t, ref, "`"+key+"`", "docs/reference.md lists the config key %s", key)
	}
}

// configKeys are the config file's keys: the json tags of pkg/creds'
// fileConfig, in order.
func configKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	for _, f := range parseDir(t, repoRoot+"/pkg/creds") {
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok || ts.Name.Name != "fileConfig" {
				return true
			}
			for _, field := range ts.Type.(*ast.StructType).Fields.List {
				tag, _ := stringLit(field.Tag)
				key, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ",")
				require.NotEmpty(t, key, "every fileConfig field has a json key")
				keys = append(keys, key)
			}
			return false
		})
	}
	require.NotEmpty(t, keys, "pkg/creds declares the config file as fileConfig")
	return keys
}

// TestReferenceListsEveryConfigureKubeletFlag reads the flags from
// configure-kubelet's own --help.
func TestReferenceListsEveryConfigureKubeletFlag(t *testing.T) {
	t.Parallel()
	ref := section(t, readReference(t), "Commands")
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, kubelet.RunConfigure([]string{"--help"}, func(string) string { return "" }, &stdout, &stderr))
	flags := regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`).FindAllStringSubmatch(stdout.String(), -1)
	require.GreaterOrEqual(t, len(flags), 3, "--help lists the flags:\n%s", stdout.String())
	for _, m := range flags {
		assert.Contains(t, ref, "`--"+m[1]+"`", "docs/reference.md lists configure-kubelet --%s", m[1])
	}
}

// TestReferenceListsEveryConfigureDockerFlag reads the flags from
// configure-docker's own --help.
func TestReferenceListsEveryConfigureDockerFlag(t *testing.T) {
	t.Parallel()
	ref := section(t, readReference(t), "Commands")
	_, ref, ok := strings.Cut(ref, "\n### configure-docker\n")
	require.True(t, ok, "the reference has a configure-docker section")
	ref, _, _ = strings.Cut(ref, "\n### ")
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, dockerconfig.Run([]string{"--help"}, func(string) string { return "" }, &stdout, &stderr))
	flags := regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`).FindAllStringSubmatch(stdout.String(), -1)
	require.GreaterOrEqual(t, len(flags), 5, "--help lists the flags:\n%s", stdout.String())
	for _, m := range flags {
		assert.Contains(t, ref, "`--"+m[1]+"`", "docs/reference.md lists configure-docker --%s", m[1])
	}
}

// TestReferenceListsEveryCommand: the subcommands main dispatches itself,
// and the docker protocol's actions.
func TestReferenceListsEveryCommand(t *testing.T) {
	t.Parallel()
	ref := section(t, readReference(t), "Commands")
	commands := []string{credentials.ActionGet, credentials.ActionStore, credentials.ActionErase, credentials.ActionList, credentials.ActionVersion}
	own := 0
	for _, f := range parseDir(t, ".") {
		ast.Inspect(f, func(n ast.Node) bool {
			if cc, ok := n.(*ast.CaseClause); ok {
				for _, e := range cc.List {
					if s, ok := stringLit(e); ok {
						commands = append(commands, s)
						own++
					}
				}
			}
			return true
		})
	}
	require.Positive(t, own, "main.go dispatches subcommands of its own")
	for _, c := range commands {
		assert.Contains(t, ref, "`"+c+"`", "docs/reference.md lists the command %s", c)
	}
}

// TestReferenceListsEveryErrorClass: every exported Err* value of
// pkg/creds and pkg/exchange, and the exported error types of pkg/exchange.
func TestReferenceListsEveryErrorClass(t *testing.T) {
	t.Parallel()
	ref := section(t, readReference(t), "Error classes")
	var names []string
	for _, dir := range []string{repoRoot + "/pkg/creds", repoRoot + "/pkg/exchange"} {
		for _, f := range parseDir(t, dir) {
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok {
					continue
				}
				for _, spec := range gd.Specs {
					switch s := spec.(type) {
					case *ast.ValueSpec:
						for _, id := range s.Names {
							if gd.Tok == token.VAR && id.IsExported() && strings.HasPrefix(id.Name, "Err") {
								names = append(names, id.Name)
							}
						}
					case *ast.TypeSpec:
						if s.Name.IsExported() && strings.HasSuffix(s.Name.Name, "Error") {
							names = append(names, s.Name.Name)
						}
					}
				}
			}
		}
	}
	require.Contains(t, names, "ErrNoAmbientToken", "the scan finds the error classes")
	for _, name := range names {
		assert.Contains(t, ref, name+"`", "docs/reference.md lists %s", name)
	}
}

func TestReferenceListsTheKubeletVersions(t *testing.T) {
	t.Parallel()
	ref := section(t, readReference(t), "Kubelet protocol")
	for _, v := range kubelet.SupportedAPIVersions {
		assert.Contains(t, ref, "`"+v+"`", "the request versions the plugin answers")
	}
	span := "**" + kubelet.OldestVersion.String() + " to " + kubelet.NewestVersion.String() + "**"
	assert.Contains(t, ref, span, "the kubelet releases configure-kubelet writes for")
}

// TestReferenceAnchorsResolve: every pointer at docs/reference.md#... in
// the repository's code and docs, and every link from the reference to
// itself or a sibling document, names a heading that exists.
func TestReferenceAnchorsResolve(t *testing.T) {
	t.Parallel()
	ref := readReference(t)
	anchors := map[string]map[string]bool{"reference.md": headingAnchors(ref)}
	for _, doc := range []string{"security.md", "kubernetes.md", "benchmarks.md"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, "docs", doc))
		require.NoError(t, err)
		anchors[doc] = headingAnchors(string(b))
	}

	links := regexp.MustCompile(`\]\(([a-z]*\.md)?#([^)]+)\)`).FindAllStringSubmatch(ref, -1)
	require.NotEmpty(t, links)
	for _, m := range links {
		doc := m[1]
		if doc == "" {
			doc = "reference.md"
		}
		if _, known := anchors[doc]; !known {
			continue
		}
		assert.True(t, anchors[doc][m[2]], "docs/reference.md links to %s#%s, which is no heading", doc, m[2])
	}

	pointer := regexp.MustCompile(`reference\.md#([A-Za-z0-9_-]+)`)
	root, err := os.OpenRoot(repoRoot)
	require.NoError(t, err)
	defer func() { _ = root.Close() }()
	repo := root.FS()
	err = fs.WalkDir(repo, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
				return fs.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".go" && ext != ".md" && d.Name() != "Makefile" {
			return nil
		}
		b, err := fs.ReadFile(repo, path)
		if err != nil {
			return err
		}
		for _, m := range pointer.FindAllStringSubmatch(string(b), -1) {
			assert.True(t, anchors["reference.md"][m[1]], "%s points at docs/reference.md#%s, which is no heading", path, m[1])
		}
		return nil
	})
	require.NoError(t, err)
}

// headingAnchors lists the anchors GitHub gives a document's headings:
// lower case, punctuation other than '-' and '_' dropped, spaces turned to
// '-', and "-1", "-2" added to repeats. Lines in code fences are skipped.
func headingAnchors(doc string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	fenced := false
	for line := range strings.SplitSeq(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		title, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if fenced || !strings.HasPrefix(line, "#") || !ok {
			continue
		}
		slug := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(strings.TrimSpace(title)), ""), " ", "-")
		anchor := slug
		for n := 1; out[anchor]; n++ {
			anchor = slug + "-" + strconv.Itoa(n)
		}
		out[anchor] = true
	}
	return out
}
