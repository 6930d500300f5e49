package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mint(t *testing.T, iss *Issuer, opts ...TokenOption) string {
	t.Helper()
	tok, err := iss.MintServiceAccountToken("build", "builder", opts...)
	require.NoError(t, err)
	return tok
}

func TestExchangeIssuesVerifiableToken(t *testing.T) {
	t.Parallel()
	sb := start(t)
	before := time.Now().Truncate(time.Second)
	e := postExchange(t, sb.STS, mint(t, sb.Issuer), registryForm()).token(t)

	h, c := decodeJWT(t, e.Token)
	assert.Equal(t, "RS256", h["alg"])
	assert.Equal(t, sb.STS.key.kid, h["kid"])
	assert.ElementsMatch(t, []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "act"}, keys(c))
	assert.Equal(t, sb.STS.URL(), c["iss"])
	assert.Equal(t, DefaultIdentity, c["sub"])
	assert.Equal(t, []any{RegistryAudience}, c["aud"])
	iat := int64(c["iat"].(float64))
	assert.GreaterOrEqual(t, iat, before.Unix())
	assert.Equal(t, float64(iat), c["nbf"])
	assert.Equal(t, float64(iat+3600), c["exp"])
	assert.Equal(t, map[string]any{"iss": sb.Issuer.URL(), "sub": "system:serviceaccount:build:builder"}, c["act"])

	var raw map[string]any
	require.NoError(t, jsonUnmarshal(postExchange(t, sb.STS, mint(t, sb.Issuer), registryForm()).body, &raw))
	assert.ElementsMatch(t, []string{"token", "refresh_token", "expiry"}, keys(raw))
	exp, err := time.Parse(time.RFC3339, e.Expiry)
	require.NoError(t, err)
	assert.Equal(t, iat+3600, exp.Unix())

	sub, err := sb.STS.VerifyToken(e.Token, RegistryAudience)
	require.NoError(t, err)
	assert.Equal(t, DefaultIdentity, sub)
	_, err = sb.STS.VerifyToken(e.Token, "other.example")
	assert.Error(t, err, "wrong audience")
	_, err = sb.STS.VerifyToken(e.Token[:len(e.Token)-4]+"AAAA", RegistryAudience)
	assert.Error(t, err, "tampered signature")

	// The STS publishes its own keys, and they verify its tokens.
	pub := issuerKeys(t, sb.STS.URL())[sb.STS.key.kid]
	require.NotNil(t, pub)
	_, err = jwt.Parse(e.Token, func(*jwt.Token) (any, error) { return pub, nil }, jwt.WithAudience(RegistryAudience))
	require.NoError(t, err)
}

func TestExchangeParameters(t *testing.T) {
	t.Parallel()
	sb := start(t)
	amb := mint(t, sb.Issuer)
	send := func(method, query, body, contentType string) response {
		req, err := http.NewRequest(method, sb.STS.URL()+"/sts/exchange?"+query, strings.NewReader(body))
		require.NoError(t, err)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		req.Header.Set("Authorization", "Bearer "+amb)
		return do(t, req)
	}
	q := registryForm().Encode()
	const form = "application/x-www-form-urlencoded"

	t.Run("form body", func(t *testing.T) { send(http.MethodPost, "", q, form).token(t) })
	t.Run("query on POST", func(t *testing.T) { send(http.MethodPost, q, "", "").token(t) })
	t.Run("query on GET", func(t *testing.T) { send(http.MethodGet, q, "", "").token(t) })
	t.Run("repeated aud", func(t *testing.T) {
		e := send(http.MethodPost, "", "aud=cgr.dev&aud=other.example&identity="+url.QueryEscape(DefaultIdentity), form).token(t)
		_, c := decodeJWT(t, e.Token)
		assert.Equal(t, []any{"cgr.dev", "other.example"}, c["aud"])
	})
	t.Run("optional parameters accepted", func(t *testing.T) {
		send(http.MethodPost, "", q+"&scopes=registry.pull&cap=registry.pull&identity_provider=x", form).token(t)
	})
	t.Run("JSON body is not read", func(t *testing.T) {
		r := send(http.MethodPost, "", `{"aud":"cgr.dev","identity":"`+DefaultIdentity+`"}`, "application/json")
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Equal(t, 3, r.rpc(t).Code)
		assert.Empty(t, sb.STS.LastRequest().Body, "only form bodies are recorded")
	})
	t.Run("missing aud", func(t *testing.T) {
		r := send(http.MethodPost, "", "identity="+url.QueryEscape(DefaultIdentity), form)
		assert.Equal(t, http.StatusBadRequest, r.status)
		s := r.rpc(t)
		assert.Equal(t, 3, s.Code)
		assert.Contains(t, s.Message, "aud")
	})
	t.Run("without identity the first match is used", func(t *testing.T) {
		e := send(http.MethodPost, "", "aud=cgr.dev", form).token(t)
		_, c := decodeJWT(t, e.Token)
		assert.Equal(t, DefaultIdentity, c["sub"])
	})
	t.Run("other method", func(t *testing.T) {
		r := send(http.MethodPut, q, "", "")
		assert.Equal(t, http.StatusMethodNotAllowed, r.status)
		assert.Equal(t, 12, r.rpc(t).Code)
	})
}

