package creds

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"net/http"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

type fixture struct {
	sb      *sandbox.Sandbox
	cfg     Config
	ambient string
	host    string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	sb, err := sandbox.Start()
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	ambient, err := sb.Issuer.MintServiceAccountToken("ns", "sa")
	require.NoError(t, err)
	dir := t.TempDir()
	return &fixture{
		sb:      sb,
		ambient: ambient,
		host:    sb.Registry.Host(),
		cfg: Config{
			Identity:      sandbox.DefaultIdentity,
			IdentityToken: ambient,
			Issuer:        sb.STS.URL(),
			Audience:      DefaultAudience,
			Registries:    []string{sb.Registry.Host()},
			CacheDir:      filepath.Join(dir, "cache"),
			tokenPath:     filepath.Join(dir, "no-projected-token"),
			Timeout:       10 * time.Second,
		},
	}
}

func (f *fixture) helper(t *testing.T, opts ...Option) *Helper {
	t.Helper()
	h, err := New(f.cfg, append([]Option{WithLogger(t.Logf)}, opts...)...)
	require.NoError(t, err)
	return h
}

func TestHelperGetUsesTheCacheUntilTheMargin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Valid both now (for the STS) and an hour on (for the helper's clock).
	ambient, err := f.sb.Issuer.MintServiceAccountToken("ns", "sa", sandbox.WithLifetime(2*time.Hour))
	require.NoError(t, err)
	f.cfg.IdentityToken = ambient
	now := time.Now()
	h := f.helper(t, WithClock(func() time.Time { return now }))

	user, secret, err := h.Get(f.host)
	require.NoError(t, err)
	assert.Equal(t, "_token", user)
	_, _, err = h.Get("http://" + f.host + "/")
	require.NoError(t, err)
	assert.Equal(t, 1, f.sb.STS.Exchanges())

	// 54 minutes on, the 1h token has 6 minutes left: still served.
	now = now.Add(54 * time.Minute)
	_, again, err := h.Get(f.host)
	require.NoError(t, err)
	assert.True(t, again == secret)
	assert.Equal(t, 1, f.sb.STS.Exchanges())

	// Two minutes later it is inside the margin: exchanged anew.
	now = now.Add(2 * time.Minute)
	_, fresh, err := h.Get(f.host)
	require.NoError(t, err)
	assert.False(t, fresh == secret)
	assert.Equal(t, 2, f.sb.STS.Exchanges())
}

// mintAt mints an ambient token valid at now (which may be in the future).
func mintAt(t *testing.T, sb *sandbox.Sandbox, now time.Time) string {
	tok, err := sb.Issuer.MintServiceAccountToken("ns", "sa", sandbox.WithIssuedAt(now.Add(-time.Minute)), sandbox.WithLifetime(time.Hour))
	require.NoError(t, err)
	return tok
}

func TestHelperNotFound(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, _, err := f.helper(t).Get("ghcr.io")
	require.Error(t, err)
	assert.Equal(t, "credentials not found in native keychain", err.Error())
	assert.Equal(t, 0, f.sb.STS.Requests())
}

