package creds

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAmbientSourcesListsEveryPlaceInOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	projected := filepath.Join(dir, "oidc-token")
	cfg := Config{tokenPath: projected, ActionsURL: "https://runner.example/token", ActionsToken: "request-token"}
	assert.Equal(t, []SourceReport{
		{Name: "CHAINGUARD_IDENTITY_TOKEN", Missing: "unset"},
		{Name: strconv.Quote(projected), Missing: "no such file"},
		{Name: "GitHub Actions OIDC", Present: true, Remote: true},
	}, AmbientSources(cfg))

	require.NoError(t, os.WriteFile(projected, []byte("x"), 0o600))
	cfg.ActionsToken = ""
	got := AmbientSources(cfg)
	require.Len(t, got, 3)
	assert.True(t, got[1].Present, "a file is there, whatever it holds")
	assert.Empty(t, got[1].Missing)
	assert.False(t, got[2].Present)
	assert.Equal(t, "ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN unset; the job needs permissions: id-token: write", got[2].Missing)

	// A value that is not a token is still the place used: it is an error
	// to report, not a reason to look further.
	cfg.IdentityToken = "/no/such/file"
	assert.True(t, AmbientSources(cfg)[0].Present)
	for _, s := range AmbientSources(cfg) {
		assert.NotContains(t, s.Name+s.Missing, "/no/such/file", "the setting's value is never shown")
		assert.NotContains(t, s.Name+s.Missing, "request-token")
	}
}

func TestIdentityCommand(t *testing.T) {
	t.Parallel()
	amb := AmbientToken{Issuer: "https://kubernetes.default.svc", Subject: "system:serviceaccount:ns:sa", Expiry: time.Now()}
	assert.Equal(t, "chainctl iam identities create NAME --identity-issuer='https://kubernetes.default.svc' --subject-pattern='system:serviceaccount:ns:sa' --role=registry.pull",
		IdentityCommand(amb, ""))
	assert.Equal(t, `chainctl iam identities create NAME --identity-issuer='https://kubernetes.default.svc' --issuer-keys="$(kubectl get --raw /openid/v1/jwks)" --subject-pattern='system:serviceaccount:ns:sa' --role=registry.pull`,
		IdentityCommand(amb, `"$(kubectl get --raw /openid/v1/jwks)"`))

	// The subject is a regular expression to chainctl: its metacharacters
	// are escaped, and single quotes keep the shell from eating them.
	amb.Subject = "repo:octo-org/octo.repo:ref:refs/heads/main"
	assert.Contains(t, IdentityCommand(amb, ""), `--subject-pattern='repo:octo-org/octo\.repo:ref:refs/heads/main'`)

	// Untrusted claims that a shell would interpret are not offered in a
	// pasteable form.
	amb.Subject = "x' ; rm -rf ~ ; echo '"
	cmd := IdentityCommand(amb, "")
	assert.Contains(t, cmd, `--subject-pattern="x' ; rm -rf ~ ; echo '"`)
	assert.NotContains(t, cmd, "='x'")
	amb.Issuer = "https://evil.example/\nE0101 forged"
	assert.Contains(t, IdentityCommand(amb, ""), `--identity-issuer="https://evil.example/\nE0101 forged"`)
}

func TestInspectCache(t *testing.T) {
	t.Parallel()
	now := time.Now()
	t.Run("off", func(t *testing.T) {
		t.Parallel()
		assert.Contains(t, InspectCache(Config{NoCache: true, CacheDir: t.TempDir()}, now).Off, "CHAINGUARD_NO_CACHE")
		assert.Contains(t, InspectCache(Config{}, now).Off, "no cache folder")
	})
	t.Run("not made yet, and not made by looking", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "cache")
		r := InspectCache(Config{CacheDir: dir}, now)
		assert.Equal(t, CacheReport{Dir: dir, Owner: -1}, r)
		assert.NoDirExists(t, dir)
	})
	t.Run("entries", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		require.NoError(t, os.Chmod(dir, 0o700))
		c, err := openCache(dir, t.Logf)
		require.NoError(t, err)
		defer func() { _ = c.close() }()
		for i, left := range []time.Duration{30 * time.Minute, 50 * time.Minute} {
			require.NoError(t, c.storeAt(cacheKey(strconv.Itoa(i)), testToken(t, now.Add(left)), now))
		}
		// An expired entry, written without the sweep that would remove it.
		expired := testToken(t, now.Add(-time.Minute))
		b, err := json.Marshal(cacheEntry{Token: expired.Raw, Expiry: expired.Expiry})
		require.NoError(t, err)
		require.NoError(t, c.writeAtomic(cacheKey("expired"), entrySuffix, b))
		require.NoError(t, os.WriteFile(filepath.Join(dir, cacheKey("corrupt")+entrySuffix), []byte("{"), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "unrelated.json"), []byte("{}"), 0o600))
		r := InspectCache(Config{CacheDir: dir}, now)
		assert.Equal(t, dir, r.Dir)
		assert.True(t, r.Exists)
		assert.Empty(t, r.Problem)
		assert.Equal(t, os.FileMode(0o700), r.Mode)
		assert.Equal(t, os.Geteuid(), r.Owner)
		assert.Equal(t, 4, r.Entries)
		assert.Equal(t, 2, r.Valid)
		assert.Equal(t, 1, r.Ignored)
		assert.WithinDuration(t, now.Add(50*time.Minute), r.ValidUntil, time.Second)
	})
	t.Run("shared folder: the private subfolder", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		require.NoError(t, os.Chmod(dir, 0o755))
		sub := filepath.Join(dir, privateName())
		r := InspectCache(Config{CacheDir: dir}, now)
		assert.Equal(t, sub, r.Dir)
		assert.False(t, r.Exists)
		assert.NoDirExists(t, sub, "looking makes nothing")

		require.NoError(t, os.Mkdir(sub, 0o755))
		r = InspectCache(Config{CacheDir: dir}, now)
		assert.True(t, r.Exists)
		assert.Equal(t, os.FileMode(0o755), r.Mode)
		assert.Contains(t, r.Problem, "must not be open to group or others")
	})
}

// quoteMeta stands in for regexp.QuoteMeta, which the binary does not link.
func TestQuoteMetaIsRegexpQuoteMeta(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "system:serviceaccount:ns:sa", `repo:o/r.x:ref:refs/heads/main`,
		`\.+*?()|[]{}^$`, "a\x00b\tc", "ünïcode.*"} {
		assert.Equal(t, regexp.QuoteMeta(s), quoteMeta(s), "input %q", s)
		assert.True(t, regexp.MustCompile("^"+quoteMeta(s)+"$").MatchString(s), "input %q", s)
	}
}