func TestExchangeRejections(t *testing.T) {
	t.Parallel()
	sb := start(t)
	sb.STS.AddIdentity("deployer", Identity{Issuer: sb.Issuer.URL(), SubjectPattern: "system:serviceaccount:prod:deployer"})
	sub := "system:serviceaccount:build:builder"

	// forged has the issuer's iss and kid but another key's signature.
	other, err := newKeyPair()
	require.NoError(t, err)
	var claims jwt.MapClaims
	_, _, err = jwt.NewParser().ParseUnverified(mint(t, sb.Issuer), &claims)
	require.NoError(t, err)
	forged, err := (&keyPair{priv: other.priv, kid: sb.Issuer.signingKey().kid}).sign(claims, nil)
	require.NoError(t, err)

	hmac := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	hmac.Header["kid"] = sb.Issuer.signingKey().kid
	hs256, err := hmac.SignedString([]byte("shared secret"))
	require.NoError(t, err)

	stranger := newIssuer(t) // trusted by no identity
	strangerTok, err := stranger.MintServiceAccountToken("build", "builder")
	require.NoError(t, err)

	for _, tc := range []struct {
		name     string
		bearer   string
		form     url.Values
		status   int
		code     int
		contains []string
	}{
		{"no bearer", "", registryForm(), 401, 16, []string{"bearer"}},
		{"not a JWT", "garbage", registryForm(), 401, 16, []string{"JWT"}},
		{"wrong signature", forged, registryForm(), 401, 16, []string{"signature"}},
		{"HS256 instead of RS256", hs256, registryForm(), 401, 16, []string{"signature"}},
		{"expired", mint(t, sb.Issuer, WithIssuedAt(time.Now().Add(-2*time.Hour))), registryForm(), 401, 16, []string{"expired"}},
		{"not yet valid", mint(t, sb.Issuer, WithIssuedAt(time.Now().Add(time.Hour))), registryForm(), 401, 16, []string{"not valid before"}},
		{"wrong audience", mint(t, sb.Issuer, WithAudience("sts.amazonaws.com")), registryForm(), 401, 16, []string{"sts.amazonaws.com", EnforceAudience}},
		{"unknown identity", mint(t, sb.Issuer), url.Values{"aud": {"cgr.dev"}, "identity": {"nope"}}, 404, 5, []string{"identity nope not found"}},
		{"subject mismatch", mint(t, sb.Issuer), url.Values{"aud": {"cgr.dev"}, "identity": {"deployer"}}, 403, 7, []string{sb.Issuer.URL(), sub, "deployer"}},
		{"untrusted issuer", strangerTok, registryForm(), 403, 7, []string{stranger.URL(), sub}},
		{"untrusted issuer, no identity", strangerTok, url.Values{"aud": {"cgr.dev"}}, 403, 7, []string{stranger.URL(), sub}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := postExchange(t, sb.STS, tc.bearer, tc.form)
			require.Equal(t, tc.status, r.status, "%s", r.body)
			s := r.rpc(t)
			assert.Equal(t, tc.code, s.Code)
			for _, want := range tc.contains {
				assert.Contains(t, s.Message, want)
			}
			if tc.bearer != "" {
				// A bool: a failing NotContains would print the token.
				assert.False(t, strings.Contains(s.Message, tc.bearer), "errors never echo the token")
			}
		})
	}
	assert.Equal(t, 0, sb.STS.Exchanges())
}

func TestExchangeFollowsKeyRotation(t *testing.T) {
	t.Parallel()
	sb := start(t)
	postExchange(t, sb.STS, mint(t, sb.Issuer), registryForm()).token(t) // caches the JWKS
	require.NoError(t, sb.Issuer.RotateKey())
	postExchange(t, sb.STS, mint(t, sb.Issuer), registryForm()).token(t) // new kid: refetch
}

