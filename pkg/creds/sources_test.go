package creds

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With nothing anywhere, the message lists every place looked at, in order,
// with what was missing there, and how to provide a token.
func TestNoAmbientTokenNamesEveryPlaceLooked(t *testing.T) {
	t.Parallel()
	none := filepath.Join(t.TempDir(), "none")
	cfg := Config{tokenPath: none}
	_, err := FindAmbientToken(context.Background(), cfg, http.DefaultClient)
	require.ErrorIs(t, err, ErrNoAmbientToken)
	assert.Equal(t, "no ambient OIDC token found: looked at CHAINGUARD_IDENTITY_TOKEN (unset), "+
		strconv.Quote(none)+" (no such file), "+
		"GitHub Actions OIDC (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN unset; the job needs permissions: id-token: write); "+
		"set CHAINGUARD_IDENTITY_TOKEN to a token or a token file, or project a service-account token with audience issuer.enforce.dev to /var/run/chainguard/oidc/oidc-token",
		err.Error())

	// Without a projected token path (a Config not from LoadConfig), that
	// place is not looked at.
	_, err = FindAmbientToken(context.Background(), Config{}, http.DefaultClient)
	require.ErrorIs(t, err, ErrNoAmbientToken)
	assert.Contains(t, err.Error(), "looked at CHAINGUARD_IDENTITY_TOKEN (unset), GitHub Actions OIDC (")
}

// fakeSource counts how often it is asked, to prove what the list asks.
type fakeSource struct {
	name     string
	here     bool
	tok      AmbientToken
	enabled  int
	provided int
}

func (f *fakeSource) String() string  { return f.name }
func (f *fakeSource) Missing() string { return "not here" }
func (f *fakeSource) Enabled() bool   { f.enabled++; return f.here }
func (f *fakeSource) Provide(context.Context) (AmbientToken, error) {
	f.provided++
	return f.tok, nil
}

func TestSourcesAreTriedInOrderUntilOneIsHere(t *testing.T) {
	t.Parallel()
	absent := &fakeSource{name: "absent"}
	here := &fakeSource{name: "here", here: true, tok: AmbientToken{Source: "here"}}
	later := &fakeSource{name: "later", here: true}
	// A real source before the fakes: CHAINGUARD_IDENTITY_TOKEN, unset.
	srcs := []source{identityTokenSource(""), absent, here, later}

	s, err := firstSource(srcs)
	require.NoError(t, err)
	assert.Same(t, here, s)
	tok, err := s.Provide(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "here", tok.Source)
	assert.Equal(t, 1, absent.enabled, "an earlier source is asked whether it is here")
	assert.Equal(t, 0, absent.provided, "a source that is not here is never asked for the token")
	assert.Equal(t, 1, here.provided)
	assert.Equal(t, 0, later.enabled, "a later source is not consulted once one is here")
	assert.Equal(t, 0, later.provided, "a later source is not consulted once one is here")

	// With none here, the trail lists every place in order, with what was
	// missing there.
	_, err = firstSource(srcs[:2])
	require.ErrorIs(t, err, ErrNoAmbientToken)
	assert.Contains(t, err.Error(), ": looked at CHAINGUARD_IDENTITY_TOKEN (unset), absent (not here); set CHAINGUARD_IDENTITY_TOKEN")
}

// The production list, in order; the projected token file only when a path
// is configured.
func TestAmbientSourcesFollowTheConfig(t *testing.T) {
	t.Parallel()
	names := func(cfg Config) []string {
		var out []string
		for _, s := range ambientSources(cfg, nil) {
			out = append(out, s.String())
		}
		return out
	}
	assert.Equal(t, []string{"CHAINGUARD_IDENTITY_TOKEN", strconv.Quote(DefaultTokenPath), "GitHub Actions OIDC"},
		names(Config{tokenPath: DefaultTokenPath}))
	assert.Equal(t, []string{"CHAINGUARD_IDENTITY_TOKEN", "GitHub Actions OIDC"}, names(Config{}))

	// Enabled is judged without fetching: the Actions source is here when
	// both variables are set, whatever they hold.
	assert.True(t, actionsSource{url: "https://runner.invalid/x", token: "t"}.Enabled())
	assert.False(t, actionsSource{url: "https://runner.invalid/x"}.Enabled())
	assert.True(t, identityTokenSource(" /no/such/file ").Enabled(), "a bad value is reported, not skipped")
	assert.False(t, identityTokenSource(" \n").Enabled())

	// Only the Actions source keys the cache itself, and only when it is
	// the one in use: a projected token file comes first.
	projected := filepath.Join(t.TempDir(), "token")
	cfg := Config{tokenPath: projected, ActionsURL: "https://runner.invalid/x", ActionsToken: "t"}
	s, err := firstSource(ambientSources(cfg, nil))
	require.NoError(t, err)
	_, keyed := s.(cacheKeyer)
	assert.True(t, keyed, "%s keys the cache by the job", s)
	require.NoError(t, os.WriteFile(projected, []byte("x"), 0o600))
	s, err = firstSource(ambientSources(cfg, nil))
	require.NoError(t, err)
	_, keyed = s.(cacheKeyer)
	assert.False(t, keyed, "%s is keyed by the token's issuer and subject", s)
	assert.Equal(t, strconv.Quote(projected), s.String())
}

// TestActionsTokenRequestFollowsNoRedirect: the request token goes with the
// request, and Go would copy it to a redirect on the same host name, even
// to plain http; the helper's own client follows redirects elsewhere.
func TestActionsTokenRequestFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	var followed atomic.Bool
	there := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Store(true) }))
	t.Cleanup(there.Close)
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, there.URL+"/token", http.StatusFound)
	}))
	t.Cleanup(runner.Close)
	_, err := actionsSource{url: runner.URL + "/token", token: "request-token", client: &http.Client{}}.Provide(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "302")
	assert.False(t, followed.Load(), "the redirect was followed")
}
