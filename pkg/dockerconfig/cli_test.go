//go:build unix

package dockerconfig

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

// A JWT-shaped fake: never a real token.
const fakeJWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtc3ViamVjdCJ9.c2lnbmF0dXJlLWJ5dGVz"

// testEnv is a user's environment: a home folder, and a PATH whose
// docker-credential-cgr is this (test) binary.
func testEnv(t *testing.T) map[string]string {
	t.Helper()
	bin := t.TempDir()
	self, err := os.Executable()
	require.NoError(t, err)
	require.NoError(t, os.Symlink(self, filepath.Join(bin, binaryName)))
	return map[string]string{"HOME": t.TempDir(), "PATH": bin}
}

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// run runs configure-docker and returns its exit status, stdout and stderr.
func run(env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(args, getenv(env), &out, &errb)
	return code, out.String(), errb.String()
}

func dockerPath(env map[string]string) string {
	return filepath.Join(env["HOME"], ".docker", "config.json")
}

func settingsPath(env map[string]string) string {
	return creds.ConfigPath(getenv(env))
}

func helpersOf(t *testing.T, path string) map[string]string {
	t.Helper()
	var c struct {
		CredHelpers map[string]string `json:"credHelpers"`
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &c))
	return c.CredHelpers
}

func assertMissing(t *testing.T, path string) {
	t.Helper()
	_, err := os.Lstat(path)
	assert.ErrorIs(t, err, fs.ErrNotExist, "%s was written", path)
}

func TestRunConfiguresDocker(t *testing.T) {
	env := testEnv(t)
	code, out, errb := run(env)
	require.Equal(t, 0, code, errb)
	assert.Empty(t, errb, "no warning for a plain setup")
	path := dockerPath(env)
	assert.Contains(t, out, path)
	assert.Contains(t, out, "(a new file): credHelpers now sends cgr.dev to docker-credential-cgr")
	// The default wildcard *.cgr.dev cannot be a credHelpers key.
	assert.Equal(t, map[string]string{"cgr.dev": "cgr"}, helpersOf(t, path))
	assertMissing(t, settingsPath(env))

	before := aged(t, path)
	code, out, errb = run(env)
	require.Equal(t, 0, code, errb)
	assert.Contains(t, out, "already sends cgr.dev to docker-credential-cgr; nothing to change")
	assert.Equal(t, before, snap(t, path))
}

func TestRunWarnsAboutShadows(t *testing.T) {
	env := testEnv(t)
	env["DOCKER_CONFIG"] = t.TempDir()
	path := filepath.Join(env["DOCKER_CONFIG"], "config.json")
	require.NoError(t, os.WriteFile(path, []byte(lived), 0o600))

	code, _, errb := run(env)
	require.Equal(t, 0, code, errb)
	assert.Contains(t, errb, `configure-docker: warning: credsStore is "desktop"`)
	assert.Contains(t, errb, `configure-docker: warning: auths has an entry "https://cgr.dev" for cgr.dev`)
	assertMissing(t, dockerPath(env)) // DOCKER_CONFIG, not HOME, was used
}

func TestRunServesConfiguredRegistries(t *testing.T) {
	env := testEnv(t)
	env["CHAINGUARD_REGISTRY"] = "cgr.dev,registry.example.com:5000,*.corp.example"
	code, _, errb := run(env)
	require.Equal(t, 0, code, errb)
	assert.Equal(t, map[string]string{"cgr.dev": "cgr", "registry.example.com:5000": "cgr"}, helpersOf(t, dockerPath(env)))
	assert.Contains(t, errb, "the helper serves *.corp.example, but docker matches credHelpers by exact host")
}

func TestRunOnlyWildcards(t *testing.T) {
	env := testEnv(t)
	env["CHAINGUARD_REGISTRY"] = "*.corp.example"
	code, _, errb := run(env)
	assert.Equal(t, 1, code)
	assert.Contains(t, errb, "the helper serves only wildcards (*.corp.example)")
	assertMissing(t, dockerPath(env))

	code, _, errb = run(env, "--registry", "a.corp.example")
	require.Equal(t, 0, code, errb)
	assert.Equal(t, map[string]string{"a.corp.example": "cgr"}, helpersOf(t, dockerPath(env)))
	assert.NotContains(t, errb, "warning", "a.corp.example is served: nothing to note")
	assertMissing(t, settingsPath(env))
}