func TestHelperErrorKinds(t *testing.T) {
	t.Parallel()
	// Each setup returns the ambient token it put in use ("" when there is
	// none); the message must hold neither that token nor its signature.
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, f *fixture) (inUse string)
		want  error
	}{
		{"rejected", func(_ *testing.T, f *fixture) string {
			f.sb.STS.InjectFaults(sandbox.Fault{Status: 403, Message: "no"})
			return f.ambient
		}, ErrIdentityRejected},
		{"unknown identity", func(_ *testing.T, f *fixture) string { f.cfg.Identity = "missing"; return f.ambient }, ErrIdentityRejected},
		{"unavailable", func(_ *testing.T, f *fixture) string {
			for range 3 {
				f.sb.STS.InjectFaults(sandbox.Fault{Status: 503})
			}
			return f.ambient
		}, ErrSTSUnreachable},
		{"unreachable", func(_ *testing.T, f *fixture) string { f.cfg.Issuer = "http://127.0.0.1:1"; return f.ambient }, ErrSTSUnreachable},
		{"no token", func(_ *testing.T, f *fixture) string { f.cfg.IdentityToken = ""; return "" }, ErrNoAmbientToken},
		{"bad token file", func(_ *testing.T, f *fixture) string { f.cfg.IdentityToken = "/does/not/exist"; return "" }, ErrBadAmbientToken},
		{"expired", func(t *testing.T, f *fixture) string {
			f.cfg.IdentityToken = mintAt(t, f.sb, time.Now().Add(-2*time.Hour))
			return f.cfg.IdentityToken
		}, ErrTokenExpired},
		{"audience", func(t *testing.T, f *fixture) string {
			tok, err := f.sb.Issuer.MintServiceAccountToken("ns", "sa", sandbox.WithAudience("sts.amazonaws.com"))
			require.NoError(t, err)
			f.cfg.IdentityToken = tok
			return tok
		}, ErrWrongAudience},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			inUse := tc.setup(t, f)
			_, _, err := f.helper(t).Get(f.host)
			require.Error(t, err)
			msg := err.Error()

			// Booleans only: a failing assert.NotContains (or ErrorIs, which
			// prints the error) would print the token it found.
			leaked := false
			for _, secret := range []string{inUse, f.ambient} {
				if secret == "" {
					continue
				}
				sig := secret[strings.LastIndexByte(secret, '.')+1:]
				if strings.Contains(msg, secret) || (sig != "" && strings.Contains(msg, sig)) {
					leaked = true
				}
			}
			assert.False(t, leaked, "the ambient token in use, or its signature, leaked into the message")
			assert.False(t, strings.Contains(msg, "eyJ"), "something JWT-shaped leaked into the message")
			assert.False(t, strings.Contains(msg, "\n"), "the message is one line")
			if !leaked && !strings.Contains(msg, "eyJ") {
				assert.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func TestHelperRedactsAnEchoedToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.sb.STS.InjectFaults(sandbox.Fault{Status: 401, Message: "bad token " + f.ambient})
	_, _, err := f.helper(t).Get(f.host)
	require.Error(t, err)
	assert.False(t, strings.Contains(err.Error(), f.ambient), "a token echoed by the server is redacted")
	assert.Contains(t, err.Error(), "[REDACTED]")
	assert.ErrorIs(t, err, ErrIdentityRejected, "redaction keeps the error's kind")
}

func TestHelperRefusesAlreadyExpiredIssuedToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.sb.STS.SetTokenLifetime(-time.Minute)
	_, _, err := f.helper(t).Get(f.host)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "clock")
	entries, _ := filepath.Glob(filepath.Join(f.cfg.CacheDir, "*.json"))
	assert.Empty(t, entries, "nothing expired is cached")
}

func TestHelperSeparatesCallers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := f.helper(t)
	_, a, err := h.Get(f.host)
	require.NoError(t, err)
	other, err := f.sb.Issuer.MintServiceAccountToken("ns", "other")
	require.NoError(t, err)
	amb, err := ParseAmbientToken(other, "test")
	require.NoError(t, err)
	b, err := h.tokenFor(context.Background(), amb, sandbox.DefaultIdentity)
	require.NoError(t, err)
	assert.False(t, a == b.Raw, "another subject never gets the first one's cached token")
	assert.Equal(t, 2, f.sb.STS.Exchanges())
}

func TestHelperWithoutCacheFolder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cfg.CacheDir = ""
	h := f.helper(t)
	for range 2 {
		_, _, err := h.Get(f.host)
		require.NoError(t, err)
	}
	assert.Equal(t, 2, f.sb.STS.Exchanges())
}

// Each way the cache is off makes every call exchange; only an unusable
// cache folder is worth a log line, which says why.
func TestHelperWithTheCacheOff(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		off  func(t *testing.T, f *fixture)
		logs string
	}{
		"CHAINGUARD_NO_CACHE": {func(_ *testing.T, f *fixture) { f.cfg.NoCache = true }, ""},
		"no cache folder":     {func(_ *testing.T, f *fixture) { f.cfg.CacheDir = "" }, ""},
		"a file as the cache folder": {func(t *testing.T, f *fixture) {
			require.NoError(t, os.WriteFile(f.cfg.CacheDir, nil, 0o600))
		}, "cache: disabled: "},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tc.off(t, f)
			var lines []string
			h, err := New(f.cfg, WithLogger(func(format string, args ...any) {
				if line := fmt.Sprintf(format, args...); strings.HasPrefix(line, "cache") {
					lines = append(lines, line)
				}
			}))
			require.NoError(t, err)
			for range 2 {
				_, _, err := h.Get(f.host)
				require.NoError(t, err)
			}
			assert.Equal(t, 2, f.sb.STS.Exchanges())
			if tc.logs == "" {
				assert.Empty(t, lines)
			} else {
				require.Len(t, lines, 2, "one line per call")
				for _, l := range lines {
					assert.True(t, strings.HasPrefix(l, tc.logs), l)
					assert.Contains(t, l, f.cfg.CacheDir, "names the folder")
				}
			}
		})
	}
}

