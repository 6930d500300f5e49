//go:build release

// Package release checks what `make release-snapshot` left in dist/, as a
// user would meet it: the six archives and checksums.txt under the names
// the README gives, each archive holding the binary, README, LICENSE and
// docs; every binary built as .goreleaser.yaml says; the linux/amd64 binary
// run for `version` and for a `get` against the sandbox; and no build
// output tracked in git. `make release-test` runs it (build tag release).
package release

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

const (
	project = "docker-credential-cgr"
	module  = "github.com/cgr-helper/docker-credential-cgr"
)

// targets are the six platforms a release ships.
var targets = []struct{ goos, goarch string }{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"}, {"windows", "arm64"},
}

// metadata is the part of goreleaser's dist/metadata.json used here.
type metadata struct {
	ProjectName string `json:"project_name"`
	Version     string `json:"version"`
	Commit      string `json:"commit"`
}

// snapshot is dist/ as the last `make release-snapshot` left it.
type snapshot struct {
	root, dist string
	meta       metadata
	commitTime time.Time // the commit's time, which every date in dist/ must be
}

func load(t *testing.T) snapshot {
	t.Helper()
	root := strings.TrimSpace(git(t, "", "rev-parse", "--show-toplevel"))
	s := snapshot{root: root, dist: filepath.Join(root, "dist")}
	b, err := os.ReadFile(filepath.Join(s.dist, "metadata.json"))
	require.NoError(t, err, "no snapshot in dist/: run make release-snapshot first")
	require.NoError(t, json.Unmarshal(b, &s.meta))
	require.Equal(t, project, s.meta.ProjectName)
	require.NotEmpty(t, s.meta.Version)
	head := strings.TrimSpace(git(t, root, "rev-parse", "HEAD"))
	require.Equal(t, head, s.meta.Commit, "dist/ was built from another commit; run make release-snapshot again")
	unix := strings.TrimSpace(git(t, root, "log", "-1", "--format=%ct"))
	var sec int64
	_, err = fmt.Sscan(unix, &sec)
	require.NoError(t, err)
	s.commitTime = time.Unix(sec, 0).UTC()
	return s
}

// archiveName is the name the README's install commands use.
func (s snapshot) archiveName(goos, goarch string) string {
	ext := "tar.gz"
	if goos == "windows" {
		ext = "zip"
	}
	return fmt.Sprintf("%s_%s_%s_%s.%s", project, s.meta.Version, goos, goarch, ext)
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	require.NoError(t, err, "git %s", strings.Join(args, " "))
	return string(out)
}

// TestChecksums: checksums.txt lists exactly the six archives, and each
// matches, as `sha256sum -c checksums.txt` would check.
func TestChecksums(t *testing.T) {
	s := load(t)
	f, err := os.Open(filepath.Join(s.dist, "checksums.txt"))
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	listed := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		require.True(t, ok, "line %q is not sha256sum's format", sc.Text())
		listed[name] = sum
	}
	require.NoError(t, sc.Err())
	want := map[string]bool{}
	for _, tg := range targets {
		want[s.archiveName(tg.goos, tg.goarch)] = true
	}
	for name := range listed {
		assert.True(t, want[name], "checksums.txt lists %s, which is not one of the six archives", name)
	}
	for name := range want {
		sum, ok := listed[name]
		if !assert.True(t, ok, "checksums.txt does not list %s", name) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dist, name))
		require.NoError(t, err)
		got := sha256.Sum256(b)
		assert.Equal(t, sum, hex.EncodeToString(got[:]), name)
	}
}

// entry is one file in an archive.
type entry struct {
	mode    os.FileMode
	modTime time.Time
	data    []byte
}

func readArchive(t *testing.T, file string) map[string]entry {
	t.Helper()
	files := map[string]entry{}
	if strings.HasSuffix(file, ".zip") {
		z, err := zip.OpenReader(file)
		require.NoError(t, err)
		defer func() { _ = z.Close() }()
		for _, f := range z.File {
			rc, err := f.Open()
			require.NoError(t, err)
			b, err := io.ReadAll(rc)
			require.NoError(t, err)
			require.NoError(t, rc.Close())
			files[f.Name] = entry{f.Mode(), f.Modified.UTC(), b}
		}
		return files
	}
	f, err := os.Open(file)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = entry{h.FileInfo().Mode(), h.ModTime.UTC(), b}
	}
	return files
}