func TestTokenLifetime(t *testing.T) {
	t.Parallel()
	sb := start(t)
	sb.STS.SetTokenLifetime(2 * time.Minute)
	e := postExchange(t, sb.STS, mint(t, sb.Issuer), registryForm()).token(t)
	_, c := decodeJWT(t, e.Token)
	assert.Equal(t, c["iat"].(float64)+120, c["exp"])

	sb.STS.SetTokenLifetime(-time.Minute)
	e = postExchange(t, sb.STS, mint(t, sb.Issuer), registryForm()).token(t)
	_, err := sb.STS.VerifyToken(e.Token, RegistryAudience)
	assert.ErrorIs(t, err, jwt.ErrTokenExpired)
}

func TestFaultsAreFIFOThenNormal(t *testing.T) {
	t.Parallel()
	sb := start(t)
	amb := mint(t, sb.Issuer)
	sb.STS.InjectFaults(
		Fault{Status: http.StatusServiceUnavailable, Message: "backend is down"},
		Fault{Status: http.StatusTooManyRequests, RetryAfter: "2"},
		Fault{Delay: 300 * time.Millisecond},
		Fault{Status: http.StatusOK, Body: "<html>not json</html>"},
		Fault{Status: http.StatusForbidden, Code: 9, Message: "custom code"},
	)

	r := postExchange(t, sb.STS, amb, registryForm())
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, grpcStatus{Code: 14, Message: "backend is down", Details: []any{}}, r.rpc(t))

	r = postExchange(t, sb.STS, amb, registryForm())
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, "2", r.header.Get("Retry-After"))
	assert.Equal(t, grpcStatus{Code: 8, Message: "Too Many Requests", Details: []any{}}, r.rpc(t))

	began := time.Now()
	postExchange(t, sb.STS, amb, registryForm()).token(t)
	assert.GreaterOrEqual(t, time.Since(began), 300*time.Millisecond)

	r = postExchange(t, sb.STS, amb, registryForm())
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "<html>not json</html>", string(r.body))

	r = postExchange(t, sb.STS, amb, registryForm())
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, 9, r.rpc(t).Code)

	postExchange(t, sb.STS, amb, registryForm()).token(t) // queue drained: normal again
	assert.Equal(t, 6, sb.STS.Requests())
	assert.Equal(t, 2, sb.STS.Exchanges())
}

func TestFaultHeaderAndNoBody(t *testing.T) {
	t.Parallel()
	sb := start(t)
	amb := mint(t, sb.Issuer)
	sb.STS.InjectFaults(
		Fault{Status: http.StatusFound, Header: map[string]string{"Location": "http://elsewhere.example/sts/exchange"}},
		Fault{Status: http.StatusOK, Body: "nope", Header: map[string]string{"content-type": "text/plain; charset=x"}},
		Fault{Status: http.StatusTooManyRequests, RetryAfter: "3", Header: map[string]string{"Retry-After": "9", "X-Proxy": "lb"}},
		Fault{Status: http.StatusServiceUnavailable, NoBody: true, Body: "ignored"},
		Fault{Header: map[string]string{"X-Proxy": "lb", "Content-Type": "text/plain"}},
	)

	// http.DefaultClient would follow the redirect; look at the 302 itself.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest(http.MethodPost, sb.STS.URL()+"/sts/exchange", strings.NewReader(registryForm().Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+amb)
	resp, err := noFollow.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, "http://elsewhere.example/sts/exchange", resp.Header.Get("Location"))

	r := postExchange(t, sb.STS, amb, registryForm())
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "text/plain; charset=x", r.header.Get("Content-Type"), "header names are canonicalised")
	assert.Equal(t, "nope", string(r.body))

	r = postExchange(t, sb.STS, amb, registryForm())
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, "3", r.header.Get("Retry-After"), "RetryAfter wins over Header")
	assert.Equal(t, "lb", r.header.Get("X-Proxy"))
	assert.Equal(t, 8, r.rpc(t).Code, "without Body the answer is still grpc-gateway JSON")

	r = postExchange(t, sb.STS, amb, registryForm())
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Empty(t, r.body)

	// Status 0: the headers go on the normal answer, which keeps its own
	// Content-Type.
	r = postExchange(t, sb.STS, amb, registryForm())
	r.token(t)
	assert.Equal(t, "lb", r.header.Get("X-Proxy"))
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))

	assert.Equal(t, 5, sb.STS.Requests())
	assert.Equal(t, 1, sb.STS.Exchanges())
}

