package creds

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// noPollerChild marks the child process of TestCachedGetStartsNoPoller.
const noPollerChild = "CGR_TEST_NO_POLLER_CHILD"

// A cached get opens its files outside Go's poller (see openAt): starting
// the poller is a measurable part of a process that lives a few
// milliseconds. The get runs in a child process, as the helper runs, where
// nothing has started the poller before it.
func TestCachedGetStartsNoPoller(t *testing.T) {
	if os.Getenv(noPollerChild) != "" {
		cachedGetInChild(t)
		return
	}
	t.Parallel()
	f := newFixture(t)
	_, _, err := f.helper(t).Get(f.host) // fills the cache
	require.NoError(t, err)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(f.ambient+"\n"), 0o600))

	cmd := exec.Command(os.Args[0], "-test.run=^TestCachedGetStartsNoPoller$", "-test.v") //nolint:gosec // G204: this test binary, run again
	cmd.Env = []string{
		noPollerChild + "=" + f.host,
		"HOME=" + dir,
		"CHAINGUARD_IDENTITY=" + f.cfg.Identity,
		"CHAINGUARD_IDENTITY_TOKEN=" + tokenFile,
		"CHAINGUARD_ISSUER=" + f.cfg.Issuer,
		"CHAINGUARD_REGISTRY=" + f.host,
		"CHAINGUARD_CACHE_DIR=" + f.cfg.CacheDir,
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the child get failed:\n%s", out)
	// The child's test ran, and a cached get makes no exchange.
	assert.Contains(t, string(out), "--- PASS: TestCachedGetStartsNoPoller")
	assert.Equal(t, 1, f.sb.STS.Exchanges())
}

func cachedGetInChild(t *testing.T) {
	require.False(t, pollerRunning(), "the poller ran before the get, so this test cannot tell")
	cfg, err := LoadConfig(os.Getenv)
	require.NoError(t, err)
	h, err := New(cfg)
	require.NoError(t, err)
	_, secret, err := h.Get(os.Getenv(noPollerChild))
	require.NoError(t, err)
	assert.True(t, strings.Count(secret, ".") == 2, "the answer is not a token")
	assert.False(t, pollerRunning(), "a cached get started Go's poller (an os.File was opened the usual way)")
}

// pollerRunning reports whether this process has an epoll instance, which
// Go's poller makes when it starts. It opens nothing itself.
func pollerRunning() bool {
	for fd := range 256 {
		if l, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err == nil && l == "anon_inode:[eventpoll]" {
			return true
		}
	}
	return false
}