// TestArchives: every archive holds the binary, README.md, LICENSE and
// docs/*.md as they are in the tree, nothing else, all dated at the commit;
// and each binary is built as .goreleaser.yaml says, for its platform.
func TestArchives(t *testing.T) {
	s := load(t)
	docs, err := filepath.Glob(filepath.Join(s.root, "docs", "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, docs)
	texts := []string{"README.md", "LICENSE"}
	for _, d := range docs {
		texts = append(texts, "docs/"+filepath.Base(d))
	}
	for _, tg := range targets {
		name := s.archiveName(tg.goos, tg.goarch)
		t.Run(name, func(t *testing.T) {
			files := readArchive(t, filepath.Join(s.dist, name))
			bin := project
			if tg.goos == "windows" {
				bin += ".exe"
			}
			want := append([]string{bin}, texts...)
			var got []string
			for n := range files {
				got = append(got, n)
			}
			assert.ElementsMatch(t, want, got)
			for _, n := range texts {
				f, ok := files[n]
				if !assert.True(t, ok, "%s is missing", n) {
					continue
				}
				tree, err := os.ReadFile(filepath.Join(s.root, filepath.FromSlash(n)))
				require.NoError(t, err)
				assert.True(t, bytes.Equal(tree, f.data), "%s differs from the tree's", n)
			}
			for n, f := range files {
				assert.True(t, f.modTime.Equal(s.commitTime), "%s is dated %s, not at the commit (%s)", n, f.modTime, s.commitTime)
			}
			b, ok := files[bin]
			if !assert.True(t, ok, "%s is missing", bin) {
				return
			}
			if tg.goos != "windows" {
				assert.Equal(t, os.FileMode(0o755), b.mode.Perm(), "%s is executable", bin)
			}
			checkBuild(t, s, tg.goos, tg.goarch, b.data)
		})
	}
}

// checkBuild checks a binary of any platform against .goreleaser.yaml:
// the build info the Go linker embedded (with -trimpath go leaves out
// -ldflags, so the linked values are looked for in the bytes), and no
// symbol table or DWARF (-s -w).
func checkBuild(t *testing.T, s snapshot, goos, goarch string, bin []byte) {
	t.Helper()
	bi, err := buildinfo.Read(bytes.NewReader(bin))
	require.NoError(t, err)
	assert.Equal(t, module+"/cmd/"+project, bi.Path)
	settings := map[string]string{}
	for _, st := range bi.Settings {
		settings[st.Key] = st.Value
	}
	assert.Equal(t, goos, settings["GOOS"])
	assert.Equal(t, goarch, settings["GOARCH"])
	assert.Equal(t, "0", settings["CGO_ENABLED"])
	assert.Equal(t, "true", settings["-trimpath"])
	// Go's own VCS stamp (vcs.revision, vcs.time) may hold the same
	// strings, and the linker writes the build info more than once: the
	// values must be there outside every copy of it.
	outside := withoutBuildInfo(bin)
	for _, linked := range []string{"v" + s.meta.Version, s.meta.Commit, s.commitTime.Format(time.RFC3339)} {
		assert.Contains(t, string(outside), linked, "%q is not linked in", linked)
	}
	syms, sections := symbolsAndSections(t, goos, bin)
	assert.NotContains(t, syms, "main.main", "a symbol table (-s)")
	for _, sec := range sections {
		assert.NotContains(t, sec, "debug_", "DWARF section %s (-w)", sec)
	}
}

// withoutBuildInfo is bin less every copy of the module information the
// Go linker embeds, each between the sentinels runtime/debug knows it by
// (in the .go.buildinfo section and in runtime.modinfo).
func withoutBuildInfo(bin []byte) []byte {
	start := []byte("0w\xaf\x0c\x92t\b\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6")
	end := []byte("\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2")
	var out []byte
	for {
		i := bytes.Index(bin, start)
		j := -1
		if i >= 0 {
			j = bytes.Index(bin[i:], end)
		}
		if j < 0 {
			return append(out, bin...)
		}
		out = append(out, bin[:i]...)
		bin = bin[i+j+len(end):]
	}
}

// symbolsAndSections lists a binary's symbol names and section names.
func symbolsAndSections(t *testing.T, goos string, bin []byte) (syms, sections []string) {
	t.Helper()
	r := bytes.NewReader(bin)
	switch goos {
	case "linux":
		f, err := elf.NewFile(r)
		require.NoError(t, err)
		ss, err := f.Symbols()
		if !errors.Is(err, elf.ErrNoSymbols) {
			require.NoError(t, err)
		}
		for _, sy := range ss {
			syms = append(syms, sy.Name)
		}
		for _, sec := range f.Sections {
			sections = append(sections, sec.Name)
		}
	case "darwin":
		f, err := macho.NewFile(r)
		require.NoError(t, err)
		if f.Symtab != nil {
			for _, sy := range f.Symtab.Syms {
				syms = append(syms, sy.Name)
			}
		}
		for _, sec := range f.Sections {
			sections = append(sections, sec.Name)
		}
	case "windows":
		f, err := pe.NewFile(r)
		require.NoError(t, err)
		for _, sy := range f.Symbols {
			syms = append(syms, sy.Name)
		}
		for _, sec := range f.Sections {
			sections = append(sections, sec.Name)
		}
	default:
		t.Fatalf("no reader for %s binaries", goos)
	}
	return syms, sections
}

// extract writes the linux/amd64 binary from its archive into a folder of
// its own and returns its path.
func extract(t *testing.T, s snapshot) string {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		// As in test/e2e: CI must run what it claims to, so there a skip fails.
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true, but the linux/amd64 binary cannot run on %s/%s", runtime.GOOS, runtime.GOARCH)
		}
		t.Skipf("the linux/amd64 binary cannot run on %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	files := readArchive(t, filepath.Join(s.dist, s.archiveName("linux", "amd64")))
	f, ok := files[project]
	require.True(t, ok)
	bin := filepath.Join(t.TempDir(), project)
	require.NoError(t, os.WriteFile(bin, f.data, 0o755))
	return bin
}

// TestVersion: the released binary says which version, commit and date it
// is, exactly as goreleaser recorded them.
func TestVersion(t *testing.T) {
	s := load(t)
	bin := extract(t, s)
	out, err := exec.Command(bin, "version").Output()
	require.NoError(t, err)
	want := fmt.Sprintf("%s (%s) v%s (commit %s, built %s)\n", project, module, s.meta.Version, s.meta.Commit, s.commitTime.Format(time.RFC3339))
	assert.Equal(t, want, string(out))
}

// TestSandboxGet: the released binary answers docker's `get` with a
// registry token the sandbox STS issued for the identity, the sandbox
// registry lets that token pull, and the STS saw the release's version in
// the User-Agent.
func TestSandboxGet(t *testing.T) {
	s := load(t)
	bin := extract(t, s)
	sb, err := sandbox.Start()
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	pushed, err := sb.Registry.PushRandomImage("chainguard/static", "latest")
	require.NoError(t, err)
	ambient, err := sb.Issuer.MintServiceAccountToken("default", "puller")
	require.NoError(t, err)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "oidc-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(ambient), 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "get")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(dir, "home"),
		"CHAINGUARD_ISSUER=" + sb.STS.URL(),
		"CHAINGUARD_REGISTRY=" + sb.Registry.Host(),
		"CHAINGUARD_IDENTITY=" + sandbox.DefaultIdentity,
		"CHAINGUARD_IDENTITY_TOKEN=" + tokenFile,
		"CHAINGUARD_CACHE_DIR=" + filepath.Join(dir, "cache"),
	}
	cmd.Stdin = strings.NewReader(sb.Registry.Host() + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	// Never print what the helper wrote: on success it is a token.
	require.NoError(t, err, "get failed (stdout and stderr withheld: they may hold a token)")
	assert.False(t, strings.Contains(stderr.String(), ambient), "the ambient token is on stderr")

	var c struct{ ServerURL, Username, Secret string }
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &c), "stdout is the protocol's JSON only")
	assert.Equal(t, sb.Registry.Host(), c.ServerURL)
	assert.Equal(t, "_token", c.Username)
	sub, err := sb.STS.VerifyToken(c.Secret, sandbox.RegistryAudience)
	require.NoError(t, err, "the secret is a registry token the STS signed")
	assert.Equal(t, sandbox.DefaultIdentity, sub)

	got, err := sandbox.Pull(ctx, sb.Registry.Host()+"/chainguard/static:latest", &authn.Basic{Username: c.Username, Password: c.Secret})
	require.NoError(t, err)
	assert.Equal(t, pushed, got)

	ua := fmt.Sprintf("%s/v%s (commit %s, built %s)", project, s.meta.Version, s.meta.Commit, s.commitTime.Format(time.RFC3339))
	assert.Equal(t, ua, sb.STS.LastRequest().UserAgent)
}

