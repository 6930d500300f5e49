package sandbox

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pull pulls repo:latest from the sandbox registry, reading every layer,
// and returns the image digest.
func pull(t *testing.T, sb *Sandbox, repo string, auth authn.Authenticator) (string, error) {
	t.Helper()
	return Pull(t.Context(), sb.Registry.Host()+"/"+repo+":latest", auth)
}

func tokenAuth(password string) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{Username: "_token", Password: password})
}

// requireStatus checks err is a registry error with status.
func requireStatus(t *testing.T, err error, status int) {
	t.Helper()
	var terr *transport.Error
	require.True(t, errors.As(err, &terr), "want a transport error, got %v", err)
	assert.Equal(t, status, terr.StatusCode, "%v", err)
}

func TestRegistryTokenDanceWithGoContainerRegistry(t *testing.T) {
	t.Parallel()
	sb := start(t)
	assert.Regexp(t, `^127\.0\.0\.1:\d+$`, sb.Registry.Host())
	assert.Equal(t, "http://"+sb.Registry.Host(), sb.Registry.URL())
	want, err := sb.Registry.PushRandomImage("chainguard/static", "latest")
	require.NoError(t, err)
	assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, want)
	assert.Zero(t, sb.Registry.TokenRequests(), "pushing bypasses the realm")

	got, err := pull(t, sb, "chainguard/static", tokenAuth(exchangeSA(t, sb, "build", "builder")))
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Positive(t, sb.Registry.TokenRequests())
}

func TestRegistryRefusals(t *testing.T) {
	t.Parallel()
	sb := start(t)
	_, err := sb.Registry.PushRandomImage("chainguard/static", "latest")
	require.NoError(t, err)
	good := exchangeSA(t, sb, "build", "builder")

	otherAud := postExchange(t, sb.STS, mint(t, sb.Issuer),
		url.Values{"aud": {"other.example"}, "identity": {DefaultIdentity}}).token(t).Token
	sb.STS.SetTokenLifetime(-time.Minute)
	expired := exchangeSA(t, sb, "build", "builder")

	for _, tc := range []struct {
		name string
		auth authn.Authenticator
	}{
		{"anonymous", authn.Anonymous},
		{"wrong username", authn.FromConfig(authn.AuthConfig{Username: "oauth2accesstoken", Password: good})},
		{"placeholder username", authn.FromConfig(authn.AuthConfig{Username: "<token>", Password: good})},
		{"not a token", tokenAuth("hunter2")},
		{"expired token", tokenAuth(expired)},
		{"token for another audience", tokenAuth(otherAud)},
		{"ambient token instead of STS token", tokenAuth(mint(t, sb.Issuer))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pull(t, sb, "chainguard/static", tc.auth)
			require.Error(t, err)
			requireStatus(t, err, http.StatusUnauthorized)
		})
	}
}

func TestRegistryChallenge(t *testing.T) {
	t.Parallel()
	sb := start(t)
	realm := fmt.Sprintf(`Bearer realm="%s/token",service="cgr.dev"`, sb.Registry.URL())
	for path, want := range map[string]string{
		"/v2/":                                   realm,
		"/v2/chainguard/static/manifests/latest": realm + `,scope="repository:chainguard/static:pull"`,
		"/v2/a/blobs/sha256:" + strings.Repeat("0", 64): realm + `,scope="repository:a:pull"`,
		"/v2/a/b/c/tags/list":                           realm + `,scope="repository:a/b/c:pull"`,
	} {
		r := get(t, sb.Registry.URL()+path)
		assert.Equal(t, http.StatusUnauthorized, r.status, path)
		assert.Equal(t, want, r.header.Get("WWW-Authenticate"), path)
		assert.Equal(t, "application/json", r.header.Get("Content-Type"))
		var body struct {
			Errors []registryError `json:"errors"`
		}
		require.NoError(t, json.Unmarshal(r.body, &body), "%s", r.body)
		require.Len(t, body.Errors, 1)
		assert.Equal(t, "UNAUTHORIZED", body.Errors[0].Code)
	}
}

// realmToken asks the realm for a token with HTTP Basic, as docker does.
func realmToken(t *testing.T, sb *Sandbox, user, pass string, scopes ...string) response {
	t.Helper()
	q := url.Values{"service": {RegistryAudience}, "scope": scopes}
	req, err := http.NewRequest(http.MethodGet, sb.Registry.URL()+"/token?"+q.Encode(), nil)
	require.NoError(t, err)
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	return do(t, req)
}

