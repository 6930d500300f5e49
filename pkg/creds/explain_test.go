package creds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// requireOneLine fails if msg could forge or flood a log line.
func requireOneLine(t *testing.T, msg string) {
	t.Helper()
	require.False(t, strings.ContainsAny(msg, "\r\n"), "the error is one line")
	require.LessOrEqual(t, len(msg), 4096, "the error is length-capped")
}

// TestErrorClasses: each failure lands in its own class, with the advice
// that applies to it and none that does not.
func TestErrorClasses(t *testing.T) {
	t.Parallel()
	allClasses := []error{ErrIdentityRejected, ErrSTSUnreachable, ErrSTSFailed, ErrIssuerMisconfigured, ErrClockSkew, ErrBadIdentity}
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, f *fixture)
		want     error
		has      []string
		hasNot   []string
		requests int
	}{
		{"404 without the STS's body", func(_ *testing.T, f *fixture) {
			f.sb.STS.InjectFaults(sandbox.Fault{Status: 404, Body: "404 page not found\n"})
		}, ErrIssuerMisconfigured, []string{"CHAINGUARD_ISSUER=", "does not look like the Chainguard STS"}, []string{"chainctl"}, 1},
		{"404 no route in the gateway", func(_ *testing.T, f *fixture) {
			f.sb.STS.InjectFaults(sandbox.Fault{Status: 404})
		}, ErrIssuerMisconfigured, []string{"does not look like the Chainguard STS"}, []string{"chainctl"}, 1},
		{"403 HTML page", func(_ *testing.T, f *fixture) {
			f.sb.STS.InjectFaults(sandbox.Fault{Status: 403, Body: "<html><head><title>Blocked</title></head></html>"})
		}, ErrIssuerMisconfigured, []string{"Blocked"}, []string{"chainctl"}, 1},
		{"302", func(_ *testing.T, f *fixture) {
			f.sb.STS.InjectFaults(sandbox.Fault{Status: 302, Header: map[string]string{"Location": "https://u:pw@login.example/"}})
		}, ErrIssuerMisconfigured, []string{`redirect to "https://login.example/"`}, []string{"chainctl", "pw@"}, 1},
		{"garbage 200", func(_ *testing.T, f *fixture) {
			f.sb.STS.InjectFaults(sandbox.Fault{Status: 200, Body: "<html>captive portal</html>"})
		}, ErrIssuerMisconfigured, []string{"not with a usable token"}, []string{"captive portal", "chainctl"}, 1},
		{"500", func(_ *testing.T, f *fixture) {
			f.sb.STS.InjectFaults(sandbox.Fault{Status: 500}, sandbox.Fault{Status: 500})
		}, ErrSTSFailed, []string{"500 Internal Server Error", "try again later"}, []string{"chainctl", "CHAINGUARD_ISSUER="}, 1},
		{"503 after retries", func(_ *testing.T, f *fixture) {
			for range 3 {
				f.sb.STS.InjectFaults(sandbox.Fault{Status: 503})
			}
		}, ErrSTSUnreachable, []string{"after retries"}, []string{"chainctl"}, 3},
		{"unreachable", func(_ *testing.T, f *fixture) {
			f.cfg.Issuer = "http://127.0.0.1:1"
		}, ErrSTSUnreachable, []string{"cannot reach the STS at http://127.0.0.1:1/sts/exchange", "; check CHAINGUARD_ISSUER and the network"}, []string{"chainctl"}, 0},
		{"403 from the STS", func(_ *testing.T, f *fixture) {
			f.sb.STS.InjectFaults(sandbox.Fault{Status: 403, Message: "no"})
		}, ErrIdentityRejected, []string{"chainctl iam identities create", "sub=system:serviceaccount:ns:sa"}, nil, 1},
		{"unknown identity", func(_ *testing.T, f *fixture) {
			f.cfg.Identity = "missing"
		}, ErrIdentityRejected, []string{`CHAINGUARD_IDENTITY ("missing") is the id of an existing identity`}, nil, 1},
		{"unknown identity id", func(_ *testing.T, f *fixture) {
			f.cfg.Identity = "720909c9f5279097d847ad02a2f24ba8f59de36a/0000000000000bad"
		}, ErrIdentityRejected, []string{`CHAINGUARD_IDENTITY ("720909c9f5279097d847ad02a2f24ba8f59de36a/0000000000000bad") is the id`}, []string{"value not shown"}, 1},
		{"an opaque token as the identity", func(_ *testing.T, f *fixture) {
			f.cfg.Identity = "ghp_0123456789abcdefghijABCDEFGHIJ012345"
		}, ErrIdentityRejected, []string{"CHAINGUARD_IDENTITY (value not shown: "}, []string{"ghp_0123", "(("}, 1},
		{"ambient token dated ahead of the STS", func(t *testing.T, f *fixture) {
			tok, err := f.sb.Issuer.MintServiceAccountToken("ns", "sa", sandbox.WithIssuedAt(time.Now().Add(10*time.Minute)))
			require.NoError(t, err)
			f.cfg.IdentityToken = tok
		}, ErrClockSkew, []string{"not valid before", "NTP"}, []string{"chainctl"}, 1},
		{"STS says expired, this clock says not", func(_ *testing.T, f *fixture) {
			f.sb.STS.InjectFaults(sandbox.Fault{Status: 401, Message: "unable to verify token: token expired at 2020-01-01T00:00:00Z"})
		}, ErrClockSkew, []string{"valid until", "NTP"}, []string{"chainctl"}, 1},
		{"issued token already expired", func(_ *testing.T, f *fixture) {
			f.sb.STS.SetTokenLifetime(-time.Minute)
		}, ErrClockSkew, []string{"expired at", "NTP"}, nil, 1},
		{"identity with a newline", func(_ *testing.T, f *fixture) {
			f.cfg.Identity = "abc\nE0101 forged"
		}, ErrBadIdentity, []string{"CHAINGUARD_IDENTITY", `'\n'`}, []string{"forged"}, 0},
		{"identity that is a token", func(_ *testing.T, f *fixture) {
			f.cfg.Identity = f.ambient
		}, ErrBadIdentity, []string{"looks like a JWT"}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tc.setup(t, f)
			_, _, err := f.helper(t).Get(f.host)
			require.Error(t, err)
			msg := err.Error()
			assert.False(t, strings.Contains(msg, f.ambient), "leaked the ambient token")
			assert.False(t, strings.Contains(msg, f.cfg.IdentityToken), "leaked the ambient token in use")
			requireOneLine(t, msg)
			require.ErrorIs(t, err, tc.want)
			for _, other := range allClasses {
				if !errors.Is(tc.want, other) {
					assert.False(t, errors.Is(err, other), "also in class %q", other)
				}
			}
			for _, s := range tc.has {
				assert.Contains(t, msg, s)
			}
			for _, s := range tc.hasNot {
				assert.NotContains(t, msg, s)
			}
			assert.Equal(t, tc.requests, f.sb.STS.Requests())
			t.Log(msg)
		})
	}
}