// TestNothingBuiltIsTracked: git ignores dist/ and bin/ and tracks nothing
// in them, and .ci/check-tracked (which make lint runs) finds no tracked
// executable after the snapshot.
func TestNothingBuiltIsTracked(t *testing.T) {
	s := load(t)
	assert.Empty(t, git(t, s.root, "ls-files", "--", "dist", "bin"), "git tracks build output")
	var outputs []string
	require.NoError(t, filepath.WalkDir(s.dist, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(s.root, p)
			outputs = append(outputs, filepath.ToSlash(rel))
		}
		return err
	}))
	require.NotEmpty(t, outputs)
	// check-ignore -v --non-matching prints "::<tab>path" for a path no
	// rule ignores.
	cmd := exec.Command("git", append([]string{"check-ignore", "-v", "--non-matching", "--"}, outputs...)...)
	cmd.Dir = s.root
	out, _ := cmd.Output() // exit 1 means some path is not ignored; the lines say which
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		assert.False(t, strings.HasPrefix(line, "::"), "not ignored by .gitignore: %s", strings.TrimPrefix(line, "::\t"))
	}
	assert.Len(t, strings.Split(strings.TrimSpace(string(out)), "\n"), len(outputs))
	check := exec.Command(filepath.Join(s.root, ".ci", "check-tracked"))
	check.Dir = s.root
	msg, err := check.CombinedOutput()
	assert.NoError(t, err, "%s", msg)
}
