package kubelet

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

// The golden files are what an admin gets with the defaults; test/kubelet
// decodes them strictly with the kubelet's own config types.
func TestConfigureGolden(t *testing.T) {
	cfg, err := creds.LoadConfig(func(k string) string {
		return map[string]string{"HOME": t.TempDir(), "CHAINGUARD_IDENTITY": "<identity id>"}[k]
	})
	require.NoError(t, err)
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		golden string
		args   []string
		stderr bool
	}{
		{"config-node.yaml", nil, false},
		{"config-node.yaml", []string{"--mode", "node"}, false},
		{"config-service-account.yaml", []string{"--mode=service-account"}, true},
		{"rbac.yaml", []string{"--rbac"}, false},
	} {
		var out, errb bytes.Buffer
		require.Equal(t, 0, RunConfigure(tc.args, cfg, noEnv, &out, &errb), errb.String())
		want, err := os.ReadFile(filepath.Join("testdata", tc.golden))
		require.NoError(t, err)
		assert.Equal(t, string(want), out.String(), "%v", tc.args)
		if tc.stderr {
			rbac, _ := os.ReadFile(filepath.Join("testdata", "rbac.yaml"))
			assert.Contains(t, errb.String(), string(rbac), "service-account mode shows the RBAC it needs")
		} else {
			assert.Empty(t, errb.String())
		}
	}
}

func TestConfigureCarriesSettings(t *testing.T) {
	cfg, err := creds.LoadConfig(func(k string) string {
		return map[string]string{
			"HOME":                "/nonexistent",
			"CHAINGUARD_REGISTRY": "registry.example.com:5000,*.example.org",
			"CHAINGUARD_ISSUER":   "https://sts.example.com",
		}[k]
	})
	require.NoError(t, err)
	var out bytes.Buffer
	env := func(k string) string { return map[string]string{"CHAINGUARD_CACHE_DIR": "/srv/cache"}[k] }
	require.Equal(t, 0, RunConfigure(nil, cfg, env, &out, &bytes.Buffer{}))
	for _, want := range []string{
		"  matchImages:\n  - \"registry.example.com:5000\"\n  - \"*.example.org\"\n",
		"  - name: CHAINGUARD_ISSUER\n    value: \"https://sts.example.com\"\n",
		"  - name: CHAINGUARD_REGISTRY\n    value: \"registry.example.com:5000,*.example.org\"\n",
		"  - name: CHAINGUARD_CACHE_DIR\n    value: \"/srv/cache\"\n",
	} {
		assert.Contains(t, out.String(), want)
	}
	assert.NotContains(t, out.String(), "CHAINGUARD_IDENTITY", "unset settings are not written")
}

func TestConfigureBadArgs(t *testing.T) {
	cfg, err := creds.LoadConfig(func(string) string { return "" })
	require.NoError(t, err)
	for _, args := range [][]string{{"--mode", "pod"}, {"--bogus"}, {"extra"}} {
		var out, errb bytes.Buffer
		assert.NotEqual(t, 0, RunConfigure(args, cfg, func(string) string { return "" }, &out, &errb), "%v", args)
		assert.Empty(t, out.String(), "nothing half-written on stdout")
		assert.NotEmpty(t, errb.String(), "the reason is on stderr")
	}
}

func TestConfigureRefusesATokenAndAbsolutisesPaths(t *testing.T) {
	cfg, err := creds.LoadConfig(func(string) string { return "" })
	require.NoError(t, err)
	cfg.IdentityToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	var out, errb bytes.Buffer
	assert.Equal(t, 1, RunConfigure(nil, cfg, func(string) string { return "" }, &out, &errb))
	assert.Empty(t, out.String(), "no config carrying a secret")
	assert.Contains(t, errb.String(), "path of the token file")
	assert.NotContains(t, errb.String(), cfg.IdentityToken)

	cfg.IdentityToken = "tokens/node-token"
	out.Reset()
	env := func(k string) string { return map[string]string{"CHAINGUARD_CACHE_DIR": "cache"}[k] }
	require.Equal(t, 0, RunConfigure(nil, cfg, env, &out, &errb))
	wd, err := os.Getwd()
	require.NoError(t, err)
	assert.Contains(t, out.String(), quote(filepath.Join(wd, "tokens/node-token")), "the kubelet runs the plugin from its own folder")
	assert.Contains(t, out.String(), quote(filepath.Join(wd, "cache")))
}
