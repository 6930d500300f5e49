package dockerconfig

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A config as people have them: docker login's auths, Docker Desktop's
// credsStore, another helper, keys docker does not know with nested
// objects, a number in an unusual form and an escaped key.
const lived = `{
	"auths": {
		"https://cgr.dev": {
			"auth": "X3Rva2VuOnN0YWxl"
		},
		"ghcr.io": {}
	},
	"credsStore": "desktop",
	"credHelpers": {
		"gcr.io": "gcloud",
		"us-docker.pkg.dev": "gcloud"
	},
	"currentContext": "colima",
	"plugins": {"debug": {"hooks": "exec", "nested": [1.50e3, {"z": null, "a": true}]}},
	"x-\u00e9t\u00e9": "kept as written"
}
`

// writeConfig writes a docker config and returns its path.
func writeConfig(t *testing.T, content string, mode fs.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
	require.NoError(t, os.Chmod(path, mode)) // past the umask
	return path
}

// snapshot is a file's bytes, mode and modification time.
type snapshot struct {
	data  string
	mode  fs.FileMode
	mtime time.Time
}

// aged sets a file's mtime an hour back, so that a rewrite would show.
func aged(t *testing.T, path string) snapshot {
	t.Helper()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	require.NoError(t, os.Chtimes(path, old, old))
	return snap(t, path)
}

func snap(t *testing.T, path string) snapshot {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	return snapshot{string(b), fi.Mode(), fi.ModTime()}
}

// onlyFile says that the config's folder holds nothing but the config: no
// temporary file was left behind.
func onlyFile(t *testing.T, path string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{filepath.Base(path)}, names)
}

func TestConfigureAddsOnlyOurEntries(t *testing.T) {
	path := writeConfig(t, lived, 0o600)

	e, err := Configure(path, []string{"cgr.dev", "registry.example.com:5000"}, Options{})
	require.NoError(t, err)

	got, err := os.ReadFile(path)
	require.NoError(t, err)
	// Byte for byte: the entries go after the last credHelpers entry, laid
	// out like it; nothing else moves.
	want := strings.Replace(lived, `"us-docker.pkg.dev": "gcloud"`,
		`"us-docker.pkg.dev": "gcloud",
		"cgr.dev": "cgr",
		"registry.example.com:5000": "cgr"`, 1)
	assert.Equal(t, want, string(got))

	// The same, as docker would decode it: every other key equal.
	var before, after map[string]any
	require.NoError(t, json.Unmarshal([]byte(lived), &before))
	require.NoError(t, json.Unmarshal(got, &after))
	helpers := after["credHelpers"].(map[string]any)
	assert.Equal(t, map[string]any{"gcr.io": "gcloud", "us-docker.pkg.dev": "gcloud", "cgr.dev": "cgr", "registry.example.com:5000": "cgr"}, helpers)
	delete(before, "credHelpers")
	delete(after, "credHelpers")
	assert.Equal(t, before, after)

	assert.Equal(t, []string{"cgr.dev", "registry.example.com:5000"}, e.Added)
	assert.Empty(t, e.Replaced)
	assert.False(t, e.Created)
	assert.True(t, e.Changed())
	require.Len(t, e.Warnings, 2)
	assert.Contains(t, e.Warnings[0], `credsStore is "desktop"`)
	assert.Contains(t, e.Warnings[0], "docker-credential-desktop")
	assert.Contains(t, e.Warnings[1], `auths has an entry "https://cgr.dev" for cgr.dev`)
	for _, w := range e.Warnings {
		assert.False(t, strings.Contains(w, "X3Rva2VuOnN0YWxl"), "a warning quotes an auths credential")
	}
	onlyFile(t, path)
}

func TestConfigureSecondRunChangesNothing(t *testing.T) {
	path := writeConfig(t, lived, 0o600)
	regs := []string{"cgr.dev"}
	_, err := Configure(path, regs, Options{})
	require.NoError(t, err)
	first := aged(t, path)
	inode, err := os.Stat(path)
	require.NoError(t, err)

	e, err := Configure(path, regs, Options{})
	require.NoError(t, err)
	assert.False(t, e.Changed())
	assert.Empty(t, e.Added)
	assert.Equal(t, first, snap(t, path), "the file was rewritten")
	again, err := os.Stat(path)
	require.NoError(t, err)
	assert.True(t, os.SameFile(inode, again), "the file was replaced")
}

