package creds

import (
	"os"
	"path/filepath"
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
