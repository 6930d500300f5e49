package doctor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

func TestParseChallenge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		kind string
		want map[string]string
	}{
		{`Bearer realm="https://cgr.dev/token",service="cgr.dev"`, "bearer", map[string]string{"realm": "https://cgr.dev/token", "service": "cgr.dev"}},
		{`Bearer realm="https://r/token",service="r",scope="repository:a/b:pull,push"`, "bearer", map[string]string{"realm": "https://r/token", "service": "r", "scope": "repository:a/b:pull,push"}},
		{`Basic realm="registry"`, "basic", map[string]string{"realm": "registry"}},
		{`Bearer realm=https://r/token, service=r`, "bearer", map[string]string{"realm": "https://r/token", "service": "r"}},
		{`Bearer realm="a\"b"`, "bearer", map[string]string{"realm": `a"b`}},
		{`Bearer realm="unterminated`, "bearer", map[string]string{"realm": "unterminated"}},
		{``, "", map[string]string{}},
	} {
		kind, params := parseChallenge(tc.in)
		assert.Equal(t, tc.kind, kind, tc.in)
		assert.Equal(t, tc.want, params, tc.in)
	}
}

func TestPingRegistryRefused(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.Start()
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	const secret = "not-a-registry-token-but-secret-all-the-same"
	_, err = pingRegistry(context.Background(), sb.Registry.Host(), "_token", secret)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the token realm \"http://"+sb.Registry.Host()+"/token\" answered 401 Unauthorized")
	assert.NotContains(t, err.Error(), secret)
}

func TestRealmMustBeHTTPS(t *testing.T) {
	t.Parallel()
	_, err := realmToken(context.Background(), "cgr.dev", map[string]string{"realm": "http://evil.example/token"}, "_token", "s")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not sending the token there")
}

// The registry check follows no redirect: Go would copy the Authorization
// header to one on the same host name, even to plain http.
func TestRegistryCheckFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	var followed atomic.Bool
	there := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Store(true) }))
	t.Cleanup(there.Close)
	realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, there.URL+"/token", http.StatusFound)
	}))
	t.Cleanup(realm.Close)
	_, err := realmToken(context.Background(), "registry", map[string]string{"realm": realm.URL + "/token"}, "_token", "secret")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "302")
	assert.Contains(t, err.Error(), "not followed", "says why docker would get further")
	assert.Contains(t, err.Error(), there.URL[len("http://"):], "names where it pointed")
	assert.False(t, followed.Load(), "the redirect was followed")
}
