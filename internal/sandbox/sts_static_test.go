package sandbox

import (
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jwksOf fetches an issuer's JWKS as `kubectl get --raw /openid/v1/jwks`
// prints it for a cluster.
func jwksOf(t *testing.T, iss *Issuer) string {
	t.Helper()
	resp, err := http.Get(iss.URL() + "/openid/v1/jwks")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// A cluster whose issuer is not reachable: identities carry its JWKS, and
// tokens are verified against those keys without any fetch.
func TestStaticIssuerKeys(t *testing.T) {
	t.Parallel()
	iss, err := NewIssuer()
	require.NoError(t, err)
	keys := jwksOf(t, iss)
	// From here on the issuer serves nothing, like a private cluster: only
	// the static keys can verify its tokens.
	iss.Close()

	sts, err := NewSTS()
	require.NoError(t, err)
	t.Cleanup(sts.Close)
	const alpha, beta = "group/alpha", "group/beta"
	sts.AddIdentity(alpha, Identity{Issuer: iss.URL(), SubjectPattern: "system:serviceaccount:team:alpha", IssuerKeys: keys})
	sts.AddIdentity(beta, Identity{Issuer: iss.URL(), SubjectPattern: "system:serviceaccount:team:beta", IssuerKeys: keys})

	form := func(id string) url.Values { return url.Values{"aud": {RegistryAudience}, "identity": {id}} }
	tokA, err := iss.MintServiceAccountToken("team", "alpha")
	require.NoError(t, err)
	tokB, err := iss.MintServiceAccountToken("team", "beta")
	require.NoError(t, err)

	e := postExchange(t, sts, tokA, form(alpha)).token(t)
	sub, err := sts.VerifyToken(e.Token, RegistryAudience)
	require.NoError(t, err)
	assert.Equal(t, alpha, sub)
	postExchange(t, sts, tokB, form(beta)).token(t)
	assert.Equal(t, []Issued{
		{Identity: alpha, Issuer: iss.URL(), Subject: "system:serviceaccount:team:alpha"},
		{Identity: beta, Issuer: iss.URL(), Subject: "system:serviceaccount:team:beta"},
	}, sts.Issued())

	// The subject still decides: alpha's token may not assume beta.
	r := postExchange(t, sts, tokA, form(beta))
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Contains(t, r.rpc(t).Message, "may not assume identity")

	// A forged signature fails for real.
	r = postExchange(t, sts, tokA[:len(tokA)-4]+"AAAA", form(alpha))
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, r.rpc(t).Message, "token signature is invalid")

	// The cluster rotates its signing key; the identities still hold the
	// old set, so the new tokens cannot be verified, and the message names
	// the key id and what to update.
	require.NoError(t, iss.RotateKey())
	rotated, err := iss.MintServiceAccountToken("team", "alpha")
	require.NoError(t, err)
	h, _ := decodeJWT(t, rotated)
	newKid := h["kid"].(string)
	r = postExchange(t, sts, rotated, form(alpha))
	assert.Equal(t, http.StatusUnauthorized, r.status)
	msg := r.rpc(t).Message
	assert.Contains(t, msg, `key id "`+newKid+`" not found in the issuer keys of identity `+alpha+` (issuer "`+iss.URL()+`")`, "names the requested identity only")
	assert.NotContains(t, msg, beta)
	assert.Contains(t, msg, "update the identity's issuer keys")
	assert.Contains(t, msg, "/openid/v1/jwks")
	assert.NotContains(t, msg, rotated)
	assert.Len(t, sts.Issued(), 2, "nothing issued after the rotation")

	// Updating alpha with the new JWKS (which, as during a real rotation,
	// still holds the old key too) makes it work again; beta still has the
	// old keys only.
	iss2 := reopen(t, iss)
	sts.AddIdentity(alpha, Identity{Issuer: iss.URL(), SubjectPattern: "system:serviceaccount:team:alpha", IssuerKeys: jwksOf(t, iss2)})
	postExchange(t, sts, rotated, form(alpha)).token(t)
	rotatedB, err := iss.MintServiceAccountToken("team", "beta")
	require.NoError(t, err)
	r = postExchange(t, sts, rotatedB, form(beta))
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, r.rpc(t).Message, `not found in the issuer keys of identity `+beta)
	// Without an identity parameter the first identity whose subject
	// matches is chosen; beta's subject matches only beta.
	r = postExchange(t, sts, rotatedB, url.Values{"aud": {RegistryAudience}})
	assert.Equal(t, http.StatusUnauthorized, r.status)

	// Without an identity parameter, a kid no identity holds names them all.
	require.NoError(t, iss.RotateKey())
	again, err := iss.MintServiceAccountToken("team", "alpha")
	require.NoError(t, err)
	r = postExchange(t, sts, again, url.Values{"aud": {RegistryAudience}})
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, r.rpc(t).Message, "not found in the issuer keys of identity "+alpha+", "+beta)
}

// reopen serves iss's current JWKS again on a new server (the original was
// closed), as if an admin ran kubectl get --raw /openid/v1/jwks after the
// rotation.
func reopen(t *testing.T, iss *Issuer) *Issuer {
	t.Helper()
	iss.mu.Lock()
	keys := append([]*keyPair(nil), iss.keys...)
	cur := iss.current
	iss.mu.Unlock()
	copyIss, err := NewIssuer()
	require.NoError(t, err)
	t.Cleanup(copyIss.Close)
	copyIss.mu.Lock()
	copyIss.keys, copyIss.current = keys, cur
	copyIss.mu.Unlock()
	return copyIss
}

// A static key set that is not a JWKS is the test's mistake.
func TestStaticIssuerKeysInvalid(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"not json", `{"keys":[]}`, `{"keys":[{"kty":"EC","kid":"x"}]}`, `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`} {
		_, err := ParseIssuerKeys(bad)
		assert.Error(t, err, bad)
	}
	sts, err := NewSTS()
	require.NoError(t, err)
	t.Cleanup(sts.Close)
	assert.Panics(t, func() { sts.AddIdentity("x", Identity{Issuer: "https://x", SubjectPattern: "s", IssuerKeys: "nope"}) })
}
