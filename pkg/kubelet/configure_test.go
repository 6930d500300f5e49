package kubelet

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden configs in testdata from configure-kubelet's output")

// envOf makes a getenv from a map.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// goldenName is the golden config for one mode and kubelet release.
func goldenName(m Mode, v Version) string {
	return fmt.Sprintf("config-%s-%s.yaml", m, v)
}

// configure runs configure-kubelet and returns its exit status, stdout and
// stderr.
func configure(args []string, env map[string]string) (int, string, string) {
	var out, errb bytes.Buffer
	code := RunConfigure(args, envOf(env), &out, &errb)
	return code, out.String(), errb.String()
}

// The golden files are what an admin gets with the defaults and an
// identity, for every supported release and both modes. The modules in
// test/kubelet-config decode each strictly with that release's own
// kubelet types; test/kubelet registers them with the kubelet's code.
func TestConfigureGolden(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CHAINGUARD_IDENTITY": "<identity id>"}
	for _, v := range Versions() {
		for _, m := range []Mode{NodeMode, ServiceAccountMode} {
			name := goldenName(m, v)
			t.Run(name, func(t *testing.T) {
				code, out, errb := configure([]string{"--mode", string(m), "--kubelet-version", v.String()}, env)
				require.Equal(t, 0, code, errb)
				path := filepath.Join("testdata", name)
				if *update {
					require.NoError(t, os.WriteFile(path, []byte(out), 0o600))
				}
				want, err := os.ReadFile(path)
				require.NoError(t, err)
				assert.Equal(t, string(want), out)
				if m == ServiceAccountMode {
					rbac, err := os.ReadFile(filepath.Join("testdata", "rbac.yaml"))
					require.NoError(t, err)
					assert.Contains(t, errb, string(rbac), "service-account mode shows the RBAC it needs")
				} else {
					assert.Empty(t, errb)
				}
			})
		}
	}
	t.Run("defaults", func(t *testing.T) {
		for _, tc := range []struct {
			args   []string
			golden string
		}{
			{nil, goldenName(NodeMode, NewestVersion)},
			{[]string{"--mode=service-account"}, goldenName(ServiceAccountMode, NewestVersion)},
			{[]string{"--kubelet-version", "v1.33.4", "--mode", "service-account"}, goldenName(ServiceAccountMode, OldestVersion)},
		} {
			code, out, errb := configure(tc.args, env)
			require.Equal(t, 0, code, errb)
			want, err := os.ReadFile(filepath.Join("testdata", tc.golden))
			require.NoError(t, err)
			if !strings.Contains(strings.Join(tc.args, " "), "--kubelet-version") {
				// The one line that differs: where the release came from.
				want = bytes.Replace(want,
					[]byte("#   kubelet release: from --kubelet-version\n"),
					[]byte("#   kubelet release: not set: the newest, 1.37; give --kubelet-version for older nodes\n"), 1)
			}
			assert.Equal(t, string(want), out, "%v", tc.args)
		}
	})
	t.Run("rbac.yaml", func(t *testing.T) {
		code, out, errb := configure([]string{"--rbac"}, env)
		require.Equal(t, 0, code, errb)
		want, err := os.ReadFile(filepath.Join("testdata", "rbac.yaml"))
		require.NoError(t, err)
		assert.Equal(t, string(want), out)
		assert.Empty(t, errb)
	})
}

