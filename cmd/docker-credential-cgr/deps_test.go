package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every process of the helper pays for the package initialisation of
// everything it links, cached gets included (docs/benchmarks.md). These
// are kept out: regexp builds Unicode tables at start-up, and
// go-containerregistry is for the in-process keychain (pkg/creds/ggcr),
// not the binary.
func TestBinaryLinksNoStartUpHeavyPackage(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "encoding/json", "go list answered with the binary's dependencies")
	for _, p := range deps {
		assert.False(t, p == "regexp" || strings.HasPrefix(p, "regexp/"), "the binary links %s", p)
		assert.NotContains(t, p, "go-containerregistry", "the binary links %s", p)
	}
}
