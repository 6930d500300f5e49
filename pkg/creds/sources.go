package creds

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// source is one place the ambient token may be, in the shape of cosign's
// pkg/providers without its global registry: the places are a list built
// from Config, tried in order, and the first that is here provides the
// token. A new CI system is one more small type and one more line in
// ambientSources. No method ever returns or shows the token's value but
// Provide.
type source interface {
	// String names the place, for the "looked at" trail and for listing.
	String() string
	// Enabled reports whether the token is to be had here. It never
	// fetches the token and never uses the network, so the places can be
	// listed, and the cache keyed, without cost.
	Enabled() bool
	// Missing says what was not there when Enabled is false, for the trail.
	Missing() string
	// Provide gets the token, read fresh (projected tokens rotate). It is
	// called only when Enabled is true.
	Provide(ctx context.Context) (AmbientToken, error)
}

// ambientSources lists where cfg says to look for the ambient token, in
// the order they are tried: CHAINGUARD_IDENTITY_TOKEN (a token, or a file
// holding one), the projected token file, GitHub Actions OIDC.
func ambientSources(cfg Config, client *http.Client) []source {
	srcs := []source{identityTokenSource(cfg.IdentityToken)}
	if cfg.tokenPath != "" {
		srcs = append(srcs, projectedSource(cfg.tokenPath))
	}
	return append(srcs, actionsSource{url: cfg.ActionsURL, token: cfg.ActionsToken, client: client})
}

// firstSource returns the first of srcs that is here. If none is, the
// error names every place looked at and what was missing there.
func firstSource(srcs []source) (source, error) {
	looked := make([]string, 0, len(srcs))
	for _, s := range srcs {
		if s.Enabled() {
			return s, nil
		}
		looked = append(looked, s.String()+" ("+s.Missing()+")")
	}
	return nil, fmt.Errorf("%w: looked at %s; set CHAINGUARD_IDENTITY_TOKEN to a token or a token file, or project a service-account token with audience %s to %s",
		ErrNoAmbientToken, strings.Join(looked, ", "), EnforceAudience, DefaultTokenPath)
}

// FindAmbientToken gets the ambient token from the first place that has
// one, in order (docs/reference.md#ambient-token-sources): cfg.IdentityToken
// (a JWT or a file), the projected token file (DefaultTokenPath in a Config
// from LoadConfig), GitHub Actions OIDC. It reads the token fresh every time, and does not check it (see
// AmbientToken.Check).
func FindAmbientToken(ctx context.Context, cfg Config, client *http.Client) (AmbientToken, error) {
	s, err := firstSource(ambientSources(cfg, client))
	if err != nil {
		return AmbientToken{}, err
	}
	return s.Provide(ctx)
}
