package creds

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNormalizeHost(t *testing.T) {
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
	def := parseRegistries(DefaultRegistry)
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

	custom := parseRegistries(" 127.0.0.1:5000 , https://Registry.Example.com/ ,,*.internal.example")
	assert.Equal(t, registries{"127.0.0.1:5000", "registry.example.com", "*.internal.example"}, custom)
	assert.True(t, custom.serves("127.0.0.1:5000"))
	assert.False(t, custom.serves("127.0.0.1:5001"))
	assert.False(t, custom.serves("cgr.dev"), "a custom list replaces the default")
	assert.True(t, custom.serves("x.internal.example"))
	assert.False(t, custom.serves("internal.example"))
	assert.Equal(t, []string{"127.0.0.1:5000", "registry.example.com"}, custom.hosts())
	assert.Empty(t, parseRegistries(" , ,"))
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
