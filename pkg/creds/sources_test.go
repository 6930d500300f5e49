package creds

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
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
