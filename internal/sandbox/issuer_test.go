package sandbox

import (
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newIssuer(t *testing.T) *Issuer {
	t.Helper()
	iss, err := NewIssuer()
	require.NoError(t, err)
	t.Cleanup(iss.Close)
	return iss
}

func get(t *testing.T, url string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	return do(t, req)
}

// issuerKeys fetches an issuer's keys the way a verifier does.
func issuerKeys(t *testing.T, base string) map[string]*rsa.PublicKey {
	t.Helper()
	c := newJWKSCache()
	keys, err := c.fetch(t.Context(), base)
	require.NoError(t, err)
	return keys
}

func TestIssuerDiscoveryAndJWKS(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+$`, iss.URL())

	r := get(t, iss.URL()+"/.well-known/openid-configuration")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	var d map[string]any
	require.NoError(t, json.Unmarshal(r.body, &d))
	assert.Equal(t, iss.URL(), d["issuer"])
	assert.Equal(t, iss.URL()+"/openid/v1/jwks", d["jwks_uri"])
	assert.Equal(t, []any{"RS256"}, d["id_token_signing_alg_values_supported"])
	assert.Equal(t, []any{"id_token"}, d["response_types_supported"])
	assert.Equal(t, []any{"public"}, d["subject_types_supported"])

	r = get(t, iss.URL()+"/openid/v1/jwks")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "application/jwk-set+json", r.header.Get("Content-Type"))
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(r.body, &set))
	require.Len(t, set.Keys, 1)
	k := set.Keys[0]
	assert.ElementsMatch(t, []string{"kty", "kid", "use", "alg", "n", "e"}, stringKeys(k))
	assert.Equal(t, "RSA", k["kty"])
	assert.Equal(t, "sig", k["use"])
	assert.Equal(t, "RS256", k["alg"])
	assert.Equal(t, "AQAB", k["e"])
	assert.NotEmpty(t, k["kid"])
	assert.Len(t, k["n"], 342, "2048-bit modulus, base64url without padding")

	// The served key verifies what the issuer mints.
	tok, err := iss.MintServiceAccountToken("default", "default")
	require.NoError(t, err)
	h, _ := decodeJWT(t, tok)
	assert.Equal(t, k["kid"], h["kid"])
	pub := issuerKeys(t, iss.URL())[k["kid"]]
	require.NotNil(t, pub)
	_, err = jwt.Parse(tok, func(*jwt.Token) (any, error) { return pub, nil }, jwt.WithAudience(EnforceAudience))
	require.NoError(t, err)
}

func TestMintServiceAccountTokenClaims(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	before := time.Now().Truncate(time.Second)
	tok, err := iss.MintServiceAccountToken("build", "builder")
	require.NoError(t, err)

	h, c := decodeJWT(t, tok)
	assert.Equal(t, map[string]any{"alg": "RS256", "kid": h["kid"]}, h, "kube-apiserver headers carry alg and kid only")
	assert.NotEmpty(t, h["kid"])

	assert.ElementsMatch(t, []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "kubernetes.io"}, keys(c))
	assert.Equal(t, iss.URL(), c["iss"])
	assert.Equal(t, "system:serviceaccount:build:builder", c["sub"])
	assert.Equal(t, []any{EnforceAudience}, c["aud"], "Kubernetes always sends aud as an array")
	iat := int64(c["iat"].(float64))
	assert.GreaterOrEqual(t, iat, before.Unix())
	assert.LessOrEqual(t, iat, time.Now().Unix())
	assert.Equal(t, float64(iat), c["nbf"])
	assert.Equal(t, float64(iat+3600), c["exp"])
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	assert.Regexp(t, uuidRE, c["jti"])

	k8s := c["kubernetes.io"].(map[string]any)
	assert.ElementsMatch(t, []string{"namespace", "serviceaccount", "pod", "node"}, keys(k8s))
	assert.Equal(t, "build", k8s["namespace"])
	sa := k8s["serviceaccount"].(map[string]any)
	assert.Equal(t, "builder", sa["name"])
	assert.Regexp(t, uuidRE, sa["uid"])
	pod := k8s["pod"].(map[string]any)
	assert.Regexp(t, `^builder-[0-9a-f]{10}-[0-9a-f]{5}$`, pod["name"])
	assert.Regexp(t, uuidRE, pod["uid"])
	node := k8s["node"].(map[string]any)
	assert.Equal(t, "sandbox-node-0", node["name"])
	assert.Regexp(t, uuidRE, node["uid"])

	// A second token of the same service account: same uids, new jti.
	tok2, err := iss.MintServiceAccountToken("build", "builder")
	require.NoError(t, err)
	_, c2 := decodeJWT(t, tok2)
	assert.Equal(t, c["kubernetes.io"], c2["kubernetes.io"])
	assert.NotEqual(t, c["jti"], c2["jti"])
	// Another service account: another uid.
	tok3, err := iss.MintServiceAccountToken("build", "other")
	require.NoError(t, err)
	_, c3 := decodeJWT(t, tok3)
	assert.NotEqual(t, sa["uid"], c3["kubernetes.io"].(map[string]any)["serviceaccount"].(map[string]any)["uid"])
}

func TestMintServiceAccountTokenOptions(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tok, err := iss.MintServiceAccountToken("ns", "sa",
		WithAudience("a", "b"), WithLifetime(10*time.Minute), WithIssuedAt(at))
	require.NoError(t, err)
	_, c := decodeJWT(t, tok)
	assert.Equal(t, []any{"a", "b"}, c["aud"])
	assert.Equal(t, float64(at.Unix()), c["iat"])
	assert.Equal(t, float64(at.Unix()), c["nbf"])
	assert.Equal(t, float64(at.Add(10*time.Minute).Unix()), c["exp"])

	for _, bad := range [][2]string{{"", "sa"}, {"ns", ""}, {"a:b", "sa"}} {
		_, err := iss.MintServiceAccountToken(bad[0], bad[1])
		assert.Error(t, err, "%q", bad)
	}
}

func TestIssuerRotateKeyKeepsOldKeys(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	old, err := iss.MintServiceAccountToken("ns", "sa")
	require.NoError(t, err)
	require.NoError(t, iss.RotateKey())
	fresh, err := iss.MintServiceAccountToken("ns", "sa")
	require.NoError(t, err)
	ho, _ := decodeJWT(t, old)
	hf, _ := decodeJWT(t, fresh)
	assert.NotEqual(t, ho["kid"], hf["kid"])
	keys := issuerKeys(t, iss.URL())
	assert.Len(t, keys, 2)
	assert.Contains(t, keys, ho["kid"])
	assert.Contains(t, keys, hf["kid"])
}

func TestActionsTokenEndpoint(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	assert.Equal(t, iss.URL()+"/actions/token?api-version=2.0", iss.ActionsRequestURL())
	assert.Len(t, iss.ActionsRequestToken(), 64)

	call := func(url, bearer string) response {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		return do(t, req)
	}

	t.Run("good bearer", func(t *testing.T) {
		r := call(iss.ActionsRequestURL()+"&audience="+EnforceAudience, iss.ActionsRequestToken())
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		var v struct {
			Value string `json:"value"`
		}
		require.NoError(t, json.Unmarshal(r.body, &v))
		h, c := decodeJWT(t, v.Value)
		assert.Equal(t, "RS256", h["alg"])
		assert.Equal(t, EnforceAudience, c["aud"], "GitHub sends a single aud as a string")
		assert.Equal(t, "repo:octo-org/octo-repo:ref:refs/heads/main", c["sub"])
		assert.Equal(t, iss.URL(), c["iss"])
		assert.Equal(t, "octo-org/octo-repo", c["repository"])
		assert.Equal(t, "refs/heads/main", c["ref"])
		for _, k := range []string{"exp", "iat", "nbf", "jti", "job_workflow_ref", "run_id", "actor"} {
			assert.Contains(t, c, k)
		}
		// It verifies against the issuer's JWKS.
		pub := issuerKeys(t, iss.URL())[h["kid"].(string)]
		_, err := jwt.Parse(v.Value, func(*jwt.Token) (any, error) { return pub, nil },
			jwt.WithAudience(EnforceAudience), jwt.WithIssuer(iss.URL()), jwt.WithExpirationRequired())
		require.NoError(t, err)
	})
	t.Run("default audience", func(t *testing.T) {
		r := call(iss.ActionsRequestURL(), iss.ActionsRequestToken())
		require.Equal(t, http.StatusOK, r.status)
		var v struct{ Value string }
		require.NoError(t, json.Unmarshal(r.body, &v))
		_, c := decodeJWT(t, v.Value)
		assert.Equal(t, "https://github.com/octo-org", c["aud"])
	})
	t.Run("bad bearer", func(t *testing.T) {
		assert.Equal(t, http.StatusUnauthorized, call(iss.ActionsRequestURL()+"&audience=x", "wrong").status)
		assert.Equal(t, http.StatusUnauthorized, call(iss.ActionsRequestURL()+"&audience=x", "").status)
	})
}

func stringKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
