package creds

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	cfg, err := LoadConfig(envFrom(map[string]string{"HOME": home}))
	require.NoError(t, err)
	assert.Equal(t, exchange.DefaultIssuer, cfg.Issuer)
	assert.Equal(t, "cgr.dev", cfg.Audience)
	assert.Equal(t, []string{"cgr.dev", "*.cgr.dev"}, cfg.Registries)
	assert.Equal(t, DefaultTokenPath, cfg.tokenPath)
	assert.Empty(t, cfg.Identity)
	assert.False(t, cfg.NoCache)
	assert.Equal(t, DefaultTimeout, cfg.Timeout)
}

func TestLoadConfigPrecedence(t *testing.T) {
	t.Parallel()
	xdg := t.TempDir()
	dir := filepath.Join(xdg, "docker-credential-cgr")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{
		"identity": "from-file", "issuer": "https://file.example", "audience": "file-aud",
		"registries": ["file.example:5000"], "identity_token": "/file/token", "no_cache": true}`), 0o600))

	env := map[string]string{"XDG_CONFIG_HOME": xdg}
	cfg, err := LoadConfig(envFrom(env))
	require.NoError(t, err)
	assert.Equal(t, "from-file", cfg.Identity, "file over default")
	assert.Equal(t, "https://file.example", cfg.Issuer)
	assert.Equal(t, "file-aud", cfg.Audience)
	assert.Equal(t, []string{"file.example:5000"}, cfg.Registries)
	assert.Equal(t, "/file/token", cfg.IdentityToken)
	assert.True(t, cfg.NoCache)

	env["CHAINGUARD_IDENTITY"] = "from-env"
	env["CHAINGUARD_ISSUER"] = "http://127.0.0.1:1"
	env["CHAINGUARD_REGISTRY"] = "a.example,*.b.example"
	env["CHAINGUARD_CACHE_DIR"] = "/tmp/x"
	env["CHAINGUARD_DEBUG"] = "true"
	cfg, err = LoadConfig(envFrom(env))
	require.NoError(t, err)
	assert.Equal(t, "from-env", cfg.Identity, "env over file")
	assert.Equal(t, "http://127.0.0.1:1", cfg.Issuer)
	assert.Equal(t, []string{"a.example", "*.b.example"}, cfg.Registries)
	assert.Equal(t, "/tmp/x", cfg.CacheDir)
	assert.True(t, cfg.Debug)
	assert.Equal(t, "file-aud", cfg.Audience, "file value kept where env is silent")
}

func TestLoadConfigBadInput(t *testing.T) {
	t.Parallel()
	xdg := t.TempDir()
	dir := filepath.Join(xdg, "docker-credential-cgr")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	path := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"identity": `), 0o600))
	_, err := LoadConfig(envFrom(map[string]string{"XDG_CONFIG_HOME": xdg}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), path, "names the file")
	assert.Contains(t, err.Error(), "not valid JSON")

	_, err = LoadConfig(envFrom(map[string]string{"HOME": t.TempDir(), "CHAINGUARD_NO_CACHE": "yes please"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "CHAINGUARD_NO_CACHE")

	_, err = LoadConfig(envFrom(map[string]string{"HOME": t.TempDir(), "CHAINGUARD_REGISTRY": " , "}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "CHAINGUARD_REGISTRY")
}

// writeConfigFile writes the helper's config file under xdg with mode perm.
func writeConfigFile(t *testing.T, xdg, body string, perm os.FileMode) string {
	t.Helper()
	dir := filepath.Join(xdg, "docker-credential-cgr")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	path := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(path, []byte(body), perm))
	require.NoError(t, os.Chmod(path, perm))
	return path
}

// A misspelt key used to be dropped, so the exchange went out without the
// intended identity. Now it is refused, named, and the keys are listed.
func TestLoadConfigUnknownKeys(t *testing.T) {
	t.Parallel()
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	allKeys := "identity, identity_token, issuer, audience, registries, cache_dir, no_cache"
	for _, tc := range []struct {
		name, body string
		want       []string
		wantNot    []string
	}{
		{"misspelt", `{"idenity": "720909c9f5279097d847ad02a2f24ba8f59de36a/0123456789abcdef"}`,
			[]string{`has an unknown key "idenity" (did you mean "identity"?)`, "its keys are " + allKeys + ": fix or remove it"},
			[]string{"720909c9f5279097d847ad02a2f24ba8f59de36a", "0123456789abcdef"}},
		{"camel case", `{"identityToken": "/var/run/token"}`,
			[]string{`"identityToken" (did you mean "identity_token"?)`}, []string{"/var/run/token"}},
		{"variable name", `{"CHAINGUARD_ISSUER": "https://issuer.example.com"}`,
			[]string{`"CHAINGUARD_ISSUER" (did you mean "issuer"?)`}, []string{"issuer.example.com"}},
		{"singular", `{"registry": "cgr.dev"}`, []string{`"registry" (did you mean "registries"?)`}, nil},
		{"debug", `{"debug": true}`, []string{`"debug" (debug output is set by CHAINGUARD_DEBUG only)`}, nil},
		{"nothing close", `{"colour": "blue", "identity": "x"}`, []string{`has an unknown key "colour";`}, []string{"did you mean", "blue"}},
		{"several, sorted", `{"zz": 1, "aa": 2, "mm": {"identity": "x"}}`, []string{`has unknown keys "aa", "mm", "zz";`}, nil},
		{"many, capped", `{"k1":1,"k2":1,"k3":1,"k4":1,"k5":1,"k6":1,"k7":1}`, []string{`"k1", "k2", "k3", "k4", "k5", and 2 more;`}, []string{"k6", "k7"}},
		{"a token as a key", `{"` + jwt + `": "x"}`, []string{"has an unknown key (key not shown: "}, []string{"eyJ", "c2lnbmF0dXJl"}},
		{"the identity_token's value as a key", `{"identity_token": "/run/secret-token-file", "/run/secret-token-file": 1}`, []string{"has an unknown key (key not shown: "}, []string{"secret-token-file"}},
		{"a part of the identity_token as a key", `{"identity_token": "aaaa.bbbbbbbbbbbbbbbbbbbb.cccc", "xbbbbbbbbbbbbbbbbbbbbx": 1}`, []string{"has an unknown key (key not shown: "}, []string{"bbbbbbbbbbbbbbbb"}},
		{"a short identity_token is ordinary text", `{"identity_token": "/t", "/tmp": 1}`, []string{`has an unknown key "/tmp";`}, nil},
		{"a long key", `{"` + strings.Repeat("x-", 100) + `": 1}`, []string{`has an unknown key "x-x-`, `"… (200 bytes);`}, []string{strings.Repeat("x-", 40)}},
		{"a control character", `{"a\nb": 1}`, []string{`"a\nb"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			xdg := t.TempDir()
			path := writeConfigFile(t, xdg, tc.body, 0o600)
			_, err := LoadConfig(envFrom(map[string]string{"XDG_CONFIG_HOME": xdg}))
			require.Error(t, err)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "the config file "+strconv.Quote(path)+" has "), msg)
			assert.NotContains(t, msg, "\n")
			for _, w := range tc.want {
				assert.Contains(t, msg, w)
			}
			for _, w := range tc.wantNot {
				assert.NotContains(t, msg, w)
			}
		})
	}
}

// Every known key passes, in any case, as encoding/json matches keys; so do
// an empty object and null. The environment does not excuse an unknown key:
// the file is wrong whatever overrides it.
func TestLoadConfigKnownKeys(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"identity":"a","identity_token":"/t","issuer":"https://i.example","audience":"a","registries":["cgr.dev"],"cache_dir":"/c","no_cache":true}`,
		`{"Identity": "a", "ISSUER": "https://i.example", "Cache_Dir": "/c"}`,
		`{}`, `null`, ` {"identity": "a"} `,
	} {
		xdg := t.TempDir()
		writeConfigFile(t, xdg, body, 0o600)
		_, err := LoadConfig(envFrom(map[string]string{"XDG_CONFIG_HOME": xdg}))
		assert.NoError(t, err, body)
	}
	xdg := t.TempDir()
	writeConfigFile(t, xdg, `{"idenity": "a"}`, 0o600)
	_, err := LoadConfig(envFrom(map[string]string{"XDG_CONFIG_HOME": xdg, "CHAINGUARD_IDENTITY": "a"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"idenity"`)
}

// The other errors keep their messages, and come before the key check.
func TestLoadConfigOtherErrorsFirst(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"idenity": "a", "no_cache": "yes"}`: `field "no_cache" must be a bool, not a JSON string`,
		`{"idenity": "a",`:                    "syntax error at byte",
		`["identity"]`:                        "must be a creds.fileConfig, not a JSON array",
	} {
		xdg := t.TempDir()
		writeConfigFile(t, xdg, body, 0o600)
		_, err := LoadConfig(envFrom(map[string]string{"XDG_CONFIG_HOME": xdg}))
		require.Error(t, err, body)
		assert.Contains(t, err.Error(), "is not valid JSON", body)
		assert.Contains(t, err.Error(), want, body)
		assert.True(t, strings.HasSuffix(err.Error(), "; fix or remove it"), "configure-docker refuses a malformed file, so it is not offered: %s", err)
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"identity", "identity", 0},
		{"idenity", "identity", 1}, {"identitytoken", "identity_token", 1},
		{"registry", "registries", 3}, {"kitten", "sitting", 3},
	} {
		assert.Equal(t, tc.want, editDistance(tc.a, tc.b), "%q %q", tc.a, tc.b)
		assert.Equal(t, tc.want, editDistance(tc.b, tc.a), "%q %q", tc.b, tc.a)
	}
}