func TestRunRegistryExtras(t *testing.T) {
	env := testEnv(t)
	code, out, errb := run(env, "--registry", "registry.example.com", "--registry", "eu.cgr.dev,registry.example.com")
	require.Equal(t, 0, code, errb)
	assert.Equal(t, map[string]string{"cgr.dev": "cgr", "registry.example.com": "cgr", "eu.cgr.dev": "cgr"}, helpersOf(t, dockerPath(env)))
	// The helper did not serve registry.example.com: it does now.
	assert.Contains(t, out, `registries: not set (so cgr.dev,*.cgr.dev) -> ["cgr.dev", "*.cgr.dev", "registry.example.com"]`)
	cfg, err := creds.LoadConfig(getenv(env))
	require.NoError(t, err)
	assert.Equal(t, []string{"cgr.dev", "*.cgr.dev", "registry.example.com"}, cfg.Registries)

	// With CHAINGUARD_REGISTRY set, the file's list does not count.
	env["CHAINGUARD_REGISTRY"] = "cgr.dev"
	code, _, errb = run(env, "--registry", "other.example.com")
	require.Equal(t, 0, code, errb)
	assert.Contains(t, errb, "CHAINGUARD_REGISTRY is set and wins over the config file's registries")

	code, _, errb = run(env, "--registry", "*.example.com")
	assert.Equal(t, 2, code)
	assert.Contains(t, errb, "is a wildcard")
}

func TestRunSavesSettings(t *testing.T) {
	env := testEnv(t)
	env["XDG_CONFIG_HOME"] = t.TempDir()
	sp := settingsPath(env)
	require.NoError(t, os.MkdirAll(filepath.Dir(sp), 0o700))
	const existing = "{\n  \"audience\": \"cgr.dev\",\n  \"identity\": \"old/id\"\n}\n"
	require.NoError(t, os.WriteFile(sp, []byte(existing), 0o600))
	tokenFile := filepath.Join(t.TempDir(), "oidc-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(fakeJWT), 0o600))

	code, out, errb := run(env, "--identity", "new/id", "--identity-token", tokenFile, "--issuer", "https://issuer.example.com/")
	require.Equal(t, 0, code, errb)
	assert.Contains(t, out, `identity: "old/id" -> "new/id"`)
	assert.Contains(t, out, `issuer: not set -> "https://issuer.example.com"`)
	want := "{\n  \"audience\": \"cgr.dev\",\n  \"identity\": \"new/id\",\n  \"identity_token\": " + string(marshal(tokenFile)) + ",\n  \"issuer\": \"https://issuer.example.com\"\n}\n"
	got := snap(t, sp)
	assert.Equal(t, want, got.data)
	assert.Equal(t, fs.FileMode(0o600), got.mode)

	// The helper reads what was saved.
	cfg, err := creds.LoadConfig(getenv(env))
	require.NoError(t, err)
	assert.Equal(t, "new/id", cfg.Identity)
	assert.Equal(t, tokenFile, cfg.IdentityToken)
	assert.Equal(t, "https://issuer.example.com", cfg.Issuer)

	before := aged(t, sp)
	code, out, errb = run(env, "--identity", "new/id")
	require.Equal(t, 0, code, errb)
	assert.Contains(t, out, "already holds these settings; nothing to change")
	assert.Equal(t, before, snap(t, sp))
}

func TestRunMakesTokenPathAbsolute(t *testing.T) {
	env := testEnv(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tok"), []byte(fakeJWT), 0o600))
	t.Chdir(dir)
	code, _, errb := run(env, "--identity-token", "tok")
	require.Equal(t, 0, code, errb)
	cfg, err := creds.LoadConfig(getenv(env))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "tok"), cfg.IdentityToken)
}

func TestRunRefusesLiteralToken(t *testing.T) {
	for _, args := range [][]string{
		{"--identity-token", fakeJWT},
		{"--identity-token=" + fakeJWT},
		{"--identity-token", " " + fakeJWT + "\n"},
		{"--identity-token", "Bearer " + fakeJWT},
		{"--identity-token", "/no/such/" + fakeJWT},
	} {
		env := testEnv(t)
		code, out, errb := run(env, args...)
		assert.Equal(t, 2, code)
		assert.Contains(t, errb, "--identity-token")
		assert.Contains(t, errb, "value not shown")
		for _, part := range strings.Split(fakeJWT, ".") {
			assert.False(t, strings.Contains(out+errb, part), "the output holds part of the token")
		}
		assertMissing(t, dockerPath(env))
		assertMissing(t, settingsPath(env))
	}
}