// TestConfigurePerVersion pins what each release gets: tokenAttributes in
// service-account mode only; cacheType from 1.34, where it is required and
// 1.33's strict decoder would refuse it; the feature gate named for 1.33.
func TestConfigurePerVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version   string
		mode      Mode
		cacheType bool
		gate      bool
	}{
		{"1.33", NodeMode, false, false},
		{"1.33", ServiceAccountMode, false, true},
		{"1.34", NodeMode, false, false},
		{"1.34", ServiceAccountMode, true, false},
		{"1.35", NodeMode, false, false},
		{"1.35", ServiceAccountMode, true, false},
		{"1.36", NodeMode, false, false},
		{"1.36", ServiceAccountMode, true, false},
		{"1.37", NodeMode, false, false},
		{"1.37", ServiceAccountMode, true, false},
	} {
		t.Run(tc.version+"/"+string(tc.mode), func(t *testing.T) {
			code, out, errb := configure([]string{"--kubelet-version", tc.version, "--mode", string(tc.mode)}, nil)
			require.Equal(t, 0, code, errb)
			assert.Contains(t, out, "kubelet "+tc.version+".\n")
			assert.Equal(t, tc.mode == ServiceAccountMode, strings.Contains(out, "  tokenAttributes:\n"), "tokenAttributes")
			assert.Equal(t, tc.cacheType, strings.Contains(out, "    cacheType: ServiceAccount\n"), "cacheType")
			assert.Equal(t, tc.cacheType, strings.Contains(out, "cacheType:"), "a cacheType key anywhere")
			assert.Equal(t, tc.gate, strings.Contains(out, "#   --feature-gates=KubeletServiceAccountTokenForCredentialProviders=true\n"), "feature gate")
			assert.Equal(t, tc.mode == ServiceAccountMode, strings.Contains(out, "configure-kubelet --rbac"), "RBAC named")
			checkOneDocument(t, out)
		})
	}
}

// checkOneDocument checks that the comments all come first, and that the
// output is one YAML document.
func checkOneDocument(t *testing.T, out string) {
	t.Helper()
	assert.NotContains(t, out, "\n---")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	body := false
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "#"):
			assert.False(t, body, "comment after the body: %q", l)
		case strings.HasPrefix(l, "apiVersion: kubelet.config.k8s.io/v1"):
			body = true
		default:
			assert.True(t, body, "body line before apiVersion: %q", l)
		}
	}
}