// A token pasted as the identity or the audience is described in the
// debug log and the error, never shown: the exchange's debug line comes
// before the identity is checked.
func TestATokenInTheWrongSettingIsNotLogged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pasted := f.ambient
	f.cfg.Identity, f.cfg.Audience, f.cfg.NoCache = pasted, pasted, true
	var logged strings.Builder
	h, err := New(f.cfg, WithLogger(func(format string, args ...any) {
		fmt.Fprintf(&logged, format+"\n", args...)
	}))
	require.NoError(t, err)
	_, _, err = h.Get(f.host)
	require.Error(t, err)
	require.Contains(t, logged.String(), "exchanging at ", "the line under test was written")
	assert.Contains(t, logged.String(), "for identity (value not shown: ")
	for _, part := range strings.Split(pasted, ".") {
		assert.NotContains(t, logged.String()+err.Error(), part)
	}
}

func TestAmbientTokenSources(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()

	t.Run("JWT or path", func(t *testing.T) {
		assert.True(t, LooksLikeJWT(f.ambient))
		for _, p := range []string{"/var/run/token", "token.jwt", "eyJ/a.b.c", "", "eyJhbGciOi"} {
			assert.False(t, LooksLikeJWT(p), p)
		}
		p := filepath.Join(dir, "token")
		require.NoError(t, os.WriteFile(p, []byte(f.ambient+"\n"), 0o600))
		cfg := f.cfg
		cfg.IdentityToken = p
		got, err := FindAmbientToken(context.Background(), cfg, nil)
		require.NoError(t, err)
		assert.Equal(t, f.ambient, got.Raw(), "the trailing newline is trimmed")
		assert.Equal(t, "system:serviceaccount:ns:sa", got.Subject)
		assert.Equal(t, f.sb.Issuer.URL(), got.Issuer)
		assert.False(t, strings.Contains(got.String()+got.GoString(), f.ambient), "printing never shows the token")
	})
	t.Run("projected path", func(t *testing.T) {
		cfg := f.cfg
		cfg.IdentityToken = ""
		cfg.tokenPath = filepath.Join(dir, "projected")
		require.NoError(t, os.WriteFile(cfg.tokenPath, []byte(f.ambient), 0o600))
		got, err := FindAmbientToken(context.Background(), cfg, nil)
		require.NoError(t, err)
		assert.Equal(t, cfg.tokenPath, got.Source)
	})
	t.Run("empty and huge files", func(t *testing.T) {
		cfg := f.cfg
		cfg.IdentityToken = filepath.Join(dir, "empty")
		require.NoError(t, os.WriteFile(cfg.IdentityToken, []byte("\n"), 0o600))
		_, err := FindAmbientToken(context.Background(), cfg, nil)
		assert.ErrorContains(t, err, "is empty")
		cfg.IdentityToken = filepath.Join(dir, "huge")
		require.NoError(t, os.WriteFile(cfg.IdentityToken, make([]byte, maxTokenSize+1), 0o600))
		_, err = FindAmbientToken(context.Background(), cfg, nil)
		assert.ErrorContains(t, err, "larger than")
	})
	t.Run("GitHub Actions bad bearer", func(t *testing.T) {
		cfg := f.cfg
		cfg.IdentityToken = ""
		cfg.ActionsURL = f.sb.Issuer.ActionsRequestURL()
		cfg.ActionsToken = "wrong"
		_, err := FindAmbientToken(context.Background(), cfg, http.DefaultClient)
		assert.ErrorIs(t, err, ErrNoAmbientToken)
		assert.ErrorContains(t, err, "id-token: write")
	})
}

func TestCheckNamesTheProblem(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tok := AmbientToken{Source: "s", Audience: []string{"a", "b"}, Expiry: now.Add(time.Hour)}
	err := tok.Check(now)
	assert.ErrorIs(t, err, ErrWrongAudience)
	assert.ErrorContains(t, err, `"a,b"`)
	assert.ErrorContains(t, err, `"issuer.enforce.dev"`)

	tok.Audience = nil
	assert.ErrorContains(t, tok.Check(now), `"none"`)

	tok.Audience = []string{EnforceAudience}
	assert.NoError(t, tok.Check(now))
	err = tok.Check(now.Add(90 * time.Minute))
	assert.ErrorIs(t, err, ErrTokenExpired)
	assert.ErrorContains(t, err, "30m0s ago")

	tok.Expiry = time.Time{}
	assert.ErrorIs(t, tok.Check(now), ErrBadAmbientToken)
}

func TestIssuerSpellingsShareTheCache(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, a, err := f.helper(t).Get(f.host)
	require.NoError(t, err)
	f.cfg.Issuer += "/"
	_, b, err := f.helper(t).Get(f.host)
	require.NoError(t, err)
	assert.True(t, a == b, "https://x and https://x/ are one STS")
	assert.Equal(t, 1, f.sb.STS.Exchanges())
}

// findAmbient is what get does before the cache: find the ambient token and
// check it, for tests that start from the token.
func (h *Helper) findAmbient(ctx context.Context) (AmbientToken, error) {
	amb, err := FindAmbientToken(ctx, h.cfg, h.client)
	if err != nil {
		return AmbientToken{}, err
	}
	return h.checked(amb)
}
