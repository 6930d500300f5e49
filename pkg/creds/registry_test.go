package creds

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNormalizeHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"cgr.dev":                          "cgr.dev",
		"https://cgr.dev":                  "cgr.dev",
		"https://cgr.dev/":                 "cgr.dev",
		"cgr.dev/":                         "cgr.dev",
		"  CGR.Dev\n":                      "cgr.dev",
		"https://cgr.dev:443/v2/":          "cgr.dev",
		"cgr.dev/chainguard/static:latest": "cgr.dev",
		"http://user@localhost:5000/v2":    "localhost:5000",
		"oci://127.0.0.1:5000?x=1":         "127.0.0.1:5000",
		"[::1]:5000":                       "[::1]:5000",
		"https://index.docker.io/v1/":      "index.docker.io",
		"":                                 "",
	} {
		assert.Equal(t, want, NormalizeHost(in), "NormalizeHost(%q)", in)
	}
}

func TestRegistriesServes(t *testing.T) {
	t.Parallel()
	def, err := parseRegistries(DefaultRegistry)
	require.NoError(t, err)
	for host, want := range map[string]bool{
		"cgr.dev":          true,
		"https://cgr.dev/": true,
		"foo.cgr.dev":      true,
		"a.b.cgr.dev":      true,
		"notcgr.dev":       false,
		"cgr.dev.evil.com": false,
		"cgr.dev:5000":     false,
		"index.docker.io":  false,
		"":                 false,
		".cgr.dev":         false,
	} {
		assert.Equal(t, want, def.serves(NormalizeHost(host)), "default serves(%q)", host)
	}

	custom, err := parseRegistries(" 127.0.0.1:5000 , Registry.Example.com:443 ,,*.internal.example", "[::1]:5000")
	require.NoError(t, err)
	assert.Equal(t, registries{"127.0.0.1:5000", "registry.example.com", "*.internal.example", "[::1]:5000"}, custom)
	assert.True(t, custom.serves("127.0.0.1:5000"))
	assert.False(t, custom.serves("127.0.0.1:5001"))
	assert.False(t, custom.serves("cgr.dev"), "a custom list replaces the default")
	assert.True(t, custom.serves("x.internal.example"))
	assert.False(t, custom.serves("internal.example"))
	assert.Equal(t, []string{"127.0.0.1:5000", "registry.example.com", "[::1]:5000"}, custom.hosts())
	empty, err := parseRegistries(" , ,")
	require.NoError(t, err)
	assert.Empty(t, empty)
}

// A pattern that is not a host or a "*.domain" wildcard is refused by name:
// today's bare "*" would have sent a Chainguard token to any registry.
func TestRegistryPatternsMeanWhatTheDocsSay(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"*", "*cgr.dev", "**.cgr.dev", "*.*.cgr.dev", "cgr.*", "c*r.dev", "*.", "*.dev", "*.localhost",
		"https://cgr.dev", "cgr.dev/chainguard", "user@cgr.dev", "cgr.dev?x", "cgr.dev#x",
		"cgr.dev:0", "cgr.dev:65536", "cgr.dev:http", "cgr.dev:", "cgr.dev:08",
		"-cgr.dev", "cgr..dev", "cgr_dev.example", "cgr dev", "[::1", "[127.0.0.1]", "[::1]x",
		"*.[::1]", "*.127.0.0.1", "*.cgr.dev:5000", "cgr.dev\nforged: line",
	} {
		_, err := parseRegistries("cgr.dev," + bad)
		if !assert.Error(t, err, "pattern %q", bad) {
			continue
		}
		msg := err.Error()
		assert.Contains(t, msg, strconv.Quote(bad)[:min(len(strconv.Quote(bad)), 120)], "the message names the bad entry")
		assert.Contains(t, msg, "*.cgr.dev", "the message shows a valid form")
		assert.NotContains(t, msg, "\n", "one line")
	}

	// Through every way a pattern arrives: the environment, the config file,
	// and a Config built in code.
	_, err := LoadConfig(envFrom(map[string]string{"HOME": t.TempDir(), "CHAINGUARD_REGISTRY": "cgr.dev,*"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "CHAINGUARD_REGISTRY")
	assert.Contains(t, err.Error(), `"*"`)

	xdg := t.TempDir()
	writeConfigFile(t, xdg, `{"registries": ["cgr.dev", "*cgr.dev"]}`, 0o600)
	_, err = LoadConfig(envFrom(map[string]string{"XDG_CONFIG_HOME": xdg}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(xdg, "docker-credential-cgr", "config.json"))
	assert.Contains(t, err.Error(), `"*cgr.dev"`)

	_, err = New(Config{Registries: []string{"*"}, Issuer: "https://issuer.example"})
	require.Error(t, err)

	// A token pasted into the registry list is described, never echoed.
	tok := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtc3ViamVjdCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWc"
	_, err = parseRegistries("Bearer " + tok)
	require.Error(t, err)
	for _, part := range strings.Split(tok, ".") {
		assert.False(t, strings.Contains(err.Error(), part), "a part of the token leaked into the error")
	}
	assert.Contains(t, err.Error(), "starts like a JWT after other text")
}

// FuzzNormalizeHost checks that any server URL normalises to something
// that looks like a bare host and normalises to itself again.
func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"cgr.dev", "https://cgr.dev/", "HTTP://u:p@Host:443/x?y#z", "[::1]:5000", "cgr.dev:443:443", " a b ", "://", "@/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := NormalizeHost(in)
		if strings.ContainsAny(out, "/?#@") || strings.Contains(out, "://") {
			t.Fatalf("NormalizeHost(%q) = %q still has URL parts", in, out)
		}
		if strings.HasSuffix(out, ":443") {
			t.Fatalf("NormalizeHost(%q) = %q keeps the default port", in, out)
		}
		if again := NormalizeHost(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
	})
}