func TestParseKubeletVersion(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Version{
		"1.33": 33, "1.34": 34, "1.35": 35, "1.36": 36, "1.37": 37,
		"v1.33": 33, "1.33.4": 33, "v1.37.2": 37,
	} {
		got, err := ParseVersion(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
	for _, in := range []string{"", "1", "33", "1.32", "1.38", "2.33", "0.33", "1.x", "abc", "1.33.", "1.033", "1.+33", "1.33.4.5", "1. 33", "v", "1.-1"} {
		_, err := ParseVersion(in)
		if assert.Error(t, err, "%q", in) {
			assert.Contains(t, err.Error(), "use 1.33, 1.34, 1.35, 1.36 or 1.37", in)
		}
	}
}

// Bad input: a clear line on stderr saying what is valid, nothing on
// stdout, a non-zero exit.
func TestConfigureBadInput(t *testing.T) {
	t.Parallel()
	const versions = "use 1.33, 1.34, 1.35, 1.36 or 1.37"
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"mode typo", []string{"--mode", "pod"}, nil, 2, `--mode: unknown mode "pod": use node or service-account`},
		{"mode case", []string{"--mode", "Node"}, nil, 2, "use node or service-account"},
		{"old version", []string{"--kubelet-version", "1.32"}, nil, 2, `--kubelet-version: kubelet version "1.32" is not supported: ` + versions},
		{"future version", []string{"--kubelet-version", "1.38"}, nil, 2, "is not supported: " + versions},
		{"major 2", []string{"--kubelet-version", "2.33"}, nil, 2, "is not supported: " + versions},
		{"not numeric", []string{"--kubelet-version", "latest"}, nil, 2, `kubelet version "latest" is not 1.MINOR: ` + versions},
		{"minor alone", []string{"--kubelet-version", "33"}, nil, 2, "is not 1.MINOR: " + versions},
		{"empty version", []string{"--kubelet-version="}, nil, 2, versions},
		{"unknown flag", []string{"--bogus"}, nil, 2, "flag provided but not defined: -bogus; see --help"},
		{"flag without value", []string{"--kubelet-version"}, nil, 2, "flag needs an argument"},
		{"extra argument", []string{"extra"}, nil, 2, `unexpected argument "extra"`},
		{"rbac with others", []string{"--rbac", "--mode", "service-account"}, nil, 2, "--rbac prints the RBAC alone and takes no other flag (got --mode)"},
		{"registry URL", []string{"--registry", "https://cgr.dev"}, nil, 1, "--registry: registry pattern"},
		{"registry wildcard", nil, map[string]string{"CHAINGUARD_REGISTRY": "*"}, 1, "$CHAINGUARD_REGISTRY: registry pattern"},
		{"no registry", []string{"--registry", " , "}, nil, 1, "--registry names no registry host"},
		{"issuer http", []string{"--issuer", "http://sts.example.com"}, nil, 1, "--issuer: issuer"},
		{"empty cache dir", []string{"--cache-dir="}, nil, 1, "--cache-dir is empty"},
		{"token in env", nil, map[string]string{"CHAINGUARD_IDENTITY_TOKEN": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}, 1, "$CHAINGUARD_IDENTITY_TOKEN holds a token"},
		{"token in flag", []string{"--identity-token-file", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}, nil, 1, "--identity-token-file holds a token"},
		{"token with its file's newline", nil, map[string]string{"CHAINGUARD_IDENTITY_TOKEN": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln\n"}, 1, "$CHAINGUARD_IDENTITY_TOKEN holds a token"},
		{"token as the identity", []string{"--identity", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}, nil, 1, "--identity holds a token"},
		{"bearer token as the identity", []string{"--identity", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}, nil, 1, "--identity holds a token"},
		{"opaque token as the identity", []string{"--identity", "ghp_0123456789abcdefghijABCDEFGHIJ012345"}, nil, 1, "--identity holds a token"},
		{"token as an argument", []string{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}, nil, 2, "unexpected argument (value not shown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errb := configure(tc.args, tc.env)
			assert.Equal(t, tc.code, code)
			assert.Empty(t, out, "nothing on stdout")
			assert.Equal(t, 1, strings.Count(errb, "\n"), "one line: %q", errb)
			assert.True(t, strings.HasPrefix(errb, "configure-kubelet: "), errb)
			assert.Contains(t, errb, tc.want)
			assert.False(t, strings.Contains(errb, "eyJzdWIiOiJ4In0"), "no token in the error")
		})
	}
}

func TestConfigureHelp(t *testing.T) {
	t.Parallel()
	code, out, errb := configure([]string{"--help"}, nil)
	assert.Equal(t, 0, code)
	assert.Empty(t, errb, "help goes to stdout")
	assert.True(t, strings.HasPrefix(out, "usage: docker-credential-cgr configure-kubelet [flags]\n"), out)
	for _, f := range []string{"-mode", "-kubelet-version", "-rbac", "-identity", "-identity-token-file", "-issuer", "-audience", "-registry", "-cache-dir", "$CHAINGUARD_REGISTRY", "1.33, 1.34, 1.35, 1.36 or 1.37", "docs/kubernetes.md"} {
		assert.Contains(t, out, f)
	}
}

// Every setting is a flag and an environment variable; flags win, and the
// output says where each came from.
func TestConfigureFlagsAndEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"CHAINGUARD_IDENTITY":       "env-identity",
		"CHAINGUARD_IDENTITY_TOKEN": "/env/token",
		"CHAINGUARD_ISSUER":         "https://env-sts.example.com",
		"CHAINGUARD_AUDIENCE":       "env-audience",
		"CHAINGUARD_REGISTRY":       "env.example.com",
		"CHAINGUARD_CACHE_DIR":      "/env/cache",
	}
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		value map[string]string // written env entries
		from  map[string]string // the note for each setting
	}{
		{
			name: "environment",
			env:  env,
			value: map[string]string{
				"CHAINGUARD_IDENTITY": "env-identity", "CHAINGUARD_IDENTITY_TOKEN": "/env/token",
				"CHAINGUARD_ISSUER": "https://env-sts.example.com", "CHAINGUARD_AUDIENCE": "env-audience",
				"CHAINGUARD_REGISTRY": "env.example.com", "CHAINGUARD_CACHE_DIR": "/env/cache",
			},
			from: map[string]string{
				"CHAINGUARD_IDENTITY": "from $CHAINGUARD_IDENTITY", "CHAINGUARD_IDENTITY_TOKEN": "from $CHAINGUARD_IDENTITY_TOKEN",
				"CHAINGUARD_ISSUER": "from $CHAINGUARD_ISSUER", "CHAINGUARD_AUDIENCE": "from $CHAINGUARD_AUDIENCE",
				"CHAINGUARD_REGISTRY": "from $CHAINGUARD_REGISTRY", "CHAINGUARD_CACHE_DIR": "from $CHAINGUARD_CACHE_DIR",
			},
		},
		{
			name: "flags win",
			args: []string{
				"--identity", "flag-identity", "--identity-token-file", "/flag/token",
				"--issuer", "https://flag-sts.example.com/", "--audience", "flag-audience",
				"--registry", "Flag.Example.com:5000, *.flag.example.org", "--cache-dir", "/flag/cache",
			},
			env: env,
			value: map[string]string{
				"CHAINGUARD_IDENTITY": "flag-identity", "CHAINGUARD_IDENTITY_TOKEN": "/flag/token",
				"CHAINGUARD_ISSUER": "https://flag-sts.example.com", "CHAINGUARD_AUDIENCE": "flag-audience",
				"CHAINGUARD_REGISTRY": "flag.example.com:5000,*.flag.example.org", "CHAINGUARD_CACHE_DIR": "/flag/cache",
			},
			from: map[string]string{
				"CHAINGUARD_IDENTITY": "from --identity", "CHAINGUARD_IDENTITY_TOKEN": "from --identity-token-file",
				"CHAINGUARD_ISSUER": "from --issuer", "CHAINGUARD_AUDIENCE": "from --audience",
				"CHAINGUARD_REGISTRY": "from --registry", "CHAINGUARD_CACHE_DIR": "from --cache-dir",
			},
		},
		{
			name:  "an empty flag wins too",
			args:  []string{"--identity=", "--issuer="},
			env:   env,
			value: map[string]string{"CHAINGUARD_IDENTITY_TOKEN": "/env/token", "CHAINGUARD_AUDIENCE": "env-audience", "CHAINGUARD_REGISTRY": "env.example.com", "CHAINGUARD_CACHE_DIR": "/env/cache"},
			from: map[string]string{
				"CHAINGUARD_IDENTITY": "empty in --identity, so not set",
				"CHAINGUARD_ISSUER":   "empty in --issuer, so not set: the plugin uses https://issuer.enforce.dev",
			},
		},
		{
			name:  "defaults are not written, but said",
			args:  []string{"--issuer", "https://issuer.enforce.dev", "--registry", "cgr.dev,*.cgr.dev"},
			value: map[string]string{"CHAINGUARD_CACHE_DIR": DefaultCacheDir},
			from: map[string]string{
				"CHAINGUARD_IDENTITY":       "not set",
				"CHAINGUARD_IDENTITY_TOKEN": "not set: the plugin reads /var/run/chainguard/oidc/oidc-token",
				"CHAINGUARD_ISSUER":         "from --issuer, the plugin's default, so not written",
				"CHAINGUARD_AUDIENCE":       "not set: the plugin uses cgr.dev",
				"CHAINGUARD_REGISTRY":       "from --registry, the plugin's default, so not written",
				"CHAINGUARD_CACHE_DIR":      "not set: /var/cache/docker-credential-cgr, written because the kubelet may run the plugin without HOME",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errb := configure(tc.args, tc.env)
			require.Equal(t, 0, code, errb)
			assert.Equal(t, tc.value, writtenEnv(t, out))
			for name, note := range tc.from {
				assert.Contains(t, out, "#   "+name+": "+note+"\n")
			}
			assert.Contains(t, out, "# Settings (flags win over environment variables; no config file is read):\n")
			if reg := tc.value["CHAINGUARD_REGISTRY"]; reg != "" {
				var want strings.Builder
				for r := range strings.SplitSeq(reg, ",") {
					want.WriteString("  - " + quote(r) + "\n")
				}
				assert.Contains(t, out, "  matchImages:\n"+want.String()+"  defaultCacheDuration:")
			}
		})
	}
}