func TestFaultCodeMapping(t *testing.T) {
	t.Parallel()
	for status, code := range map[int]int{400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 500: 13, 502: 14, 503: 14, 504: 4, 418: 2} {
		assert.Equal(t, code, grpcCode(status), "status %d", status)
	}
}

func TestFaultDelayEndsWithClientOrClose(t *testing.T) {
	t.Parallel()
	sts, err := NewSTS()
	require.NoError(t, err)
	sts.InjectFaults(Fault{Delay: time.Minute}, Fault{Delay: time.Minute})

	// A client that gives up does not keep the handler sleeping. It gives up
	// once the STS holds its request: a fixed client timeout could run out
	// before the request arrives when the machine is busy.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		defer cancel()
		assert.Eventually(t, func() bool { return sts.Requests() >= 1 || ctx.Err() != nil }, 30*time.Second, 10*time.Millisecond)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sts.URL()+"/sts/exchange", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err)

	// Close cuts short a pending delay instead of waiting a minute.
	go func() {
		req, _ := http.NewRequest(http.MethodPost, sts.URL()+"/sts/exchange", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	require.Eventually(t, func() bool { return sts.Requests() == 2 }, 5*time.Second, 10*time.Millisecond)
	began := time.Now()
	sts.Close()
	assert.Less(t, time.Since(began), 5*time.Second)
}

func TestLastRequestAndCountersUnderConcurrency(t *testing.T) {
	t.Parallel()
	sb := start(t)
	none := sb.STS.LastRequest()
	assert.Empty(t, none.Method)
	assert.Empty(t, none.Form)

	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			amb, err := sb.Issuer.MintServiceAccountToken("ns", fmt.Sprintf("sa-%d", i))
			if !assert.NoError(t, err) {
				return
			}
			r := postExchange(t, sb.STS, amb, registryForm())
			assert.Equal(t, http.StatusOK, r.status, "%s", r.body)
		})
	}
	wg.Wait()
	assert.Equal(t, n, sb.STS.Requests())
	assert.Equal(t, n, sb.STS.Exchanges())

	amb := mint(t, sb.Issuer)
	postExchange(t, sb.STS, amb, registryForm()).token(t)
	last := sb.STS.LastRequest()
	assert.Equal(t, http.MethodPost, last.Method)
	assert.Equal(t, "application/x-www-form-urlencoded", last.ContentType)
	assert.Equal(t, "sandbox-test/1.0", last.UserAgent)
	assert.Equal(t, "application/json", last.Accept)
	assert.Equal(t, registryForm(), last.Form)
	assert.Equal(t, registryForm(), last.PostForm)
	assert.Equal(t, registryForm().Encode(), last.Body)
	assert.True(t, last.Bearer)
	assert.False(t, strings.Contains(fmt.Sprintf("%#v", last), amb), "the token is never recorded")

	// The record is a copy: changing it does not change the STS's.
	last.Form.Set("aud", "changed")
	assert.Equal(t, RegistryAudience, sb.STS.LastRequest().Form.Get("aud"))

	postExchange(t, sb.STS, "", url.Values{"aud": {"x"}})
	assert.False(t, sb.STS.LastRequest().Bearer)
	assert.Equal(t, n+2, sb.STS.Requests())
	assert.Equal(t, n+1, sb.STS.Exchanges())
}

func TestGitHubActionsTokenExchanges(t *testing.T) {
	t.Parallel()
	sb := start(t)
	sb.STS.AddIdentity("gh", Identity{Issuer: sb.Issuer.URL(), SubjectPattern: `repo:octo-org/octo-repo:ref:refs/heads/.+`})
	r := get(t, sb.Issuer.ActionsRequestURL()+"&audience="+EnforceAudience) // no bearer
	require.Equal(t, http.StatusUnauthorized, r.status)

	req, err := http.NewRequest(http.MethodGet, sb.Issuer.ActionsRequestURL()+"&audience="+EnforceAudience, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+sb.Issuer.ActionsRequestToken())
	r = do(t, req)
	require.Equal(t, http.StatusOK, r.status)
	var v struct{ Value string }
	require.NoError(t, jsonUnmarshal(r.body, &v))

	e := postExchange(t, sb.STS, v.Value, url.Values{"aud": {RegistryAudience}, "identity": {"gh"}}).token(t)
	sub, err := sb.STS.VerifyToken(e.Token, RegistryAudience)
	require.NoError(t, err)
	assert.Equal(t, "gh", sub)
	// The Kubernetes-only default identity refuses it.
	assert.Equal(t, http.StatusForbidden, postExchange(t, sb.STS, v.Value, registryForm()).status)
}