func TestConfigureRefusesMalformed(t *testing.T) {
	bad := "{\n\t\"auths\": {\"x\": {\"auth\": \"c2VjcmV0\"}},\n\t\"credHelpers\": {\"a\": \"b\",}\n}\n"
	path := writeConfig(t, bad, 0o600)
	before := aged(t, path)

	for _, dry := range []bool{false, true} {
		_, err := Configure(path, []string{"cgr.dev"}, Options{DryRun: dry})
		require.Error(t, err)
		msg := err.Error()
		assert.Contains(t, msg, path)
		assert.Contains(t, msg, "is not valid JSON")
		assert.Contains(t, msg, "line 3, column 27", "where the JSON breaks")
		assert.False(t, strings.Contains(msg, "c2VjcmV0"), "the error quotes the file")
		assert.Equal(t, before, snap(t, path))
		onlyFile(t, path)
	}
}

// encoding/json's own message names the offending character, which may be
// a byte of a stored credential.
func TestConfigureNamesNoCharacterOfTheFile(t *testing.T) {
	path := writeConfig(t, "{\"auths\": {\"x\": {\"auth\": \"c2Vj\x01Q\"}}}", 0o600)
	_, err := Configure(path, []string{"cgr.dev"}, Options{DryRun: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "syntax error at line 1")
	assert.NotContains(t, err.Error(), "\\x01", "the character is not named")
	assert.NotContains(t, err.Error(), "invalid character")
}

func TestConfigureRefusesWhatDockerCannotRead(t *testing.T) {
	for name, content := range map[string]string{
		"array":              `[]`,
		"string":             `"x"`,
		"trailing data":      `{} {}`,
		"helpers not object": `{"credHelpers": ["cgr.dev"]}`,
		"entry not string":   `{"credHelpers": {"cgr.dev": 1}}`,
		"two helpers keys":   `{"credHelpers": {}, "CredHelpers": {}}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := writeConfig(t, content, 0o600)
			before := aged(t, path)
			_, err := Configure(path, []string{"cgr.dev"}, Options{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), path)
			assert.Equal(t, before, snap(t, path))
		})
	}
}

// Each layout is kept: the added entries look like their neighbours.
func TestConfigureLayouts(t *testing.T) {
	for name, c := range map[string]struct{ in, want string }{
		"no file":          {"", "{\n\t\"credHelpers\": {\n\t\t\"cgr.dev\": \"cgr\"\n\t}\n}\n"},
		"empty object":     {"{}", "{\n\t\"credHelpers\": {\n\t\t\"cgr.dev\": \"cgr\"\n\t}\n}"},
		"white space only": {" \n", "{\n\t\"credHelpers\": {\n\t\t\"cgr.dev\": \"cgr\"\n\t}\n}\n"},
		"compact":          {`{"auths":{},"n":1}`, `{"auths":{},"n":1,"credHelpers":{"cgr.dev":"cgr"}}`},
		"two spaces":       {"{\n  \"auths\": {}\n}\n", "{\n  \"auths\": {},\n  \"credHelpers\": {\n    \"cgr.dev\": \"cgr\"\n  }\n}\n"},
		"empty helpers":    {"{\n  \"credHelpers\": {},\n  \"n\": 1\n}", "{\n  \"credHelpers\": {\n    \"cgr.dev\": \"cgr\"\n  },\n  \"n\": 1\n}"},
		"null helpers":     {`{"credHelpers": null}`, `{"credHelpers": {"cgr.dev": "cgr"}}`},
		"spaced colon":     {"{\n\t\"credHelpers\" : {\n\t\t\"gcr.io\" : \"gcloud\"\n\t}\n}", "{\n\t\"credHelpers\" : {\n\t\t\"gcr.io\" : \"gcloud\",\n\t\t\"cgr.dev\" : \"cgr\"\n\t}\n}"},
		"other case":       {`{"credhelpers": {}}`, `{"credhelpers": {"cgr.dev": "cgr"}}`},
	} {
		t.Run(name, func(t *testing.T) {
			var doc []byte
			if name != "no file" {
				doc = []byte(c.in)
			}
			e, got, err := addHelpers(doc, []string{"cgr.dev"}, false)
			require.NoError(t, err)
			assert.Equal(t, c.want, string(got))
			assert.Equal(t, []string{"cgr.dev"}, e.Added)
		})
	}
}

func TestConfigureOtherHelper(t *testing.T) {
	const content = `{"credHelpers": {"cgr.dev": "other", "gcr.io": "gcloud"}}`
	path := writeConfig(t, content, 0o600)
	before := aged(t, path)

	_, err := Configure(path, []string{"cgr.dev"}, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cgr.dev to docker-credential-other")
	assert.Contains(t, err.Error(), "--force")
	assert.Equal(t, before, snap(t, path), "another helper's entry was overwritten without --force")

	e, err := Configure(path, []string{"cgr.dev"}, Options{Force: true})
	require.NoError(t, err)
	assert.Equal(t, []Replaced{{Registry: "cgr.dev", Helper: "other"}}, e.Replaced)
	require.Len(t, e.Warnings, 1)
	assert.Contains(t, e.Warnings[0], "sent cgr.dev to docker-credential-other")
	assert.Equal(t, `{"credHelpers": {"cgr.dev": "cgr", "gcr.io": "gcloud"}}`, snap(t, path).data)
}

func TestConfigureModes(t *testing.T) {
	t.Run("kept", func(t *testing.T) {
		path := writeConfig(t, "{}", 0o640)
		_, err := Configure(path, []string{"cgr.dev"}, Options{})
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o640), snap(t, path).mode)
	})
	t.Run("new file and folders", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", ".docker")
		path := filepath.Join(dir, "config.json")
		e, err := Configure(path, []string{"cgr.dev"}, Options{})
		require.NoError(t, err)
		assert.True(t, e.Created)
		assert.Equal(t, fs.FileMode(0o600), snap(t, path).mode)
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		assert.Equal(t, fs.ModeDir|0o700, fi.Mode())
		onlyFile(t, path)
	})
}

func TestConfigureDryRunWritesNothing(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), ".docker")
		path := filepath.Join(dir, "config.json")
		e, err := Configure(path, []string{"cgr.dev"}, Options{DryRun: true})
		require.NoError(t, err)
		assert.True(t, e.Created)
		assert.Nil(t, e.HelpersBefore)
		assert.JSONEq(t, `{"cgr.dev": "cgr"}`, string(e.HelpersAfter))
		_, err = os.Stat(dir)
		assert.ErrorIs(t, err, fs.ErrNotExist, "the folder was created")
	})
	t.Run("existing", func(t *testing.T) {
		path := writeConfig(t, lived, 0o600)
		before := aged(t, path)
		e, err := Configure(path, []string{"cgr.dev"}, Options{DryRun: true})
		require.NoError(t, err)
		assert.Equal(t, []string{"cgr.dev"}, e.Added)
		assert.JSONEq(t, `{"gcr.io": "gcloud", "us-docker.pkg.dev": "gcloud"}`, string(e.HelpersBefore))
		assert.JSONEq(t, `{"gcr.io": "gcloud", "us-docker.pkg.dev": "gcloud", "cgr.dev": "cgr"}`, string(e.HelpersAfter))
		assert.Equal(t, before, snap(t, path))
		onlyFile(t, path)
	})
}

func TestConfigureUnwritableFolder(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes in any folder")
	}
	path := writeConfig(t, lived, 0o600)
	dir := filepath.Dir(path)
	before := aged(t, path)
	require.NoError(t, os.Chmod(dir, 0o500))
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })

	_, err := Configure(path, []string{"cgr.dev"}, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot write in the folder")
	assert.Contains(t, err.Error(), "permission denied")
	assert.Contains(t, err.Error(), "was not changed")
	assert.Equal(t, before, snap(t, path))
	onlyFile(t, path)
}

func TestConfigureRefusesWorldWritableFolder(t *testing.T) {
	path := writeConfig(t, "{}", 0o600)
	before := aged(t, path)
	require.NoError(t, os.Chmod(filepath.Dir(path), 0o777))
	_, err := Configure(path, []string{"cgr.dev"}, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "writable by every user")
	assert.Equal(t, before, snap(t, path))
}

func TestConfigureRefusesBadRegistries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	for _, regs := range [][]string{nil, {"*.cgr.dev"}, {"https://cgr.dev"}, {"CGR.dev"}, {"cgr.dev,ghcr.io"}} {
		_, err := Configure(path, regs, Options{})
		assert.Error(t, err, "%q", regs)
	}
	_, err := os.Stat(path)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	home := t.TempDir()

	p, err := Path(env(map[string]string{"HOME": home}))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(home, ".docker", "config.json"), p)

	dc := t.TempDir()
	p, err = Path(env(map[string]string{"HOME": home, "DOCKER_CONFIG": dc}))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dc, "config.json"), p)

	file := filepath.Join(dc, "config.json")
	require.NoError(t, os.WriteFile(file, []byte("{}"), 0o600))
	_, err = Path(env(map[string]string{"HOME": home, "DOCKER_CONFIG": file}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DOCKER_CONFIG is")
	assert.Contains(t, err.Error(), "not a folder")

	_, err = Path(env(nil))
	assert.Error(t, err)
}

func TestConfigureRefusesAnotherUsersFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give a file to another user")
	}
	path := writeConfig(t, "{}", 0o600)
	require.NoError(t, os.Chown(path, 65534, 65534))
	before := aged(t, path)
	_, err := Configure(path, []string{"cgr.dev"}, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "belongs to user id 65534")
	assert.Contains(t, err.Error(), "run configure-docker as that user")
	assert.Equal(t, before, snap(t, path))
}
