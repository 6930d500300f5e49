package ggcr_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds/ggcr"
)

type world struct {
	sb      *sandbox.Sandbox
	ambient string
	pushed  string // the digest of the image at ref
	ref     name.Reference
}

func newWorld(t *testing.T) *world {
	t.Helper()
	sb, err := sandbox.Start()
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	pushed, err := sb.Registry.PushRandomImage("chainguard/static", "latest")
	require.NoError(t, err)
	ambient, err := sb.Issuer.MintServiceAccountToken("default", "builder")
	require.NoError(t, err)
	ref, err := name.ParseReference(sb.Registry.Host()+"/chainguard/static:latest", name.Insecure)
	require.NoError(t, err)
	return &world{sb: sb, ambient: ambient, pushed: pushed, ref: ref}
}

// helper is configured the way a program would be, through LoadConfig,
// with identity as CHAINGUARD_IDENTITY.
func (w *world) helper(t *testing.T, identity string) *creds.Helper {
	t.Helper()
	env := map[string]string{
		"XDG_CONFIG_HOME":           t.TempDir(),
		"CHAINGUARD_IDENTITY_TOKEN": w.ambient,
		"CHAINGUARD_ISSUER":         w.sb.STS.URL(),
		"CHAINGUARD_REGISTRY":       w.sb.Registry.Host(),
		"CHAINGUARD_IDENTITY":       identity,
		"CHAINGUARD_CACHE_DIR":      filepath.Join(t.TempDir(), "cache"),
	}
	cfg, err := creds.LoadConfig(func(k string) string { return env[k] })
	require.NoError(t, err)
	h, err := creds.New(cfg)
	require.NoError(t, err)
	return h
}

func TestPull(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	img, err := remote.Image(w.ref, remote.WithAuthFromKeychain(ggcr.Keychain(w.helper(t, sandbox.DefaultIdentity))))
	require.NoError(t, err)
	digest, err := img.Digest()
	require.NoError(t, err)
	assert.Equal(t, w.pushed, digest.String())
	assert.Equal(t, 1, w.sb.STS.Exchanges())
	assert.Equal(t, sandbox.DefaultIdentity, w.sb.STS.LastRequest().Form.Get("identity"))
}

// An identity the workload may not assume: remote.Image fails with the
// helper's own error, where authn.NewKeychainFromHelper pulls anonymously
// and gets the registry's 401, which says nothing of the cause.
func TestErrorsAreReturnedNotAnonymous(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	const refused = "720909c9f5279097d847ad02a2f24ba8f59de36a/0000000000000001"
	w.sb.STS.AddIdentity(refused, sandbox.Identity{Issuer: w.sb.Issuer.URL(), SubjectPattern: "system:serviceaccount:other:other"})
	h := w.helper(t, refused)

	_, err := remote.Image(w.ref, remote.WithAuthFromKeychain(ggcr.Keychain(h)))
	require.Error(t, err)
	assert.ErrorIs(t, err, creds.ErrIdentityRejected)
	msg := err.Error()
	assert.Contains(t, msg, "may not assume identity", "the STS's own words")
	assert.Contains(t, msg, "sub=system:serviceaccount:default:builder", "what to make the identity match")
	assert.False(t, strings.Contains(msg, w.ambient), "leaked the ambient token")
	assert.Zero(t, w.sb.Registry.TokenRequests(), "the pull stopped before the registry")

	_, err = remote.Image(w.ref, remote.WithAuthFromKeychain(authn.NewKeychainFromHelper(h)))
	var te *transport.Error
	require.ErrorAs(t, err, &te, "the anonymous fallback")
	assert.Equal(t, http.StatusUnauthorized, te.StatusCode)
	assert.NotContains(t, err.Error(), creds.ErrIdentityRejected.Error())
}

// A registry the helper does not serve is Anonymous, without an exchange,
// so the next keychain of a MultiKeychain gets its turn.
func TestOtherRegistriesAreAnonymous(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	kc := ggcr.Keychain(w.helper(t, sandbox.DefaultIdentity))
	other := name.MustParseReference("ghcr.io/org/app:latest").Context()

	auth, err := kc.Resolve(other)
	require.NoError(t, err)
	assert.Equal(t, authn.Anonymous, auth)
	assert.Zero(t, w.sb.STS.Requests())

	theirs := &authn.Basic{Username: "someone", Password: "theirs"}
	multi := authn.NewMultiKeychain(kc, staticKeychain{theirs})
	auth, err = multi.Resolve(other)
	require.NoError(t, err)
	assert.Same(t, theirs, auth, "the other registry falls through to the next keychain")

	auth, err = multi.Resolve(w.ref.Context())
	require.NoError(t, err)
	cfg, err := auth.Authorization()
	require.NoError(t, err)
	assert.Equal(t, creds.Username, cfg.Username, "the served registry is ours")
	_, err = w.sb.STS.VerifyToken(cfg.Password, sandbox.RegistryAudience)
	require.NoError(t, err)
}

// The caller's context reaches the exchange: a cancelled pull does not
// exchange.
func TestCallersContext(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := authn.Resolve(ctx, ggcr.Keychain(w.helper(t, sandbox.DefaultIdentity)), w.ref.Context())
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)
	assert.Zero(t, w.sb.STS.Exchanges())
}

type staticKeychain struct{ auth authn.Authenticator }

func (s staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return s.auth, nil }