// writtenEnv reads the env entries back from a config.
func writtenEnv(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if name, ok := strings.CutPrefix(l, "  - name: "); ok && i+1 < len(lines) {
			v, ok := strings.CutPrefix(lines[i+1], "    value: ")
			require.True(t, ok, "env entry %s has no value", name)
			m[name] = strings.Trim(v, `"`)
		}
	}
	return m
}

// configure-kubelet writes a config for every node: the admin's own config
// file must not leak into it, nor make it fail.
func TestConfigureIgnoresThePersonalConfigFile(t *testing.T) {
	t.Parallel()
	xdg := t.TempDir()
	dir := filepath.Join(xdg, "docker-credential-cgr")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"),
		[]byte(`{"identity":"personal-identity","registries":["personal.example.com"],"issuer":"https://personal-sts.example.com","cache_dir":"/home/me/cache"}`), 0o600))
	env := map[string]string{"XDG_CONFIG_HOME": xdg, "HOME": t.TempDir()}
	code, out, errb := configure([]string{"--mode", "service-account"}, env)
	require.Equal(t, 0, code, errb)
	for _, s := range []string{"personal", "/home/me"} {
		assert.NotContains(t, out, s)
	}
	assert.Equal(t, map[string]string{"CHAINGUARD_CACHE_DIR": DefaultCacheDir}, writtenEnv(t, out))
}