func TestCheckIssued(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ok := exchange.Token{Expiry: now.Add(time.Hour), IssuedAt: now}
	assert.NoError(t, checkIssued(ok, now))
	ok.IssuedAt = now.Add(Margin) // within the margin: tolerated
	assert.NoError(t, checkIssued(ok, now))
	ok.IssuedAt = time.Time{} // no iat: nothing to judge by
	assert.NoError(t, checkIssued(ok, now))

	for name, tok := range map[string]exchange.Token{
		"expired":            {Expiry: now.Add(-time.Second), IssuedAt: now.Add(-time.Hour)},
		"expires now":        {Expiry: now},
		"issued in 2 hours":  {Expiry: now.Add(3 * time.Hour), IssuedAt: now.Add(2 * time.Hour)},
		"issued in 6 minute": {Expiry: now.Add(time.Hour), IssuedAt: now.Add(6 * time.Minute)},
	} {
		err := checkIssued(tok, now)
		require.ErrorIs(t, err, ErrClockSkew, name)
		assert.Contains(t, err.Error(), "check this machine's clock (NTP)", name)
		requireOneLine(t, err.Error())
	}
}

func TestShownQuotesOnlyWhenNeeded(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"system:serviceaccount:ns:sa":    "system:serviceaccount:ns:sa",
		"https://kubernetes.default.svc": "https://kubernetes.default.svc",
		"repo:o/r:ref:refs/heads/main":   "repo:o/r:ref:refs/heads/main",
		"a b":                            `"a b"`,
		"a\nb":                           `"a\nb"`,
		"a;b":                            `"a;b"`,
		"":                               `""`,
	} {
		assert.Equal(t, want, shown(in), "input %q", in)
	}
	assert.Less(t, len(shown(strings.Repeat("x", 10000))), 200)
}