func TestRealmTokenIsDistributionCompatible(t *testing.T) {
	t.Parallel()
	sb := start(t)
	before := time.Now().Truncate(time.Second)
	r := realmToken(t, sb, "_token", exchangeSA(t, sb, "build", "builder"),
		"repository:a:pull,push", "repository:b/c:pull repository:d:push registry:catalog:*")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	var raw map[string]any
	require.NoError(t, json.Unmarshal(r.body, &raw))
	assert.ElementsMatch(t, []string{"token", "access_token", "expires_in", "issued_at"}, keys(raw))
	assert.Equal(t, raw["token"], raw["access_token"])
	assert.Equal(t, float64(300), raw["expires_in"])
	issued, err := time.Parse(time.RFC3339, raw["issued_at"].(string))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), issued, time.Minute)

	tok := raw["token"].(string)
	h, c := decodeJWT(t, tok)
	assert.Equal(t, "RS256", h["alg"])
	assert.NotEmpty(t, h["kid"])
	assert.ElementsMatch(t, []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"}, keys(c))
	assert.Equal(t, "sandbox-realm", c["iss"])
	assert.Equal(t, sb.Registry.Realm().Issuer(), c["iss"])
	assert.Equal(t, DefaultIdentity, c["sub"])
	assert.Equal(t, "cgr.dev", c["aud"], "a plain string, as distribution v2 requires")
	iat := int64(c["iat"].(float64))
	assert.GreaterOrEqual(t, iat, before.Unix())
	assert.Equal(t, float64(iat), c["nbf"])
	assert.Equal(t, float64(iat+300), c["exp"])
	assert.NotEmpty(t, c["jti"])
	assert.Equal(t, []any{
		map[string]any{"type": "repository", "name": "a", "actions": []any{"pull"}},
		map[string]any{"type": "repository", "name": "b/c", "actions": []any{"pull"}},
	}, c["access"], "pull only; push and catalog are never granted")

	// Verify as distribution does: x5c leaf chains to the rootcertbundle,
	// and its key checks the signature.
	x5c := h["x5c"].([]any)
	require.Len(t, x5c, 1)
	der, err := base64.StdEncoding.DecodeString(x5c[0].(string))
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(sb.Registry.Realm().CertificatePEM()))
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	require.NoError(t, err)
	_, err = jwt.Parse(tok, func(*jwt.Token) (any, error) { return leaf.PublicKey, nil })
	require.NoError(t, err)
	assert.Equal(t, thumbprint(&sb.Registry.Realm().key.priv.PublicKey), h["kid"])
}

func TestRealmRefusals(t *testing.T) {
	t.Parallel()
	sb := start(t)
	good := exchangeSA(t, sb, "build", "builder")
	for _, tc := range []struct{ name, user, pass string }{
		{"no credentials", "", ""},
		{"wrong username", "oauth2accesstoken", good},
		{"garbage password", "_token", "not-a-jwt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := realmToken(t, sb, tc.user, tc.pass, "repository:a:pull")
			assert.Equal(t, http.StatusUnauthorized, r.status)
			var body struct{ Errors []registryError }
			require.NoError(t, json.Unmarshal(r.body, &body))
			require.Len(t, body.Errors, 1)
			assert.Equal(t, "UNAUTHORIZED", body.Errors[0].Code)
			assert.NotEmpty(t, body.Errors[0].Message)
			assert.False(t, strings.Contains(string(r.body), good), "the refusal does not echo the good credential")
		})
	}
	t.Run("unknown service", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, sb.Registry.URL()+"/token?service=docker.io&scope=repository:a:pull", nil)
		require.NoError(t, err)
		req.SetBasicAuth("_token", good)
		assert.Equal(t, http.StatusBadRequest, do(t, req).status)
	})
}