// Both files are checked before either is written.
func TestRunWritesNothingWhenOneFileIsBad(t *testing.T) {
	t.Run("docker config malformed", func(t *testing.T) {
		env := testEnv(t)
		path := dockerPath(env)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		require.NoError(t, os.WriteFile(path, []byte(`{"credHelpers": {`), 0o600))
		before := aged(t, path)
		code, _, errb := run(env, "--identity", "some/id")
		assert.Equal(t, 1, code)
		assert.Contains(t, errb, "is not valid JSON")
		assert.Equal(t, before, snap(t, path))
		assertMissing(t, settingsPath(env))
	})
	t.Run("another helper", func(t *testing.T) {
		env := testEnv(t)
		path := dockerPath(env)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		require.NoError(t, os.WriteFile(path, []byte(`{"credHelpers": {"cgr.dev": "other"}}`), 0o600))
		before := aged(t, path)
		code, _, errb := run(env, "--identity", "some/id")
		assert.Equal(t, 1, code)
		assert.Contains(t, errb, "--force")
		assert.Equal(t, before, snap(t, path))
		assertMissing(t, settingsPath(env))

		code, _, errb = run(env, "--identity", "some/id", "--force")
		require.Equal(t, 0, code, errb)
		assert.Contains(t, errb, "warning: credHelpers sent cgr.dev to docker-credential-other")
		assert.Equal(t, map[string]string{"cgr.dev": "cgr"}, helpersOf(t, path))
	})
	t.Run("helper config malformed", func(t *testing.T) {
		env := testEnv(t)
		sp := settingsPath(env)
		require.NoError(t, os.MkdirAll(filepath.Dir(sp), 0o700))
		require.NoError(t, os.WriteFile(sp, []byte(`{"identity": }`), 0o600))
		before := aged(t, sp)
		code, _, errb := run(env, "--identity", "some/id")
		assert.Equal(t, 1, code)
		assert.Contains(t, errb, sp)
		assert.Equal(t, before, snap(t, sp))
		assertMissing(t, dockerPath(env))
	})
	t.Run("DOCKER_CONFIG is a file", func(t *testing.T) {
		env := testEnv(t)
		file := filepath.Join(t.TempDir(), "config.json")
		require.NoError(t, os.WriteFile(file, []byte("{}"), 0o600))
		before := aged(t, file)
		env["DOCKER_CONFIG"] = file
		code, _, errb := run(env, "--identity", "some/id")
		assert.Equal(t, 1, code)
		assert.Contains(t, errb, "DOCKER_CONFIG is")
		assert.Contains(t, errb, "not a folder")
		assert.Equal(t, before, snap(t, file))
		assertMissing(t, settingsPath(env))
	})
}

func TestRunDryRun(t *testing.T) {
	env := testEnv(t)
	code, out, errb := run(env, "--dry-run", "--identity", "some/id", "--registry", "registry.example.com")
	require.Equal(t, 0, code, errb)
	assert.Contains(t, out, "dry run, nothing was written")
	assert.Contains(t, out, "credHelpers would send cgr.dev, registry.example.com to docker-credential-cgr")
	assert.Contains(t, out, "credHelpers before: none")
	assert.Contains(t, out, "credHelpers after: {\n    \"cgr.dev\": \"cgr\",\n    \"registry.example.com\": \"cgr\"\n  }")
	assert.Contains(t, out, `identity: not set -> "some/id"`)
	assert.Contains(t, out, "would save")
	assertMissing(t, filepath.Dir(dockerPath(env)))
	assertMissing(t, filepath.Dir(settingsPath(env)))
}

func TestRunHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		code, out, errb := run(testEnv(t), arg)
		assert.Equal(t, 0, code)
		assert.Empty(t, errb, "help goes to stdout")
		assert.Contains(t, out, "usage: docker-credential-cgr configure-docker [flags]")
		// The flag's own line from PrintDefaults: the prose above it names
		// most flags too.
		for _, f := range []string{"-registry", "-dry-run", "-force", "-identity", "-identity-token", "-issuer"} {
			assert.Regexp(t, "(?m)^  "+regexp.QuoteMeta(f)+"( |$)", out)
		}
	}
}

func TestRunBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--nope"},
		{"extra"},
		{"--identity", ""},
		{"--identity-token", ""},
		{"--issuer", "ftp://issuer.example.com"},
		{"--issuer", ""},
		{"--registry", "https://cgr.dev/x"},
		{"--identity", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"},
		{"--identity", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"},
		{"--identity", "ghp_0123456789abcdefghijABCDEFGHIJ012345"},
	} {
		env := testEnv(t)
		code, out, errb := run(env, args...)
		assert.Equal(t, 2, code, "%q", args)
		assert.Empty(t, out)
		assert.True(t, strings.HasPrefix(errb, "configure-docker: "), errb)
		assert.NotContains(t, errb, "eyJzdWIi", "no token in the error")
		assertMissing(t, dockerPath(env))
	}
}

func TestRunPathWarnings(t *testing.T) {
	program := func(t *testing.T, dir, name string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
		return p
	}
	t.Run("none on PATH", func(t *testing.T) {
		env := testEnv(t)
		env["PATH"] = t.TempDir()
		code, _, errb := run(env)
		require.Equal(t, 0, code, errb)
		assert.Contains(t, errb, "warning: no docker-credential-cgr on PATH")
	})
	t.Run("chainctl's link first", func(t *testing.T) {
		env := testEnv(t)
		bin := t.TempDir()
		chainctl := program(t, bin, "chainctl")
		require.NoError(t, os.Symlink(chainctl, filepath.Join(bin, binaryName)))
		env["PATH"] = bin + string(os.PathListSeparator) + env["PATH"]
		code, _, errb := run(env)
		require.Equal(t, 0, code, errb)
		assert.Contains(t, errb, "is chainctl's link (to "+quote(chainctl)+"), not this binary")
		assert.Contains(t, errb, "docker will run chainctl")
	})
	t.Run("another program first", func(t *testing.T) {
		env := testEnv(t)
		bin := t.TempDir()
		other := program(t, bin, binaryName)
		env["PATH"] = bin + string(os.PathListSeparator) + env["PATH"]
		code, _, errb := run(env)
		require.Equal(t, 0, code, errb)
		assert.Contains(t, errb, "first on PATH, "+quote(other)+", is not this binary")
	})
	t.Run("relative folders do not count", func(t *testing.T) {
		env := testEnv(t)
		dir := t.TempDir()
		program(t, dir, binaryName)
		t.Chdir(dir)
		env["PATH"] = "." + string(os.PathListSeparator) + env["PATH"]
		code, _, errb := run(env)
		require.Equal(t, 0, code, errb)
		assert.Empty(t, errb)
	})
}

// A token pasted by hand under any key of the helper's config file is
// described, not shown, when configure-docker prints what it changes.
func TestRunNeverShowsATokenItReplaces(t *testing.T) {
	env := testEnv(t)
	env["XDG_CONFIG_HOME"] = t.TempDir()
	sp := settingsPath(env)
	require.NoError(t, os.MkdirAll(filepath.Dir(sp), 0o700))
	require.NoError(t, os.WriteFile(sp, []byte(`{"identity": "`+fakeJWT+`"}`), 0o600))

	code, out, errb := run(env, "--identity", "new/id")
	require.Equal(t, 0, code, errb)
	assert.Contains(t, out, `identity: (value not shown: `)
	assert.Contains(t, out, `-> "new/id"`)
	for _, part := range strings.Split(fakeJWT, ".") {
		assert.NotContains(t, out+errb, part)
	}
}

// Secrets that are not JWTs: a password in the issuer's user info and an
// opaque token pasted as the identity.
func TestRunShowsNoSecretOfTheConfigFile(t *testing.T) {
	env := testEnv(t)
	env["XDG_CONFIG_HOME"] = t.TempDir()
	sp := settingsPath(env)
	require.NoError(t, os.MkdirAll(filepath.Dir(sp), 0o700))
	const password, opaque = "hunter2secret", "ghp_0123456789abcdefghijABCDEFGHIJ012345"
	require.NoError(t, os.WriteFile(sp, []byte(`{"issuer": "https://bob:`+password+`@sts.example.com", "identity": "`+opaque+`"}`), 0o600))

	code, out, errb := run(env, "--dry-run", "--issuer", "https://issuer.enforce.dev", "--identity", "abc/def")
	require.Equal(t, 0, code, errb)
	assert.Contains(t, out, `issuer: "https://sts.example.com" (user info not shown) -> "https://issuer.enforce.dev"`)
	assert.Contains(t, out, `identity: (value not shown: `)
	assert.NotContains(t, out+errb, password)
	assert.NotContains(t, out+errb, opaque)
}
