package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOuterEnvKeepsOnlyWhatTheHelperDoesNotRead(t *testing.T) {
	t.Parallel()
	got := outerEnv([]string{
		"PATH=/usr/bin", "LANG=C.UTF-8", "TERM=xterm",
		"HOME=/root", "GODEBUG=gctrace=1", "CHAINGUARD_IDENTITY=x", "CHAINGUARD_CACHE_DIR=/c", "ACTIONS_ID_TOKEN_REQUEST_URL=u",
		"DOCKER_CONFIG=/d", "XDG_CONFIG_HOME=/x", "SSL_CERT_FILE=/s", "https_proxy=http://p", "NO_PROXY=*",
	})
	assert.Equal(t, []string{"PATH=/usr/bin", "LANG=C.UTF-8", "TERM=xterm"}, got)
}