func TestRealmOAuthPasswordGrant(t *testing.T) {
	t.Parallel()
	sb := start(t)
	good := exchangeSA(t, sb, "build", "builder")
	post := func(form url.Values) response {
		req, err := http.NewRequest(http.MethodPost, sb.Registry.URL()+"/token", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return do(t, req)
	}
	r := post(url.Values{"grant_type": {"password"}, "username": {"_token"}, "password": {good},
		"service": {"cgr.dev"}, "scope": {"repository:a:pull"}, "client_id": {"containerd-client"}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	// containerd falls back to GET with Basic on a 400.
	r = post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {good}, "service": {"cgr.dev"}})
	assert.Equal(t, http.StatusBadRequest, r.status)
}

func TestRealmTokenScopeIsEnforced(t *testing.T) {
	t.Parallel()
	sb := start(t)
	_, err := sb.Registry.PushRandomImage("a", "latest")
	require.NoError(t, err)
	_, err = sb.Registry.PushRandomImage("b", "latest")
	require.NoError(t, err)
	r := realmToken(t, sb, "_token", exchangeSA(t, sb, "build", "builder"), "repository:a:pull")
	require.Equal(t, http.StatusOK, r.status)
	var tr tokenResponse
	require.NoError(t, json.Unmarshal(r.body, &tr))

	call := func(method, path, bearer string) response {
		req, err := http.NewRequest(method, sb.Registry.URL()+path, nil)
		require.NoError(t, err)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		return do(t, req)
	}
	assert.Equal(t, http.StatusOK, call(http.MethodGet, "/v2/", tr.Token).status)
	assert.Equal(t, http.StatusOK, call(http.MethodHead, "/v2/a/manifests/latest", tr.Token).status)
	assert.Equal(t, http.StatusOK, call(http.MethodGet, "/v2/a/manifests/latest", tr.Token).status)

	denied := call(http.MethodGet, "/v2/b/manifests/latest", tr.Token)
	assert.Equal(t, http.StatusUnauthorized, denied.status)
	assert.Contains(t, denied.header.Get("WWW-Authenticate"), `scope="repository:b:pull",error="insufficient_scope"`)

	bad := call(http.MethodGet, "/v2/", "not-a-token")
	assert.Equal(t, http.StatusUnauthorized, bad.status)
	assert.Contains(t, bad.header.Get("WWW-Authenticate"), `error="invalid_token"`)

	// An STS token is not a registry token.
	assert.Equal(t, http.StatusUnauthorized, call(http.MethodGet, "/v2/", exchangeSA(t, sb, "build", "builder")).status)

	// Writes are refused through the front, with or without a token.
	assert.Equal(t, http.StatusForbidden, call(http.MethodDelete, "/v2/a/manifests/latest", tr.Token).status)
	assert.Equal(t, http.StatusForbidden, call(http.MethodPost, "/v2/a/blobs/uploads/", tr.Token).status)
	anon := call(http.MethodPost, "/v2/a/blobs/uploads/", "")
	assert.Equal(t, http.StatusUnauthorized, anon.status)
	assert.Contains(t, anon.header.Get("WWW-Authenticate"), `scope="repository:a:pull,push"`)
	assert.Equal(t, http.StatusUnauthorized, call(http.MethodGet, "/v2/_catalog", tr.Token).status)
}

func TestRegistryRefusesPushThroughFront(t *testing.T) {
	t.Parallel()
	sb := start(t)
	img, err := random.Image(256, 1)
	require.NoError(t, err)
	ref, err := name.ParseReference(sb.Registry.Host() + "/a:latest")
	require.NoError(t, err)
	err = remote.Write(ref, img, remote.WithAuth(tokenAuth(exchangeSA(t, sb, "build", "builder"))))
	require.Error(t, err)
}

func TestResourceOf(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]resource{
		"/v2/":                               {},
		"/v2":                                {},
		"/v2/_catalog":                       {"registry", "catalog"},
		"/v2/a/manifests/latest":             {"repository", "a"},
		"/v2/a/b/manifests/sha256:abc":       {"repository", "a/b"},
		"/v2/x/manifests/y/manifests/latest": {"repository", "x/manifests/y"},
		"/v2/a/blobs/uploads/":               {"repository", "a"},
		"/v2/a/blobs/uploads/123":            {"repository", "a"},
		"/v2/a/tags/list":                    {"repository", "a"},
		"/v2/a/referrers/sha256:abc":         {"repository", "a"},
		"/v2/unknown":                        {},
	} {
		assert.Equal(t, want, resourceOf(path), path)
	}
}

func TestPushRandomImageValidates(t *testing.T) {
	t.Parallel()
	sb := start(t)
	_, err := sb.Registry.PushRandomImage("", "latest")
	assert.Error(t, err)
	_, err = sb.Registry.PushRandomImage("a", "")
	assert.Error(t, err)
	_, err = sb.Registry.PushRandomImage("UPPER", "latest")
	assert.Error(t, err)
}

// TestConcurrentPulls is the load the product sees: many processes
// exchanging and pulling at once.
func TestConcurrentPulls(t *testing.T) {
	t.Parallel()
	sb := start(t)
	want, err := sb.Registry.PushRandomImage("chainguard/static", "latest")
	require.NoError(t, err)
	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			amb, err := sb.Issuer.MintServiceAccountToken("ns", fmt.Sprintf("sa-%d", i))
			if !assert.NoError(t, err) {
				return
			}
			r := postExchange(t, sb.STS, amb, registryForm())
			if !assert.Equal(t, http.StatusOK, r.status) {
				return
			}
			var e exchangeResponse
			assert.NoError(t, json.Unmarshal(r.body, &e))
			got, err := pull(t, sb, "chainguard/static", tokenAuth(e.Token))
			assert.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
	wg.Wait()
	assert.Equal(t, n, sb.STS.Exchanges())
	assert.GreaterOrEqual(t, sb.Registry.TokenRequests(), n)
}