// TestClockSkewNeedsTheLocalClockToDisagree: an "expired" from the STS for
// a token this clock also finds (nearly) expired is not clock skew.
func TestClockSkewNeedsTheLocalClockToDisagree(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := f.helper(t)
	amb, err := h.findAmbient(context.Background())
	require.NoError(t, err)
	se := &exchange.StatusError{URL: "u", HTTPStatus: http.StatusUnauthorized, Code: 16, Message: "token expired at 2020-01-01T00:00:00Z"}
	assert.ErrorIs(t, h.explain(context.Background(), se, amb, h.cfg.Identity), ErrClockSkew)
	amb.Expiry = time.Now().Add(10 * time.Second)
	assert.ErrorIs(t, h.explain(context.Background(), se, amb, h.cfg.Identity), ErrIdentityRejected)
}

// TestRedactHidesPartsAndKeepsTheKind: the last line of defence hides a
// token's signature echoed on its own, as the exchange's cleaning does,
// and keeps the error's kind.
func TestRedactHidesPartsAndKeepsTheKind(t *testing.T) {
	t.Parallel()
	const token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	sig := token[strings.LastIndexByte(token, '.')+1:]
	err := redact(fmt.Errorf("%w: the STS said: bad signature %s", ErrIdentityRejected, sig), token)
	assert.False(t, strings.Contains(err.Error(), sig), "the signature alone leaked")
	assert.Equal(t, ErrIdentityRejected.Error()+": the STS said: bad signature [REDACTED]", err.Error())
	assert.ErrorIs(t, err, ErrIdentityRejected)

	clean := fmt.Errorf("%w: nothing secret", ErrSTSFailed)
	assert.Same(t, clean, redact(clean, token), "an error with nothing to hide is returned as is")
	assert.NoError(t, redact(nil, token))
}

// TestOneSpellingOfTheIssuer: the helper uses the exchange client's
// spelling of the issuer everywhere, so "https://x/" and "https://x" share
// a cache entry, and messages name the issuer actually used.
func TestOneSpellingOfTheIssuer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	url := f.cfg.Issuer
	f.cfg.Issuer = url + "/"
	h := f.helper(t)
	_, first, err := h.Get(f.host)
	require.NoError(t, err)
	assert.Contains(t, h.notSTS(), `CHAINGUARD_ISSUER="`+url+`"`)

	f.cfg.Issuer = url
	_, second, err := f.helper(t).Get(f.host)
	require.NoError(t, err)
	assert.Equal(t, first, second)
	assert.Equal(t, 1, f.sb.STS.Exchanges(), "one cache entry for both spellings")

	f.cfg.Issuer = ""
	assert.Contains(t, f.helper(t).notSTS(), `CHAINGUARD_ISSUER="`+exchange.DefaultIssuer+`"`, "an empty issuer is the default")
}

// TestIssuerErrorsNameTheSetting: exchange.New says what is wrong with the
// issuer without naming any setting; the message a person sees names
// CHAINGUARD_ISSUER, and still shows no secret the value held.
func TestIssuerErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	const secret = "hunter2"
	for _, tc := range []struct{ issuer, want string }{
		{"http://sts.example.com", "only allowed for loopback"},
		{"ftp://issuer.enforce.dev", "must be an https:// URL"},
		{"issuer.enforce.dev", "absolute URL"},
		{"https://issuer.enforce.dev#frag", "query or fragment"},
		{"https://%zz", "not a URL"},
		{"https://user:" + secret + "@issuer.enforce.dev", "must not contain user info"},
		{"https://issuer.enforce.dev?token=" + secret, "query or fragment"},
		{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJodW50ZXIyIn0." + secret, "not an absolute URL"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			cfg := Config{Issuer: tc.issuer, Registries: []string{"cgr.dev"}}
			_, err := New(cfg)
			require.Error(t, err)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "CHAINGUARD_ISSUER: "), "names the setting: %s", msg)
			assert.Contains(t, msg, tc.want)
			assert.False(t, strings.Contains(msg, secret), "leaked the secret")
			requireOneLine(t, msg)
		})
	}
}