func TestConfigureAbsolutisesPaths(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	require.NoError(t, err)
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{nil, map[string]string{"CHAINGUARD_IDENTITY_TOKEN": "tokens/node-token", "CHAINGUARD_CACHE_DIR": "cache"}},
		{[]string{"--identity-token-file", "tokens/node-token", "--cache-dir", "cache"}, nil},
	} {
		code, out, errb := configure(tc.args, tc.env)
		require.Equal(t, 0, code, errb)
		got := writtenEnv(t, out)
		assert.Equal(t, filepath.Join(wd, "tokens/node-token"), got["CHAINGUARD_IDENTITY_TOKEN"], "the kubelet runs the plugin from its own folder")
		assert.Equal(t, filepath.Join(wd, "cache"), got["CHAINGUARD_CACHE_DIR"])
	}
}

// A value with a line break or quotes stays inside its YAML string: the
// notes name flags and variables, never values.
func TestConfigureValuesCannotBreakTheYAML(t *testing.T) {
	t.Parallel()
	code, out, errb := configure([]string{"--identity", "x\"\nproviders: []\n# "}, nil)
	require.Equal(t, 0, code, errb)
	assert.Contains(t, out, `    value: "x\"\nproviders: []\n# "`+"\n")
	assert.Equal(t, 1, strings.Count(out, "\nproviders:"))
}

func TestWriteConfigRefusesBadOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []ConfigOptions{
		{Mode: "pod", Kubelet: NewestVersion, MatchImages: []string{"cgr.dev"}},
		{Mode: NodeMode, Kubelet: 32, MatchImages: []string{"cgr.dev"}},
		{Mode: NodeMode, MatchImages: []string{"cgr.dev"}},
		{Mode: NodeMode, Kubelet: NewestVersion},
		{Mode: NodeMode, Kubelet: NewestVersion, MatchImages: []string{"cgr.dev"}, Notes: []string{"a\nb"}},
	} {
		var out bytes.Buffer
		assert.Error(t, WriteConfig(&out, o), "%+v", o)
		assert.Empty(t, out.String())
	}
}

// TestModeAndVersionErrorsNeverEchoAToken: a token pasted into --mode or
// --kubelet-version is described by its shape, never shown.
func TestModeAndVersionErrorsNeverEchoAToken(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "ghp_0123456789abcdefghijABCDEFGHIJ012345"} {
		_, err := ParseMode(v)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), v[:8])
		_, err = ParseVersion(v)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), v[:8])
	}
	_, err := ParseMode("nodes")
	assert.ErrorContains(t, err, `"nodes"`, "an ordinary mistake is still shown")
}
