package creds

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// testToken makes a registry-token-shaped JWT expiring at exp. Signed with
// a throwaway HMAC key: the cache never verifies signatures.
func testToken(t testing.TB, exp time.Time) exchange.Token {
	t.Helper()
	raw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: "test", ExpiresAt: jwt.NewNumericDate(exp),
	}).SignedString([]byte("test-key"))
	require.NoError(t, err)
	tok, err := exchange.ParseToken(raw)
	require.NoError(t, err)
	return tok
}

// cacheEntry is an entry as encoding/json sees it: the reference that
// appendEntry and parseEntry are held to, and the way tests write entries
// of their own (expired, hand-edited, from elsewhere).
type cacheEntry struct {
	Token  string    `json:"token"`
	Expiry time.Time `json:"expiry"`
}

func newTestCache(t *testing.T) *cache {
	t.Helper()
	c, err := openCache(filepath.Join(t.TempDir(), "cache"), t.Logf)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.close() })
	return c
}

func TestCacheRoundTripAndModes(t *testing.T) {
	t.Parallel()
	c := newTestCache(t)
	now := time.Now()
	tok := testToken(t, now.Add(time.Hour))
	key := cacheKey("a", "b")

	_, ok := c.load(key, now)
	assert.False(t, ok, "empty cache misses")
	require.NoError(t, c.storeAt(key, tok, now))

	got, ok := c.load(key, now)
	require.True(t, ok)
	assert.Equal(t, tok.Raw, got.Raw)
	assert.True(t, tok.Expiry.Equal(got.Expiry))

	fi, err := os.Stat(c.path(key))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(c.dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())

	entries, err := os.ReadDir(c.dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temp file left behind")
}

func TestCacheMargin(t *testing.T) {
	t.Parallel()
	c := newTestCache(t)
	now := time.Now()
	key := cacheKey("margin")
	require.NoError(t, c.storeAt(key, testToken(t, now.Add(Margin+time.Minute)), now))
	_, ok := c.load(key, now)
	assert.True(t, ok, "six minutes left is served")
	_, ok = c.load(key, now.Add(time.Minute))
	assert.False(t, ok, "exactly the margin left is not served")
	_, ok = c.load(key, now.Add(2*time.Hour))
	assert.False(t, ok, "an expired token is never served")
}

func TestCacheKeySeparates(t *testing.T) {
	t.Parallel()
	parts := []string{"https://issuer", "identity", "cgr.dev", "https://k8s", "system:serviceaccount:ns:a"}
	base := cacheKey(parts...)
	for i := range parts {
		changed := append([]string(nil), parts...)
		changed[i] += "x"
		assert.NotEqual(t, base, cacheKey(changed...), "part %d must change the key", i)
	}
	// The separator keeps ("ab","c") and ("a","bc") apart.
	assert.NotEqual(t, cacheKey("ab", "c"), cacheKey("a", "bc"))
}

func TestCacheIgnoresBadEntries(t *testing.T) {
	t.Parallel()
	now := time.Now()
	good := testToken(t, now.Add(time.Hour))
	for name, spoil := range map[string]func(t *testing.T, path string){
		"corrupt":   func(t *testing.T, p string) { require.NoError(t, os.WriteFile(p, []byte("{garbage"), 0o600)) },
		"truncated": func(t *testing.T, p string) { truncate(t, p) },
		"not a jwt": func(t *testing.T, p string) { require.NoError(t, os.WriteFile(p, []byte(`{"token":"abc"}`), 0o600)) },
		"world-readable": func(t *testing.T, p string) {
			require.NoError(t, os.Chmod(p, 0o644))
		},
		"group-readable": func(t *testing.T, p string) { require.NoError(t, os.Chmod(p, 0o640)) },
		"symlink": func(t *testing.T, p string) {
			target := p + ".elsewhere"
			require.NoError(t, os.Rename(p, target))
			require.NoError(t, os.Symlink(target, p))
		},
		"a folder": func(t *testing.T, p string) {
			require.NoError(t, os.Remove(p))
			require.NoError(t, os.Mkdir(p, 0o700))
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := newTestCache(t)
			key := cacheKey(name)
			require.NoError(t, c.storeAt(key, good, now))
			spoil(t, c.path(key))
			_, ok := c.load(key, now)
			assert.False(t, ok, "a %s entry must be ignored", name)
			if name == "a folder" {
				return
			}
			require.NoError(t, c.storeAt(key, good, now), "and replaced")
			_, ok = c.load(key, now)
			assert.True(t, ok)
		})
	}
}

func truncate(t *testing.T, p string) {
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, b[:len(b)-3], 0o600))
}

func TestCacheLockExcludes(t *testing.T) {
	t.Parallel()
	c := newTestCache(t)
	key := cacheKey("lock")
	ctx := context.Background()
	var mu sync.Mutex
	inside, maxInside := 0, 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			unlock, err := c.lockWait(ctx, key, time.Minute, nil)
			if !assert.NoError(t, err) {
				return
			}
			mu.Lock()
			inside++
			maxInside = max(maxInside, inside)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		})
	}
	wg.Wait()
	assert.Equal(t, 1, maxInside, "one holder at a time")

	unlock, err := c.lockWait(ctx, key, time.Minute, nil)
	require.NoError(t, err)
	defer unlock()
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	_, err = c.lockWait(short, key, time.Minute, nil)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a held lock times out with the context")
}
